-- hybrid_search: dense + BM25 (+ an optional metadata list), fused, with optional time decay.
--
-- 1. Each branch takes `candidates` rows (default 100, at least match_count) under the same hard filter and
--    date range: dense via _dense_ranked (HNSW, exact fallback), lexical via _lexical_ranked (BM25).
--    A NULL query_embedding means lexical only; an empty query_text means dense only.
-- 2. metadata_boost (optional, soft): a third ranked list of chunks whose document matches another filter,
--    ordered by recency or a numeric metadata field. Either a filter object, or
--    {"filter": {...}, "order_by": "created_at" | "<numeric metadata key>", "direction": "desc" | "asc",
--     "scope": "candidates" | "collection"}.
--    scope "candidates" (default) ranks only chunks the other branches found, so the boost reorders relevant
--    results; "collection" draws the list from the whole (hard-filtered) collection, as in the guide's
--    three-list fusion, so matching documents can enter the results on their own.
-- 3. Fusion: fusion => 'rrf' (default; weighted RRF with rrf_k), 'minmax' or 'zscore' (convex combination of
--    normalised scores). Weights: vector_weight and bm25_weight (default 0.5 / 0.5; the guide's presets are
--    0.7/0.3 semantic, 0.3/0.7 exact match), metadata_weight (default 0.3).
-- 4. Decay (optional; see 085_decay.sql) multiplies the fused score: score * (1 - weight + weight * factor).
-- Ties are broken by chunk id. NULL tuning arguments come from collections.search_settings, then defaults.

