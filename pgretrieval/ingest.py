"""Ingest: validate → chunk → embed (through the database cache) → write with COPY, one transaction per batch.

Guarantees:
* A document, its chunks, vectors and BM25 statistics commit together or not at all. Each batch is one
  transaction; killing an ingest at any moment leaves the database consistent, and a re-run skips finished
  documents (same content hash) and takes already computed vectors from ``embedding_cache``.
* Upsert by external id: unchanged content → skipped; changed content → chunks replaced in the same
  transaction; only metadata/created_at changed → updated without re-chunking or re-embedding.
* Writes go through COPY (binary) into temp staging tables, then ``INSERT ... SELECT``: the chunks' tsvector is
  computed by ``pgretrieval.text_to_tsvector`` with the collection's text config, the BM25 postings and
  statistics are maintained by the triggers on ``chunks``.

Bad input (empty text, NUL bytes, oversized text, invalid UTF-8, duplicate ids, non-object metadata, bad
dates) raises :class:`IngestError` naming the document and the field, before anything of its batch is
written. With ``skip_errors=True`` bad documents are reported and skipped; the rest of the batch commits.
NUL bytes: PostgreSQL text cannot store U+0000, so such documents are rejected unless ``strip_nul=True``
(then the NULs are removed and the report says so).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from psycopg.types.json import Jsonb

from pgretrieval.chunking import chunk_documents, plan_chunks
from pgretrieval.db import connect
from pgretrieval.embed import Embedder
from pgretrieval.errors import IngestError, InvalidInputError, NotFoundError, PgRetrievalError, from_database_error
from pgretrieval.readers import parse_datetime
from pgretrieval.types import Chunk, Document, IngestErrorRecord, IngestReport, embed_text

DEFAULT_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_EXTERNAL_ID = 1024

_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS _pgr_docs (
    external_id text, title text, content text, metadata jsonb, created_at timestamptz, replace_chunks boolean
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _pgr_chunks (
    document_id bigint, ordinal integer, content text, token_count integer, start_offset integer,
    end_offset integer, embed_hash bytea, embedding vector
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _pgr_vectors (chunk_id bigint, embedding vector) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _pgr_cache (text_hash bytea, embedding vector) ON COMMIT DELETE ROWS;
"""


class DocumentError(IngestError):
    """One document is bad: which one, which field, what is wrong."""

    def __init__(self, document_id: str, field: str, message: str) -> None:
        super().__init__(f"document {document_id!r}, field {field!r}: {message}")
        self.record = IngestErrorRecord(document_id, field, message)


