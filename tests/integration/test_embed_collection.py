"""A second embedder for an existing collection: embed_collection (batched, resumable, cached) and the SQL that
switches the default embedder and drops an embedder's vectors. Real PostgreSQL, a real tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from pgretrieval.embed import Embedder, load_embedder
from pgretrieval.errors import NotFoundError
from pgretrieval.ingest import embed_collection, ingest_documents
from pgretrieval.types import Document

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TINY = SHARED / "models" / "tiny-static-minilm-64"

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(not TINY.is_dir(), reason=f"{TINY} not present (shared models folder absent)"),
]


@pytest.fixture(scope="module")
def tiny() -> Embedder:
    return load_embedder(str(TINY))


@pytest.fixture(scope="module")
def tiny_b() -> Embedder:
    return load_embedder(str(TINY), name="tiny-b")


def _docs(n: int = 7) -> list[Document]:
    return [
        Document(id=f"d{i}", title=f"Title {i}", text=f"Document {i} is about topic {i}: cats, dogs and {i} birds.")
        for i in range(n)
    ]


def _vectors(conn: psycopg.Connection[Any], embedder: str) -> dict[int, np.ndarray]:
    rows = conn.execute(
        "SELECT x.chunk_id, x.embedding FROM pgretrieval.embeddings x JOIN pgretrieval.embedders e "
        "ON e.id = x.embedder_id WHERE e.name = %s",
        (embedder,),
    ).fetchall()
    return {int(c): np.asarray(v.to_numpy()) for c, v in rows}


def _default(conn: psycopg.Connection[Any], collection: str = "docs") -> str:
    row = conn.execute(
        "SELECT e.name FROM pgretrieval.collections c JOIN pgretrieval.embedders e ON e.id = c.default_embedder_id "
        "WHERE c.name = %s",
        (collection,),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _one(conn: psycopg.Connection[Any], statement: str) -> Any:
    row = conn.execute(statement).fetchone()
    assert row is not None
    return row[0]


def _sql_error(conn: psycopg.Connection[Any], statement: str, params: tuple[Any, ...]) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(statement, params)
    return info.value


def test_second_embedder_filled_resumable_and_cached(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder, tiny_b: Embedder
) -> None:
    ingest_documents(dsn, "docs", _docs(), tiny, progress=False)
    n = int(_one(conn, "SELECT count(*) FROM pgretrieval.chunks"))
    report = embed_collection(dsn, "docs", tiny_b, batch_size=2, progress=False)
    assert (report.chunks_written, report.texts_embedded, report.cache_hits) == (n, n, 0)
    assert report.documents_unchanged == 7
    base, second = _vectors(conn, tiny.name), _vectors(conn, "tiny-b")
    assert set(second) == set(base)
    # the same model under another name: the text embedded is exactly what ingest embedded
    for chunk_id, vector in base.items():
        np.testing.assert_allclose(second[chunk_id], vector, atol=1e-6)
    attached = conn.execute(
        "SELECT ce.index_name FROM pgretrieval.collection_embedders ce JOIN pgretrieval.embedders e "
        "ON e.id = ce.embedder_id WHERE e.name = 'tiny-b'"
    ).fetchone()
    assert attached is not None and attached[0] is not None
    assert _default(conn) == tiny.name  # attaching a second embedder never switches the default

    # nothing left: a re-run writes nothing
    again = embed_collection(dsn, "docs", tiny_b, progress=False)
    assert (again.chunks_written, again.texts_embedded) == (0, 0)

    # an interrupted run (some vectors missing): only those are written, from the cache, not the model
    conn.execute(
        "DELETE FROM pgretrieval.embeddings WHERE embedder_id = pgretrieval.embedder_id('tiny-b') "
        "AND chunk_id IN (SELECT id FROM pgretrieval.chunks ORDER BY id LIMIT 3)"
    )
    resumed = embed_collection(dsn, "docs", tiny_b, batch_size=2, progress=False)
    assert (resumed.chunks_written, resumed.texts_embedded, resumed.cache_hits) == (3, 0, 3)
    assert set(_vectors(conn, "tiny-b")) == set(base)


def test_embed_collection_unknown_collection(dsn: str, tiny_b: Embedder) -> None:
    with pytest.raises(NotFoundError, match="unknown collection 'nope'"):
        embed_collection(dsn, "nope", tiny_b, progress=False)


def test_set_default_embedder_needs_every_vector(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder, tiny_b: Embedder
) -> None:
    ingest_documents(dsn, "docs", _docs(), tiny, progress=False)
    sql = "SELECT pgretrieval.set_default_embedder(%s, %s)"
    err = _sql_error(conn, sql, ("docs", "nope"))
    assert err.sqlstate == "PR001"
    conn.execute("SELECT pgretrieval.register_embedder('tiny-b', 'm', 64)")
    err = _sql_error(conn, sql, ("docs", "tiny-b"))
    assert err.sqlstate == "PR002" and "not attached" in str(err)

    embed_collection(dsn, "docs", tiny_b, progress=False)
    conn.execute(
        "DELETE FROM pgretrieval.embeddings WHERE embedder_id = pgretrieval.embedder_id('tiny-b') "
        "AND chunk_id IN (SELECT id FROM pgretrieval.chunks ORDER BY id LIMIT 2)"
    )
    err = _sql_error(conn, sql, ("docs", "tiny-b"))
    assert err.sqlstate == "PR002"
    assert err.diag.message_hint is not None and err.diag.message_hint.startswith("2 chunks lack vectors")
    assert _default(conn) == tiny.name

    embed_collection(dsn, "docs", tiny_b, progress=False)
    conn.execute(sql, ("docs", "tiny-b"))
    assert _default(conn) == "tiny-b"


def test_drop_embedder_vectors(dsn: str, conn: psycopg.Connection[Any], tiny: Embedder, tiny_b: Embedder) -> None:
    ingest_documents(dsn, "docs", _docs(), tiny, progress=False)
    ingest_documents(dsn, "other", _docs(3), tiny_b, progress=False)  # tiny-b elsewhere: must survive the drop
    embed_collection(dsn, "docs", tiny_b, progress=False)
    n = int(
        _one(
            conn,
            "SELECT count(*) FROM pgretrieval.chunks c JOIN pgretrieval.collections k ON k.id = c.collection_id "
            "WHERE k.name = 'docs'",
        )
    )
    index = _one(
        conn,
        "SELECT index_name FROM pgretrieval.collection_embedders "
        "WHERE collection_id = pgretrieval.collection_id('docs') AND embedder_id = pgretrieval.embedder_id('tiny-b')",
    )
    drop = "SELECT pgretrieval.drop_embedder_vectors(%s, %s)"

    err = _sql_error(conn, drop, ("docs", tiny.name))
    assert err.sqlstate == "PR002" and "default embedder" in str(err)
    assert err.diag.message_hint is not None and "set_default_embedder" in err.diag.message_hint

    assert conn.execute(drop, ("docs", "tiny-b")).fetchone() == (n,)
    assert conn.execute("SELECT to_regclass('pgretrieval.' || %s)", (index,)).fetchone() == (None,)
    counts = dict(
        conn.execute(
            "SELECT c.name, count(x.*) FROM pgretrieval.collections c LEFT JOIN pgretrieval.embeddings x "
            "ON x.collection_id = c.id AND x.embedder_id = pgretrieval.embedder_id('tiny-b') GROUP BY 1"
        ).fetchall()
    )
    assert counts == {"docs": 0, "other": 3}
    attached = conn.execute(
        "SELECT count(*) FROM pgretrieval.collection_embedders WHERE collection_id = pgretrieval.collection_id('docs')"
    ).fetchone()
    assert attached == (1,)
    assert len(_vectors(conn, tiny.name)) == n  # the default's vectors are untouched
    assert conn.execute(drop, ("docs", "tiny-b")).fetchone() == (0,)  # idempotent

    # re-embedding after a drop comes from the cache; then the old default can go
    again = embed_collection(dsn, "docs", tiny_b, progress=False)
    assert (again.chunks_written, again.texts_embedded, again.cache_hits) == (n, 0, n)
    conn.execute("SELECT pgretrieval.set_default_embedder('docs', 'tiny-b')")
    assert conn.execute(drop, ("docs", tiny.name)).fetchone() == (n,)
