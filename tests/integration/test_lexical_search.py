"""lexical_search: BM25 scores equal the formula computed in Python, statistics stay exact through deletes and
concurrent ingests, the query language, hostile input and errors."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from search_helpers import (
    RESULT_COLUMNS,
    Doc,
    add_docs,
    bm25_reference,
    chunk_terms,
    create_collection,
    scratch_database,
    search,
)

from pgretrieval import cjk
from pgretrieval.db import connect

TEXTS = [
    ("Cats and dogs", "The cat sat on the mat. A dog barked at the cat."),
    ("Dog training", "Training a dog takes patience; dogs learn from rewards."),
    ("Birds", "Birds sing in the morning and the cat listens."),
    ("Hot dogs", "A hot dog is a sausage in a bun, not a dog that is hot."),
    ("Weather", "It is hot today and the birds are quiet."),
    ("Mats", "Buy a yoga mat or a door mat at the market."),
    ("Short", "Cat."),
    ("Empty-ish", "!!! ???"),
]


def load(conn: psycopg.Connection[Any], name: str = "docs") -> tuple[int, dict[str, int]]:
    cid = create_collection(conn, name)
    ids = add_docs(conn, cid, [Doc(f"t{i}", body, title=title) for i, (title, body) in enumerate(TEXTS)])
    return cid, ids


@pytest.fixture(scope="module")
def loaded(server_dsn: str, template_database: str) -> Iterator[tuple[psycopg.Connection[Any], int]]:
    """A read-only corpus shared by the tests that only search."""
    with scratch_database(server_dsn, template_database) as connection:
        cid, _ = load(connection)
        yield connection, cid


def query_lexemes(conn: psycopg.Connection[Any], text: str) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT l FROM pgretrieval.parse_query('english', %s) p, unnest(p.lexemes) l WHERE NOT p.negated",
        (text,),
    ).fetchall()
    return [r[0] for r in rows]


def check_against_python(conn: psycopg.Connection[Any], cid: int, query: str, k1: float = 1.2, b: float = 0.75) -> None:
    expected = bm25_reference(chunk_terms(conn, cid), query_lexemes(conn, query), k1, b)
    rows = search(conn, "SELECT * FROM pgretrieval.lexical_search(%s, 1000, k1 => %s, b => %s)", (query, k1, b))
    assert {r["chunk_id"] for r in rows} == set(expected)
    for r in rows:
        assert r["lexical_score"] == pytest.approx(expected[r["chunk_id"]], abs=1e-6)
        assert r["score"] == r["lexical_score"]
    # Equal scores tie-break by chunk id; scores equal up to float summation order count as equal.
    order = sorted(expected, key=lambda c: (-round(expected[c], 9), c))
    assert [r["chunk_id"] for r in rows] == order
    assert [r["lexical_rank"] for r in rows] == list(range(1, len(rows) + 1))


@pytest.mark.parametrize("query", ["cat", "hot dog", "cat dog bird mat", "training patience rewards", "the cat!"])
def test_bm25_equals_python(loaded: tuple[psycopg.Connection[Any], int], query: str) -> None:
    conn, cid = loaded
    check_against_python(conn, cid, query)
    check_against_python(conn, cid, query, k1=2.0, b=0.0)
    check_against_python(conn, cid, query, k1=0.5, b=1.0)


def test_stats_exact_after_deletes_and_updates(conn: psycopg.Connection[Any]) -> None:
    cid, ids = load(conn)
    conn.execute("DELETE FROM pgretrieval.documents WHERE external_id IN ('t0', 't3')")
    check_against_python(conn, cid, "cat hot dog")
    conn.execute(
        "UPDATE pgretrieval.chunks SET content = 'cats cats cats everywhere', tsv = NULL WHERE id = %s", (ids["t5"],)
    )
    check_against_python(conn, cid, "cat hot dog mat")
    conn.execute("SELECT pgretrieval.compact_stats()")
    check_against_python(conn, cid, "cat hot dog mat")


def test_stats_exact_after_concurrent_ingests(dsn: str, conn: psycopg.Connection[Any]) -> None:
    cid, _ = load(conn)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            with connect(dsn) as wconn:
                for batch in range(5):
                    with wconn.transaction():
                        add_docs(
                            wconn,
                            cid,
                            [
                                Doc(f"{tag}-{batch}-{i}", f"{tag} cat number {i} dog {batch}", title=f"{tag} {i}")
                                for i in range(20)
                            ],
                        )
                        barrier.wait(timeout=30)  # both transactions are open and have written: commit together
                    if batch == 2:
                        wconn.execute("DELETE FROM pgretrieval.documents WHERE external_id LIKE %s", (f"{tag}-0-%",))
                        wconn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in ("alpha", "beta")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    n = conn.execute("SELECT count(*) FROM pgretrieval.chunks WHERE collection_id = %s", (cid,)).fetchone()[0]
    assert n == len(TEXTS) + 2 * 4 * 20
    stats_n = conn.execute("SELECT sum(n_chunks) FROM pgretrieval.collection_stats WHERE collection_id = %s", (cid,))
    assert stats_n.fetchone()[0] == n
    check_against_python(conn, cid, "cat dog alpha beta number")


def test_query_language(loaded: tuple[psycopg.Connection[Any], int]) -> None:
    conn, _ = loaded

    def ids(query: str, **kwargs: Any) -> list[str]:
        args = "".join(f", {k} => %({k})s" for k in kwargs)
        rows = search(
            conn, f"SELECT external_id FROM pgretrieval.lexical_search(%(q)s, 100{args})", {"q": query, **kwargs}
        )
        return [r["external_id"] for r in rows]

    assert set(ids("dog")) == {"t0", "t1", "t3"}
    assert set(ids("dog cat")) == {"t0", "t1", "t2", "t3", "t6"}  # OR by default
    assert set(ids("dog cat", require_all_terms=True)) == {"t0"}
    assert set(ids('"hot dog"')) == {"t3"}  # a phrase is required and adjacent
    assert set(ids('"dog that is hot"')) == {"t3"}  # stop words keep their places in the phrase
    assert set(ids('"dog hot"')) == set()
    assert set(ids('"hot birds"')) == set()
    assert set(ids("cat -dog")) == {"t2", "t6"}
    assert set(ids('dog -"hot dog"')) == {"t0", "t1"}
    assert set(ids("dog or bird", require_all_terms=True)) == {"t0", "t1", "t2", "t3", "t4"}
    assert set(ids("cat dog or bird", require_all_terms=True)) == {"t0", "t2"}
    assert set(ids("mat cat or bird")) == {"t0", "t2", "t4", "t5", "t6"}
    assert ids("the and of") == []  # only stop words: nothing to rank by
    assert ids("-cat") == []
    # a required phrase ranks by BM25 of all query terms, and the phrase check does not change scores
    rows = search(conn, "SELECT * FROM pgretrieval.lexical_search('\"hot dog\" sausage', 10)")
    plain = {
        r["chunk_id"]: r["score"]
        for r in search(conn, "SELECT * FROM pgretrieval.lexical_search('hot dog sausage', 10)")
    }
    assert rows and all(r["score"] == pytest.approx(plain[r["chunk_id"]]) for r in rows)


def test_parse_query_rows(loaded: tuple[psycopg.Connection[Any], int]) -> None:
    conn, _ = loaded
    rows = search(conn, "SELECT * FROM pgretrieval.parse_query('english', %s)", ('cats -dog "hot sausages" or birds',))
    assert [(r["grp"], r["negated"], r["phrase"], r["lexemes"]) for r in rows] == [
        (1, False, False, ["cat"]),
        (0, True, False, ["dog"]),
        (2, False, True, ["hot", "sausag"]),
        (2, False, False, ["bird"]),
    ]
    simple = search(conn, "SELECT * FROM pgretrieval.parse_query('simple', 'The Cats')")
    assert [r["lexemes"] for r in simple] == [["the"], ["cats"]]


HOSTILE = [
    "'",
    "''",
    '"',
    '"""',
    "\\",
    "\\'; DROP TABLE pgretrieval.chunks; --",
    "& | ! : * ( ) <-> <2>",
    "cat & dog | !bird",
    "cat:* dog:A",
    '- -- --- -"" "-"',
    "or or OR Or",
    "😀🐈 cat 🐕",
    "猫 と 犬",
    "$1 $$ %s %(x)s {}",
    "cat" * 3000,
    " ".join(["dog"] * 2000),
    "a" + "'\"\\&|!:*" * 1200,
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_are_just_text(loaded: tuple[psycopg.Connection[Any], int], query: str) -> None:
    conn, _ = loaded
    rows = search(conn, "SELECT * FROM pgretrieval.lexical_search(%s, 5)", (query,))
    assert len(rows) <= 5
    assert conn.execute("SELECT count(*) FROM pgretrieval.chunks").fetchone()[0] == len(TEXTS)
    rows = search(conn, "SELECT * FROM pgretrieval.lexical_search(%s, 5, require_all_terms => true)", (query,))
    assert len(rows) <= 5