def text_hash(text: str) -> bytes:
    """The cache key of an embedded text: sha256 of its UTF-8 bytes (prompts are part of the embedder)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def content_hash(title: str, text: str) -> bytes:
    """Same as the ``documents_hash`` trigger: sha256(title || '\\n' || content)."""
    return hashlib.sha256(f"{title}\n{text}".encode()).digest()


def _check_text(doc_id: str, field_name: str, value: Any, strip_nul: bool, notes: set[str]) -> str:
    if not isinstance(value, str):
        raise DocumentError(doc_id, field_name, f"must be a string, got {type(value).__name__}")
    if "\x00" in value:
        if not strip_nul:
            raise DocumentError(
                doc_id,
                field_name,
                f"contains a NUL byte (U+0000) at offset {value.index(chr(0))}; PostgreSQL text cannot store it. "
                "Remove it, or pass strip_nul=True (--strip-nul) to drop NULs.",
            )
        value = value.replace("\x00", "")
        notes.add(field_name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DocumentError(
            doc_id, field_name, f"is not valid UTF-8 (undecodable character at offset {exc.start}); fix the encoding"
        ) from exc
    return str(value)


def validate_document(
    doc: Document,
    *,
    max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    strip_nul: bool = False,
    stripped: set[str] | None = None,
) -> Document:
    """A cleaned copy of ``doc`` (metadata as a JSON-safe dict, created_at timezone-aware), or DocumentError."""
    notes: set[str] = set() if stripped is None else stripped
    raw_id = getattr(doc, "id", None)
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise DocumentError(str(raw_id), "id", "must be a non-empty string")
    if len(raw_id) > MAX_EXTERNAL_ID or "\x00" in raw_id:
        raise DocumentError(raw_id[:80], "id", f"must be at most {MAX_EXTERNAL_ID} characters without NUL bytes")
    doc_id = _check_text(raw_id, "id", raw_id, False, notes)
    text = _check_text(doc_id, "text", doc.text, strip_nul, notes)
    if not text.strip():
        raise DocumentError(doc_id, "text", "is empty; a document needs some text to index")
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise DocumentError(
            doc_id,
            "text",
            f"is {size:,} bytes, over the limit of {max_bytes:,}; split the document or raise max_document_bytes",
        )
    title = _check_text(doc_id, "title", doc.title if doc.title is not None else "", strip_nul, notes)
    metadata = doc.metadata if doc.metadata is not None else {}
    if not isinstance(metadata, Mapping):
        raise DocumentError(doc_id, "metadata", f"must be a JSON object (mapping), got {type(metadata).__name__}")
    try:
        encoded = json.dumps(dict(metadata), allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise DocumentError(doc_id, "metadata", f"is not JSON-serialisable: {exc}") from exc
    if "\\u0000" in encoded:
        raise DocumentError(doc_id, "metadata", "contains a NUL character (U+0000), which jsonb cannot store")
    try:
        created_at = parse_datetime(doc.created_at)
    except ValueError as exc:
        raise DocumentError(doc_id, "created_at", str(exc)) from exc
    chunks = _check_chunks(doc_id, getattr(doc, "chunks", None), strip_nul, notes)
    vectors = _check_vectors(doc_id, getattr(doc, "vectors", None), len(chunks) if chunks is not None else 1)
    return Document(
        id=doc_id,
        text=text,
        title=title,
        metadata=json.loads(encoded),
        created_at=created_at,
        chunks=chunks,
        vectors=vectors,
    )


MAX_SUPPLIED_CHUNKS = 10_000


def _check_chunks(doc_id: str, chunks: Any, strip_nul: bool, notes: set[str]) -> tuple[str, ...] | None:
    """Caller-made chunks: a non-empty list of non-empty strings, cleaned like the text."""
    if chunks is None:
        return None
    if isinstance(chunks, (str, bytes)) or not isinstance(chunks, Sequence):
        raise DocumentError(doc_id, "chunks", f"must be a list of strings, got {type(chunks).__name__}")
    if not chunks or len(chunks) > MAX_SUPPLIED_CHUNKS:
        raise DocumentError(doc_id, "chunks", f"must hold 1 to {MAX_SUPPLIED_CHUNKS:,} pieces, got {len(chunks):,}")
    cleaned = []
    for i, piece in enumerate(chunks):
        text = _check_text(doc_id, f"chunks[{i}]", piece, strip_nul, notes)
        if not text.strip():
            raise DocumentError(doc_id, f"chunks[{i}]", "is empty")
        cleaned.append(text)
    return tuple(cleaned)


def _check_vectors(doc_id: str, vectors: Any, expected: int) -> np.ndarray | None:
    """Caller-made vectors: finite numbers, one row per chunk (the dimension is checked against the embedder)."""
    if vectors is None:
        return None
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DocumentError(doc_id, "vectors", f"must be numbers, one vector per chunk ({exc})") from exc
    if arr.ndim == 1 and expected == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] != expected or arr.shape[1] == 0:
        raise DocumentError(
            doc_id, "vectors", f"must be {expected} vector(s), one per chunk; got an array of shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise DocumentError(doc_id, "vectors", "contain NaN or infinite values")
    return arr


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# --------------------------------------------------------------------------------------------- embedding cache


def cached_embeddings(
    conn: psycopg.Connection[Any],
    embedder: Embedder,
    embedder_id: int,
    purpose: str,
    texts: Sequence[str],
    *,
    store: bool = True,
) -> tuple[np.ndarray, int, float]:
    """Vectors for ``texts`` via ``embedding_cache``: (vectors, cache hits, seconds spent in the model).

    Only texts not in the cache reach the model; each distinct text is embedded once. With ``store`` the new
    vectors are inserted (in the caller's transaction, if one is open).
    """
    hashes = [text_hash(t) for t in texts]
    found = lookup_cache(conn, embedder_id, purpose, list(set(hashes)))
    missing: dict[bytes, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in found:
            missing.setdefault(h, t)
    model_seconds = 0.0
    if missing:
        start = time.perf_counter()
        embed = embedder.embed_queries if purpose == "query" else embedder.embed_passages
        vectors = embed(list(missing.values()))
        model_seconds = time.perf_counter() - start
        fresh = dict(zip(missing, vectors, strict=True))
        found.update(fresh)
        if store:
            store_cache(conn, embedder_id, purpose, fresh)
    out = np.stack([found[h] for h in hashes]) if texts else np.zeros((0, embedder.dimensions), np.float32)
    return out.astype(np.float32, copy=False), len(texts) - len(missing), model_seconds


def lookup_cache(
    conn: psycopg.Connection[Any], embedder_id: int, purpose: str, hashes: list[bytes]
) -> dict[bytes, np.ndarray]:
    if not hashes:
        return {}
    rows = conn.execute(
        "SELECT text_hash, embedding FROM pgretrieval.embedding_cache "
        "WHERE embedder_id = %s AND purpose = %s AND text_hash = ANY(%s)",
        (embedder_id, purpose, hashes),
        binary=True,
    ).fetchall()
    return {bytes(h): _to_numpy(v) for h, v in rows}


def _to_numpy(value: Any) -> np.ndarray:
    return value.to_numpy() if isinstance(value, Vector) else np.asarray(value, dtype=np.float32)


def store_cache(conn: psycopg.Connection[Any], embedder_id: int, purpose: str, vectors: Mapping[bytes, Any]) -> None:
    if not vectors:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO pgretrieval.embedding_cache (embedder_id, purpose, text_hash, embedding) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(embedder_id, purpose, h, Vector(np.asarray(v))) for h, v in vectors.items()],
        )


# ----------------------------------------------------------------------------------------------- the ingester


@dataclass
class _Counters:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    embed_seconds: float = 0.0
    db_seconds: float = 0.0
    embedded: int = 0
    cache_hits: int = 0
    index_seconds: float = 0.0
    maintenance_seconds: float = 0.0
    errors: list[IngestErrorRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Prepared:
    """One document ready to write: what to do with it and (for new/changed content) its chunks and vectors."""

    doc: Document
    action: str  # "add" | "replace" | "metadata" | "backfill"
    chunks: list[Chunk] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    vectors: np.ndarray | None = None
    backfill: list[tuple[int, bytes]] = field(default_factory=list)  # (chunk id, embed hash) lacking our vector
    backfill_texts: list[str] = field(default_factory=list)


@dataclass
class _Batch:
    """A prepared batch: what to write, and what preparing it cost."""

    size: int
    prepared: list[_Prepared] = field(default_factory=list)
    unchanged: int = 0
    errors: list[IngestErrorRecord] = field(default_factory=list)
    fresh: dict[bytes, np.ndarray] = field(default_factory=dict)  # newly computed vectors, for the cache
    embed_seconds: float = 0.0
    db_seconds: float = 0.0
    hits: int = 0
    embedded: int = 0


class Ingester:
    """The machinery behind :func:`ingest_documents`, reusable on one connection (the Retriever uses it)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        collection: str,
        embedder: Embedder,
        *,
        text_config: str = "english",
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        create_collection: bool = True,
        strip_nul: bool = False,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        read_conn: psycopg.Connection[Any] | None = None,
    ) -> None:
        self.conn = conn
        self.read_conn = read_conn or conn  # a second connection lets reads/embedding overlap the writes
        self.collection = collection
        self.embedder = embedder
        self.strip_nul = strip_nul
        self.max_document_bytes = max_document_bytes
        self.notes: list[str] = []
        self._seen: dict[str, int] = {}
        self._position = 0
        self._stripped_docs = 0
        try:
            with conn.transaction():
                self.collection_id, self.text_config = self._ensure_collection(text_config, create_collection)
                self.embedder_id = self._ensure_embedder()
                conn.execute(_STAGING_DDL)
        except psycopg.Error as exc:
            raise _db_error(exc, f"cannot prepare collection {collection!r}") from exc
        # Window left for title + chunk once special tokens and the passage prompt are in.
        prompt_tokens = embedder.count_tokens(embedder.passage_prompt) if embedder.passage_prompt else 0
        seq = embedder.max_seq_length
        self.window = None if seq is None else max(16, seq - embedder.special_tokens() - prompt_tokens)
        # A typical short title (~16 tokens) is reserved up front so the reported size is what chunks get.
        plan = plan_chunks(
            seq,
            chunk_size=chunk_size,
            overlap=chunk_overlap,
            reserved_tokens=0 if seq is None or self.window is None else seq - self.window + 16,
            model_name=embedder.name,
        )
        self.plan = plan
        if plan.note:
            self.notes.append(plan.note)

    # -- setup

    def _ensure_collection(self, text_config: str, create: bool) -> tuple[int, str]:
        row = self.conn.execute(
            "SELECT id, text_config FROM pgretrieval.collections WHERE name = %s", (self.collection,)
        ).fetchone()
        if row is None:
            if not create:
                raise NotFoundError(
                    f"unknown collection {self.collection!r}; create it first or pass create_collection=True."
                )
            cid = self.conn.execute(
                "SELECT pgretrieval.create_collection(%s, text_config => %s, if_not_exists => true)",
                (self.collection, text_config),
            ).fetchone()
            assert cid is not None
            return int(cid[0]), text_config
        if row[1] != text_config:
            self.notes.append(f"collection {self.collection!r} keeps its text config {row[1]!r}.")
        return int(row[0]), str(row[1])

    def _ensure_embedder(self) -> int:
        e = self.embedder
        row = self.conn.execute(
            "SELECT pgretrieval.register_embedder(%s, %s, %s, distance => %s, backend => %s, normalized => %s, "
            "query_prompt => %s, passage_prompt => %s, max_seq_length => %s)",
            (
                e.name,
                e.model,
                e.dimensions,
                e.distance,
                e.backend,
                e.normalize,
                e.query_prompt,
                e.passage_prompt,
                e.max_seq_length,
            ),
        ).fetchone()
        assert row is not None
        eid = int(row[0])
        reg = self.conn.execute(
            "SELECT normalize, query_prompt, passage_prompt FROM pgretrieval.embedders WHERE id = %s", (eid,)
        ).fetchone()
        assert reg is not None
        if (reg[0], reg[1], reg[2]) != (e.normalize, e.query_prompt, e.passage_prompt):
            raise IngestError(
                f"embedder {e.name!r} is registered with normalize={reg[0]}, query prompt {reg[1]!r} and passage "
                f"prompt {reg[2]!r}, but the loaded model uses normalize={e.normalize}, {e.query_prompt!r} and "
                f"{e.passage_prompt!r}; its vectors would not be comparable. Load it with the registered settings "
                "or register it under another name (name=...)."
            )
        self.conn.execute("SELECT pgretrieval.attach_embedder(%s, %s)", (self.collection, e.name))
        default = self.conn.execute(
            "SELECT e.name FROM pgretrieval.collections c JOIN pgretrieval.embedders e "
            "ON e.id = c.default_embedder_id WHERE c.id = %s",
            (self.collection_id,),
        ).fetchone()
        if default and default[0] != e.name:
            self.notes.append(
                f"collection {self.collection!r} searches with {default[0]!r} by default; vectors of {e.name!r} are "
                f"stored side by side (search with embedder={e.name!r})."
            )
        return eid

    # -- validation

    def validate(self, doc: Document) -> Document:
        """Validate one document (also across the run: an id may appear only once per ingest)."""
        self._position += 1
        stripped: set[str] = set()
        clean = validate_document(doc, max_bytes=self.max_document_bytes, strip_nul=self.strip_nul, stripped=stripped)
        if clean.vectors is None and self.embedder.backend == "external":
            raise DocumentError(
                clean.id,
                "vectors",
                f"are missing: embedder {self.embedder.name!r} is external, so every document brings its vectors",
            )
        if clean.vectors is not None and clean.vectors.shape[1] != self.embedder.dimensions:
            raise DocumentError(
                clean.id,
                "vectors",
                f"have {clean.vectors.shape[1]} dimensions but embedder {self.embedder.name!r} has "
                f"{self.embedder.dimensions}; supply vectors of the ingest embedder's model",
            )
        first = self._seen.get(clean.id)
        if first is not None:
            raise DocumentError(
                clean.id,
                "id",
                f"duplicate id in this input (documents #{first} and #{self._position}); ids must be unique",
            )
        self._seen[clean.id] = self._position
        if stripped:
            self._stripped_docs += 1
        return clean

    def finish_notes(self) -> list[str]:
        notes = list(self.notes)
        if self._stripped_docs:
            notes.append(f"removed NUL bytes from {self._stripped_docs} document(s) (strip_nul=True).")
        return notes

    # -- one batch: prepare (read, chunk, embed) then write

    def prepare(self, docs: list[Document], *, skip_errors: bool) -> _Batch:
        """Validate, classify against the database, chunk and embed one batch (no writes; may run in a thread
        on ``read_conn`` while the previous batch is being written on ``conn``)."""
        batch = _Batch(size=len(docs))
        valid: list[Document] = []
        for doc in docs:
            try:
                valid.append(self.validate(doc))
            except DocumentError as exc:
                if not skip_errors:
                    raise
                batch.errors.append(exc.record)
        if not valid:
            return batch
        t0 = time.perf_counter()
        try:
            with self.read_conn.transaction():
                batch.prepared, batch.unchanged = self._classify(valid)
        except psycopg.Error as exc:
            raise _db_error(exc, f"ingest into {self.collection!r} failed") from exc
        batch.db_seconds += time.perf_counter() - t0
        self._chunk_and_embed(batch)
        return batch

    def write(self, batch: _Batch, counters: _Counters, *, skip_errors: bool) -> None:
        """Write a prepared batch in one transaction and account for it."""
        counters.errors.extend(batch.errors)
        counters.failed += len(batch.errors)
        counters.embed_seconds += batch.embed_seconds
        counters.db_seconds += batch.db_seconds
        counters.cache_hits += batch.hits
        counters.embedded += batch.embedded
        counters.unchanged += batch.unchanged
        if not batch.prepared:
            return
        t0 = time.perf_counter()
        try:
            with self.conn.transaction():
                failed = self._write_all(batch, counters, skip_errors=skip_errors)
        except psycopg.Error as exc:
            raise _db_error(exc, f"ingest into {self.collection!r} failed") from exc
        finally:
            counters.db_seconds += time.perf_counter() - t0
        for p in batch.prepared:
            if p.doc.id in failed:
                continue
            if p.action == "add":
                counters.added += 1
            elif p.action in ("replace", "metadata"):
                counters.updated += 1
            else:
                counters.unchanged += 1
            counters.chunks += len(p.chunks)

    def _classify(self, docs: list[Document]) -> tuple[list[_Prepared], int]:
        conn = self.read_conn
        rows = conn.execute(
            "SELECT external_id, id, content_hash, metadata, created_at FROM pgretrieval.documents "
            "WHERE collection_id = %s AND external_id = ANY(%s)",
            (self.collection_id, [d.id for d in docs]),
        ).fetchall()
        existing = {r[0]: r for r in rows}
        prepared: list[_Prepared] = []
        same: dict[int, Document] = {}
        for doc in docs:
            row = existing.get(doc.id)
            if row is None:
                prepared.append(_Prepared(doc, "add"))
            elif bytes(row[2]) != content_hash(doc.title, doc.text):
                prepared.append(_Prepared(doc, "replace"))
            elif row[3] != doc.metadata or (doc.created_at is not None and row[4] != doc.created_at):
                prepared.append(_Prepared(doc, "metadata"))
                same[int(row[1])] = doc
            else:
                same[int(row[1])] = doc
        unchanged = 0
        if same:
            # Unchanged documents may still lack vectors of this embedder (a second model added later).
            lacking = conn.execute(
                "SELECT c.document_id, c.id, c.embed_hash, c.content, d.title FROM pgretrieval.chunks c "
                "JOIN pgretrieval.documents d ON d.collection_id = c.collection_id AND d.id = c.document_id "
                "WHERE c.collection_id = %s AND c.document_id = ANY(%s) AND NOT EXISTS ("
                "  SELECT 1 FROM pgretrieval.embeddings e WHERE e.collection_id = c.collection_id "
                "  AND e.chunk_id = c.id AND e.embedder_id = %s) ORDER BY c.document_id, c.ordinal",
                (self.collection_id, list(same), self.embedder_id),
            ).fetchall()
            by_doc: dict[int, list[tuple[int, bytes, str]]] = {}
            for doc_id, chunk_id, ehash, content, title in lacking:
                text = embed_text(title, content)
                by_doc.setdefault(doc_id, []).append((chunk_id, bytes(ehash) if ehash else text_hash(text), text))
            by_external = {p.doc.id: p for p in prepared}
            for doc_id, doc in same.items():
                todo = by_doc.get(doc_id)
                if todo:
                    target = by_external.get(doc.id)
                    if target is None:
                        target = _Prepared(doc, "backfill")
                        prepared.append(target)
                    target.backfill = [(cid, h) for cid, h, _ in todo]
                    target.backfill_texts = [t for _, _, t in todo]
                elif doc.id not in by_external:
                    unchanged += 1
        return prepared, unchanged

    def _chunk_and_embed(self, batch: _Batch) -> None:
        fresh_docs = [p for p in batch.prepared if p.action in ("add", "replace")]
        to_chunk = [p for p in fresh_docs if p.doc.chunks is None and p.doc.vectors is None]
        chunked = chunk_documents(
            [(p.doc.title, p.doc.text) for p in to_chunk],
            self.embedder.tokenizer,
            chunk_size=self.plan.chunk_size,
            overlap=self.plan.overlap,
            max_tokens=self.window,
        )
        for p, chunks in zip(to_chunk, chunked, strict=True):
            p.chunks = chunks
        given = [p for p in fresh_docs if p.doc.chunks is not None or p.doc.vectors is not None]
        if given:
            self._supplied_chunks(given)
        for p in fresh_docs:
            p.hashes = [text_hash(c.embed_text) for c in p.chunks]
            if p.doc.vectors is not None:
                p.vectors = p.doc.vectors
        for p in batch.prepared:
            if p.action == "backfill" and p.doc.vectors is not None:
                if len(p.doc.vectors) != len(p.backfill):
                    raise DocumentError(
                        p.doc.id,
                        "vectors",
                        f"{len(p.doc.vectors)} vector(s) supplied but {len(p.backfill)} stored chunk(s) lack one",
                    )
                p.vectors = p.doc.vectors
        texts: list[str] = []
        hashes: list[bytes] = []
        for p in batch.prepared:
            if p.vectors is not None:
                continue  # supplied by the caller: no model, no cache
            if p.action in ("add", "replace"):
                texts.extend(c.embed_text for c in p.chunks)
                hashes.extend(p.hashes)
            elif p.backfill:
                texts.extend(p.backfill_texts)
                hashes.extend(h for _, h in p.backfill)
        if not texts:
            return
        t0 = time.perf_counter()
        try:
            with self.read_conn.transaction():
                found = lookup_cache(self.read_conn, self.embedder_id, "passage", list(set(hashes)))
        except psycopg.Error as exc:
            raise _db_error(exc, "reading the embedding cache failed") from exc
        batch.db_seconds += time.perf_counter() - t0
        missing: dict[bytes, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            if h not in found:
                missing.setdefault(h, t)
        if missing:
            t0 = time.perf_counter()
            vectors = self.embedder.embed_passages(list(missing.values()))
            batch.embed_seconds += time.perf_counter() - t0
            batch.fresh = dict(zip(missing, vectors, strict=True))
            found.update(batch.fresh)
        batch.hits = len(texts) - len(missing)
        batch.embedded = len(missing)
        for p in batch.prepared:
            if p.vectors is not None:
                continue
            keys = p.hashes if p.action in ("add", "replace") else [h for _, h in p.backfill]
            if keys:
                p.vectors = np.stack([found[h] for h in keys]).astype(np.float32, copy=False)

    def _supplied_chunks(self, prepared: list[_Prepared]) -> None:
        """Chunks as the caller gave them (or the whole text as one chunk when only vectors are given)."""
        pieces = [list(p.doc.chunks) if p.doc.chunks is not None else [p.doc.text] for p in prepared]
        counts = iter(self.embedder.tokenizer.count([piece for group in pieces for piece in group]))
        for p, group in zip(prepared, pieces, strict=True):
            chunks, position = [], 0
            for i, piece in enumerate(group):
                start = p.doc.text.find(piece, position)
                end = start + len(piece) if start >= 0 else None
                if start >= 0:
                    position = start
                chunks.append(
                    Chunk(
                        ordinal=i,
                        content=piece,
                        start_offset=start if start >= 0 else None,
                        end_offset=end,
                        token_count=next(counts),
                        embed_text=embed_text(p.doc.title, piece),
                    )
                )
            p.chunks = chunks

    def _write_all(self, batch: _Batch, counters: _Counters, *, skip_errors: bool) -> set[str]:
        """Write the batch in bulk; if that fails, retry one document per savepoint to find the bad one(s)."""
        work = [p for p in batch.prepared if p.action != "backfill" or p.backfill]
        try:
            with self.conn.transaction():
                self._write(work, batch.fresh)
            return set()
        except psycopg.Error as bulk_error:
            if len(work) == 1 and not skip_errors:
                raise _document_db_error(work[0].doc.id, bulk_error) from bulk_error
        failed: set[str] = set()
        for p in work:
            try:
                with self.conn.transaction():
                    self._write([p], batch.fresh)
            except psycopg.Error as exc:
                err = _document_db_error(p.doc.id, exc)
                if not skip_errors:
                    raise err from exc
                counters.errors.append(err.record)
                counters.failed += 1
                failed.add(p.doc.id)
        return failed

    def _write(self, work: list[_Prepared], fresh_vectors: Mapping[bytes, np.ndarray]) -> None:
        conn, cid, eid = self.conn, self.collection_id, self.embedder_id
        conn.execute("DELETE FROM _pgr_docs; DELETE FROM _pgr_chunks; DELETE FROM _pgr_vectors; DELETE FROM _pgr_cache")
        docs = [p for p in work if p.action != "backfill"]
        doc_ids: dict[str, int] = {}
        if docs:
            with conn.cursor() as cur:
                with cur.copy(
                    "COPY _pgr_docs (external_id, title, content, metadata, created_at, replace_chunks) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["text", "text", "text", "jsonb", "timestamptz", "bool"])
                    for p in docs:
                        d = p.doc
                        copy.write_row(
                            (d.id, d.title, d.text, Jsonb(d.metadata), d.created_at, p.action in ("add", "replace"))
                        )
                cur.execute(
                    "UPDATE pgretrieval.documents d SET title = s.title, content = s.content, metadata = s.metadata, "
                    "created_at = coalesce(s.created_at, d.created_at), updated_at = now() FROM _pgr_docs s "
                    "WHERE d.collection_id = %s AND d.external_id = s.external_id RETURNING d.external_id, d.id",
                    (cid,),
                )
                doc_ids.update(cur.fetchall())
                cur.execute(
                    "INSERT INTO pgretrieval.documents"
                    " (collection_id, external_id, title, content, metadata, created_at) "
                    "SELECT %s, s.external_id, s.title, s.content, s.metadata, coalesce(s.created_at, now()) "
                    "FROM _pgr_docs s WHERE NOT EXISTS (SELECT 1 FROM pgretrieval.documents d "
                    "WHERE d.collection_id = %s AND d.external_id = s.external_id) RETURNING external_id, id",
                    (cid, cid),
                )
                doc_ids.update(cur.fetchall())
                # New documents too: if another writer inserted the id since we classified it, its chunks go.
                replaced = [doc_ids[p.doc.id] for p in docs if p.action in ("add", "replace")]
                if replaced:
                    cur.execute(
                        "DELETE FROM pgretrieval.chunks WHERE collection_id = %s AND document_id = ANY(%s)",
                        (cid, replaced),
                    )
        with conn.cursor() as cur:
            new_chunks = [p for p in docs if p.action in ("add", "replace")]
            if any(p.chunks for p in new_chunks):
                with cur.copy(
                    "COPY _pgr_chunks (document_id, ordinal, content, token_count, start_offset, end_offset, "
                    "embed_hash, embedding) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int8", "int4", "text", "int4", "int4", "int4", "bytea", "vector"])
                    for p in new_chunks:
                        did = doc_ids[p.doc.id]
                        assert p.vectors is not None
                        for c, h, v in zip(p.chunks, p.hashes, p.vectors, strict=True):
                            copy.write_row(
                                (did, c.ordinal, c.content, c.token_count, c.start_offset, c.end_offset, h, Vector(v))
                            )
                cur.execute(
                    "WITH ins AS ("
                    " INSERT INTO pgretrieval.chunks (collection_id, document_id, ordinal, content, token_count,"
                    "  start_offset, end_offset, embed_hash, tsv)"
                    " SELECT %(cid)s, s.document_id, s.ordinal, s.content, s.token_count, s.start_offset, s.end_offset,"
                    "  s.embed_hash, pgretrieval.text_to_tsvector(%(cfg)s, d.title || E'\\n' || s.content)"
                    " FROM _pgr_chunks s"
                    " JOIN pgretrieval.documents d ON d.collection_id = %(cid)s AND d.id = s.document_id"
                    " RETURNING id, document_id, ordinal)"
                    " INSERT INTO pgretrieval.embeddings (collection_id, chunk_id, embedder_id, embedding)"
                    " SELECT %(cid)s, ins.id, %(eid)s, s.embedding FROM ins"
                    " JOIN _pgr_chunks s ON s.document_id = ins.document_id AND s.ordinal = ins.ordinal",
                    {"cid": cid, "eid": eid, "cfg": self.text_config},
                )
            backfill = [p for p in work if p.backfill]
            if backfill:
                with cur.copy("COPY _pgr_vectors (chunk_id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "vector"])
                    for p in backfill:
                        assert p.vectors is not None
                        for (chunk_id, _), v in zip(p.backfill, p.vectors, strict=True):
                            copy.write_row((chunk_id, Vector(v)))
                cur.execute(
                    "INSERT INTO pgretrieval.embeddings (collection_id, chunk_id, embedder_id, embedding) "
                    "SELECT %s, chunk_id, %s, embedding FROM _pgr_vectors ON CONFLICT DO NOTHING",
                    (cid, eid),
                )
            wanted = {h for p in work for h in (p.hashes or [b for _, b in p.backfill])}
            fresh = {h: v for h, v in fresh_vectors.items() if h in wanted}
            if fresh:
                with cur.copy("COPY _pgr_cache (text_hash, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["bytea", "vector"])
                    for h, v in fresh.items():
                        copy.write_row((h, Vector(v)))
                cur.execute(
                    "INSERT INTO pgretrieval.embedding_cache (embedder_id, purpose, text_hash, embedding) "
                    "SELECT %s, 'passage', text_hash, embedding FROM _pgr_cache ON CONFLICT DO NOTHING",
                    (eid,),
                )


def _db_error(exc: psycopg.Error, context: str) -> PgRetrievalError:
    mapped = from_database_error(exc)
    if mapped is not None:
        return IngestError(f"{context}: {mapped}")
    return IngestError(f"{context}: {' '.join(str(exc).split())}")


def _document_db_error(doc_id: str, exc: psycopg.Error) -> DocumentError:
    diag = getattr(exc, "diag", None)
    column = getattr(diag, "column_name", None) or "(database)"
    message = getattr(diag, "message_primary", None) or str(exc).splitlines()[0]
    return DocumentError(doc_id, column, f"the database rejected it: {message}")


def _batches(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextmanager
def _progress_bar(enabled: bool, total: int | None) -> Iterator[Any]:
    """A rich progress bar (documents, rate, ETA) on stderr; a no-op object when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- docs/s" if speed is None else f"{speed:,.1f} docs/s", style="cyan")

    columns = [
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield bar


def ingest_documents(
    dsn: str | psycopg.Connection[Any],
    collection: str,
    documents: Iterable[Document],
    embedder: Embedder,
    *,
    text_config: str = "english",
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    batch_size: int = 64,
    skip_errors: bool = False,
    progress: bool = True,
    create_collection: bool = True,
    strip_nul: bool = False,
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    read_errors: list[IngestErrorRecord] | None = None,
    pipeline: bool = True,
    defer_index: bool = False,
    index_build_memory: str | None = None,
) -> IngestReport:
    """Ingest ``documents`` into ``collection`` (created if missing); see the module docstring for guarantees.

    ``batch_size`` is documents per transaction. ``read_errors`` is the list a reader filled with bad records
    (``read_documents(..., errors=...)``); they are counted as failed and listed in the report. Given a DSN
    (not a connection) and ``pipeline``, a second connection and a worker thread prepare the next batch
    (read, chunk, embed) while the current one is written.

    Bulk loads: ``defer_index`` drops the collection's HNSW index for this embedder before writing and builds
    it again once at the end (``CREATE INDEX CONCURRENTLY``, ``index_build_memory`` as its
    ``maintenance_work_mem``), far cheaper than growing the graph row by row; dense search stays correct
    meanwhile (an exact scan). An index left dropped by an interrupted run is rebuilt by the next ingest.
    Every ingest ends by folding the BM25 statistics delta rows it wrote (``pgretrieval.compact_stats``).
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
    start = time.perf_counter()
    own = isinstance(dsn, str)
    conn = connect(dsn, autocommit=True) if isinstance(dsn, str) else dsn
    read_conn = connect(dsn, autocommit=True) if isinstance(dsn, str) and pipeline else None
    counters = _Counters()
    try:
        ingester = Ingester(
            conn,
            collection,
            embedder,
            text_config=text_config,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            create_collection=create_collection,
            strip_nul=strip_nul,
            max_document_bytes=max_document_bytes,
            read_conn=read_conn,
        )
        total = len(documents) if isinstance(documents, Sized) else None
        batches = _batches(documents, batch_size)
        index_ddl: str | None = None
        if defer_index:
            if not conn.autocommit and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise InvalidInputError("defer_index needs a DSN or an idle connection (the index is built outside it)")
            index_ddl = _drop_index(conn, collection, embedder.name)

        def prepare_next() -> _Batch | None:
            docs = next(batches, None)
            return None if docs is None else ingester.prepare(docs, skip_errors=skip_errors)

        with _progress_bar(progress, total) as bar:
            task = bar.add_task("ingest", total=total) if bar is not None else None
            if read_conn is None:
                while (batch := prepare_next()) is not None:
                    ingester.write(batch, counters, skip_errors=skip_errors)
                    if bar is not None:
                        bar.update(task, advance=batch.size)
            else:
                # Pipeline: the worker reads, chunks and embeds batch i+1 while this thread writes batch i.
                pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgretrieval-ingest")
                try:
                    pending = pool.submit(prepare_next)
                    while (batch := pending.result()) is not None:
                        pending = pool.submit(prepare_next)
                        ingester.write(batch, counters, skip_errors=skip_errors)
                        if bar is not None:
                            bar.update(task, advance=batch.size)
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
        counters.notes.extend(ingester.finish_notes())
        maintenance = _finish_maintenance(conn, collection, embedder.name, index_ddl, defer_index, index_build_memory)
        counters.notes.extend(maintenance.notes)
        counters.maintenance_seconds += maintenance.seconds
        counters.index_seconds += maintenance.index_seconds
    finally:
        if read_conn is not None:
            read_conn.close()
        if own:
            conn.close()
    if read_errors:
        counters.errors = list(read_errors) + counters.errors
        counters.failed += len(read_errors)
    return IngestReport(
        documents_added=counters.added,
        documents_updated=counters.updated,
        documents_unchanged=counters.unchanged,
        documents_failed=counters.failed,
        chunks_written=counters.chunks,
        seconds=time.perf_counter() - start,
        embed_seconds=counters.embed_seconds,
        db_seconds=counters.db_seconds,
        errors=counters.errors,
        notes=counters.notes,
        texts_embedded=counters.embedded,
        cache_hits=counters.cache_hits,
        index_seconds=counters.index_seconds,
        maintenance_seconds=counters.maintenance_seconds,
    )


@dataclass
class _Maintenance:
    seconds: float = 0.0
    index_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _drop_index(conn: psycopg.Connection[Any], collection: str, embedder: str) -> str | None:
    """Take the pair's HNSW index down for a bulk load; returns the statement that rebuilds it."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT pgretrieval.drop_vector_index(%s, %s)", (collection, embedder)).fetchone()
    except psycopg.Error as exc:
        raise _db_error(exc, f"cannot defer the vector index of {collection!r}") from exc
    return row[0] if row else None


def _finish_maintenance(
    conn: psycopg.Connection[Any],
    collection: str,
    embedder: str,
    index_ddl: str | None,
    deferred: bool,
    memory: str | None,
) -> _Maintenance:
    """After the last batch: (re)build a deferred or missing HNSW index, fold the statistics deltas."""
    from pgretrieval import maintenance

    out = _Maintenance()
    start = time.perf_counter()
    if not conn.autocommit and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # The caller's own transaction: no concurrent index build possible here; compaction rides along.
        maintenance.compact_stats(conn, collection)
        out.seconds = time.perf_counter() - start
        return out
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        if deferred and index_ddl is not None:
            out.index_seconds += maintenance.build_vector_index(
                conn, collection, embedder, ddl=index_ddl, memory=memory
            )
            out.notes.append(f"built the HNSW index once after the load in {out.index_seconds:.1f} s (defer_index).")
        else:
            rebuilt = maintenance.restore_missing_indexes(conn, collection, memory=memory)
            if rebuilt:
                out.index_seconds += rebuilt
                out.notes.append(f"rebuilt an HNSW index an interrupted bulk load had left dropped ({rebuilt:.1f} s).")
        maintenance.compact_stats(conn, collection)
    finally:
        conn.autocommit = autocommit
    out.seconds = time.perf_counter() - start
    return out


def delete_documents(
    dsn: str | psycopg.Connection[Any],
    collection: str,
    ids: Sequence[str] | None = None,
    filter: Mapping[str, Any] | None = None,
) -> int:
    """Delete documents (with chunks, vectors and BM25 statistics) by external id and/or metadata filter (the
    search functions' filter language, ``pgretrieval.matches_filter``); returns how many were deleted.
    At least one of ``ids``/``filter`` is required, so a missing argument never empties a collection."""
    if not ids and not filter:
        raise InvalidInputError("pass ids=[...] and/or filter={...}; refusing to delete every document.")
    if filter is not None and not isinstance(filter, Mapping):
        raise InvalidInputError(f"filter must be a JSON object, got {type(filter).__name__}")
    if isinstance(ids, str):
        ids = [ids]
    conn = connect(dsn, autocommit=True) if isinstance(dsn, str) else dsn
    try:
        with conn.transaction():
            cur = conn.execute(
                "DELETE FROM pgretrieval.documents WHERE collection_id = pgretrieval.collection_id(%s) "
                "AND (%s::text[] IS NULL OR external_id = ANY(%s::text[])) "
                "AND (%s::jsonb IS NULL OR pgretrieval.matches_filter(metadata, %s::jsonb))",
                (
                    collection,
                    list(ids) if ids else None,
                    list(ids) if ids else None,
                    Jsonb(dict(filter)) if filter else None,
                    Jsonb(dict(filter)) if filter else None,
                ),
            )
            return cur.rowcount
    except psycopg.Error as exc:
        mapped = from_database_error(exc)
        if mapped is not None:
            raise mapped from exc
        raise
    finally:
        if isinstance(dsn, str):
            conn.close()


__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "DocumentError",
    "Ingester",
    "cached_embeddings",
    "content_hash",
    "delete_documents",
    "embed_collection",
    "embed_text",
    "ingest_documents",
    "text_hash",
    "validate_document",
]


# ------------------------------------------------------------------------------- a second embedder, after the fact


def embed_collection(
    dsn: str | psycopg.Connection[Any],
    collection: str,
    embedder: Embedder,
    *,
    batch_size: int = 64,
    progress: bool = True,
) -> IngestReport:
    """Register and attach ``embedder`` to an existing collection and give every chunk a vector of it.

    The text embedded for a chunk is exactly what ingest embeds (:func:`embed_text`: title + chunk), taken through
    the embedding cache. ``batch_size`` chunks are written per transaction, so an interrupted run keeps what it
    committed and a re-run embeds only the chunks still lacking a vector. The collection's default embedder is not
    changed (unless the collection had none); switch it with ``pgretrieval.set_default_embedder``. In the report
    ``chunks_written`` counts vectors written and ``documents_unchanged`` the documents they belong to.
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
    start = time.perf_counter()
    own = isinstance(dsn, str)
    conn = connect(dsn, autocommit=True) if isinstance(dsn, str) else dsn
    counters = _Counters()
    documents: set[str] = set()
    written = 0
    try:
        row = conn.execute("SELECT text_config FROM pgretrieval.collections WHERE name = %s", (collection,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown collection {collection!r}; ingest documents into it first.")
        ingester = Ingester(conn, collection, embedder, text_config=str(row[0]), create_collection=False)
        cid, eid = ingester.collection_id, ingester.embedder_id
        lacking = (
            "FROM pgretrieval.chunks c JOIN pgretrieval.documents d"
            " ON d.collection_id = c.collection_id AND d.id = c.document_id"
            " WHERE c.collection_id = %s AND NOT EXISTS (SELECT 1 FROM pgretrieval.embeddings e"
            "  WHERE e.collection_id = c.collection_id AND e.chunk_id = c.id AND e.embedder_id = %s)"
        )
        counted = conn.execute(f"SELECT count(*) {lacking}", (cid, eid)).fetchone()
        total = int(counted[0]) if counted else 0
        last_id = 0
        with _progress_bar(progress and total > 0, total) as bar:
            task = bar.add_task("embed", total=total) if bar is not None else None
            while True:
                rows = conn.execute(
                    f"SELECT c.id, c.content, d.title, d.external_id {lacking} AND c.id > %s ORDER BY c.id LIMIT %s",
                    (cid, eid, last_id, batch_size),
                ).fetchall()
                if not rows:
                    break
                last_id = int(rows[-1][0])
                by_doc: dict[str, _Prepared] = {}
                for chunk_id, content, title, external_id in rows:
                    text = embed_text(title, content)
                    p = by_doc.get(external_id)
                    if p is None:
                        p = by_doc[external_id] = _Prepared(Document(id=external_id, text="", title=title), "backfill")
                    p.backfill.append((int(chunk_id), text_hash(text)))
                    p.backfill_texts.append(text)
                batch = _Batch(size=len(rows), prepared=list(by_doc.values()))
                ingester._chunk_and_embed(batch)  # cache lookup, model for the misses
                ingester.write(batch, counters, skip_errors=False)  # one transaction: vectors + new cache rows
                documents.update(by_doc)
                written += len(rows)
                if bar is not None:
                    bar.update(task, advance=len(rows))
    finally:
        if own:
            conn.close()
    notes = [n for n in ingester.notes if n != ingester.plan.note]
    notes.append(
        f"embedder {embedder.name!r}: {written} chunk vectors written in collection {collection!r}"
        + ("" if written else " (every chunk already had one)")
    )
    return IngestReport(
        documents_unchanged=len(documents),
        chunks_written=written,
        seconds=time.perf_counter() - start,
        embed_seconds=counters.embed_seconds,
        db_seconds=counters.db_seconds,
        notes=notes,
        texts_embedded=counters.embedded,
        cache_hits=counters.cache_hits,
        index_seconds=counters.index_seconds,
        maintenance_seconds=counters.maintenance_seconds,
    )
