-- Lookups by name that every other function uses, raising one clear error with a hint.
-- SQLSTATEs: PR001 = not found, PR002 = invalid input (pgretrieval/errors.py maps them to Python types).

CREATE OR REPLACE FUNCTION pgretrieval.collection_id(p_collection text)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_id integer;
BEGIN
    IF p_collection IS NULL OR p_collection = '' THEN
        RAISE EXCEPTION 'collection name is empty'
            USING ERRCODE = 'PR002', HINT = 'Pass the name of a collection created with pgretrieval.create_collection().';
    END IF;
    SELECT c.id INTO v_id FROM pgretrieval.collections c WHERE c.name = p_collection;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'unknown collection "%"', p_collection
            USING ERRCODE = 'PR001',
                  HINT = 'List collections with SELECT name FROM pgretrieval.collections, or create it with pgretrieval.create_collection().';
    END IF;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval.embedder_id(p_embedder text)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_id integer;
BEGIN
    SELECT e.id INTO v_id FROM pgretrieval.embedders e WHERE e.name = p_embedder;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'unknown embedder "%"', p_embedder
            USING ERRCODE = 'PR001',
                  HINT = 'List embedders with SELECT name FROM pgretrieval.embedders; ingest registers the embedder it uses.';
    END IF;
    RETURN v_id;
END
$$;