def test_nul_is_refused_before_sql(loaded: tuple[psycopg.Connection[Any], int]) -> None:
    conn, _ = loaded
    with pytest.raises(psycopg.DataError):
        conn.execute("SELECT * FROM pgretrieval.lexical_search(%s)", ("cat\x00dog",))


def test_filters_and_columns(conn: psycopg.Connection[Any]) -> None:
    cid = create_collection(conn)
    add_docs(conn, cid, [Doc(f"d{i}", "cat food", metadata={"n": i}) for i in range(300)])
    cur = conn.execute("SELECT * FROM pgretrieval.lexical_search('cat', 10, filter => %s)", (Jsonb({"n": 42}),))
    assert [d.name for d in cur.description or []] == RESULT_COLUMNS
    rows = cur.fetchall()
    assert len(rows) == 1 and rows[0][2] == "d42"
    rows = search(conn, "SELECT * FROM pgretrieval.lexical_search('cat', 10, filter => %s)", (Jsonb({"n": {"lt": 3}}),))
    assert [r["external_id"] for r in rows] == ["d0", "d1", "d2"]  # equal scores: chunk id order
    assert conn.execute("SELECT count(*) FROM pgretrieval.lexical_search('cat', 0)").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("sql", "sqlstate", "fragment"),
    [
        ("SELECT * FROM pgretrieval.lexical_search('')", "PR002", "query_text is empty"),
        ("SELECT * FROM pgretrieval.lexical_search(NULL)", "PR002", "query_text is empty"),
        ("SELECT * FROM pgretrieval.lexical_search('   ')", "PR002", "query_text is empty"),
        ("SELECT * FROM pgretrieval.lexical_search('cat', -5)", "PR002", "invalid match_count"),
        ("SELECT * FROM pgretrieval.lexical_search('cat', k1 => -1)", "PR002", "invalid BM25 parameters"),
        ("SELECT * FROM pgretrieval.lexical_search('cat', b => 1.5)", "PR002", "invalid BM25 parameters"),
        ("SELECT * FROM pgretrieval.lexical_search('cat', collection => 'nope')", "PR001", "unknown collection"),
        ("SELECT * FROM pgretrieval.lexical_search('cat', filter => '[1]')", "PR002", "expected a JSON object"),
    ],
)
def test_bad_input(loaded: tuple[psycopg.Connection[Any], int], sql: str, sqlstate: str, fragment: str) -> None:
    conn, _ = loaded
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql)
    assert info.value.sqlstate == sqlstate
    assert fragment in str(info.value)
    assert info.value.diag.message_hint


