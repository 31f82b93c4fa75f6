"""Upkeep a long ingest needs: rebuilding a pair's HNSW index after a bulk load, folding BM25 statistics.

Both run outside the ingest's batch transactions, on an autocommit connection: ``CREATE INDEX CONCURRENTLY``
cannot run in a transaction (and, unlike a plain CREATE INDEX, lets other collections' writers go on), and
compaction is its own short transaction per collection (see compact_stats in 030_bm25_maintenance.sql).
"""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
from psycopg import sql

from pgretrieval.errors import PgRetrievalError, from_database_error

_MEMORY = re.compile(r"^\d+\s*(kB|MB|GB|TB)?$")


def build_vector_index(
    conn: psycopg.Connection[Any],
    collection: str,
    embedder: str,
    *,
    ddl: str | None = None,
    memory: str | None = None,
) -> float:
    """Build the (collection, embedder) HNSW index concurrently and record it; returns the seconds it took.

    ``ddl`` is the statement from ``pgretrieval.drop_vector_index`` (or ``vector_index_ddl`` when None);
    ``memory`` sets ``maintenance_work_mem`` for the build (the graph builds far faster when it fits).
    """
    if not conn.autocommit:
        raise PgRetrievalError("build_vector_index needs an autocommit connection (CREATE INDEX CONCURRENTLY)")
    if memory is not None and not _MEMORY.match(memory.strip()):
        raise PgRetrievalError(f"index build memory must look like 2GB or 512MB, got {memory!r}")
    try:
        if ddl is None:
            row = conn.execute("SELECT pgretrieval.vector_index_ddl(%s, %s)", (collection, embedder)).fetchone()
            ddl = row[0] if row else None
        if ddl is None:
            return 0.0  # too many dimensions for HNSW: searched exactly
        name = conn.execute(
            "SELECT format('embeddings_hnsw_c%%s_e%%s', pgretrieval.collection_id(%s), pgretrieval.embedder_id(%s))",
            (collection, embedder),
        ).fetchone()
        assert name is not None
        # An interrupted concurrent build leaves an invalid index of that name behind: clear it first.
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS pgretrieval.{}").format(sql.Identifier(name[0])))
        if memory is not None:
            conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(memory.strip())))
        start = time.perf_counter()
        conn.execute(ddl.replace("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1).encode())
        seconds = time.perf_counter() - start
        conn.execute("SELECT pgretrieval.vector_index_built(%s, %s)", (collection, embedder))
        if memory is not None:
            conn.execute("RESET maintenance_work_mem")
        return seconds
    except psycopg.Error as exc:
        mapped = from_database_error(exc)
        raise (mapped or PgRetrievalError(f"building the vector index failed: {exc}")) from exc


def restore_missing_indexes(conn: psycopg.Connection[Any], collection: str, *, memory: str | None = None) -> float:
    """Rebuild any index of ``collection`` that an interrupted bulk load left dropped; returns seconds spent."""
    rows = conn.execute(
        "SELECT embedder FROM pgretrieval.missing_vector_indexes() WHERE collection = %s", (collection,)
    ).fetchall()
    return sum(build_vector_index(conn, collection, r[0], memory=memory) for r in rows)


def compact_stats(conn: psycopg.Connection[Any], collection: str) -> float:
    """Fold the collection's BM25 statistics delta rows (one per term and ingest statement) into one row each."""
    start = time.perf_counter()
    try:
        conn.execute("SELECT pgretrieval.compact_stats(%s)", (collection,))
    except psycopg.Error as exc:
        mapped = from_database_error(exc)
        raise (mapped or PgRetrievalError(f"compacting statistics failed: {exc}")) from exc
    return time.perf_counter() - start
