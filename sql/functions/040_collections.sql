-- Collections and embedders: create, register, attach (which builds the pair's HNSW index), drop.

CREATE OR REPLACE FUNCTION pgretrieval.create_collection(
    name          text,
    text_config   text DEFAULT 'english',
    tenant        text DEFAULT 'default',
    description   text DEFAULT '',
    if_not_exists boolean DEFAULT false
)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_id integer;
    v_config text;
BEGIN
    IF name IS NULL OR btrim(name) = '' OR length(name) > 200 THEN
        RAISE EXCEPTION 'invalid collection name %', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'PR002', HINT = 'A collection name is 1 to 200 characters, not blank.';
    END IF;
    IF NOT pgretrieval.is_valid_text_config(text_config) THEN
        RAISE EXCEPTION 'unknown text search configuration "%"', text_config
            USING ERRCODE = 'PR002',
                  HINT = 'Use a Postgres text search configuration such as english or simple (SELECT cfgname FROM pg_ts_config).';
    END IF;
    SELECT c.id, c.text_config INTO v_id, v_config FROM pgretrieval.collections c WHERE c.name = create_collection.name;
    IF v_id IS NOT NULL THEN
        IF if_not_exists AND v_config = text_config THEN
            RETURN v_id;
        END IF;
        RAISE EXCEPTION 'collection "%" already exists (text config %)', create_collection.name, v_config
            USING ERRCODE = 'PR002',
                  HINT = 'Pick another name, drop it with pgretrieval.drop_collection(), or pass if_not_exists => true with the same text config.';
    END IF;
    INSERT INTO pgretrieval.collections (name, text_config, tenant, description)
    VALUES (create_collection.name, create_collection.text_config,
            coalesce(create_collection.tenant, 'default'), coalesce(create_collection.description, ''))
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

-- Register an embedding model, or return the id of an identical registration. A different dimension or
-- distance under the same name is an error: vectors of one name must stay comparable.
CREATE OR REPLACE FUNCTION pgretrieval.register_embedder(
    name            text,
    model           text,
    dimensions      integer,
    distance        text DEFAULT 'cosine',
    backend         text DEFAULT 'sentence-transformers',
    normalized      boolean DEFAULT true,
    query_prompt    text DEFAULT '',
    passage_prompt  text DEFAULT '',
    max_seq_length  integer DEFAULT NULL,
    options         jsonb DEFAULT '{}'
)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    e pgretrieval.embedders;
BEGIN
    IF dimensions IS NULL OR dimensions < 1 OR dimensions > 16000 THEN
        RAISE EXCEPTION 'invalid embedding dimension %', coalesce(dimensions::text, 'NULL')
            USING ERRCODE = 'PR002', HINT = 'pgvector supports 1 to 16000 dimensions.';
    END IF;
    IF distance IS NULL OR distance NOT IN ('cosine', 'ip', 'l2') THEN
        RAISE EXCEPTION 'invalid distance %', coalesce(quote_literal(distance), 'NULL')
            USING ERRCODE = 'PR002', HINT = 'Use cosine, ip (inner product) or l2.';
    END IF;
    SELECT * INTO e FROM pgretrieval.embedders x WHERE x.name = register_embedder.name;
    IF FOUND THEN
        IF e.dimensions <> register_embedder.dimensions OR e.distance <> register_embedder.distance THEN
            RAISE EXCEPTION 'embedder "%" is registered with % dimensions and % distance, not % and %',
                register_embedder.name, e.dimensions, e.distance, register_embedder.dimensions, register_embedder.distance
                USING ERRCODE = 'PR002',
                      HINT = 'Register the new model under another name; vectors of one embedder must stay comparable.';
        END IF;
        RETURN e.id;
    END IF;
    INSERT INTO pgretrieval.embedders AS x
        (name, backend, model, dimensions, distance, normalize, query_prompt, passage_prompt, max_seq_length, options)
    VALUES (register_embedder.name, coalesce(register_embedder.backend, 'sentence-transformers'), register_embedder.model,
            register_embedder.dimensions, register_embedder.distance, coalesce(register_embedder.normalized, true),
            coalesce(register_embedder.query_prompt, ''), coalesce(register_embedder.passage_prompt, ''),
            register_embedder.max_seq_length, coalesce(register_embedder.options, '{}'))
    RETURNING x.id INTO e.id;
    RETURN e.id;
END
$$;

-- The indexed expression and operator class for an embedder's vectors. HNSW indexes `vector` up to 2000
-- dimensions and `halfvec` up to 4000; larger models are searched exactly (no index).
CREATE OR REPLACE FUNCTION pgretrieval.embedding_expression(p_dimensions integer, p_distance text)
RETURNS TABLE (expr text, opclass text, operator text)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
    SELECT format('(embedding::%s(%s))', t.typ, p_dimensions),
           CASE WHEN p_dimensions > 4000 THEN NULL
                ELSE format('%s_%s_ops', t.typ, CASE p_distance WHEN 'ip' THEN 'ip' WHEN 'l2' THEN 'l2' ELSE 'cosine' END)
           END,
           CASE p_distance WHEN 'ip' THEN '<#>' WHEN 'l2' THEN '<->' ELSE '<=>' END
      FROM (SELECT CASE WHEN p_dimensions > 2000 THEN 'halfvec' ELSE 'vector' END AS typ) t
$$;

-- Let a collection hold vectors of an embedder and build the pair's HNSW index (idempotent).
-- The first embedder attached becomes the collection's default unless make_default says otherwise.
CREATE OR REPLACE FUNCTION pgretrieval.attach_embedder(
    collection     text,
    embedder       text,
    make_default   boolean DEFAULT NULL,
    m              integer DEFAULT 16,
    ef_construction integer DEFAULT 64
)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer := pgretrieval.collection_id(collection);
    v_eid integer := pgretrieval.embedder_id(embedder);
    v_index text;
    v_ddl text;
BEGIN
    IF m IS NULL OR m < 2 OR m > 100 OR ef_construction IS NULL OR ef_construction < 4 OR ef_construction > 1000 THEN
        RAISE EXCEPTION 'invalid HNSW parameters m=% ef_construction=%', m, ef_construction
            USING ERRCODE = 'PR002', HINT = 'Use 2 <= m <= 100 and 4 <= ef_construction <= 1000.';
    END IF;
    SELECT ce.index_name INTO v_index
      FROM pgretrieval.collection_embedders ce WHERE ce.collection_id = v_cid AND ce.embedder_id = v_eid;
    IF NOT FOUND THEN
        -- (042_vector_index.sql: the same statement a bulk load uses to rebuild it)
        v_ddl := pgretrieval.vector_index_ddl(collection, embedder, m, ef_construction);
        IF v_ddl IS NOT NULL THEN
            v_index := format('embeddings_hnsw_c%s_e%s', v_cid, v_eid);
            EXECUTE format('DROP INDEX IF EXISTS pgretrieval.%I', v_index);  -- an invalid leftover, if any
            EXECUTE v_ddl;
        END IF;
        INSERT INTO pgretrieval.collection_embedders (collection_id, embedder_id, index_name)
        VALUES (v_cid, v_eid, v_index);
    END IF;
    IF make_default OR (make_default IS NULL AND
                        (SELECT c.default_embedder_id IS NULL FROM pgretrieval.collections c WHERE c.id = v_cid)) THEN
        UPDATE pgretrieval.collections SET default_embedder_id = v_eid WHERE id = v_cid;
    END IF;
    RETURN v_index;
END
$$;

-- Remove a collection with all its documents, chunks, vectors, postings, statistics and HNSW indexes.
CREATE OR REPLACE FUNCTION pgretrieval.drop_collection(collection text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer;
    v_index text;
BEGIN
    SELECT c.id INTO v_cid FROM pgretrieval.collections c WHERE c.name = collection;
    IF v_cid IS NULL THEN
        IF if_exists THEN
            RETURN false;
        END IF;
        PERFORM pgretrieval.collection_id(collection);  -- raises the standard "unknown collection" error
    END IF;
    FOR v_index IN
        SELECT ce.index_name FROM pgretrieval.collection_embedders ce
         WHERE ce.collection_id = v_cid AND ce.index_name IS NOT NULL
    LOOP
        EXECUTE format('DROP INDEX IF EXISTS pgretrieval.%I', v_index);
    END LOOP;
    -- Postings and embeddings first, in bulk by their key prefix; the chunk trigger then finds nothing left
    -- to delete. (Disabling the trigger would need an exclusive lock on the shared table.)
    DELETE FROM pgretrieval.embeddings WHERE collection_id = v_cid;
    DELETE FROM pgretrieval.postings WHERE collection_id = v_cid;
    DELETE FROM pgretrieval.chunks WHERE collection_id = v_cid;
    DELETE FROM pgretrieval.term_stats WHERE collection_id = v_cid;
    DELETE FROM pgretrieval.collection_stats WHERE collection_id = v_cid;
    DELETE FROM pgretrieval.collections WHERE id = v_cid;
    RETURN true;
END
$$;