CJK_TEXTS = [
    ("东京", "东京都是日本的首都，京都是古都。"),
    ("", "我住在东京"),
    ("大阪", "大阪和京都都在关西。京"),
    ("", "北京是中国的首都 Beijing"),
    ("", "东京 都 的人口"),
    ("", "首都"),
]


@pytest.fixture(scope="module")
def cjk_loaded(server_dsn: str, template_database: str) -> Iterator[tuple[psycopg.Connection[Any], int]]:
    with scratch_database(server_dsn, template_database) as connection:
        cid = create_collection(connection, "zh", "cjk")
        add_docs(connection, cid, [Doc(f"z{i}", body, title=title) for i, (title, body) in enumerate(CJK_TEXTS)])
        yield connection, cid


def cjk_reference(terms: dict[int, dict[str, int]], query_terms: list[str], prefixes: list[str]) -> dict[int, float]:
    """bm25_reference, with each prefix lexeme scored as one term: tf summed over the lexemes it starts."""
    merged: dict[int, dict[str, int]] = {}
    for chunk, tfs in terms.items():
        merged[chunk] = dict(tfs)
        for prefix in prefixes:
            tf = sum(n for lexeme, n in tfs.items() if lexeme.startswith(prefix))
            if tf:
                merged[chunk]["\x00" + prefix] = tf
    scores = bm25_reference(terms, query_terms) if query_terms else {}
    # same lengths and N: score the prefix pseudo-terms over the merged table, lengths from the real one
    n = len(terms)
    lengths = {c: sum(tfs.values()) for c, tfs in terms.items()}
    avgdl = sum(lengths.values()) / n
    for prefix in prefixes:
        holders = {c: tfs["\x00" + prefix] for c, tfs in merged.items() if "\x00" + prefix in tfs}
        if not holders:
            continue
        idf = math.log(1 + (n - len(holders) + 0.5) / (len(holders) + 0.5))
        for c, tf in holders.items():
            scores[c] = scores.get(c, 0.0) + idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * lengths[c] / avgdl))
    return scores


