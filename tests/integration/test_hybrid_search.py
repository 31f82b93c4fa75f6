"""hybrid_search: the branches, fusion, metadata boost, decay, settings resolution and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

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
    scratch_database,
    search,
)

BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach", "pear", "plum"]


@pytest.fixture(scope="module")
def hconn(server_dsn: str, template_database: str) -> Iterator[psycopg.Connection[Any]]:
    """60 documents: text from a small vocabulary, 4-d vectors, a category and a created_at each."""
    with scratch_database(server_dsn, template_database) as conn:
        cid = create_collection(conn, "h")
        docs = [
            Doc(
                f"d{i}",
                f"{WORDS[i % 10]} {WORDS[(i * 3) % 10]} {WORDS[(i * 7) % 10]} fruit",
                title=f"doc {i}",
                metadata={"category": ["faq", "blog", "news"][i % 3], "stars": i % 7},
                created_at=BASE + timedelta(days=i),
            )
            for i in range(60)
        ]
        ids = add_docs(conn, cid, docs)
        eid = add_embedder(conn, "h", "e4", 4)
        add_embeddings(
            conn, cid, eid, {ids[f"d{i}"]: [1.0, (i % 10) / 10, (i % 7) / 7, (i % 3) / 3] for i in range(60)}
        )
        yield conn


def hybrid(conn: psycopg.Connection[Any], **params: Any) -> list[dict[str, Any]]:
    params = {k: Jsonb(v) if isinstance(v, dict) else v for k, v in params.items()}
    call = ", ".join(f"{k} => %({k})s" for k in params)
    return search(conn, f"SELECT * FROM pgretrieval.hybrid_search({call})", params)


def test_fuses_both_branches_with_rrf(hconn: psycopg.Connection[Any]) -> None:
    q, v = "mango plum", "[1, 0.5, 0.2, 0.3]"
    rows = hybrid(hconn, query_text=q, query_embedding=v, match_count=10)
    assert len(rows) == 10
    dense = {r["chunk_id"]: r for r in search(hconn, "SELECT * FROM pgretrieval.dense_search(%s, 100)", (v,))}
    lexical = {r["chunk_id"]: r for r in search(hconn, "SELECT * FROM pgretrieval.lexical_search(%s, 100)", (q,))}
    for r in rows:
        expected = 0.0
        if r["chunk_id"] in dense:
            assert r["dense_rank"] == dense[r["chunk_id"]]["dense_rank"]
            assert r["dense_score"] == pytest.approx(dense[r["chunk_id"]]["dense_score"])
            expected += 0.5 / (60 + r["dense_rank"])
        if r["chunk_id"] in lexical:
            assert r["lexical_rank"] == lexical[r["chunk_id"]]["lexical_rank"]
            assert r["lexical_score"] == pytest.approx(lexical[r["chunk_id"]]["lexical_score"])
            expected += 0.5 / (60 + r["lexical_rank"])
        assert r["score"] == pytest.approx(expected)
        assert r["recency"] is None and r["metadata_rank"] is None
    assert [(-r["score"], r["chunk_id"]) for r in rows] == sorted((-r["score"], r["chunk_id"]) for r in rows)


def test_single_branch_modes(hconn: psycopg.Connection[Any]) -> None:
    lexical_only = hybrid(hconn, query_text="mango", match_count=5)
    assert all(r["dense_rank"] is None and r["lexical_rank"] is not None for r in lexical_only)
    assert [r["chunk_id"] for r in lexical_only] == [
        r[0] for r in hconn.execute("SELECT chunk_id FROM pgretrieval.lexical_search('mango', 5)").fetchall()
    ]
    dense_only = hybrid(hconn, query_text="  ", query_embedding="[1,0,0,0]", match_count=5)
    assert all(r["lexical_rank"] is None and r["dense_rank"] is not None for r in dense_only)
    assert len(dense_only) == 5


@pytest.mark.parametrize("fusion", ["minmax", "zscore"])
def test_score_fusion_methods(hconn: psycopg.Connection[Any], fusion: str) -> None:
    rows = hybrid(hconn, query_text="mango plum", query_embedding="[1,0.5,0.2,0.3]", match_count=8, fusion=fusion)
    assert len(rows) == 8
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)


def test_weights_move_the_ranking(hconn: psycopg.Connection[Any]) -> None:
    q, v = "olive", "[1, 0.1, 0.9, 0.9]"
    lexical_heavy = hybrid(hconn, query_text=q, query_embedding=v, match_count=5, vector_weight=0.0, bm25_weight=1.0)
    lexical = [r[0] for r in hconn.execute("SELECT chunk_id FROM pgretrieval.lexical_search('olive', 5)").fetchall()]
    assert [r["chunk_id"] for r in lexical_heavy] == lexical
    dense_heavy = hybrid(hconn, query_text=q, query_embedding=v, match_count=5, vector_weight=1.0, bm25_weight=0.0)
    dense = [r[0] for r in hconn.execute("SELECT chunk_id FROM pgretrieval.dense_search(%s, 5)", (v,)).fetchall()]
    assert [r["chunk_id"] for r in dense_heavy] == dense


def test_metadata_boost(hconn: psycopg.Connection[Any]) -> None:
    base = hybrid(hconn, query_text="apple", query_embedding="[1,0,0,0]", match_count=10)
    boosted = hybrid(
        hconn,
        query_text="apple",
        query_embedding="[1,0,0,0]",
        match_count=10,
        metadata_boost={"category": "news"},
        metadata_weight=2.0,
    )
    ranked = [r for r in boosted if r["metadata_rank"] is not None]
    assert ranked and all(r["metadata"]["category"] == "news" for r in ranked)
    # candidates scope: only chunks another branch found; newest first
    assert {r["chunk_id"] for r in boosted} <= {
        r["chunk_id"] for r in hybrid(hconn, query_text="apple", query_embedding="[1,0,0,0]", match_count=200)
    }
    news_share = sum(r["metadata"]["category"] == "news" for r in boosted[:5])
    assert news_share >= sum(r["metadata"]["category"] == "news" for r in base[:5])
    by_rank = sorted(ranked, key=lambda r: r["metadata_rank"])
    assert [r["created_at"] for r in by_rank] == sorted((r["created_at"] for r in by_rank), reverse=True)
    # collection scope ordered by a numeric field: the top-starred news documents take part on their own
    rows = hybrid(
        hconn,
        query_text="apple",
        match_count=60,
        metadata_boost={"filter": {"category": "news"}, "order_by": "stars", "scope": "collection"},
        metadata_weight=1.0,
    )
    listed = sorted((r for r in rows if r["metadata_rank"] is not None), key=lambda r: r["metadata_rank"])
    assert len(listed) == 20
    assert [r["metadata"]["stars"] for r in listed] == sorted((r["metadata"]["stars"] for r in listed), reverse=True)


def test_decay_prefers_recent_documents(hconn: psycopg.Connection[Any]) -> None:
    origin = BASE + timedelta(days=60)
    config = {"function": "gauss", "scale": "10 days", "origin": origin.isoformat(), "weight": 1.0}
    rows = hybrid(hconn, query_text="fruit", match_count=5, decay=config)  # "fruit" is in every document
    assert [r["external_id"] for r in rows] == ["d59", "d58", "d57", "d56", "d55"]
    d50 = hybrid(hconn, query_text="fruit", match_count=60, decay=config)
    by_id = {r["external_id"]: r for r in d50}
    assert by_id["d50"]["recency"] == pytest.approx(0.5)
    assert by_id["d50"]["score"] == pytest.approx(0.5 / (60 + by_id["d50"]["lexical_rank"]) * 0.5)
    half = hybrid(hconn, query_text="fruit", match_count=60, decay=config | {"weight": 0.5})
    by_id = {r["external_id"]: r for r in half}
    assert by_id["d50"]["score"] == pytest.approx(0.5 / (60 + by_id["d50"]["lexical_rank"]) * 0.75)


def test_search_settings_supply_defaults(hconn: psycopg.Connection[Any]) -> None:
    hconn.execute(
        "UPDATE pgretrieval.collections SET search_settings = %s",
        (Jsonb({"vector_weight": 0.0, "bm25_weight": 1.0, "candidates": 3}),),
    )
    try:
        rows = hybrid(hconn, query_text="olive", query_embedding="[1,0.1,0.9,0.9]", match_count=3)
        lexical = [
            r[0] for r in hconn.execute("SELECT chunk_id FROM pgretrieval.lexical_search('olive', 3)").fetchall()
        ]
        assert [r["chunk_id"] for r in rows] == lexical
        assert max(r["dense_rank"] or 0 for r in rows) <= 3
        explicit = hybrid(
            hconn,
            query_text="olive",
            query_embedding="[1,0.1,0.9,0.9]",
            match_count=3,
            vector_weight=1.0,
            bm25_weight=0.0,
        )
        dense = [r[0] for r in hconn.execute("SELECT chunk_id FROM pgretrieval.dense_search('[1,0.1,0.9,0.9]', 3)")]
        assert [r["chunk_id"] for r in explicit] == dense
    finally:
        hconn.execute("UPDATE pgretrieval.collections SET search_settings = '{}'")


def test_columns_and_positional_call(hconn: psycopg.Connection[Any]) -> None:
    cur = hconn.execute("SELECT * FROM pgretrieval.hybrid_search('apple', '[1,0,0,0]', 3)")
    assert [d.name for d in cur.description or []] == RESULT_COLUMNS
    assert len(cur.fetchall()) == 3
    assert hconn.execute("SELECT count(*) FROM pgretrieval.hybrid_search('apple', NULL, 0)").fetchone()[0] == 0


@pytest.mark.parametrize(
    "query",
    [
        "'",
        '"unclosed',
        "\\",
        "& | ! : * <->",
        "😀 apple",
        "-apple -",
        "apple" * 2000,
        "x'); DROP TABLE pgretrieval.chunks; --",
    ],
)
def test_hostile_queries(hconn: psycopg.Connection[Any], query: str) -> None:
    rows = hybrid(hconn, query_text=query, query_embedding="[1,0,0,0]", match_count=5)
    assert len(rows) == 5  # the dense branch always fills the list
    assert hconn.execute("SELECT count(*) FROM pgretrieval.chunks").fetchone()[0] == 60


@pytest.mark.parametrize(
    ("params", "sqlstate", "fragment"),
    [
        ({}, "PR002", "nothing to search for"),
        ({"query_text": ""}, "PR002", "nothing to search for"),
        ({"query_text": "apple", "match_count": -1}, "PR002", "invalid match_count"),
        ({"query_text": "apple", "fusion": "borda"}, "PR002", "unknown fusion method"),
        ({"query_text": "apple", "candidates": 0}, "PR002", "invalid candidates"),
        ({"query_text": "apple", "bm25_weight": -0.5}, "PR002", "invalid fusion weight"),
        ({"query_text": "apple", "rrf_k": -1}, "PR002", "invalid rrf_k"),
        ({"query_text": "apple", "decay": {"scale": "1 week", "function": "step"}}, "PR002", "unknown decay function"),
        (
            {"query_text": "apple", "metadata_boost": {"filter": {}, "boost": 2}},
            "PR002",
            "unknown metadata_boost option",
        ),
        (
            {"query_text": "apple", "metadata_boost": {"stars": {"most": 1}}},
            "PR002",
            "unknown metadata filter operator",
        ),
        ({"query_text": "apple", "filter": {"stars": {"gt": None}}}, "PR002", "needs a number or a string"),
        ({"query_embedding": "[1,0,0]"}, "PR002", "has 3 dimensions"),
        ({"query_embedding": "[1,0,0,0]", "embedder": "nope"}, "PR001", "unknown embedder"),
        ({"query_text": "apple", "collection": "nope"}, "PR001", "unknown collection"),
        ({"query_text": "apple", "k1": -1.0}, "PR002", "invalid BM25 parameters"),
        ({"query_embedding": "[1,0,0,0]", "ef_search": 5000}, "PR002", "invalid ef_search"),
    ],
)
def test_bad_input(hconn: psycopg.Connection[Any], params: dict[str, Any], sqlstate: str, fragment: str) -> None:
    with pytest.raises(psycopg.Error) as info:
        hybrid(hconn, **params)
    assert info.value.sqlstate == sqlstate, info.value
    assert fragment in str(info.value)
    assert info.value.diag.message_hint
