"""Bring-your-own chunks and vectors (ExternalEmbedder), the deferred HNSW index of bulk loads, and the
statistics compaction every ingest ends with."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest

from pgretrieval.errors import IngestError, ModelError
from pgretrieval.ingest import ingest_documents
from pgretrieval.precomputed import ExternalEmbedder
from pgretrieval.types import Document

DIM = 8


def unit(seed: int, n: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def docs(n: int, start: int = 0) -> list[Document]:
    return [
        Document(
            id=f"b{i}",
            title=f"Title {i}",
            text=f"Part one of {i} mentions apples. Part two of {i} mentions pears.",
            chunks=[f"Part one of {i} mentions apples.", f"Part two of {i} mentions pears."],
            vectors=unit(i, 2),
            metadata={"i": i},
        )
        for i in range(start, start + n)
    ]


def index_state(conn: psycopg.Connection[Any]) -> tuple[str | None, bool]:
    row = conn.execute(
        "SELECT ce.index_name, to_regclass('pgretrieval.' || format('embeddings_hnsw_c%s_e%s', ce.collection_id,"
        " ce.embedder_id)) IS NOT NULL FROM pgretrieval.collection_embedders ce"
    ).fetchone()
    return row[0], row[1]


def test_supplied_chunks_and_vectors_are_stored_as_given(dsn: str, conn: psycopg.Connection[Any]) -> None:
    ext = ExternalEmbedder("my-model-8", DIM)
    report = ingest_documents(dsn, "byo", docs(3), ext, progress=False)
    assert (report.documents_added, report.chunks_written, report.texts_embedded) == (3, 6, 0)
    rows = conn.execute(
        "SELECT c.ordinal, c.content, c.start_offset, e.embedding FROM pgretrieval.chunks c "
        "JOIN pgretrieval.documents d ON d.id = c.document_id JOIN pgretrieval.embeddings e ON e.chunk_id = c.id "
        "WHERE d.external_id = 'b1' ORDER BY c.ordinal"
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (0, "Part one of 1 mentions apples.", 0),
        (1, "Part two of 1 mentions pears.", 31),
    ]
    assert np.allclose(np.vstack([r[3].to_numpy() for r in rows]), unit(1, 2), atol=1e-6)
    assert conn.execute("SELECT count(*) FROM pgretrieval.embedding_cache").fetchone()[0] == 0
    # searchable by both branches, with the caller's query vector
    hit = conn.execute(
        "SELECT external_id, content FROM pgretrieval.dense_search(%s::vector, 1, collection => 'byo')",
        (str(unit(2, 2)[1].tolist()),),
    ).fetchone()
    assert hit == ("b2", "Part two of 2 mentions pears.")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (Document(id="x", text="one", vectors=np.ones((1, DIM + 1))), "vectors"),
        (Document(id="x", text="one", chunks=["a", "b"], vectors=np.ones((1, DIM))), "vectors"),
        (Document(id="x", text="one", vectors=np.full((1, DIM), np.nan)), "vectors"),
        (Document(id="x", text="one", vectors="not numbers"), "vectors"),
        (Document(id="x", text="one", chunks="a string", vectors=np.ones((1, DIM))), "chunks"),
        (Document(id="x", text="one", chunks=["ok", "  "], vectors=np.ones((2, DIM))), "chunks[1]"),
        (Document(id="x", text="one"), "vectors"),  # an external model cannot embed
    ],
)
def test_bad_supplied_chunks_or_vectors_name_the_field(
    dsn: str, conn: psycopg.Connection[Any], doc: Document, field: str
) -> None:
    with pytest.raises(IngestError) as err:
        ingest_documents(dsn, "byo", [doc], ExternalEmbedder("my-model-8", DIM), progress=False)
    assert "'x'" in str(err.value) and field in str(err.value)
    assert conn.execute("SELECT count(*) FROM pgretrieval.documents").fetchone()[0] == 0


def test_external_embedder_refuses_to_embed() -> None:
    ext = ExternalEmbedder("my-model-8", DIM)
    with pytest.raises(ModelError, match="query_embedding"):
        ext.embed_queries(["q"])


def test_defer_index_rebuilds_the_index_once(dsn: str, conn: psycopg.Connection[Any]) -> None:
    ext = ExternalEmbedder("my-model-8", DIM)
    ingest_documents(dsn, "byo", docs(5), ext, progress=False)
    name, exists = index_state(conn)
    assert name and exists
    report = ingest_documents(dsn, "byo", docs(50, start=5), ext, progress=False, defer_index=True, batch_size=7)
    assert report.index_seconds > 0 and any("defer_index" in n for n in report.notes)
    assert index_state(conn) == (name, True)
    valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", (f"pgretrieval.{name}",))
    assert valid.fetchone()[0]
    conn.execute("SET enable_seqscan = off")  # a 55-row table: make the planner show that the index is usable
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            "EXPLAIN SELECT chunk_id FROM pgretrieval.embeddings WHERE collection_id = 1 AND embedder_id = 1 "
            "ORDER BY embedding::vector(8) <=> %s::vector(8) LIMIT 5",
            (str(unit(1)[0].tolist()),),
        ).fetchall()
    )
    assert name in plan


def test_an_index_left_dropped_is_rebuilt_by_the_next_ingest(dsn: str, conn: psycopg.Connection[Any]) -> None:
    ext = ExternalEmbedder("my-model-8", DIM)
    ingest_documents(dsn, "byo", docs(5), ext, progress=False)
    conn.execute("SELECT pgretrieval.drop_vector_index('byo', 'my-model-8')")  # as an interrupted bulk load leaves it
    assert index_state(conn) == (None, False)
    assert conn.execute("SELECT count(*) FROM pgretrieval.missing_vector_indexes()").fetchone()[0] == 1
    # dense search is exact meanwhile, never wrong
    rows = conn.execute(
        "SELECT external_id FROM pgretrieval.dense_search(%s::vector, 1, collection => 'byo')",
        (str(unit(3, 2)[0].tolist()),),
    ).fetchall()
    assert rows == [("b3",)]
    report = ingest_documents(dsn, "byo", docs(2, start=5), ext, progress=False)
    assert any("rebuilt" in n for n in report.notes)
    name, exists = index_state(conn)
    assert name and exists


def test_ingest_ends_with_compacted_statistics(dsn: str, conn: psycopg.Connection[Any]) -> None:
    ext = ExternalEmbedder("my-model-8", DIM)
    ingest_documents(dsn, "byo", docs(30), ext, progress=False, batch_size=4)
    rows = conn.execute(
        "SELECT count(*), count(DISTINCT term) FROM pgretrieval.term_stats WHERE collection_id = 1"
    ).fetchone()
    assert rows[0] == rows[1] > 0
    assert conn.execute("SELECT count(*) FROM pgretrieval.collection_stats").fetchone()[0] == 1
    n = conn.execute("SELECT sum(n_chunks) FROM pgretrieval.collection_stats").fetchone()[0]
    assert n == conn.execute("SELECT count(*) FROM pgretrieval.chunks").fetchone()[0] == 60
