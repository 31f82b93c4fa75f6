"""MaxScore pruning (074_lexical_maxscore.sql) returns exactly the exhaustive BM25 ranking, reads fewer
posting lists when common terms cannot change the top k, and keeps every option (filters, dates, phrases,
exclusions, require_all_terms) exact."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from search_helpers import Doc, add_docs, create_collection, scratch_database, search

WORDS = [f"w{i:03d}" for i in range(400)]


def zipf_doc(rng: random.Random, i: int) -> Doc:
    n = rng.randint(3, 60)
    # rank r drawn with probability ~ 1/r: a few words are in most documents, most words in a few
    words = [WORDS[min(len(WORDS) - 1, int(rng.paretovariate(1.0)) - 1)] for _ in range(n)]
    return Doc(
        f"d{i}",
        " ".join(words),
        title=rng.choice(["", "w000 w001", WORDS[rng.randrange(len(WORDS))]]),
        metadata={"g": i % 7, "tag": rng.choice(["a", "b", "c"])},
        created_at=datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(days=i),
    )


@pytest.fixture(scope="module")
def corpus(server_dsn: str, template_database: str) -> Iterator[psycopg.Connection[Any]]:
    rng = random.Random(11)
    with scratch_database(server_dsn, template_database) as conn:
        cid = create_collection(conn, "zipf")
        for start in range(0, 600, 100):  # several statements: several statistics delta rows
            add_docs(conn, cid, [zipf_doc(rng, i) for i in range(start, start + 100)])
        conn.execute("SELECT pgretrieval.create_collection('exhaustive')")
        conn.commit()
        yield conn


def ranked(conn: psycopg.Connection[Any], query: str, k: int, pruning: bool, **kwargs: Any) -> list[tuple[int, float]]:
    conn.execute(
        "UPDATE pgretrieval.collections SET search_settings = jsonb_build_object('lexical_pruning', %s::boolean) "
        "WHERE name = 'zipf'",
        (pruning,),
    )
    args = "".join(f", {key} => %({key})s" for key in kwargs)
    rows = search(
        conn,
        f"SELECT chunk_id, lexical_score FROM pgretrieval.lexical_search(%(q)s, %(k)s, collection => 'zipf'{args})",
        {"q": query, "k": k, **{key: Jsonb(v) if isinstance(v, dict) else v for key, v in kwargs.items()}},
    )
    return [(r["chunk_id"], r["lexical_score"]) for r in rows]


def assert_same(pruned: list[tuple[int, float]], full: list[tuple[int, float]]) -> None:
    assert [c for c, _ in pruned] == [c for c, _ in full]
    for (_, a), (_, b) in zip(pruned, full, strict=True):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12)


def random_query(rng: random.Random) -> str:
    n = rng.randint(1, 6)
    return " ".join(WORDS[min(len(WORDS) - 1, int(rng.paretovariate(0.7)) - 1)] for _ in range(n))


def test_pruned_equals_exhaustive_on_random_queries(corpus: psycopg.Connection[Any]) -> None:
    rng = random.Random(5)
    for _ in range(120):
        query, k = random_query(rng), rng.choice([1, 3, 10, 40])
        assert_same(ranked(corpus, query, k, True), ranked(corpus, query, k, False))


@pytest.mark.parametrize(
    "options",
    [
        {"filter": {"g": 3}},
        {"filter": {"tag": {"in": ["a", "c"]}}, "created_after": datetime(2020, 6, 1, tzinfo=timezone.utc)},
        {"require_all_terms": True},
        {"k1": 2.0, "b": 0.2},
    ],
)
def test_pruned_equals_exhaustive_with_options(corpus: psycopg.Connection[Any], options: dict[str, Any]) -> None:
    rng = random.Random(9)
    for _ in range(40):
        query, k = random_query(rng), rng.choice([1, 5, 20])
        assert_same(ranked(corpus, query, k, True, **options), ranked(corpus, query, k, False, **options))


@pytest.mark.parametrize("query", ['"w000 w001" w007', "w002 w010 -w000", '"w003 w004" "w001 w000"', "w000"])
def test_pruned_equals_exhaustive_with_phrases_and_exclusions(corpus: psycopg.Connection[Any], query: str) -> None:
    for k in (1, 10, 100):
        assert_same(ranked(corpus, query, k, True), ranked(corpus, query, k, False))


def test_common_terms_are_not_read_when_they_cannot_matter(corpus: psycopg.Connection[Any]) -> None:
    cid = corpus.execute("SELECT id FROM pgretrieval.collections WHERE name = 'zipf'").fetchone()[0]
    n, total = corpus.execute(
        "SELECT sum(n_chunks), sum(total_len) FROM pgretrieval.collection_stats WHERE collection_id = %s", (cid,)
    ).fetchone()
    rare = corpus.execute(
        "SELECT term FROM pgretrieval.term_stats WHERE collection_id = %s GROUP BY term HAVING sum(df) BETWEEN 3 AND 9"
        " ORDER BY term LIMIT 1",
        (cid,),
    ).fetchone()[0]
    terms = ["w000", "w001", rare]  # two terms in most documents and one rare one
    dfs = [
        corpus.execute(
            "SELECT sum(df) FROM pgretrieval.term_stats WHERE collection_id = %s AND term = %s", (cid, t)
        ).fetchone()[0]
        for t in terms
    ]
    assert dfs[0] > 300 and dfs[2] < 10
    idfs = [math.log(1 + (float(n) - float(df) + 0.5) / (float(df) + 0.5)) for df in dfs]
    row = corpus.execute(
        "SELECT terms_read, cardinality(ids) FROM pgretrieval._lexical_maxscore("
        "%s, %s, %s, 3, 1.2, 0.75, %s, 1, '', '', NULL, NULL, NULL, NULL)",
        (cid, terms, idfs, float(total) / float(n)),
    ).fetchone()
    assert row[1] == 3
    assert row[0] < len(terms), "MaxScore should stop before reading the common terms' lists"
