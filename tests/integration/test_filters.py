"""The metadata filter language: every operator, combinations, errors, hostile field names and values, and the
same filter giving the same rows on every search branch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from search_helpers import Doc, add_docs, add_embedder, add_embeddings, create_collection, scratch_database, search


@pytest.fixture(scope="module")
def mconn(server_dsn: str, template_database: str) -> Iterator[psycopg.Connection[Any]]:
    with scratch_database(server_dsn, template_database) as connection:
        yield connection


META: dict[str, dict[str, Any]] = {
    "a": {"category": "faq", "year": 2021, "price": 9.5, "tags": ["red", "blue"], "date": "2024-03-01", "flag": True},
    "b": {"category": "blog", "year": 2019, "price": 20, "tags": ["green"], "date": "2023-12-31"},
    "c": {"category": "faq", "year": "2020", "tags": [], "owner": {"name": "x"}, "flag": False},
    "d": {"category": "news", "year": 2024, "price": None},
    "e": {},
}


def matching(conn: psycopg.Connection[Any], flt: dict[str, Any]) -> set[str]:
    return {
        key
        for key, meta in META.items()
        if conn.execute("SELECT pgretrieval.matches_filter(%s, %s)", (Jsonb(meta), Jsonb(flt))).fetchone()[0]
    }


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({}, {"a", "b", "c", "d", "e"}),
        ({"category": "faq"}, {"a", "c"}),
        ({"category": "faq", "year": 2021}, {"a"}),
        ({"tags": ["red"]}, {"a"}),
        ({"tags": ["red", "blue"]}, {"a"}),
        ({"category": {"eq": "blog"}}, {"b"}),
        ({"year": {"eq": 2021.0}}, {"a"}),
        ({"price": {"eq": None}}, {"d"}),
        ({"tags": {"eq": ["green"]}}, {"b"}),
        ({"owner": {"eq": {"name": "x"}}}, {"c"}),
        ({"category": {"ne": "faq"}}, {"b", "d", "e"}),
        ({"tags": {"ne": ["green"]}}, {"a", "c", "d", "e"}),
        ({"year": {"gt": 2020}}, {"a", "d"}),  # the string "2020" never compares with a number
        ({"year": {"gte": 2021}}, {"a", "d"}),
        ({"year": {"lt": 2021}}, {"b"}),
        ({"year": {"lte": 2021}}, {"a", "b"}),
        ({"year": {"gte": 2019, "lt": 2024}}, {"a", "b"}),
        ({"price": {"lt": 10}}, {"a"}),
        ({"date": {"gte": "2024-01-01"}}, {"a"}),
        ({"date": {"lt": "2024-01-01"}}, {"b"}),
        ({"year": {"gt": "2019"}}, {"c"}),
        ({"category": {"in": ["faq", "news"]}}, {"a", "c", "d"}),
        ({"tags": {"in": ["green", "nothing"]}}, {"b"}),
        ({"category": {"in": []}}, set()),
        ({"category": {"nin": ["faq", "news"]}}, {"b", "e"}),
        ({"category": {"in": [f"x{i}" for i in range(150)] + ["blog"]}}, {"b"}),  # the long-list form
        ({"tags": {"in": [f"x{i}" for i in range(150)] + ["blue"]}}, {"a"}),
        ({"price": {"exists": True}}, {"a", "b", "d"}),
        ({"price": {"exists": False}}, {"c", "e"}),
        ({"owner": {"contains": {"name": "x"}}}, {"c"}),
        ({"flag": True}, {"a"}),
        ({"flag": {"ne": True}}, {"b", "c", "d", "e"}),
        ({"and": [{"category": "faq"}, {"flag": {"exists": True}}]}, {"a", "c"}),
        ({"or": [{"category": "news"}, {"year": {"lt": 2020}}]}, {"b", "d"}),
        ({"not": {"category": "faq"}}, {"b", "d", "e"}),
        ({"and": []}, {"a", "b", "c", "d", "e"}),
        ({"or": []}, set()),
        (
            {"or": [{"and": [{"category": "faq"}, {"not": {"year": {"exists": False}}}]}, {"tags": ["green"]}]},
            {"a", "b", "c"},
        ),
    ],
)
def test_every_operator(mconn: psycopg.Connection[Any], flt: dict[str, Any], expected: set[str]) -> None:
    assert matching(mconn, flt) == expected


@pytest.mark.parametrize(
    ("flt", "fragment"),
    [
        ({"year": {"gtt": 5}}, 'unknown metadata filter operator "gtt"'),
        ({"year": {"gt": 5, "between": [1, 2]}}, 'unknown metadata filter operator "between"'),
        ({"owner": {"name": "x"}}, 'unknown metadata filter operator "name"'),
        ({"year": {}}, "empty operator object"),
        ({"year": {"in": 5}}, "needs a JSON array"),
        ({"year": {"gt": True}}, "needs a number or a string"),
        ({"year": {"gt": [1]}}, "needs a number or a string"),
        ({"year": {"exists": "yes"}}, "needs true or false"),
        ({"and": {"a": 1}}, "takes a JSON array"),
        ({"or": [1, 2]}, "expected a JSON object"),
        ({"not": "x"}, "expected a JSON object"),
        ([{"a": 1}], "expected a JSON object"),
        ("faq", "expected a JSON object"),
    ],
)
def test_malformed_filters_raise(mconn: psycopg.Connection[Any], flt: Any, fragment: str) -> None:
    with pytest.raises(psycopg.Error) as info:
        mconn.execute("SELECT * FROM pgretrieval.compile_filter(%s)", (Jsonb(flt),))
    assert info.value.sqlstate == "PR002"
    assert fragment in str(info.value)
    assert info.value.diag.message_hint


def test_deep_nesting_is_refused(conn: psycopg.Connection[Any]) -> None:
    flt: dict[str, Any] = {"a": 1}
    for _ in range(40):
        flt = {"not": flt}
    with pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT * FROM pgretrieval.compile_filter(%s)", (Jsonb(flt),))
    assert info.value.sqlstate == "PR002"


def test_null_and_empty_filters_compile_to_nothing(conn: psycopg.Connection[Any]) -> None:
    for value in (None, Jsonb({}), Jsonb(None)):
        assert conn.execute("SELECT predicate FROM pgretrieval.compile_filter(%s)", (value,)).fetchone()[0] is None


HOSTILE = [
    "x'); DROP TABLE pgretrieval.documents; --",
    'a"b',
    "back\\slash",
    "$1",
    "%s %I %L",
    "😀",
    "or 1=1",
    "'",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_keys_and_values_stay_data(mconn: psycopg.Connection[Any], text: str) -> None:
    conn = mconn
    meta = {text: text, "n": 1}
    flt = {text: {"eq": text}, "and": [{text: {"in": [text, 1]}}, {text: {"gte": text}}, {text: {"exists": True}}]}
    predicate, args = conn.execute("SELECT * FROM pgretrieval.compile_filter(%s)", (Jsonb(flt),)).fetchone()
    assert text not in predicate or text in ("$1", "'")  # "$1" and "'" occur in our own fragments
    assert any(text == a or (isinstance(a, dict) and text in a) for a in args)
    assert conn.execute("SELECT pgretrieval.matches_filter(%s, %s)", (Jsonb(meta), Jsonb(flt))).fetchone()[0]
    assert not conn.execute("SELECT pgretrieval.matches_filter(%s, %s)", (Jsonb({"n": 1}), Jsonb(flt))).fetchone()[0]
    assert conn.execute("SELECT to_regclass('pgretrieval.documents') IS NOT NULL").fetchone()[0]


def test_same_filter_same_rows_on_every_branch(conn: psycopg.Connection[Any]) -> None:
    cid = create_collection(conn)
    docs = [
        Doc(
            key,
            f"shared words about apples number {i}",
            metadata=meta,
            created_at=datetime(2024, 1, 1 + i, tzinfo=timezone.utc),
        )
        for i, (key, meta) in enumerate(META.items())
    ]
    ids = add_docs(conn, cid, docs)
    eid = add_embedder(conn, "docs", "e", 4)
    add_embeddings(conn, cid, eid, {chunk: [1.0, 0.1 * i, 0.2, 0.3] for i, chunk in enumerate(ids.values())})
    cases: list[tuple[dict[str, Any] | None, datetime | None, datetime | None]] = [
        ({"category": "faq"}, None, None),
        ({"year": {"gte": 2020}}, None, None),
        ({"or": [{"tags": ["green"]}, {"price": {"exists": False}}]}, None, None),
        (None, datetime(2024, 1, 2, tzinfo=timezone.utc), None),
        (None, None, datetime(2024, 1, 3, tzinfo=timezone.utc)),
        (
            {"category": {"ne": "news"}},
            datetime(2024, 1, 2, tzinfo=timezone.utc),
            datetime(2024, 1, 5, tzinfo=timezone.utc),
        ),
    ]
    for flt, after, before in cases:
        passing = matching(conn, flt) if flt is not None else set(META)
        expected = {
            d.external_id
            for d in docs
            if d.external_id in passing
            and (after is None or d.created_at >= after)
            and (before is None or d.created_at < before)
        }
        params = {"f": Jsonb(flt) if flt is not None else None, "a": after, "b": before}
        dense = search(
            conn,
            "SELECT * FROM pgretrieval.dense_search('[1,0,0,0]', 100, filter => %(f)s, created_after => %(a)s,"
            " created_before => %(b)s)",
            params,
        )
        exact = search(
            conn,
            "SELECT * FROM pgretrieval.dense_search('[1,0,0,0]', 100, filter => %(f)s, created_after => %(a)s,"
            " created_before => %(b)s, exact => true)",
            params,
        )
        lexical = search(
            conn,
            "SELECT * FROM pgretrieval.lexical_search('apples', 100, filter => %(f)s, created_after => %(a)s,"
            " created_before => %(b)s)",
            params,
        )
        hybrid = search(
            conn,
            "SELECT * FROM pgretrieval.hybrid_search('apples', '[1,0,0,0]', 100, filter => %(f)s,"
            " created_after => %(a)s, created_before => %(b)s)",
            params,
        )
        for rows in (dense, exact, lexical, hybrid):
            assert {r["external_id"] for r in rows} == expected, (flt, after, before)
