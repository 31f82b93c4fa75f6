-- A collection's default embedder: switch it (only to an embedder with vectors for every chunk), and drop the
-- vectors and HNSW index of an embedder the collection no longer needs (never the default's).

CREATE OR REPLACE FUNCTION pgretrieval.set_default_embedder(collection text, embedder text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer := pgretrieval.collection_id(collection);
    v_eid integer := pgretrieval.embedder_id(embedder);
    v_chunks bigint;
    v_missing bigint;
BEGIN
    -- Lock the collection row: a concurrent drop_embedder_vectors or switch waits for us.
    PERFORM 1 FROM pgretrieval.collections c WHERE c.id = v_cid FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM pgretrieval.collection_embedders ce
                    WHERE ce.collection_id = v_cid AND ce.embedder_id = v_eid) THEN
        RAISE EXCEPTION 'embedder "%" is not attached to collection "%"', embedder, collection
            USING ERRCODE = 'PR002',
                  HINT = 'Embed the collection with it first (pgretrieval.ingest.embed_collection), which attaches it.';
    END IF;
    SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM pgretrieval.embeddings e
                WHERE e.collection_id = k.collection_id AND e.chunk_id = k.id AND e.embedder_id = v_eid))
      INTO v_chunks, v_missing
      FROM pgretrieval.chunks k WHERE k.collection_id = v_cid;
    IF v_missing > 0 THEN
        RAISE EXCEPTION 'embedder "%" has no vectors for % of the % chunks of collection "%"',
            embedder, v_missing, v_chunks, collection
            USING ERRCODE = 'PR002',
                  HINT = format('%s chunks lack vectors of "%s"; run pgretrieval.ingest.embed_collection(dsn, %L, '
                                'embedder) to fill them, then switch.', v_missing, embedder, collection);
    END IF;
    UPDATE pgretrieval.collections SET default_embedder_id = v_eid WHERE id = v_cid;
END
$$;

-- Delete one embedder's vectors in a collection, its HNSW index and the attachment; returns the vectors deleted.
-- The embedder itself and its embedding cache stay (other collections may use them).
CREATE OR REPLACE FUNCTION pgretrieval.drop_embedder_vectors(collection text, embedder text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer := pgretrieval.collection_id(collection);
    v_eid integer := pgretrieval.embedder_id(embedder);
    v_default integer;
    v_index text;
    v_deleted bigint;
BEGIN
    SELECT c.default_embedder_id INTO v_default FROM pgretrieval.collections c WHERE c.id = v_cid FOR UPDATE;
    IF v_default = v_eid THEN
        RAISE EXCEPTION 'embedder "%" is the default embedder of collection "%"; its vectors cannot be dropped',
            embedder, collection
            USING ERRCODE = 'PR002',
                  HINT = 'Switch the default first with pgretrieval.set_default_embedder(collection, other_embedder).';
    END IF;
    SELECT ce.index_name INTO v_index FROM pgretrieval.collection_embedders ce
     WHERE ce.collection_id = v_cid AND ce.embedder_id = v_eid;
    IF v_index IS NOT NULL THEN
        EXECUTE format('DROP INDEX IF EXISTS pgretrieval.%I', v_index);
    END IF;
    DELETE FROM pgretrieval.embeddings e WHERE e.collection_id = v_cid AND e.embedder_id = v_eid;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    DELETE FROM pgretrieval.collection_embedders ce WHERE ce.collection_id = v_cid AND ce.embedder_id = v_eid;
    RETURN v_deleted;
END
$$;
