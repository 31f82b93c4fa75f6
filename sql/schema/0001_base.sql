-- pgretrieval schema step 0001: the base tables.
--
-- Schema steps run once, in order, and are frozen once released (tests/unit/test_sqlfiles.py pins their
-- hashes): a later change goes into a new numbered file. Functions and triggers live in sql/functions/
-- and are re-applied on every install.
--
-- Design notes (see README "Schema"):
-- * Several embedding models side by side: one `embeddings` table with an untyped `vector` column and
--   an `embedder_id`; each (collection, embedder) pair gets its own partial expression HNSW index,
--   `((embedding::vector(d)) <opclass>) WHERE collection_id = c AND embedder_id = e`, created by
--   pgretrieval.attach_embedder(). One table keeps ingest, deletes and cascades simple for any number
--   of models; the partial index keeps each model's graph separate and sized to its collection.
-- * BM25: `postings` holds one row per (chunk, term) with the term frequency and the chunk length, so a
--   query reads only the postings of its own terms (index-only scan). Corpus statistics (chunk count,
--   total length, document frequency) are kept as *delta rows*: every writer appends its own rows and
--   never updates a shared counter, so concurrent ingests neither block nor deadlock each other, and
--   statistics are exact in every snapshot. pgretrieval.compact_stats() folds the deltas.
-- * Every large table carries collection_id first in its keys: the natural Citus distribution column.

CREATE SCHEMA pgretrieval;

CREATE TABLE pgretrieval.schema_steps (
    step        text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Remember whether we created the vector extension, so uninstall.sql removes only what we made.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        CREATE EXTENSION vector;
        INSERT INTO pgretrieval.schema_steps (step) VALUES ('created extension vector');
    END IF;
END
$$;

-- An embedding model: what SQL needs to know so vectors of one model are only compared with each other.
CREATE TABLE pgretrieval.embedders (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name <> '' AND length(name) <= 200),
    backend         text NOT NULL DEFAULT 'sentence-transformers' CHECK (backend <> ''),
    model           text NOT NULL CHECK (model <> ''),
    dimensions      integer NOT NULL CHECK (dimensions BETWEEN 1 AND 16000),
    distance        text NOT NULL DEFAULT 'cosine' CHECK (distance IN ('cosine', 'ip', 'l2')),
    normalize       boolean NOT NULL DEFAULT true,
    query_prompt    text NOT NULL DEFAULT '',
    passage_prompt  text NOT NULL DEFAULT '',
    max_seq_length  integer CHECK (max_seq_length > 0),
    options         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgretrieval.collections (
    id                   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text NOT NULL UNIQUE CHECK (name <> '' AND length(name) <= 200),
    tenant               text NOT NULL DEFAULT 'default' CHECK (tenant <> ''),
    text_config          text NOT NULL DEFAULT 'english' CHECK (text_config <> ''),
    default_embedder_id  integer REFERENCES pgretrieval.embedders (id),
    search_settings      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(search_settings) = 'object'),
    description          text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX collections_tenant ON pgretrieval.collections (tenant);

-- Which embedders a collection holds vectors for, and the name of each pair's HNSW index.
CREATE TABLE pgretrieval.collection_embedders (
    collection_id  integer NOT NULL REFERENCES pgretrieval.collections (id) ON DELETE CASCADE,
    embedder_id    integer NOT NULL REFERENCES pgretrieval.embedders (id),
    index_name     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, embedder_id)
);

CREATE TABLE pgretrieval.documents (
    collection_id  integer NOT NULL REFERENCES pgretrieval.collections (id) ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    external_id    text NOT NULL CHECK (external_id <> '' AND length(external_id) <= 1024),
    title          text NOT NULL DEFAULT '',
    content        text NOT NULL,
    metadata       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- sha256 of title + content, set by a trigger: decides "unchanged, skip it" on re-ingest
    -- (metadata or created_at changes never need re-embedding)
    content_hash   bytea NOT NULL,
    PRIMARY KEY (collection_id, id),
    UNIQUE (collection_id, external_id)
);
CREATE INDEX documents_metadata ON pgretrieval.documents USING gin (metadata jsonb_path_ops);
CREATE INDEX documents_created_at ON pgretrieval.documents (collection_id, created_at);

CREATE TABLE pgretrieval.chunks (
    collection_id  integer NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    document_id    bigint NOT NULL,
    ordinal        integer NOT NULL CHECK (ordinal >= 0),
    content        text NOT NULL,
    token_count    integer NOT NULL DEFAULT 0 CHECK (token_count >= 0),
    start_offset   integer CHECK (start_offset >= 0),  -- character offsets into documents.content
    end_offset     integer CHECK (end_offset >= start_offset),
    embed_hash     bytea,  -- sha256 of the exact text handed to embedders (title + chunk): the cache key
    tsv            tsvector NOT NULL,  -- filled from the collection's text config when inserted as NULL
    PRIMARY KEY (collection_id, id),
    UNIQUE (collection_id, document_id, ordinal),
    FOREIGN KEY (collection_id, document_id)
        REFERENCES pgretrieval.documents (collection_id, id) ON DELETE CASCADE
);
CREATE INDEX chunks_tsv ON pgretrieval.chunks USING gin (tsv);

-- One vector per (chunk, embedder); see the design note above for the per-pair partial HNSW indexes.
CREATE TABLE pgretrieval.embeddings (
    collection_id  integer NOT NULL,
    chunk_id       bigint NOT NULL,
    embedder_id    integer NOT NULL REFERENCES pgretrieval.embedders (id),
    embedding      vector NOT NULL,
    PRIMARY KEY (collection_id, chunk_id, embedder_id),
    FOREIGN KEY (collection_id, chunk_id)
        REFERENCES pgretrieval.chunks (collection_id, id) ON DELETE CASCADE
);

-- BM25 postings: maintained by triggers on chunks (sql/functions), never written directly.
CREATE TABLE pgretrieval.postings (
    collection_id  integer NOT NULL,
    term           text COLLATE "C" NOT NULL,
    chunk_id       bigint NOT NULL,
    tf             integer NOT NULL CHECK (tf > 0),
    doc_len        integer NOT NULL CHECK (doc_len > 0),
    PRIMARY KEY (collection_id, term, chunk_id) INCLUDE (tf, doc_len)
);

-- BM25 corpus statistics as delta rows (see the design note): sum them per collection / per term.
CREATE TABLE pgretrieval.collection_stats (
    collection_id  integer NOT NULL,
    n_chunks       bigint NOT NULL,
    total_len      bigint NOT NULL
);
CREATE INDEX collection_stats_lookup ON pgretrieval.collection_stats (collection_id) INCLUDE (n_chunks, total_len);

CREATE TABLE pgretrieval.term_stats (
    collection_id  integer NOT NULL,
    term           text COLLATE "C" NOT NULL,
    df             bigint NOT NULL
);
CREATE INDEX term_stats_lookup ON pgretrieval.term_stats (collection_id, term) INCLUDE (df);

-- Embeddings keyed by (embedder, purpose, hash of the exact input text): unchanged text is never
-- embedded twice, whatever document or collection it appears in. Queries are cached too.
CREATE TABLE pgretrieval.embedding_cache (
    embedder_id  integer NOT NULL REFERENCES pgretrieval.embedders (id) ON DELETE CASCADE,
    purpose      text NOT NULL CHECK (purpose IN ('passage', 'query')),
    text_hash    bytea NOT NULL,
    embedding    vector NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (embedder_id, purpose, text_hash)
);

INSERT INTO pgretrieval.schema_steps (step) VALUES ('0001_base');
