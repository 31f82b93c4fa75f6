-- Fusion of ranked lists (dense, lexical and an optional metadata list) into one ranking.
--
-- rrf_fuse:   weighted Reciprocal Rank Fusion, score = sum_i w_i / (k + rank_i), k = 60 by default.
-- score_fuse: convex combination of normalised scores, score = sum_i w_i * norm_i(s) / sum_i w_i over the
--             non-empty lists, with norm = 'minmax' ((s - min) / (max - min), 1 when all scores are equal)
--             or 'zscore' (distribution-based: (z + 3) / 6 clipped to [0, 1], z = (s - mean) / stddev;
--             0.5 when all scores are equal). A chunk missing from a list gets 0 from it.
-- Both: a chunk listed twice in one list keeps its first (best) position; NULL ids are ignored; empty or
-- NULL lists contribute nothing; ties are broken by chunk id ascending, so results are deterministic.
-- Ranks in the output are positions in each input list (1-based), NULL where the chunk was absent.

CREATE OR REPLACE FUNCTION pgretrieval._check_weights(p_weights double precision[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    w double precision;
BEGIN
    FOREACH w IN ARRAY p_weights LOOP
        IF w IS NULL OR w < 0 OR w = 'NaN'::double precision OR w = 'Infinity'::double precision THEN
            RAISE EXCEPTION 'invalid fusion weight %', coalesce(w::text, 'NULL')
                USING ERRCODE = 'PR002', HINT = 'Weights are finite numbers >= 0, e.g. vector_weight => 0.7, bm25_weight => 0.3.';
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval.rrf_fuse(
    dense_ids       bigint[],
    lexical_ids     bigint[],
    metadata_ids    bigint[] DEFAULT NULL,
    dense_weight    double precision DEFAULT 1.0,
    lexical_weight  double precision DEFAULT 1.0,
    metadata_weight double precision DEFAULT 1.0,
    k               integer DEFAULT 60
)
RETURNS TABLE (chunk_id bigint, score double precision, dense_rank integer, lexical_rank integer, metadata_rank integer)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    PERFORM pgretrieval._check_weights(ARRAY[dense_weight, lexical_weight, metadata_weight]);
    IF k IS NULL OR k < 0 THEN
        RAISE EXCEPTION 'invalid rrf_k %', coalesce(k::text, 'NULL')
            USING ERRCODE = 'PR002', HINT = 'rrf_k is the RRF rank constant, >= 0 (default 60).';
    END IF;
    RETURN QUERY
    WITH l AS (
        SELECT 1 AS list, u.id, min(u.pos)::integer AS rank
          FROM unnest(dense_ids) WITH ORDINALITY AS u(id, pos) WHERE u.id IS NOT NULL GROUP BY u.id
        UNION ALL
        SELECT 2, u.id, min(u.pos)::integer
          FROM unnest(lexical_ids) WITH ORDINALITY AS u(id, pos) WHERE u.id IS NOT NULL GROUP BY u.id
        UNION ALL
        SELECT 3, u.id, min(u.pos)::integer
          FROM unnest(metadata_ids) WITH ORDINALITY AS u(id, pos) WHERE u.id IS NOT NULL GROUP BY u.id
    )
    SELECT l.id,
           sum(CASE l.list WHEN 1 THEN dense_weight WHEN 2 THEN lexical_weight ELSE metadata_weight END
               / (k + l.rank)::double precision),
           min(l.rank) FILTER (WHERE l.list = 1),
           min(l.rank) FILTER (WHERE l.list = 2),
           min(l.rank) FILTER (WHERE l.list = 3)
      FROM l
     GROUP BY l.id
     ORDER BY 2 DESC, 1;
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval.score_fuse(
    dense_ids       bigint[],
    dense_scores    double precision[],
    lexical_ids     bigint[],
    lexical_scores  double precision[],
    metadata_ids    bigint[] DEFAULT NULL,
    metadata_scores double precision[] DEFAULT NULL,
    dense_weight    double precision DEFAULT 1.0,
    lexical_weight  double precision DEFAULT 1.0,
    metadata_weight double precision DEFAULT 1.0,
    normalization   text DEFAULT 'minmax'
)
RETURNS TABLE (chunk_id bigint, score double precision, dense_rank integer, lexical_rank integer, metadata_rank integer)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_total double precision;
BEGIN
    PERFORM pgretrieval._check_weights(ARRAY[dense_weight, lexical_weight, metadata_weight]);
    IF normalization IS NULL OR normalization NOT IN ('minmax', 'zscore') THEN
        RAISE EXCEPTION 'unknown score normalization %', coalesce(quote_literal(normalization), 'NULL')
            USING ERRCODE = 'PR002', HINT = 'Use minmax or zscore (or rrf_fuse for rank fusion).';
    END IF;
    IF coalesce(cardinality(dense_ids), 0) <> coalesce(cardinality(dense_scores), 0)
       OR coalesce(cardinality(lexical_ids), 0) <> coalesce(cardinality(lexical_scores), 0)
       OR coalesce(cardinality(metadata_ids), 0) <> coalesce(cardinality(metadata_scores), 0) THEN
        RAISE EXCEPTION 'each list needs as many scores as ids'
            USING ERRCODE = 'PR002', HINT = 'Pass the ids and scores of a list as arrays of the same length.';
    END IF;
    v_total := CASE WHEN coalesce(cardinality(dense_ids), 0) > 0 THEN dense_weight ELSE 0 END
             + CASE WHEN coalesce(cardinality(lexical_ids), 0) > 0 THEN lexical_weight ELSE 0 END
             + CASE WHEN coalesce(cardinality(metadata_ids), 0) > 0 THEN metadata_weight ELSE 0 END;
    IF v_total = 0 THEN
        v_total := 1;
    END IF;
    RETURN QUERY
    WITH raw AS (
        SELECT 1 AS list, u.id, u.s, u.pos FROM unnest(dense_ids, dense_scores) WITH ORDINALITY AS u(id, s, pos)
        UNION ALL
        SELECT 2, u.id, u.s, u.pos FROM unnest(lexical_ids, lexical_scores) WITH ORDINALITY AS u(id, s, pos)
        UNION ALL
        SELECT 3, u.id, u.s, u.pos FROM unnest(metadata_ids, metadata_scores) WITH ORDINALITY AS u(id, s, pos)
    ), firsts AS (
        SELECT DISTINCT ON (raw.list, raw.id) raw.list, raw.id, raw.s, raw.pos::integer AS rank
          FROM raw WHERE raw.id IS NOT NULL AND raw.s IS NOT NULL
         ORDER BY raw.list, raw.id, raw.pos
    ), stats AS (
        SELECT f.list, min(f.s) AS lo, max(f.s) AS hi, avg(f.s) AS mu, stddev_pop(f.s) AS sigma
          FROM firsts f GROUP BY f.list
    ), normed AS (
        SELECT f.list, f.id, f.rank,
               CASE WHEN normalization = 'minmax' THEN
                        CASE WHEN st.hi > st.lo THEN (f.s - st.lo) / (st.hi - st.lo) ELSE 1.0 END
                    ELSE
                        CASE WHEN st.sigma > 0 THEN least(1.0, greatest(0.0, ((f.s - st.mu) / st.sigma + 3.0) / 6.0))
                             ELSE 0.5 END
               END AS n
          FROM firsts f JOIN stats st USING (list)
    )
    SELECT nm.id,
           sum(CASE nm.list WHEN 1 THEN dense_weight WHEN 2 THEN lexical_weight ELSE metadata_weight END * nm.n)
               / v_total,
           min(nm.rank) FILTER (WHERE nm.list = 1),
           min(nm.rank) FILTER (WHERE nm.list = 2),
           min(nm.rank) FILTER (WHERE nm.list = 3)
      FROM normed nm
     GROUP BY nm.id
     ORDER BY 2 DESC, 1;
END
$$;
