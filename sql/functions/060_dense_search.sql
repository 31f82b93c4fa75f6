-- Dense (vector) search: pgvector HNSW over the (collection, embedder) partial expression index made by
-- attach_embedder(), with the metadata filter and date range applied, returning match_count rows whenever
-- that many chunks pass the filter.
--
-- How rows are never lost under a filter:
-- 1. A selective filter is detected exactly and cheaply: count the matching documents, stopping at a
--    threshold (default sqrt(3 * k * N), at least 100; search_settings.exact_threshold overrides). Below it,
--    an exact scan of just those documents' chunks is both exact and faster than walking the graph.
-- 2. Otherwise the HNSW scan runs with pgvector's iterative scan (hnsw.iterative_scan = relaxed_order,
--    hnsw.max_scan_tuples), which keeps walking the graph until LIMIT rows passed the filter; rows are
--    re-sorted by exact distance afterwards.
-- 3. If that still returns fewer than k rows, an exact scan answers instead.
-- exact => true forces the exact scan; exact => false forces the index (no fallback; for measurements).
--
-- The index is only usable when the query repeats the index expression and its predicate literally, so the
-- query is dynamic SQL in which only integers we own are spliced; the vector and filter go through USING.
-- Planner settings are SET LOCAL (set_config(..., true)) inside a function whose own SET clauses scope
-- them to the call.

