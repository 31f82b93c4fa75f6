"""dense_search: exact and HNSW results against numpy, filters that never lose rows, distances, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb
from search_helpers import (
    RESULT_COLUMNS,
    Doc,
    add_docs,
    add_embedder,
    add_embeddings,
    create_collection,
    rounded,
    scratch_database,
    search,
    vector_literal,
)

N = 2000
DIMS = 8


@pytest.fixture(scope="module")
def corpus(server_dsn: str, template_database: str) -> Iterator[tuple[psycopg.Connection[Any], np.ndarray, list[int]]]:
    """2,000 chunks with random 8-d vectors; metadata bucket = i % 100 (each bucket is 1% of the corpus)."""
    rng = np.random.default_rng(7)
    vectors = rounded(rng.normal(size=(N, DIMS)))
    with scratch_database(server_dsn, template_database) as conn:
        cid = create_collection(conn, "vecs")
        ids = add_docs(
            conn,
            cid,
            [Doc(f"d{i}", f"text {i}", metadata={"bucket": i % 100, "group": i % 4}) for i in range(N)],
        )
        chunk_ids = [ids[f"d{i}"] for i in range(N)]
        eid = add_embedder(conn, "vecs", "e8", DIMS)
        add_embeddings(conn, cid, eid, dict(zip(chunk_ids, vectors, strict=True)))
        conn.execute("ANALYZE pgretrieval.embeddings")
        yield conn, vectors, chunk_ids


def cosine_top(vectors: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[int]:
    sims = (vectors @ query) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    if mask is not None:
        sims = np.where(mask, sims, -np.inf)
    order = np.argsort(-sims, kind="stable")[:k]
    return [int(i) for i in order if np.isfinite(sims[i])]


def test_exact_matches_numpy(corpus: tuple[psycopg.Connection[Any], np.ndarray, list[int]]) -> None:
    conn, vectors, chunk_ids = corpus
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = rng.normal(size=DIMS)
        rows = search(conn, "SELECT * FROM pgretrieval.dense_search(%s, 10, exact => true)", (vector_literal(q),))
        assert [r["chunk_id"] for r in rows] == [chunk_ids[i] for i in cosine_top(vectors, q, 10)]
        assert [r["dense_rank"] for r in rows] == list(range(1, 11))
        sims = [r["dense_score"] for r in rows]
        assert sims == sorted(sims, reverse=True)
        assert all(r["score"] == r["dense_score"] for r in rows)
        assert all(r["lexical_rank"] is None and r["recency"] is None for r in rows)


def test_hnsw_recall_and_index_use(corpus: tuple[psycopg.Connection[Any], np.ndarray, list[int]]) -> None:
    conn, vectors, chunk_ids = corpus
    index = conn.execute("SELECT index_name FROM pgretrieval.collection_embedders").fetchone()[0]

    def index_scans() -> int:
        conn.execute("SELECT pg_stat_force_next_flush()")
        return int(
            conn.execute("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", (index,)).fetchone()[0]
        )

    before = index_scans()
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(20):
        q = rng.normal(size=DIMS)
        rows = search(conn, "SELECT chunk_id FROM pgretrieval.dense_search(%s, 10)", (vector_literal(q),))
        assert len(rows) == 10
        hits += len({r["chunk_id"] for r in rows} & {chunk_ids[i] for i in cosine_top(vectors, q, 10)})
    assert hits / 200 >= 0.95
    assert index_scans() >= before + 20  # the HNSW index answered, not a sequential scan


def test_settings_are_scoped_to_the_call(corpus: tuple[psycopg.Connection[Any], np.ndarray, list[int]]) -> None:
    conn, _, _ = corpus
    with conn.transaction():
        before = conn.execute("SELECT current_setting('hnsw.ef_search', true)").fetchone()[0]
        conn.execute("SELECT * FROM pgretrieval.dense_search('[1,2,3,4,5,6,7,8]', 5, ef_search => 321)")
        after = conn.execute("SELECT current_setting('hnsw.ef_search', true)").fetchone()[0]
    assert after == before


@pytest.mark.parametrize(
    "settings",
    [
        {},  # automatic: the selective filter goes to the exact scan
        {"exact_threshold": 0},  # forced onto the index: the iterative scan finds the rows
        {"exact_threshold": 0, "max_scan_tuples": 30},  # the index gives up early: the exact fallback answers
    ],
)
def test_one_percent_filter_returns_match_count_rows(
    corpus: tuple[psycopg.Connection[Any], np.ndarray, list[int]], settings: dict[str, Any]
) -> None:
    conn, vectors, chunk_ids = corpus
    conn.execute("UPDATE pgretrieval.collections SET search_settings = %s", (Jsonb(settings),))
    try:
        rng = np.random.default_rng(3)
        mask = np.array([i % 100 == 7 for i in range(N)])
        assert mask.sum() == N // 100
        for _ in range(5):
            q = rng.normal(size=DIMS)
            rows = search(
                conn,
                "SELECT * FROM pgretrieval.dense_search(%s, 10, filter => %s)",
                (vector_literal(q), Jsonb({"bucket": 7})),
            )
            assert len(rows) == 10
            assert all(r["metadata"]["bucket"] == 7 for r in rows)
            expected = [chunk_ids[i] for i in cosine_top(vectors, q, 10, mask)]
            assert len({r["chunk_id"] for r in rows} & set(expected)) >= 9
        # more rows asked for than pass the filter: all of them, no more
        rows = search(
            conn,
            "SELECT * FROM pgretrieval.dense_search(%s, 50, filter => %s)",
            ("[1,0,0,0,0,0,0,0]", Jsonb({"bucket": 7})),
        )
        assert len(rows) == 20
    finally:
        conn.execute("UPDATE pgretrieval.collections SET search_settings = '{}'")


def test_index_only_mode_can_be_underfull(corpus: tuple[psycopg.Connection[Any], np.ndarray, list[int]]) -> None:
    conn, _, _ = corpus
    conn.execute("UPDATE pgretrieval.collections SET search_settings = %s", (Jsonb({"max_scan_tuples": 30}),))
    try:
        rows = search(
            conn,
            "SELECT * FROM pgretrieval.dense_search('[1,0,0,0,0,0,0,0]', 10, filter => %s, exact => false)",
            (Jsonb({"bucket": 7}),),
        )
        assert len(rows) <= 10  # exact => false is the raw index answer (for measurements)
        rows = search(
            conn,
            "SELECT * FROM pgretrieval.dense_search('[1,0,0,0,0,0,0,0]', 10, filter => %s)",
            (Jsonb({"bucket": 7}),),
        )
        assert len(rows) == 10
    finally:
        conn.execute("UPDATE pgretrieval.collections SET search_settings = '{}'")


def test_result_columns_are_the_contract(corpus: tuple[psycopg.Connection[Any], np.ndarray, list[int]]) -> None:
    conn, _, _ = corpus
    cur = conn.execute("SELECT * FROM pgretrieval.dense_search('[1,0,0,0,0,0,0,0]', 3)")
    assert [d.name for d in cur.description or []] == RESULT_COLUMNS
    assert conn.execute("SELECT count(*) FROM pgretrieval.dense_search('[1,0,0,0,0,0,0,0]', 0)").fetchone()[0] == 0


@pytest.mark.parametrize("distance", ["ip", "l2"])
def test_inner_product_and_l2(conn: psycopg.Connection[Any], distance: str) -> None:
    cid = create_collection(conn, "d")
    rng = np.random.default_rng(4)
    vectors = rounded(rng.normal(size=(200, 4)))
    ids = add_docs(conn, cid, [Doc(f"d{i}", "x") for i in range(200)])
    eid = add_embedder(conn, "d", f"e-{distance}", 4, distance)
    chunk_ids = [ids[f"d{i}"] for i in range(200)]
    add_embeddings(conn, cid, eid, dict(zip(chunk_ids, vectors, strict=True)))
    q = rounded(rng.normal(size=(1, 4)))[0]
    sims = vectors @ q if distance == "ip" else -np.linalg.norm(vectors - q, axis=1)
    expected = [chunk_ids[i] for i in np.argsort(-sims)[:10]]
    for exact in (True, None):
        rows = search(conn, "SELECT * FROM pgretrieval.dense_search(%s, 10, exact => %s)", (vector_literal(q), exact))
        assert [r["chunk_id"] for r in rows] == expected
        assert rows[0]["dense_score"] == pytest.approx(float(sims.max()), abs=1e-5)


def test_large_dimension_uses_halfvec_index(conn: psycopg.Connection[Any]) -> None:
    cid = create_collection(conn, "big")
    rng = np.random.default_rng(5)
    vectors = rounded(rng.normal(size=(30, 2100)))
    ids = add_docs(conn, cid, [Doc(f"d{i}", "x") for i in range(30)])
    eid = add_embedder(conn, "big", "e2100", 2100)
    chunk_ids = [ids[f"d{i}"] for i in range(30)]
    add_embeddings(conn, cid, eid, dict(zip(chunk_ids, vectors, strict=True)))
    rows = search(conn, "SELECT * FROM pgretrieval.dense_search(%s, 3)", (vector_literal(vectors[4]),))
    assert rows[0]["chunk_id"] == chunk_ids[4]
    assert rows[0]["dense_score"] == pytest.approx(1.0, abs=1e-3)


def test_bad_input(conn: psycopg.Connection[Any]) -> None:
    def expect(sql: str, sqlstate: str, fragment: str) -> None:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(sql)
        assert info.value.sqlstate == sqlstate, info.value
        assert fragment in str(info.value)
        assert info.value.diag.message_hint

    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]')", "PR001", "there is no collection")
    cid = create_collection(conn, "one")
    add_docs(conn, cid, [Doc("a", "x")])
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]')", "PR001", 'collection "one" has no embedder')
    add_embedder(conn, "one", "e3", 3)
    conn.execute("SELECT pgretrieval.register_embedder('other', 'm', 3)")
    expect("SELECT * FROM pgretrieval.dense_search('[1,2]')", "PR002", "has 2 dimensions")
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]', -1)", "PR002", "invalid match_count")
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]', ef_search => 0)", "PR002", "invalid ef_search")
    expect("SELECT * FROM pgretrieval.dense_search(NULL)", "PR002", "query_embedding is NULL")
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]', collection => 'nope')", "PR001", "unknown collection")
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]', embedder => 'nope')", "PR001", "unknown embedder")
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]', embedder => 'other')", "PR001", "is not attached")
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]', filter => '{\"a\": {\"bad\": 1}}')", "PR002", "operator")
    conn.execute('UPDATE pgretrieval.collections SET search_settings = \'{"ef_search": "many"}\'')
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]')", "PR002", 'search setting "ef_search"')
    conn.execute("UPDATE pgretrieval.collections SET search_settings = '{\"ef_search\": 5}'")
    assert len(conn.execute("SELECT * FROM pgretrieval.dense_search('[1,2,3]')").fetchall()) == 0  # no vectors yet
    create_collection(conn, "two")
    expect("SELECT * FROM pgretrieval.dense_search('[1,2,3]')", "PR002", "2 collections exist")
