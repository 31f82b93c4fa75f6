-- A collection's default search settings: collections.search_settings, read by dense_search, lexical_search
-- and hybrid_search for every tuning argument left NULL (see 055_search_common.sql). `pgretrieval tune --save`
-- stores its best setting here, so SQL callers get it too.
--
-- set_search_settings validates before it stores: a bad value written by hand is only found by the next
-- search (as an error), while here it is refused with a hint, and numbers are stored in the exact JSON type
-- that _setting() casts back (an integer setting stored as 80.0 would not cast to integer).
--
--   SELECT pgretrieval.set_search_settings('docs', '{"fusion": "minmax", "vector_weight": 0.6, "bm25_weight": 0.4}');
--   SELECT pgretrieval.set_search_settings('docs', '{"ef_search": null}');        -- merge: null removes a key
--   SELECT pgretrieval.set_search_settings('docs', '{}', merge => false);         -- back to the built-in defaults
--   SELECT pgretrieval.get_search_settings('docs', with_defaults => true);        -- what a search will use

-- The keys a collection may store, with the built-in default each falls back to (NULL: computed per query).
CREATE OR REPLACE FUNCTION pgretrieval._search_setting_defaults()
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
    SELECT jsonb_build_object(
        'fusion', 'rrf', 'vector_weight', 0.5, 'bm25_weight', 0.5, 'rrf_k', 60, 'candidates', 100,
        'metadata_weight', 0.3, 'decay', NULL, 'ef_search', 100, 'exact_threshold', NULL, 'max_scan_tuples', 20000,
        'k1', 1.2, 'b', 0.75, 'require_all_terms', false, 'lexical_pruning', true)
$$;

