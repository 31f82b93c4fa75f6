-- BM25 postings and statistics, kept exact by triggers on pgretrieval.chunks.
--
-- Every insert, delete or tsv update of chunks adds or removes the chunks' postings and appends *delta
-- rows* to collection_stats and term_stats in the same transaction. Writers never update a shared row, so
-- concurrent ingests do not serialise on a hot counter and cannot deadlock on statistics; readers sum the
-- deltas visible in their snapshot, so statistics are exact after every commit (and a rolled-back ingest
-- leaves none behind). compact_stats() folds the deltas; running it concurrently with writers is safe
-- because it only re-inserts the sums of the rows its own DELETE removed.

-- Fill chunks.tsv from the collection's text configuration when a writer leaves it NULL
-- (title + chunk text, the same text the embedders see).
CREATE OR REPLACE FUNCTION pgretrieval._chunks_fill_tsv()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    SELECT pgretrieval.text_to_tsvector(c.text_config, coalesce(d.title, '') || E'\n' || NEW.content)
      INTO NEW.tsv
      FROM pgretrieval.collections c
      LEFT JOIN pgretrieval.documents d ON d.collection_id = NEW.collection_id AND d.id = NEW.document_id
     WHERE c.id = NEW.collection_id;
    -- An unknown collection leaves tsv NULL; the foreign key then reports the real problem.
    NEW.tsv := coalesce(NEW.tsv, ''::tsvector);
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER chunks_fill_tsv
    BEFORE INSERT OR UPDATE ON pgretrieval.chunks
    FOR EACH ROW WHEN (NEW.tsv IS NULL)
    EXECUTE FUNCTION pgretrieval._chunks_fill_tsv();

