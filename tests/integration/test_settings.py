"""set_search_settings / get_search_settings: validation, normalisation, merge and replace semantics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from search_helpers import create_collection, scratch_database


@pytest.fixture(scope="module")
def sconn(server_dsn: str, template_database: str) -> Iterator[psycopg.Connection[Any]]:
    with scratch_database(server_dsn, template_database) as conn:
        create_collection(conn, "s")
        create_collection(conn, "other")
        yield conn


@pytest.fixture(autouse=True)
def _reset(sconn: psycopg.Connection[Any]) -> Iterator[None]:
    sconn.execute("UPDATE pgretrieval.collections SET search_settings = '{}'")
    yield


def put(conn: psycopg.Connection[Any], settings: Any, merge: bool | None = True, collection: str = "s") -> Any:
    row = conn.execute(
        "SELECT pgretrieval.set_search_settings(%s, %s, merge => %s)", (collection, Jsonb(settings), merge)
    ).fetchone()
    assert row is not None
    return row[0]


def stored(conn: psycopg.Connection[Any], collection: str = "s") -> Any:
    row = conn.execute("SELECT search_settings FROM pgretrieval.collections WHERE name = %s", (collection,)).fetchone()
    assert row is not None
    return row[0]


def test_stores_normalised_values_and_returns_them(sconn: psycopg.Connection[Any]) -> None:
    given = {"fusion": "MinMax", "vector_weight": 0.7, "bm25_weight": 0.3, "rrf_k": 20.0, "candidates": 200}
    given |= {"ef_search": 80, "k1": 0.9, "b": 1, "require_all_terms": False, "exact_threshold": 0}
    result = put(sconn, given)
    assert result == stored(sconn)
    assert result["fusion"] == "minmax"
    assert result["rrf_k"] == 20 and isinstance(result["rrf_k"], int)  # 20.0 would not cast back to integer
    assert result["b"] == 1.0 and result["k1"] == 0.9
    assert stored(sconn, "other") == {}
    # _setting() reads them back in the search functions' own types
    row = sconn.execute(
        "SELECT pgretrieval._setting(c.search_settings, 'rrf_k', NULL::integer, 60),"
        " pgretrieval._setting(c.search_settings, 'b', NULL::double precision, 0.75::double precision),"
        " pgretrieval._setting(c.search_settings, 'fusion', NULL::text, 'rrf'::text)"
        " FROM pgretrieval.collections c WHERE c.name = 's'"
    ).fetchone()
    assert row == (20, 1.0, "minmax")


def test_merge_adds_replaces_and_null_removes(sconn: psycopg.Connection[Any]) -> None:
    put(sconn, {"fusion": "zscore", "ef_search": 80})
    assert put(sconn, {"ef_search": 120, "k1": 1.5}) == {"fusion": "zscore", "ef_search": 120, "k1": 1.5}
    assert put(sconn, {"ef_search": None}) == {"fusion": "zscore", "k1": 1.5}
    assert put(sconn, {"candidates": 50, "k1": None}, merge=False) == {"candidates": 50}
    assert put(sconn, {}, merge=False) == {}


def test_get_search_settings(sconn: psycopg.Connection[Any]) -> None:
    put(sconn, {"vector_weight": 0.8, "bm25_weight": 0.2, "decay": {"scale": "30 days"}})
    get = "SELECT pgretrieval.get_search_settings(%s, with_defaults => %s)"
    row = sconn.execute(get, ("s", False)).fetchone()
    assert row is not None and row[0] == {"vector_weight": 0.8, "bm25_weight": 0.2, "decay": {"scale": "30 days"}}
    row = sconn.execute(get, ("s", True)).fetchone()
    assert row is not None
    full = row[0]
    assert full["vector_weight"] == 0.8 and full["fusion"] == "rrf" and full["rrf_k"] == 60
    assert full["candidates"] == 100 and full["ef_search"] == 100 and full["k1"] == 1.2 and full["b"] == 0.75


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fusion": "weighted"}, "fusion"),
        ({"fusion": 1}, "fusion"),
        ({"vector_weight": -0.1}, "out of range"),
        ({"vector_weight": "0.5"}, "expected a JSON number"),
        ({"bm25_weight": True}, "expected a JSON number"),
        ({"rrf_k": 2.5}, "expected an integer"),
        ({"rrf_k": -1}, "out of range"),
        ({"candidates": 0}, "out of range"),
        ({"candidates": 10001}, "out of range"),
        ({"ef_search": 1001}, "out of range"),
        ({"ef_search": 10**30}, "out of range"),
        ({"k1": 101}, "out of range"),
        ({"b": 1.5}, "out of range"),
        ({"b": None, "k2": 1}, "unknown search setting"),
        ({"require_all_terms": "yes"}, "require_all_terms"),
        ({"exact_threshold": -5}, "out of range"),
        ({"max_scan_tuples": 0}, "out of range"),
        ({"decay": {"scale": "soon"}}, "decay"),
        ({"match_count": 10}, "unknown search setting"),
        ({"filter": {"a": 1}}, "unknown search setting"),
        ({"vector_weight": 0, "bm25_weight": 0}, "both be 0"),
    ],
)
def test_bad_values_raise_pr002_with_hint(sconn: psycopg.Connection[Any], settings: Any, message: str) -> None:
    put(sconn, {"ef_search": 64})
    with pytest.raises(psycopg.Error) as info:
        put(sconn, settings)
    assert info.value.sqlstate == "PR002"
    assert message in str(info.value)
    assert info.value.diag.message_hint
    assert stored(sconn) == {"ef_search": 64}  # nothing half-written


def test_bad_arguments(sconn: psycopg.Connection[Any]) -> None:
    for settings in ([1, 2], "rrf", None):
        with pytest.raises(psycopg.Error) as info:
            put(sconn, settings)
        assert info.value.sqlstate == "PR002" and "JSON object" in str(info.value)
    with pytest.raises(psycopg.Error) as info:
        put(sconn, {"k1": 1.0}, merge=None)
    assert info.value.sqlstate == "PR002"
    with pytest.raises(psycopg.Error) as info:
        put(sconn, {"k1": 1.0}, collection="nope")
    assert info.value.sqlstate == "PR001"
    with pytest.raises(psycopg.Error) as info:
        sconn.execute("SELECT pgretrieval.get_search_settings('nope')")
    assert info.value.sqlstate == "PR001"


def test_one_zero_weight_is_fine_and_unknown_key_hint_lists_keys(sconn: psycopg.Connection[Any]) -> None:
    assert put(sconn, {"vector_weight": 0, "bm25_weight": 1}) == {"vector_weight": 0.0, "bm25_weight": 1.0}
    with pytest.raises(psycopg.Error) as info:
        put(sconn, {"weights": [1, 2]})
    hint = info.value.diag.message_hint or ""
    assert "vector_weight" in hint and "ef_search" in hint and "per query" in hint