-- One setting checked and normalised (integers as JSON integers, fusion lower case); raises PR002 with a hint.
CREATE OR REPLACE FUNCTION pgretrieval._check_search_setting(p_key text, p_value jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_type text := jsonb_typeof(p_value);
    v_num numeric;
    v_text text;
    v_lo numeric;
    v_hi numeric;
    v_hint text;
BEGIN
    CASE p_key
        WHEN 'fusion' THEN
            v_text := lower(p_value #>> '{}');
            IF v_type <> 'string' OR v_text NOT IN ('rrf', 'minmax', 'zscore') THEN
                RAISE EXCEPTION 'invalid search setting fusion = %', p_value
                    USING ERRCODE = 'PR002',
                          HINT = 'fusion is "rrf" (weighted reciprocal rank fusion), "minmax" or "zscore" (score fusion).';
            END IF;
            RETURN to_jsonb(v_text);
        WHEN 'require_all_terms', 'lexical_pruning' THEN
            IF v_type <> 'boolean' THEN
                RAISE EXCEPTION 'invalid search setting % = %', p_key, p_value
                    USING ERRCODE = 'PR002', HINT = p_key || ' is a JSON boolean: true or false.';
            END IF;
            RETURN p_value;
        WHEN 'decay' THEN
            PERFORM pgretrieval._decay_config(p_value);  -- raises PR002 with the decay hint
            RETURN p_value;
        ELSE
            NULL;
    END CASE;

    -- numbers: [low, high] and whether they must be integers
    CASE p_key
        WHEN 'vector_weight', 'bm25_weight', 'metadata_weight' THEN
            v_lo := 0; v_hi := 1e6;
            v_hint := p_key || ' is a fusion weight, a number >= 0 (e.g. vector_weight 0.7, bm25_weight 0.3).';
        WHEN 'k1' THEN
            v_lo := 0; v_hi := 100; v_hint := 'k1 is the BM25 term-frequency saturation, 0 to 100 (default 1.2).';
        WHEN 'b' THEN
            v_lo := 0; v_hi := 1; v_hint := 'b is the BM25 length normalisation, 0 to 1 (default 0.75).';
        WHEN 'rrf_k' THEN
            v_lo := 0; v_hi := 1000000; v_hint := 'rrf_k is the RRF rank constant, an integer >= 0 (default 60).';
        WHEN 'candidates' THEN
            v_lo := 1; v_hi := 10000;
            v_hint := 'candidates is the number of rows each branch contributes, an integer from 1 to 10000 (default 100).';
        WHEN 'ef_search' THEN
            v_lo := 1; v_hi := 1000; v_hint := 'ef_search is the HNSW candidate list size, an integer from 1 to 1000 (default 100).';
        WHEN 'exact_threshold' THEN
            v_lo := 0; v_hi := 2147483647;
            v_hint := 'exact_threshold is the number of matching documents under which a filtered dense search scans '
                      'exactly, an integer >= 0 (default: sqrt(3 * k * chunks), at least 100).';
        WHEN 'max_scan_tuples' THEN
            v_lo := 1; v_hi := 2147483647;
            v_hint := 'max_scan_tuples bounds the HNSW iterative scan, an integer >= 1 (default 20000).';
        ELSE
            RAISE EXCEPTION 'unknown search setting "%"', p_key
                USING ERRCODE = 'PR002',
                      HINT = 'Settable keys: ' || (SELECT string_agg(k, ', ' ORDER BY k)
                                                     FROM jsonb_object_keys(pgretrieval._search_setting_defaults()) k)
                             || '. Other search arguments (filter, match_count, ...) are per query.';
    END CASE;
    IF v_type <> 'number' THEN
        RAISE EXCEPTION 'invalid search setting % = %: expected a JSON number', p_key, p_value
            USING ERRCODE = 'PR002', HINT = v_hint;
    END IF;
    v_num := p_value::text::numeric;
    IF v_num < v_lo OR v_num > v_hi THEN
        RAISE EXCEPTION 'invalid search setting % = %: out of range', p_key, p_value
            USING ERRCODE = 'PR002', HINT = v_hint;
    END IF;
    IF p_key IN ('rrf_k', 'candidates', 'ef_search', 'exact_threshold', 'max_scan_tuples') THEN
        IF v_num <> trunc(v_num) THEN
            RAISE EXCEPTION 'invalid search setting % = %: expected an integer', p_key, p_value
                USING ERRCODE = 'PR002', HINT = v_hint;
        END IF;
        RETURN to_jsonb(v_num::integer);
    END IF;
    RETURN to_jsonb(v_num::double precision);
END
$$;

-- Store default search settings for a collection and return what is stored now.
-- merge => true (default): the given keys replace or add to the stored ones, a JSON null removes a key;
-- merge => false: the given object replaces everything stored (nulls dropped).
CREATE OR REPLACE FUNCTION pgretrieval.set_search_settings(
    collection text,
    settings   jsonb,
    merge      boolean DEFAULT true
)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer := pgretrieval.collection_id(set_search_settings.collection);
    v_old jsonb;
    v_new jsonb := '{}';
    v_removed text[] := '{}';
    v_key text;
    v_value jsonb;
    v_defaults jsonb := pgretrieval._search_setting_defaults();
BEGIN
    IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
        RAISE EXCEPTION 'search settings must be a JSON object, got %', coalesce(jsonb_typeof(settings), 'NULL')
            USING ERRCODE = 'PR002',
                  HINT = 'Pass e.g. ''{"fusion": "minmax", "vector_weight": 0.6, "bm25_weight": 0.4}''::jsonb.';
    END IF;
    IF merge IS NULL THEN
        RAISE EXCEPTION 'merge is NULL' USING ERRCODE = 'PR002',
            HINT = 'merge => true adds to the stored settings, merge => false replaces them.';
    END IF;
    FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(settings) e ORDER BY e.key LOOP
        IF v_value = 'null'::jsonb THEN
            IF NOT v_defaults ? v_key THEN
                PERFORM pgretrieval._check_search_setting(v_key, v_value);  -- unknown key: same error
            END IF;
            v_removed := v_removed || v_key;
        ELSE
            v_new := v_new || jsonb_build_object(v_key, pgretrieval._check_search_setting(v_key, v_value));
        END IF;
    END LOOP;

    SELECT c.search_settings INTO v_old FROM pgretrieval.collections c WHERE c.id = v_cid FOR UPDATE;
    IF merge THEN
        v_new := (v_old - v_removed) || v_new;
    END IF;
    IF coalesce((v_new ->> 'vector_weight')::double precision, 0.5) = 0
       AND coalesce((v_new ->> 'bm25_weight')::double precision, 0.5) = 0 THEN
        RAISE EXCEPTION 'vector_weight and bm25_weight would both be 0'
            USING ERRCODE = 'PR002', HINT = 'At least one branch needs a positive weight, or fused scores are all 0.';
    END IF;
    UPDATE pgretrieval.collections c SET search_settings = v_new WHERE c.id = v_cid;
    RETURN v_new;
END
$$;

-- The stored settings of a collection; with_defaults => true fills every other settable key with the
-- built-in default (null where the default is computed per query), i.e. what a search without arguments uses.
CREATE OR REPLACE FUNCTION pgretrieval.get_search_settings(collection text, with_defaults boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_settings jsonb;
BEGIN
    SELECT c.search_settings INTO v_settings FROM pgretrieval.collections c
     WHERE c.id = pgretrieval.collection_id(get_search_settings.collection);
    IF with_defaults THEN
        RETURN pgretrieval._search_setting_defaults() || v_settings;
    END IF;
    RETURN v_settings;
END
$$;