-- Add (p_sign = 1) or remove (p_sign = -1) the postings and statistics of a set of chunks.
-- tf is the number of positions of the lexeme (Postgres keeps at most 256 per lexeme), the chunk length
-- is the sum of its tfs, i.e. its token count after stop words are removed, as in Lucene's BM25.
CREATE OR REPLACE FUNCTION pgretrieval._bm25_apply(p_rows pgretrieval.chunks[], p_sign integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF coalesce(cardinality(p_rows), 0) = 0 THEN
        RETURN;
    END IF;

    WITH terms AS MATERIALIZED (
        SELECT r.collection_id, r.id AS chunk_id, u.lexeme COLLATE "C" AS term,
               greatest(coalesce(cardinality(u.positions), 0), 1) AS tf
          FROM unnest(p_rows) AS r, unnest(r.tsv) AS u
    ), lengths AS (
        SELECT t.chunk_id, sum(t.tf) AS doc_len FROM terms t GROUP BY t.chunk_id
    ), added AS (
        INSERT INTO pgretrieval.postings (collection_id, term, chunk_id, tf, doc_len)
        SELECT t.collection_id, t.term, t.chunk_id, t.tf, l.doc_len
          FROM terms t JOIN lengths l USING (chunk_id)
         WHERE p_sign > 0
    ), removed AS (
        DELETE FROM pgretrieval.postings p
         USING terms t
         WHERE p_sign < 0
           AND p.collection_id = t.collection_id AND p.term = t.term AND p.chunk_id = t.chunk_id
    ), df AS (
        INSERT INTO pgretrieval.term_stats (collection_id, term, df)
        SELECT t.collection_id, t.term, p_sign * count(*)
          FROM terms t
         GROUP BY t.collection_id, t.term
    )
    -- Every chunk counts in N, also one without any lexeme (as in Lucene and bm25s).
    INSERT INTO pgretrieval.collection_stats (collection_id, n_chunks, total_len)
    SELECT r.collection_id, p_sign * count(*), p_sign * coalesce(sum(l.doc_len), 0)
      FROM unnest(p_rows) AS r
      LEFT JOIN lengths l ON l.chunk_id = r.id
     GROUP BY r.collection_id;
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval._chunks_after_insert()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    PERFORM pgretrieval._bm25_apply(ARRAY(SELECT n::pgretrieval.chunks FROM new_rows n), 1);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval._chunks_after_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    PERFORM pgretrieval._bm25_apply(ARRAY(SELECT o::pgretrieval.chunks FROM old_rows o), -1);
    RETURN NULL;
END
$$;

-- Only rows whose lexemes (or collection) changed touch the postings.
CREATE OR REPLACE FUNCTION pgretrieval._chunks_after_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    PERFORM pgretrieval._bm25_apply(ARRAY(
        SELECT o::pgretrieval.chunks FROM old_rows o
         WHERE NOT EXISTS (SELECT 1 FROM new_rows n
                            WHERE n.id = o.id AND n.collection_id = o.collection_id AND n.tsv = o.tsv)), -1);
    PERFORM pgretrieval._bm25_apply(ARRAY(
        SELECT n::pgretrieval.chunks FROM new_rows n
         WHERE NOT EXISTS (SELECT 1 FROM old_rows o
                            WHERE n.id = o.id AND n.collection_id = o.collection_id AND n.tsv = o.tsv)), 1);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER chunks_bm25_insert
    AFTER INSERT ON pgretrieval.chunks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgretrieval._chunks_after_insert();

CREATE OR REPLACE TRIGGER chunks_bm25_delete
    AFTER DELETE ON pgretrieval.chunks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgretrieval._chunks_after_delete();

CREATE OR REPLACE TRIGGER chunks_bm25_update
    AFTER UPDATE ON pgretrieval.chunks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgretrieval._chunks_after_update();

-- Fold delta rows into one row per (collection, term) and per collection. Safe under concurrent writers: each
-- statement re-inserts exactly the sum of what it deleted, and rows a writer has not committed yet are neither
-- seen nor deleted. One compaction per collection runs at a time (another skips it instead of waiting, so
-- callers such as every finished ingest never queue behind each other or deadlock on the same rows).
-- Ingest calls it when it finishes; schedule it (pg_cron, a cron job) if other programs write chunks.
CREATE OR REPLACE FUNCTION pgretrieval.compact_stats(p_collection text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_cid integer;
BEGIN
    FOR v_cid IN
        SELECT c.id FROM pgretrieval.collections c
         WHERE p_collection IS NULL OR c.id = pgretrieval.collection_id(p_collection)
         ORDER BY c.id
    LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(1885827701, v_cid);
        WITH dup AS (
            SELECT s.term
              FROM pgretrieval.term_stats s
             WHERE s.collection_id = v_cid
             GROUP BY s.term
            HAVING count(*) > 1 OR sum(s.df) = 0
        ), gone AS (
            DELETE FROM pgretrieval.term_stats s
             USING dup
             WHERE s.collection_id = v_cid AND s.term = dup.term
            RETURNING s.term, s.df
        )
        INSERT INTO pgretrieval.term_stats (collection_id, term, df)
        SELECT v_cid, g.term, sum(g.df) FROM gone g
         GROUP BY g.term
        HAVING sum(g.df) <> 0;

        IF (SELECT count(*) FROM pgretrieval.collection_stats s WHERE s.collection_id = v_cid) > 1 THEN
            WITH gone AS (
                DELETE FROM pgretrieval.collection_stats s
                 WHERE s.collection_id = v_cid
                RETURNING s.n_chunks, s.total_len
            )
            INSERT INTO pgretrieval.collection_stats (collection_id, n_chunks, total_len)
            SELECT v_cid, sum(g.n_chunks), sum(g.total_len) FROM gone g
            HAVING sum(g.n_chunks) <> 0 OR sum(g.total_len) <> 0;
        END IF;
    END LOOP;
END
$$;

-- documents.content_hash is always the sha256 of title + content, whoever writes the row.
CREATE OR REPLACE FUNCTION pgretrieval._documents_hash()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    NEW.content_hash := sha256(convert_to(NEW.title || E'\n' || NEW.content, 'UTF8'));
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER documents_hash
    BEFORE INSERT OR UPDATE OF title, content ON pgretrieval.documents
    FOR EACH ROW EXECUTE FUNCTION pgretrieval._documents_hash();