@pytest.mark.parametrize("query", ["京", "东京都", "京 首都", "都", "北京 京都 中", "Beijing 京"])
def test_cjk_bm25_with_one_character_queries_equals_python(
    cjk_loaded: tuple[psycopg.Connection[Any], int], query: str
) -> None:
    conn, cid = cjk_loaded
    lexemes = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT l FROM pgretrieval.parse_query('cjk', %s) p, unnest(p.lexemes) l", (query,)
        ).fetchall()
    ]
    prefixes = [lx for lx in lexemes if cjk.is_prefix_lexeme(lx)]
    expected = cjk_reference(chunk_terms(conn, cid), [lx for lx in lexemes if lx not in prefixes], prefixes)
    rows = search(conn, "SELECT * FROM pgretrieval.lexical_search(%s, 100, collection => 'zh')", (query,))
    assert {r["chunk_id"] for r in rows} == set(expected), query
    for r in rows:
        assert r["lexical_score"] == pytest.approx(expected[r["chunk_id"]], abs=1e-9)


def test_cjk_phrases_exclusions_and_required_terms(cjk_loaded: tuple[psycopg.Connection[Any], int]) -> None:
    conn, _ = cjk_loaded

    def hits(query: str, **options: Any) -> set[str]:
        extra = "".join(f", {name} => %({name})s" for name in options)
        rows = conn.execute(
            f"SELECT external_id FROM pgretrieval.lexical_search(%(q)s, 100, collection => 'zh'{extra})",
            {"q": query, **options},
        ).fetchall()
        return {r[0] for r in rows}

    assert hits('"东京都"') == {"z0"}
    assert hits('"京都"') == {"z0", "z2"}
    assert hits('"东京 都"') == {"z0", "z4"}  # 东京都 and 东京 都: the character follows 东京 either way
    assert hits('"京"') == {"z0", "z1", "z2", "z3", "z4"}  # one character: anywhere in a run, also run-final
    assert hits("首都 -京") == {"z5"}
    assert hits('首都 -"东京"') == {"z3", "z5"}
    assert hits("首都 京", require_all_terms=True) == {"z0", "z3"}
    assert hits("首都 东京") == {"z0", "z1", "z3", "z4", "z5"}
    assert hits("。，") == set()
