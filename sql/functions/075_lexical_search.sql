-- Lexical search: Okapi BM25, Lucene's variant, over the postings table.
--
--   score(chunk) = sum over distinct query lexemes t in the chunk of
--                  idf(t) * tf / (tf + k1 * (1 - b + b * len / avglen))
--   idf(t)       = ln(1 + (N - df + 0.5) / (df + 0.5))
-- with tf and len (the chunk's token count without stop words) from postings, N and the total length from
-- the summed collection_stats deltas and df from the summed term_stats deltas (exact in every snapshot).
-- As in Lucene since 8.0 and bm25s' "lucene" method, the constant (k1 + 1) numerator factor is left out: it
-- does not change the ranking.
--
-- A query reads only its own terms' postings, by index-only scans of postings' primary key, and with MaxScore
-- pruning (074_lexical_maxscore.sql; search_settings.lexical_pruning = false turns it off) only the rarer
-- terms' lists in full: the common terms are probed for the chunks found. Matching is OR
-- over terms by default; quoted phrases, exclusions and require_all_terms add a check of the chunk's tsvector
-- that runs only on the best-scored candidates (see 070_query_parsing.sql for the query language).
--
-- A prefix lexeme (pgretrieval._is_prefix_lexeme: one CJK character of a cjk, cjk_simple or auto query) is
-- scored as one term over a prefix range of postings (the character's bigrams and its run-final unigram):
-- tf = their summed tf in the chunk, df = the number of chunks holding any of them, i.e. exactly the tf and df
-- of the character in a unigram index, read from a range scan of the same primary key.

CREATE OR REPLACE FUNCTION pgretrieval._lexical_ranked(
    p_collection pgretrieval.collections,
    p_query text,
    p_k integer,
    p_filter jsonb,
    p_created_after timestamptz,
    p_created_before timestamptz,
    p_k1 double precision,
    p_b double precision,
    p_require_all boolean,
    OUT ids bigint[],
    OUT scores double precision[]
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer := p_collection.id;
    v_settings jsonb := p_collection.search_settings;
    v_k1 double precision := pgretrieval._setting(v_settings, 'k1', p_k1, 1.2::double precision);
    v_b double precision := pgretrieval._setting(v_settings, 'b', p_b, 0.75::double precision);
    v_all boolean := pgretrieval._setting(v_settings, 'require_all_terms', p_require_all, false);
    v_terms text[];
    v_prefixes text[];
    v_idfs double precision[];
    v_n numeric;
    v_total numeric;
    v_required tsquery;
    v_excluded tsquery;
    v_constraint tsquery;
    v_min_terms integer := 1;
    v_filter record;
    v_where text;
    v_join text := '';
BEGIN
    ids := '{}';
    scores := '{}';
    IF v_k1 IS NULL OR v_k1 < 0 OR v_k1 > 100 OR v_b IS NULL OR v_b < 0 OR v_b > 1 THEN
        RAISE EXCEPTION 'invalid BM25 parameters k1=% b=%', v_k1, v_b
            USING ERRCODE = 'PR002', HINT = 'Use 0 <= k1 <= 100 (default 1.2) and 0 <= b <= 1 (default 0.75).';
    END IF;
    SELECT * INTO v_filter FROM pgretrieval.compile_filter(p_filter, 6);  -- validate even when nothing matches
    IF p_k = 0 THEN
        RETURN;
    END IF;

    -- One pass over the parsed query: the positive lexemes to score, the required groups (all of them with
    -- require_all_terms, otherwise the groups made only of phrases; a group matches when one of its clauses
    -- does), the excluded clauses, and a lower bound on how many distinct query lexemes a chunk must contain
    -- (the groups' minimum clause sizes add up when the required groups share no lexeme).
    WITH c AS MATERIALIZED (
        SELECT * FROM pgretrieval.parse_query(p_collection.text_config, p_query)
    ), grps AS (
        SELECT c.grp, pgretrieval._tsquery_combine(array_agg(c.tsq ORDER BY c.clause), false) AS q,
               min(cardinality(c.lexemes)) AS min_lexemes
          FROM c WHERE NOT c.negated
         GROUP BY c.grp
        HAVING v_all OR bool_and(c.phrase)
    ), req_lexemes AS (
        SELECT DISTINCT c.grp, l.lexeme FROM c, unnest(c.lexemes) AS l(lexeme)
         WHERE NOT c.negated AND c.grp IN (SELECT grps.grp FROM grps)
    )
    SELECT (SELECT array_agg(DISTINCT l.lexeme) FROM c, unnest(c.lexemes) AS l(lexeme) WHERE NOT c.negated),
           (SELECT pgretrieval._tsquery_combine(array_agg(grps.q ORDER BY grps.grp), true) FROM grps),
           (SELECT pgretrieval._tsquery_combine(array_agg(c.tsq ORDER BY c.clause), false) FROM c WHERE c.negated),
           (SELECT CASE WHEN count(*) = count(DISTINCT r.lexeme)
                        THEN (SELECT coalesce(sum(grps.min_lexemes), 1) FROM grps) ELSE 1 END
              FROM req_lexemes r)
      INTO v_terms, v_required, v_excluded, v_min_terms;
    IF v_terms IS NULL THEN
        RETURN;  -- nothing to rank by (only stop words, punctuation or exclusions)
    END IF;
    IF p_collection.text_config IN ('cjk', 'cjk_simple', 'auto') THEN
        SELECT array_agg(t.term) FILTER (WHERE NOT t.prefix), array_agg(t.term) FILTER (WHERE t.prefix)
          INTO v_terms, v_prefixes
          FROM (SELECT u.term, pgretrieval._is_prefix_lexeme(p_collection.text_config, u.term) AS prefix
                  FROM unnest(v_terms) AS u(term)) t;
    END IF;
    v_constraint := v_required;
    IF v_excluded IS NOT NULL THEN
        v_constraint := CASE WHEN v_constraint IS NULL THEN !! v_excluded ELSE v_constraint && !! v_excluded END;
    END IF;

    -- Corpus statistics, summed from delta rows.
    SELECT sum(s.n_chunks), sum(s.total_len) INTO v_n, v_total
      FROM pgretrieval.collection_stats s WHERE s.collection_id = v_cid;
    IF coalesce(v_n, 0) <= 0 THEN
        RETURN;
    END IF;
    IF v_terms IS NOT NULL THEN
        SELECT array_agg(t.term ORDER BY t.term), array_agg(ln(1.0 + (v_n - t.df + 0.5) / (t.df + 0.5))::double precision ORDER BY t.term)
          INTO v_terms, v_idfs
          FROM (SELECT q.term, sum(s.df) AS df
                  FROM unnest(v_terms) AS q(term)
                  JOIN pgretrieval.term_stats s ON s.collection_id = v_cid AND s.term = (q.term COLLATE "C")
                 GROUP BY q.term
                HAVING sum(s.df) > 0) t;
    END IF;
    IF v_terms IS NULL AND v_prefixes IS NULL THEN
        RETURN;
    END IF;

    v_where := pgretrieval._filter_clause(v_filter.predicate, 6, p_created_after, p_created_before);
    IF v_where <> '' OR v_constraint IS NOT NULL THEN
        v_join := format(' JOIN pgretrieval.chunks c ON c.collection_id = %s AND c.id = s.chunk_id', v_cid);
        IF v_where <> '' THEN
            v_join := v_join || format(' JOIN pgretrieval.documents d ON d.collection_id = %s AND d.id = c.document_id', v_cid);
        END IF;
        IF v_constraint IS NOT NULL THEN
            v_where := v_where || ' AND c.tsv @@ $9';
        END IF;
    END IF;

    IF v_prefixes IS NULL AND pgretrieval._setting(v_settings, 'lexical_pruning', NULL::boolean, true) THEN
        -- Exact top k without reading the common terms' posting lists (074_lexical_maxscore.sql).
        SELECT m.ids, m.scores INTO ids, scores
          FROM pgretrieval._lexical_maxscore(
                   v_cid, v_terms, v_idfs, p_k, v_k1, v_b, (v_total / v_n)::double precision, v_min_terms,
                   v_join, v_where, v_filter.args, p_created_after, p_created_before, v_constraint) AS m;
    ELSIF v_prefixes IS NULL THEN
        EXECUTE format(
            'WITH s AS ('
            '  SELECT p.chunk_id,'
            '         sum(q.idf * p.tf::double precision / (p.tf + $3 * (1.0 - $4 + $4 * p.doc_len / $5))) AS score'
            '    FROM unnest($1::text[], $2::double precision[]) AS q(term, idf)'
            '    JOIN pgretrieval.postings p ON p.collection_id = %1$s AND p.term = (q.term COLLATE "C")'
            '   GROUP BY p.chunk_id%2$s)'
            ' SELECT array_agg(t.chunk_id ORDER BY t.score DESC, t.chunk_id), array_agg(t.score ORDER BY t.score DESC, t.chunk_id)'
            '   FROM (SELECT s.chunk_id, s.score FROM s%3$s WHERE true%4$s'
            '          ORDER BY s.score DESC, s.chunk_id LIMIT %5$s) t',
            v_cid,
            CASE WHEN v_min_terms > 1 THEN format(' HAVING count(*) >= %s', v_min_terms) ELSE '' END,
            v_join, v_where, p_k)
           INTO ids, scores
          USING v_terms, v_idfs, v_k1, v_b, (v_total / v_n)::double precision,
                v_filter.args, p_created_after, p_created_before, v_constraint;
    ELSE
        -- x: per prefix lexeme and chunk, the summed tf of the lexemes in its range (a CJK character followed
        -- by at most one more: chr(1114111) bounds the range in "C" order); its df is the number of chunks.
        EXECUTE format(
            'WITH x AS MATERIALIZED ('
            '  SELECT e.lexeme, p.chunk_id, sum(p.tf)::double precision AS tf, min(p.doc_len) AS doc_len'
            '    FROM unnest($10::text[]) AS e(lexeme)'
            '    JOIN pgretrieval.postings p ON p.collection_id = %1$s AND p.term >= (e.lexeme COLLATE "C")'
            '                               AND p.term <= ((e.lexeme || chr(1114111)) COLLATE "C")'
            '   GROUP BY e.lexeme, p.chunk_id'
            '), h AS ('
            '  SELECT p.chunk_id, q.idf * p.tf::double precision / (p.tf + $3 * (1.0 - $4 + $4 * p.doc_len / $5)) AS part'
            '    FROM unnest($1::text[], $2::double precision[]) AS q(term, idf)'
            '    JOIN pgretrieval.postings p ON p.collection_id = %1$s AND p.term = (q.term COLLATE "C")'
            '  UNION ALL'
            '  SELECT x.chunk_id, ln(1.0 + ($11 - d.df + 0.5) / (d.df + 0.5))'
            '                     * x.tf / (x.tf + $3 * (1.0 - $4 + $4 * x.doc_len / $5))'
            '    FROM x JOIN (SELECT x.lexeme, count(*)::double precision AS df FROM x GROUP BY x.lexeme) d USING (lexeme)'
            '), s AS ('
            '  SELECT h.chunk_id, sum(h.part) AS score FROM h GROUP BY h.chunk_id%2$s)'
            ' SELECT array_agg(t.chunk_id ORDER BY t.score DESC, t.chunk_id), array_agg(t.score ORDER BY t.score DESC, t.chunk_id)'
            '   FROM (SELECT s.chunk_id, s.score FROM s%3$s WHERE true%4$s'
            '          ORDER BY s.score DESC, s.chunk_id LIMIT %5$s) t',
            v_cid,
            CASE WHEN v_min_terms > 1 THEN format(' HAVING count(*) >= %s', v_min_terms) ELSE '' END,
            v_join, v_where, p_k)
           INTO ids, scores
          USING v_terms, v_idfs, v_k1, v_b, (v_total / v_n)::double precision,
                v_filter.args, p_created_after, p_created_before, v_constraint, v_prefixes, v_n::double precision;
    END IF;
    ids := coalesce(ids, '{}');
    scores := coalesce(scores, '{}');
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval.lexical_search(
    query_text        text,
    match_count       integer DEFAULT 10,
    collection        text DEFAULT NULL,
    filter            jsonb DEFAULT NULL,
    created_after     timestamptz DEFAULT NULL,
    created_before    timestamptz DEFAULT NULL,
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
    v_collection pgretrieval.collections := pgretrieval._search_collection(lexical_search.collection);
    v_k integer := pgretrieval._check_match_count(lexical_search.match_count);
    r record;
BEGIN
    IF query_text IS NULL OR btrim(query_text) = '' THEN
        RAISE EXCEPTION 'query_text is empty'
            USING ERRCODE = 'PR002', HINT = 'Pass the words to search for, e.g. lexical_search(''heart attack risk'').';
    END IF;
    SELECT * INTO r FROM pgretrieval._lexical_ranked(
        v_collection, query_text, v_k, lexical_search.filter, lexical_search.created_after,
        lexical_search.created_before, lexical_search.k1, lexical_search.b, lexical_search.require_all_terms);
    RETURN QUERY EXECUTE format(
        'SELECT c.id, c.document_id, d.external_id, d.title, c.content, d.metadata, d.created_at,'
        '       r.score, NULL::integer, NULL::double precision, r.rank::integer, r.score, NULL::integer,'
        '       NULL::double precision'
        '  FROM unnest($1::bigint[], $2::double precision[]) WITH ORDINALITY AS r(chunk_id, score, rank)'
        '  JOIN pgretrieval.chunks c ON c.collection_id = %1$s AND c.id = r.chunk_id'
        '  JOIN pgretrieval.documents d ON d.collection_id = %1$s AND d.id = c.document_id'
        ' ORDER BY r.rank', v_collection.id)
        USING r.ids, r.scores;
END
$$;
