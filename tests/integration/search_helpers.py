"""Small synthetic corpora for the search-function tests, written with plain SQL (one chunk per document)."""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgretrieval.db import connect

RESULT_COLUMNS = [
    "chunk_id",
    "document_id",
    "external_id",
    "title",
    "content",
    "metadata",
    "created_at",
    "score",
    "dense_rank",
    "dense_score",
    "lexical_rank",
    "lexical_score",
    "metadata_rank",
    "recency",
]


@dataclass
class Doc:
    external_id: str
    content: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=timezone.utc))


def create_collection(conn: psycopg.Connection[Any], name: str = "docs", text_config: str = "english") -> int:
    row = conn.execute("SELECT pgretrieval.create_collection(%s, %s)", (name, text_config)).fetchone()
    assert row is not None
    return int(row[0])


def add_docs(conn: psycopg.Connection[Any], collection_id: int, docs: Iterable[Doc]) -> dict[str, int]:
    """Insert documents with one chunk each; returns external_id -> chunk id."""
    docs = list(docs)
    if not docs:
        return {}
    conn.execute(
        "WITH d AS ("
        "  INSERT INTO pgretrieval.documents (collection_id, external_id, title, content, metadata, created_at)"
        "  SELECT %s, x.e, x.t, x.c, x.m::jsonb, x.ts"
        "    FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[]) AS x(e, t, c, m, ts)"
        "  RETURNING id, content)"
        " INSERT INTO pgretrieval.chunks (collection_id, document_id, ordinal, content)"
        " SELECT %s, d.id, 0, d.content FROM d",
        (
            collection_id,
            [d.external_id for d in docs],
            [d.title for d in docs],
            [d.content for d in docs],
            [json.dumps(d.metadata) for d in docs],
            [d.created_at for d in docs],
            collection_id,
        ),
    )
    rows = conn.execute(
        "SELECT d.external_id, c.id FROM pgretrieval.documents d JOIN pgretrieval.chunks c "
        "ON c.collection_id = d.collection_id AND c.document_id = d.id "
        "WHERE d.collection_id = %s AND d.external_id = ANY(%s)",
        (collection_id, [d.external_id for d in docs]),
    ).fetchall()
    return {str(e): int(c) for e, c in rows}


def add_embedder(conn: psycopg.Connection[Any], collection: str, name: str, dims: int, distance: str = "cosine") -> int:
    row = conn.execute(
        "SELECT pgretrieval.register_embedder(%s, 'test-model', %s, distance => %s)", (name, dims, distance)
    ).fetchone()
    assert row is not None
    conn.execute("SELECT pgretrieval.attach_embedder(%s, %s)", (collection, name))
    return int(row[0])


def add_embeddings(
    conn: psycopg.Connection[Any], collection_id: int, embedder_id: int, vectors: dict[int, Sequence[float]]
) -> None:
    ids = list(vectors)
    texts = ["[" + ",".join(f"{float(v):.8f}" for v in vectors[i]) + "]" for i in ids]
    conn.execute(
        "INSERT INTO pgretrieval.embeddings (collection_id, chunk_id, embedder_id, embedding) "
        "SELECT %s, x.id, %s, x.v::vector FROM unnest(%s::bigint[], %s::text[]) AS x(id, v)",
        (collection_id, embedder_id, ids, texts),
    )


def vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{float(v):.8f}" for v in values) + "]"


def rounded(values: np.ndarray) -> np.ndarray:
    """Vectors as Postgres stores them from our 8-decimal literals (float32)."""
    return np.array([[float(f"{v:.8f}") for v in row] for row in values], dtype=np.float32)


def search(
    conn: psycopg.Connection[Any], sql: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def bm25_reference(
    chunk_terms: dict[int, dict[str, int]], query_terms: Iterable[str], k1: float = 1.2, b: float = 0.75
) -> dict[int, float]:
    """Lucene BM25 straight from the definition: chunk id -> score for chunks containing a query term."""
    n = len(chunk_terms)
    lengths = {c: sum(tfs.values()) for c, tfs in chunk_terms.items()}
    avgdl = sum(lengths.values()) / n
    scores: dict[int, float] = {}
    for term in sorted(set(query_terms)):  # a fixed summation order, as in SQL
        df = sum(1 for tfs in chunk_terms.values() if term in tfs)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for c, tfs in chunk_terms.items():
            tf = tfs.get(term, 0)
            if tf:
                scores[c] = scores.get(c, 0.0) + idf * tf / (tf + k1 * (1 - b + b * lengths[c] / avgdl))
    return scores


def chunk_terms(conn: psycopg.Connection[Any], collection_id: int) -> dict[int, dict[str, int]]:
    """Each chunk's lexemes and their frequencies, read from the chunks' tsvectors (not from postings)."""
    out: dict[int, dict[str, int]] = {}
    for chunk_id, tsv in conn.execute(
        "SELECT c.id, coalesce((SELECT jsonb_object_agg(u.lexeme, greatest(coalesce(cardinality(u.positions), 0), 1))"
        " FROM unnest(c.tsv) u), '{}'::jsonb) FROM pgretrieval.chunks c WHERE c.collection_id = %s",
        (collection_id,),
    ).fetchall():
        out[int(chunk_id)] = {str(k): int(v) for k, v in tsv.items()}
    return out


@contextlib.contextmanager
def scratch_database(server_dsn: str, template: str) -> Iterator[psycopg.Connection[Any]]:
    """One database with the schema for a whole test module (pure-function tests need no fresh database each)."""
    name = f"pgr_search_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    conn = connect(psycopg.conninfo.make_conninfo(server_dsn, dbname=name), autocommit=True)
    try:
        yield conn
    finally:
        conn.close()
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
