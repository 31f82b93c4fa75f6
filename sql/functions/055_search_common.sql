-- What every search function shares: resolving the collection and embedder, reading tuning settings,
-- validating counts.
--
-- Tuning arguments left NULL resolve, in order, from collections.search_settings (a jsonb object whose
-- keys are the argument names, e.g. {"ef_search": 80, "bm25_weight": 0.7}; `pgretrieval tune` stores the
-- best ones there) and then from the built-in defaults.

-- The collection to search: by name, or the only collection when the name is NULL.
CREATE OR REPLACE FUNCTION pgretrieval._search_collection(p_collection text)
RETURNS pgretrieval.collections
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_row pgretrieval.collections;
    v_count integer;
BEGIN
    IF p_collection IS NOT NULL THEN
        SELECT * INTO v_row FROM pgretrieval.collections c WHERE c.id = pgretrieval.collection_id(p_collection);
        RETURN v_row;
    END IF;
    SELECT count(*) INTO v_count FROM pgretrieval.collections;
    IF v_count = 0 THEN
        RAISE EXCEPTION 'there is no collection to search'
            USING ERRCODE = 'PR001', HINT = 'Create one with pgretrieval.create_collection() and ingest documents first.';
    ELSIF v_count > 1 THEN
        RAISE EXCEPTION 'collection is not given and % collections exist', v_count
            USING ERRCODE = 'PR002',
                  HINT = 'Pass collection => ''name'' (SELECT name FROM pgretrieval.collections lists them).';
    END IF;
    SELECT * INTO v_row FROM pgretrieval.collections;
    RETURN v_row;
END
$$;

-- The embedder to search with: by name (it must be attached to the collection) or the collection's default.
CREATE OR REPLACE FUNCTION pgretrieval._search_embedder(p_collection pgretrieval.collections, p_embedder text)
RETURNS pgretrieval.embedders
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_eid integer;
    v_row pgretrieval.embedders;
BEGIN
    IF p_embedder IS NULL THEN
        v_eid := p_collection.default_embedder_id;
        IF v_eid IS NULL THEN
            RAISE EXCEPTION 'collection "%" has no embedder', p_collection.name
                USING ERRCODE = 'PR001',
                      HINT = 'Attach one with pgretrieval.attach_embedder(collection, embedder), or search with query_text only.';
        END IF;
    ELSE
        v_eid := pgretrieval.embedder_id(p_embedder);
        IF NOT EXISTS (SELECT 1 FROM pgretrieval.collection_embedders ce
                        WHERE ce.collection_id = p_collection.id AND ce.embedder_id = v_eid) THEN
            RAISE EXCEPTION 'embedder "%" is not attached to collection "%"', p_embedder, p_collection.name
                USING ERRCODE = 'PR001',
                      HINT = 'SELECT e.name FROM pgretrieval.collection_embedders ce JOIN pgretrieval.embedders e '
                             'ON e.id = ce.embedder_id lists the attached ones; pgretrieval.attach_embedder() adds one.';
        END IF;
    END IF;
    SELECT * INTO v_row FROM pgretrieval.embedders e WHERE e.id = v_eid;
    RETURN v_row;
END
$$;

-- A tuning value: the argument if given, else collections.search_settings->key, else the default.
CREATE OR REPLACE FUNCTION pgretrieval._setting(p_settings jsonb, p_key text, p_arg anyelement, p_default anyelement)
RETURNS anyelement
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_stored jsonb := p_settings -> p_key;
    v_result p_arg%TYPE;
BEGIN
    IF p_arg IS NOT NULL THEN
        RETURN p_arg;
    END IF;
    IF v_stored IS NULL OR v_stored = 'null'::jsonb THEN
        RETURN p_default;
    END IF;
    BEGIN
        IF jsonb_typeof(v_stored) = 'string' THEN
            v_result := (v_stored #>> '{}');
        ELSE
            v_result := v_stored::text;
        END IF;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'collection search setting "%" has an invalid value %', p_key, v_stored
            USING ERRCODE = 'PR002',
                  HINT = 'Fix or remove it: UPDATE pgretrieval.collections SET search_settings = search_settings - ''' || p_key || '''.';
    END;
    RETURN v_result;
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval._check_match_count(p_match_count integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF p_match_count IS NULL THEN
        RETURN 10;
    END IF;
    IF p_match_count < 0 OR p_match_count > 10000 THEN
        RAISE EXCEPTION 'invalid match_count %', p_match_count
            USING ERRCODE = 'PR002', HINT = 'match_count is the number of rows to return, 0 to 10000.';
    END IF;
    RETURN p_match_count;
END
$$;

-- Check the query vector against the embedder (dimension) before it reaches pgvector.
CREATE OR REPLACE FUNCTION pgretrieval._check_query_embedding(p_query vector, p_embedder pgretrieval.embedders)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF p_query IS NULL THEN
        RAISE EXCEPTION 'query_embedding is NULL' USING ERRCODE = 'PR002',
            HINT = 'Pass the query vector from the collection''s embedder (or use lexical_search for text only).';
    END IF;
    IF vector_dims(p_query) <> p_embedder.dimensions THEN
        RAISE EXCEPTION 'query_embedding has % dimensions, embedder "%" has %',
            vector_dims(p_query), p_embedder.name, p_embedder.dimensions
            USING ERRCODE = 'PR002', HINT = 'Embed the query with the same model as the collection (' || p_embedder.model || ').';
    END IF;
END
$$;