CREATE OR REPLACE FUNCTION pgretrieval._dense_ranked(
    p_collection pgretrieval.collections,
    p_embedder pgretrieval.embedders,
    p_query vector,
    p_k integer,
    p_filter jsonb,
    p_created_after timestamptz,
    p_created_before timestamptz,
    p_ef_search integer,
    p_exact boolean,
    OUT ids bigint[],
    OUT scores double precision[],
    OUT used_exact boolean
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = relaxed_order
SET hnsw.max_scan_tuples = 20000
AS $$
DECLARE
    v_cid integer := p_collection.id;
    v_eid integer := p_embedder.id;
    v_settings jsonb := p_collection.search_settings;
    v_ef integer := pgretrieval._setting(v_settings, 'ef_search', p_ef_search, 100);
    v_max_scan integer := pgretrieval._setting(v_settings, 'max_scan_tuples', NULL::integer, 20000);
    v_threshold integer := pgretrieval._setting(v_settings, 'exact_threshold', NULL::integer, NULL::integer);
    v_filter record;
    v_where text;
    v_join text := '';
    v_index text;
    x record;
    v_n bigint;
    v_matching bigint;
    v_dists double precision[];
    v_sim text;
BEGIN
    ids := '{}';
    scores := '{}';
    used_exact := false;
    IF p_k = 0 THEN
        RETURN;
    END IF;
    IF v_ef < 1 OR v_ef > 1000 THEN
        RAISE EXCEPTION 'invalid ef_search %', v_ef
            USING ERRCODE = 'PR002', HINT = 'ef_search is the HNSW candidate list size, 1 to 1000 (default 100).';
    END IF;
    IF v_max_scan < 1 THEN
        RAISE EXCEPTION 'invalid max_scan_tuples %', v_max_scan
            USING ERRCODE = 'PR002', HINT = 'Set search_settings.max_scan_tuples to a positive number (default 20000).';
    END IF;
    PERFORM pgretrieval._check_query_embedding(p_query, p_embedder);

    SELECT * INTO v_filter FROM pgretrieval.compile_filter(p_filter, 2);
    v_where := pgretrieval._filter_clause(v_filter.predicate, 2, p_created_after, p_created_before);
    IF v_where <> '' THEN
        v_join := ' JOIN pgretrieval.chunks c ON c.collection_id = e.collection_id AND c.id = e.chunk_id'
                  ' JOIN pgretrieval.documents d ON d.collection_id = c.collection_id AND d.id = c.document_id';
    END IF;
    SELECT * INTO x FROM pgretrieval.embedding_expression(p_embedder.dimensions, p_embedder.distance);
    -- similarity from distance: cosine 1 - d, inner product -(<#>), l2 -d
    v_sim := CASE p_embedder.distance WHEN 'cosine' THEN '1.0 - r.dist' ELSE '-r.dist' END;
    SELECT ce.index_name INTO v_index FROM pgretrieval.collection_embedders ce
     WHERE ce.collection_id = v_cid AND ce.embedder_id = v_eid;

    IF p_exact IS NULL AND v_index IS NOT NULL AND v_where <> '' THEN
        -- How selective is the filter? Count matching documents, but never past the threshold.
        IF v_threshold IS NULL THEN
            SELECT coalesce(sum(s.n_chunks), 0) INTO v_n FROM pgretrieval.collection_stats s
             WHERE s.collection_id = v_cid;
            v_threshold := greatest(100, ceil(sqrt(3.0 * p_k * greatest(v_n, 1)))::integer);
        END IF;
        EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM pgretrieval.documents d WHERE d.collection_id = %s%s LIMIT %s) m',
                       v_cid, v_where, v_threshold + 1)
           INTO v_matching USING NULL::vector, v_filter.args, p_created_after, p_created_before;
        used_exact := v_matching <= v_threshold;
    ELSE
        used_exact := coalesce(p_exact, false) OR v_index IS NULL;
    END IF;

    IF NOT used_exact THEN
        PERFORM set_config('hnsw.ef_search', least(1000, greatest(v_ef, p_k))::text, true);
        PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
        PERFORM set_config('hnsw.max_scan_tuples', v_max_scan::text, true);
        -- Inner query: the literal index expression, operator and partial-index predicate, ORDER BY ... LIMIT.
        EXECUTE format(
            'WITH r AS MATERIALIZED ('
            '  SELECT e.chunk_id, (%1$s %2$s $1::%3$s) AS dist'
            '    FROM pgretrieval.embeddings e%4$s'
            '   WHERE e.collection_id = %5$s AND e.embedder_id = %6$s%7$s'
            '   ORDER BY %1$s %2$s $1::%3$s'
            '   LIMIT %8$s)'
            ' SELECT array_agg(r.chunk_id ORDER BY r.dist, r.chunk_id), array_agg(%9$s ORDER BY r.dist, r.chunk_id) FROM r',
            x.expr, x.operator,
            CASE WHEN p_embedder.dimensions > 2000 THEN format('halfvec(%s)', p_embedder.dimensions)
                 ELSE format('vector(%s)', p_embedder.dimensions) END,
            v_join, v_cid, v_eid, v_where, p_k, v_sim)
           INTO ids, scores USING p_query, v_filter.args, p_created_after, p_created_before;
        ids := coalesce(ids, '{}');
        scores := coalesce(scores, '{}');
        IF cardinality(ids) >= p_k OR p_exact IS NOT NULL THEN
            RETURN;
        END IF;
        used_exact := true;  -- under-full: the exact scan decides
    END IF;

    -- Exact scan: the uncast column does not match the index expression, so this never walks the graph.
    EXECUTE format(
        'WITH r AS MATERIALIZED ('
        '  SELECT e.chunk_id, (e.embedding %1$s $1) AS dist'
        '    FROM pgretrieval.embeddings e%2$s'
        '   WHERE e.collection_id = %3$s AND e.embedder_id = %4$s%5$s'
        '   ORDER BY 2, 1'
        '   LIMIT %6$s)'
        ' SELECT array_agg(r.chunk_id ORDER BY r.dist, r.chunk_id), array_agg(%7$s ORDER BY r.dist, r.chunk_id) FROM r',
        x.operator, v_join, v_cid, v_eid, v_where, p_k, v_sim)
       INTO ids, scores USING p_query, v_filter.args, p_created_after, p_created_before;
    ids := coalesce(ids, '{}');
    scores := coalesce(scores, '{}');
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval.dense_search(
    query_embedding vector,
    match_count     integer DEFAULT 10,
    collection      text DEFAULT NULL,
    embedder        text DEFAULT NULL,
    filter          jsonb DEFAULT NULL,
    created_after   timestamptz DEFAULT NULL,
    created_before  timestamptz DEFAULT NULL,
    ef_search       integer DEFAULT NULL,
    exact           boolean DEFAULT NULL
)
RETURNS TABLE (
    chunk_id bigint, document_id bigint, external_id text, title text, content text, metadata jsonb,
    created_at timestamptz, score double precision, dense_rank integer, dense_score double precision,
    lexical_rank integer, lexical_score double precision, metadata_rank integer, recency double precision
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_collection pgretrieval.collections := pgretrieval._search_collection(dense_search.collection);
    v_embedder pgretrieval.embedders := pgretrieval._search_embedder(v_collection, dense_search.embedder);
    v_k integer := pgretrieval._check_match_count(dense_search.match_count);
    r record;
BEGIN
    SELECT * INTO r FROM pgretrieval._dense_ranked(
        v_collection, v_embedder, query_embedding, v_k, dense_search.filter,
        dense_search.created_after, dense_search.created_before, dense_search.ef_search, dense_search.exact);
    RETURN QUERY EXECUTE format(
        'SELECT c.id, c.document_id, d.external_id, d.title, c.content, d.metadata, d.created_at,'
        '       r.score, r.rank::integer, r.score, NULL::integer, NULL::double precision, NULL::integer,'
        '       NULL::double precision'
        '  FROM unnest($1::bigint[], $2::double precision[]) WITH ORDINALITY AS r(chunk_id, score, rank)'
        '  JOIN pgretrieval.chunks c ON c.collection_id = %1$s AND c.id = r.chunk_id'
        '  JOIN pgretrieval.documents d ON d.collection_id = %1$s AND d.id = c.document_id'
        ' ORDER BY r.rank', v_collection.id)
        USING r.ids, r.scores;
END
$$;