CREATE OR REPLACE FUNCTION pgretrieval._metadata_list(
    p_collection pgretrieval.collections,
    p_boost jsonb,
    p_candidates bigint[],
    p_limit integer,
    p_filter jsonb,
    p_created_after timestamptz,
    p_created_before timestamptz,
    OUT ids bigint[],
    OUT scores double precision[]
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    c_hint constant text := 'metadata_boost is a filter, or {"filter": {...}, "order_by": "created_at" or a numeric '
        'metadata key, "direction": "desc" or "asc", "scope": "candidates" or "collection"}.';
    v_boost_filter jsonb := p_boost;
    v_order text := 'created_at';
    v_direction text := 'desc';
    v_scope text := 'candidates';
    v_key text;
    v_boost record;
    v_hard record;
    v_value text;
    v_where text;
BEGIN
    IF jsonb_typeof(p_boost) <> 'object' THEN
        RAISE EXCEPTION 'malformed metadata_boost: expected a JSON object' USING ERRCODE = 'PR002', HINT = c_hint;
    END IF;
    IF p_boost ? 'filter' THEN
        FOR v_key IN SELECT jsonb_object_keys(p_boost) LOOP
            IF v_key NOT IN ('filter', 'order_by', 'direction', 'scope') THEN
                RAISE EXCEPTION 'unknown metadata_boost option "%"', v_key USING ERRCODE = 'PR002', HINT = c_hint;
            END IF;
        END LOOP;
        v_boost_filter := p_boost -> 'filter';
        v_order := coalesce(p_boost ->> 'order_by', 'created_at');
        v_direction := lower(coalesce(p_boost ->> 'direction', 'desc'));
        v_scope := lower(coalesce(p_boost ->> 'scope', 'candidates'));
        IF v_direction NOT IN ('asc', 'desc') OR v_scope NOT IN ('candidates', 'collection') THEN
            RAISE EXCEPTION 'invalid metadata_boost direction "%" or scope "%"', v_direction, v_scope
                USING ERRCODE = 'PR002', HINT = c_hint;
        END IF;
    END IF;
    SELECT * INTO v_boost FROM pgretrieval.compile_filter(v_boost_filter, 1);
    SELECT * INTO v_hard FROM pgretrieval.compile_filter(p_filter, 2);
    -- the ordering value: epoch seconds of created_at, or a numeric metadata field (others rank last)
    v_value := CASE WHEN v_order = 'created_at' THEN 'extract(epoch FROM d.created_at)::double precision'
                    ELSE 'CASE WHEN jsonb_typeof(d.metadata -> $6) = ''number'' '
                         'THEN (d.metadata ->> $6)::double precision END' END;
    IF v_direction = 'asc' THEN
        v_value := '-(' || v_value || ')';
    END IF;
    v_where := coalesce(' AND ' || v_boost.predicate, '')
            || pgretrieval._filter_clause(v_hard.predicate, 2, p_created_after, p_created_before);

    IF v_scope = 'candidates' THEN
        EXECUTE format(
            'SELECT array_agg(t.id ORDER BY t.v DESC NULLS LAST, t.id), array_agg(t.v ORDER BY t.v DESC NULLS LAST, t.id)'
            '  FROM (SELECT c.id, %2$s AS v'
            '          FROM unnest($5::bigint[]) AS u(id)'
            '          JOIN pgretrieval.chunks c ON c.collection_id = %1$s AND c.id = u.id'
            '          JOIN pgretrieval.documents d ON d.collection_id = %1$s AND d.id = c.document_id'
            '         WHERE true%3$s'
            '         ORDER BY 2 DESC NULLS LAST, 1 LIMIT %4$s) t',
            p_collection.id, v_value, v_where, p_limit)
           INTO ids, scores
          USING v_boost.args, v_hard.args, p_created_after, p_created_before, p_candidates, v_order;
    ELSE
        EXECUTE format(
            'SELECT array_agg(t.id ORDER BY t.v DESC NULLS LAST, t.id), array_agg(t.v ORDER BY t.v DESC NULLS LAST, t.id)'
            '  FROM (SELECT c.id, dd.v'
            '          FROM (SELECT d.id, %2$s AS v FROM pgretrieval.documents d'
            '                 WHERE d.collection_id = %1$s%3$s'
            '                 ORDER BY 2 DESC NULLS LAST, 1 LIMIT %4$s) dd'
            '          JOIN pgretrieval.chunks c ON c.collection_id = %1$s AND c.document_id = dd.id'
            '         ORDER BY dd.v DESC NULLS LAST, c.id LIMIT %4$s) t',
            p_collection.id, v_value, v_where, p_limit)
           INTO ids, scores
          USING v_boost.args, v_hard.args, p_created_after, p_created_before, p_candidates, v_order;
    END IF;
    ids := coalesce(ids, '{}');
    -- rank fusion ignores scores; score fusion needs them, so rows without a value score lowest
    SELECT coalesce(array_agg(coalesce(s, (SELECT min(x) FROM unnest(scores) x), 0) ORDER BY o), '{}')
      INTO scores FROM unnest(scores) WITH ORDINALITY AS u(s, o);
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval.hybrid_search(
    query_text        text DEFAULT NULL,
    query_embedding   vector DEFAULT NULL,
    match_count       integer DEFAULT 10,
    collection        text DEFAULT NULL,
    embedder          text DEFAULT NULL,
    filter            jsonb DEFAULT NULL,
    created_after     timestamptz DEFAULT NULL,
    created_before    timestamptz DEFAULT NULL,
    fusion            text DEFAULT NULL,
    vector_weight     double precision DEFAULT NULL,
    bm25_weight       double precision DEFAULT NULL,
    rrf_k             integer DEFAULT NULL,
    candidates        integer DEFAULT NULL,
    metadata_boost    jsonb DEFAULT NULL,
    metadata_weight   double precision DEFAULT NULL,
    decay             jsonb DEFAULT NULL,
    ef_search         integer DEFAULT NULL,
    k1                double precision DEFAULT NULL,
    b                 double precision DEFAULT NULL,
    require_all_terms boolean DEFAULT NULL
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
    v_collection pgretrieval.collections := pgretrieval._search_collection(hybrid_search.collection);
    v_settings jsonb := v_collection.search_settings;
    v_k integer := pgretrieval._check_match_count(hybrid_search.match_count);
    v_fusion text := lower(pgretrieval._setting(v_settings, 'fusion', hybrid_search.fusion, 'rrf'::text));
    v_wd double precision := pgretrieval._setting(v_settings, 'vector_weight', hybrid_search.vector_weight, 0.5::double precision);
    v_wl double precision := pgretrieval._setting(v_settings, 'bm25_weight', hybrid_search.bm25_weight, 0.5::double precision);
    v_wm double precision := pgretrieval._setting(v_settings, 'metadata_weight', hybrid_search.metadata_weight, 0.3::double precision);
    v_rrf_k integer := pgretrieval._setting(v_settings, 'rrf_k', hybrid_search.rrf_k, 60);
    v_cand integer := pgretrieval._setting(v_settings, 'candidates', hybrid_search.candidates, 100);
    v_decay jsonb := coalesce(hybrid_search.decay, v_settings -> 'decay');
    v_has_text boolean := hybrid_search.query_text IS NOT NULL AND btrim(hybrid_search.query_text) <> '';
    v_embedder pgretrieval.embedders;
    v_dense record;
    v_lex record;
    v_meta record;
    v_dc record;
    v_decay_sql text := 'NULL::double precision';
BEGIN
    IF NOT v_has_text AND hybrid_search.query_embedding IS NULL THEN
        RAISE EXCEPTION 'nothing to search for: query_text is empty and query_embedding is NULL'
            USING ERRCODE = 'PR002', HINT = 'Pass query_text, query_embedding, or both.';
    END IF;
    IF v_fusion NOT IN ('rrf', 'minmax', 'zscore') THEN
        RAISE EXCEPTION 'unknown fusion method "%"', v_fusion
            USING ERRCODE = 'PR002', HINT = 'Use rrf (weighted reciprocal rank fusion), minmax or zscore (score fusion).';
    END IF;
    IF v_cand IS NULL OR v_cand < 1 OR v_cand > 10000 THEN
        RAISE EXCEPTION 'invalid candidates %', v_cand
            USING ERRCODE = 'PR002', HINT = 'candidates is the number of rows each branch contributes, 1 to 10000 (default 100).';
    END IF;
    v_cand := greatest(v_cand, v_k);
    PERFORM pgretrieval._check_weights(ARRAY[v_wd, v_wl, v_wm]);
    SELECT NULL::text AS func, NULL::double precision AS scale_s, NULL::double precision AS offset_s,
           NULL::double precision AS decay, NULL::text AS field, NULL::timestamptz AS origin,
           NULL::double precision AS weight
      INTO v_dc;
    IF v_decay IS NOT NULL AND v_decay <> 'null'::jsonb THEN
        SELECT * INTO v_dc FROM pgretrieval._decay_config(v_decay);
        v_decay_sql := CASE WHEN v_dc.field = 'created_at' THEN 'd.created_at'
                            ELSE 'pgretrieval._jsonb_timestamptz(d.metadata -> $7)' END;
        v_decay_sql := format('coalesce(pgretrieval.decay_factor($8, extract(epoch FROM (%s - $9))::double precision,'
                              ' $10, $11, $12), 1.0)', v_decay_sql);
    END IF;

    IF hybrid_search.query_embedding IS NOT NULL THEN
        v_embedder := pgretrieval._search_embedder(v_collection, hybrid_search.embedder);
        SELECT * INTO v_dense FROM pgretrieval._dense_ranked(
            v_collection, v_embedder, hybrid_search.query_embedding, v_cand, hybrid_search.filter,
            hybrid_search.created_after, hybrid_search.created_before, hybrid_search.ef_search, NULL);
    ELSE
        SELECT NULL::bigint[] AS ids, NULL::double precision[] AS scores INTO v_dense;
    END IF;
    IF v_has_text THEN
        SELECT * INTO v_lex FROM pgretrieval._lexical_ranked(
            v_collection, hybrid_search.query_text, v_cand, hybrid_search.filter, hybrid_search.created_after,
            hybrid_search.created_before, hybrid_search.k1, hybrid_search.b, hybrid_search.require_all_terms);
    ELSE
        SELECT NULL::bigint[] AS ids, NULL::double precision[] AS scores INTO v_lex;
    END IF;
    IF hybrid_search.metadata_boost IS NOT NULL AND hybrid_search.metadata_boost <> 'null'::jsonb THEN
        SELECT * INTO v_meta FROM pgretrieval._metadata_list(
            v_collection, hybrid_search.metadata_boost,
            ARRAY(SELECT DISTINCT x FROM unnest(coalesce(v_dense.ids, '{}') || coalesce(v_lex.ids, '{}')) x),
            v_cand, hybrid_search.filter, hybrid_search.created_after, hybrid_search.created_before);
    ELSE
        SELECT NULL::bigint[] AS ids, NULL::double precision[] AS scores INTO v_meta;
    END IF;

    RETURN QUERY EXECUTE format(
        'WITH f AS ('
        '  SELECT * FROM %2$s'
        '), j AS ('
        '  SELECT c.id, c.document_id, d.external_id, d.title, c.content, d.metadata, d.created_at,'
        '         f.score AS fused, f.dense_rank, f.lexical_rank, f.metadata_rank, %3$s AS recency'
        '    FROM f'
        '    JOIN pgretrieval.chunks c ON c.collection_id = %1$s AND c.id = f.chunk_id'
        '    JOIN pgretrieval.documents d ON d.collection_id = %1$s AND d.id = c.document_id'
        '), s AS ('
        '  SELECT j.*, CASE WHEN j.recency IS NULL THEN j.fused'
        '                   ELSE j.fused * (1.0 - $13 + $13 * j.recency) END AS final'
        '    FROM j'
        ')'
        ' SELECT s.id, s.document_id, s.external_id, s.title, s.content, s.metadata, s.created_at, s.final,'
        '        s.dense_rank, $1[s.dense_rank], s.lexical_rank, $3[s.lexical_rank], s.metadata_rank, s.recency'
        '   FROM s ORDER BY s.final DESC, s.id LIMIT %4$s',
        v_collection.id,
        CASE WHEN v_fusion = 'rrf'
             THEN 'pgretrieval.rrf_fuse($14, $15, $16, $17, $18, $19, $20)'
             ELSE format('pgretrieval.score_fuse($14, $1, $15, $3, $16, $5, $17, $18, $19, %L)', v_fusion) END,
        v_decay_sql, v_k)
        USING v_dense.scores, NULL::integer, v_lex.scores, NULL::integer, v_meta.scores, NULL::integer,
              v_dc.field, v_dc.func, v_dc.origin, v_dc.scale_s, v_dc.offset_s, v_dc.decay,
              coalesce(v_dc.weight, 0.0),
              v_dense.ids, v_lex.ids, v_meta.ids, v_wd, v_wl, v_wm, v_rrf_k;
END
$$;
