-- Exact top-k BM25 without reading every posting: MaxScore (Turtle & Flood, 1995) over the postings table.
--
-- A query term t can add at most idf(t) to a chunk's score (its tf part, tf / (tf + K), is below 1). Sort the
-- query terms by idf, rarest first. After the postings of the rarest m terms ("essential" terms) have been
-- read and every chunk they name has been scored in full, any chunk not yet seen holds none of those m terms,
-- so its score is below the sum of the remaining terms' idf. Once that sum is no higher than the k-th best
-- score found (theta), no unseen chunk can enter the top k and the search stops: the common terms' long
-- posting lists are never read, only probed for the chunks already found (index-only lookups on
-- postings' primary key (collection_id, term, chunk_id)). Results are exactly the exhaustive ranking's.
--
-- The hard filter, the date range, phrase/exclusion constraints and a minimum number of matched terms apply
-- to the candidates before theta is taken; unseen chunks are bounded regardless, so all of them stay exact.

CREATE OR REPLACE FUNCTION pgretrieval._lexical_maxscore(
    p_cid integer,
    p_terms text[],               -- distinct query lexemes, any order
    p_idfs double precision[],    -- their idf, same order
    p_k integer,
    p_k1 double precision,
    p_b double precision,
    p_avgdl double precision,
    p_min_terms integer,
    p_join text,                  -- SQL joining chunks c / documents d to candidates s (our own fragments)
    p_where text,                 -- SQL conditions on them (filter, dates, constraint), placeholders $6..$9
    p_filter_args jsonb,
    p_created_after timestamptz,
    p_created_before timestamptz,
    p_constraint tsquery,
    OUT ids bigint[],
    OUT scores double precision[],
    OUT terms_read integer
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_terms text[];
    v_idfs double precision[];
    v_n integer;
    v_rest double precision[];   -- v_rest[i] = sum of idf of terms i..n
    v_m integer := 0;            -- terms read so far (the essential ones)
    v_next integer;
    v_theta double precision := '-Infinity';
    v_seen bigint[] := '{}';
    v_new_ids bigint[];
    v_new_scores double precision[];
    v_found bigint[];
    v_sql text;
BEGIN
    ids := '{}';
    scores := '{}';
    SELECT array_agg(t.term ORDER BY t.idf DESC, t.term), array_agg(t.idf ORDER BY t.idf DESC, t.term)
      INTO v_terms, v_idfs
      FROM unnest(p_terms, p_idfs) AS t(term, idf);
    v_n := coalesce(cardinality(v_terms), 0);
    terms_read := 0;
    IF v_n = 0 THEN
        RETURN;
    END IF;
    v_rest := array_fill(0.0::double precision, ARRAY[v_n + 1]);
    FOR i IN REVERSE v_n..1 LOOP
        v_rest[i] := v_rest[i + 1] + v_idfs[i];
    END LOOP;

    -- e: postings of the newly essential terms in chunks not seen before; f: those chunks' postings of the
    -- terms not read yet (probes by primary key); s: full scores, filtered, best k.
    v_sql := format(
        'WITH e AS MATERIALIZED ('
        '  SELECT p.chunk_id, q.idf * p.tf::double precision / (p.tf + $3 * (1.0 - $4 + $4 * p.doc_len / $5)) AS part'
        '    FROM unnest($1::text[], $2::double precision[]) AS q(term, idf)'
        '    JOIN pgretrieval.postings p ON p.collection_id = %1$s AND p.term = (q.term COLLATE "C")'
        '    LEFT JOIN unnest($10::bigint[]) AS seen(id) ON seen.id = p.chunk_id'
        '   WHERE seen.id IS NULL'
        '), f AS ('
        '  SELECT p.chunk_id, q.idf * p.tf::double precision / (p.tf + $3 * (1.0 - $4 + $4 * p.doc_len / $5)) AS part'
        '    FROM unnest($11::text[], $12::double precision[]) AS q(term, idf)'
        '    JOIN pgretrieval.postings p ON p.collection_id = %1$s AND p.term = (q.term COLLATE "C")'
        '                               AND p.chunk_id = ANY (ARRAY(SELECT DISTINCT e.chunk_id FROM e))'
        '), s AS ('
        '  SELECT u.chunk_id, sum(u.part) AS score'
        '    FROM (SELECT * FROM e UNION ALL SELECT * FROM f) u'
        '   GROUP BY u.chunk_id%2$s'
        ')'
        ' SELECT (SELECT array_agg(DISTINCT e.chunk_id) FROM e),'
        '        array_agg(t.chunk_id ORDER BY t.score DESC, t.chunk_id), array_agg(t.score ORDER BY t.score DESC, t.chunk_id)'
        '   FROM (SELECT s.chunk_id, s.score FROM s%3$s WHERE true%4$s'
        '          ORDER BY s.score DESC, s.chunk_id LIMIT %5$s) t',
        p_cid,
        CASE WHEN p_min_terms > 1 THEN format(' HAVING count(*) >= %s', p_min_terms) ELSE '' END,
        p_join, p_where, p_k);

    LOOP
        -- Read the next term; when the rarest terms are cheap, a query touching several rare terms reads
        -- them together (each iteration costs a statement).
        v_next := v_m + 1;
        EXECUTE v_sql
           INTO v_found, v_new_ids, v_new_scores
          USING v_terms[v_m + 1:v_next], v_idfs[v_m + 1:v_next], p_k1, p_b, p_avgdl,
                p_filter_args, p_created_after, p_created_before, p_constraint,
                v_seen, v_terms[v_next + 1:v_n], v_idfs[v_next + 1:v_n];
        v_m := v_next;
        v_seen := v_seen || coalesce(v_found, '{}');
        IF v_new_ids IS NOT NULL THEN
            SELECT array_agg(u.id ORDER BY u.sc DESC, u.id), array_agg(u.sc ORDER BY u.sc DESC, u.id)
              INTO ids, scores
              FROM (SELECT x.id, x.sc FROM unnest(ids || v_new_ids, scores || v_new_scores) AS x(id, sc)
                     ORDER BY x.sc DESC, x.id LIMIT p_k) u;
        END IF;
        IF cardinality(ids) >= p_k THEN
            v_theta := scores[p_k];
        END IF;
        EXIT WHEN v_m >= v_n OR v_rest[v_m + 1] <= v_theta;
    END LOOP;
    terms_read := v_m;
END
$$;
