-- A (collection, embedder) pair's HNSW index as something a bulk load can take down and put back.
--
-- Inserting a million vectors one by one into a live HNSW graph costs far more than building the graph once
-- from the loaded rows (pgvector builds in memory, in parallel workers). A bulk load therefore drops the pair's
-- index (drop_vector_index returns the statement that rebuilds it, parameters included), loads, runs that
-- statement with CONCURRENTLY (which cannot run inside a function, so the caller runs it; writers of other
-- collections are not blocked) and records the result with vector_index_built. While the index is missing,
-- dense_search answers with an exact scan: slower, never wrong.

-- The CREATE INDEX statement of a pair: its existing index's own definition, else the default
-- (m 16, ef_construction 64). NULL for models too large for an HNSW index (searched exactly).
CREATE OR REPLACE FUNCTION pgretrieval.vector_index_ddl(
    collection      text,
    embedder        text,
    m               integer DEFAULT 16,
    ef_construction integer DEFAULT 64
)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer := pgretrieval.collection_id(collection);
    v_eid integer := pgretrieval.embedder_id(embedder);
    v_emb pgretrieval.embedders;
    v_name text := format('embeddings_hnsw_c%s_e%s', v_cid, v_eid);
    v_def text;
    x record;
BEGIN
    IF m IS NULL OR m < 2 OR m > 100 OR ef_construction IS NULL OR ef_construction < 4 OR ef_construction > 1000 THEN
        RAISE EXCEPTION 'invalid HNSW parameters m=% ef_construction=%', m, ef_construction
            USING ERRCODE = 'PR002', HINT = 'Use 2 <= m <= 100 and 4 <= ef_construction <= 1000.';
    END IF;
    SELECT pg_get_indexdef(i.indexrelid) INTO v_def
      FROM pg_index i
     WHERE i.indexrelid = to_regclass(format('pgretrieval.%I', v_name)) AND i.indisvalid;
    IF v_def IS NOT NULL THEN
        RETURN v_def;
    END IF;
    SELECT * INTO v_emb FROM pgretrieval.embedders WHERE id = v_eid;
    SELECT * INTO x FROM pgretrieval.embedding_expression(v_emb.dimensions, v_emb.distance);
    IF x.opclass IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN format(
        'CREATE INDEX %I ON pgretrieval.embeddings USING hnsw (%s %s) '
        'WITH (m = %s, ef_construction = %s) WHERE collection_id = %s AND embedder_id = %s',
        v_name, x.expr, x.opclass, m, ef_construction, v_cid, v_eid);
END
$$;

-- Drop a pair's index (if any) for a bulk load; returns the statement that rebuilds it (NULL: nothing to build).
CREATE OR REPLACE FUNCTION pgretrieval.drop_vector_index(collection text, embedder text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer := pgretrieval.collection_id(collection);
    v_eid integer := pgretrieval.embedder_id(embedder);
    v_ddl text := pgretrieval.vector_index_ddl(collection, embedder);
    v_index text;
BEGIN
    SELECT ce.index_name INTO v_index FROM pgretrieval.collection_embedders ce
     WHERE ce.collection_id = v_cid AND ce.embedder_id = v_eid FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'embedder "%" is not attached to collection "%"', embedder, collection
            USING ERRCODE = 'PR001', HINT = 'pgretrieval.attach_embedder(collection, embedder) attaches it.';
    END IF;
    EXECUTE format('DROP INDEX IF EXISTS pgretrieval.%I', format('embeddings_hnsw_c%s_e%s', v_cid, v_eid));
    UPDATE pgretrieval.collection_embedders SET index_name = NULL
     WHERE collection_id = v_cid AND embedder_id = v_eid;
    RETURN v_ddl;
END
$$;

-- Record a pair's index after the caller built it (with the statement from vector_index_ddl / drop_vector_index).
-- An index left invalid by an interrupted CREATE INDEX CONCURRENTLY is reported, not recorded.
CREATE OR REPLACE FUNCTION pgretrieval.vector_index_built(collection text, embedder text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer := pgretrieval.collection_id(collection);
    v_eid integer := pgretrieval.embedder_id(embedder);
    v_name text := format('embeddings_hnsw_c%s_e%s', v_cid, v_eid);
    v_valid boolean;
BEGIN
    SELECT i.indisvalid INTO v_valid FROM pg_index i WHERE i.indexrelid = to_regclass(format('pgretrieval.%I', v_name));
    IF NOT coalesce(v_valid, false) THEN
        RAISE EXCEPTION 'the HNSW index % of collection "%" and embedder "%" is %', v_name, collection, embedder,
            CASE WHEN v_valid IS NULL THEN 'missing' ELSE 'invalid (an interrupted build)' END
            USING ERRCODE = 'PR002',
                  HINT = 'Drop an invalid index (DROP INDEX CONCURRENTLY pgretrieval.' || v_name || ') and build it '
                         'again with the statement from pgretrieval.vector_index_ddl().';
    END IF;
    UPDATE pgretrieval.collection_embedders SET index_name = v_name
     WHERE collection_id = v_cid AND embedder_id = v_eid;
    RETURN v_name;
END
$$;

-- Pairs whose index should exist but does not (left by an interrupted bulk load): (collection, embedder).
CREATE OR REPLACE FUNCTION pgretrieval.missing_vector_indexes()
RETURNS TABLE (collection text, embedder text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
    SELECT c.name, e.name
      FROM pgretrieval.collection_embedders ce
      JOIN pgretrieval.collections c ON c.id = ce.collection_id
      JOIN pgretrieval.embedders e ON e.id = ce.embedder_id
     WHERE ce.index_name IS NULL AND e.dimensions <= 4000
     ORDER BY 1, 2
$$;
