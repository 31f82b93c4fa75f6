"""The cjk, cjk_simple, cjk_bigram, cjk_unigrams and auto text configurations in SQL (sql/functions/020_text.sql):
lexemes and positions of documents and queries, normalisation, bad input, Postgres' tsvector limits, BM25
postings/statistics of a cjk collection, and one-character and phrase queries through lexical_search."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgretrieval import cjk
from pgretrieval.install import install


def tsv(conn: psycopg.Connection[Any], config: str, text: str | None) -> dict[str, tuple[int, ...]]:
    rows = conn.execute(
        "SELECT u.lexeme, u.positions FROM unnest(pgretrieval.text_to_tsvector(%s, %s)) u", (config, text)
    ).fetchall()
    return {lexeme: tuple(positions) for lexeme, positions in rows}


def qtsv(conn: psycopg.Connection[Any], config: str, text: str | None) -> dict[str, tuple[int, ...]]:
    rows = conn.execute(
        "SELECT u.lexeme, u.positions FROM unnest(pgretrieval.query_to_tsvector(%s, %s)) u", (config, text)
    ).fetchall()
    return {lexeme: tuple(positions) for lexeme, positions in rows}


def test_bigrams_last_character_and_positions(conn: psycopg.Connection[Any]) -> None:
    assert tsv(conn, "cjk", "东京都") == {"东京": (1,), "京都": (2,), "都": (3,)}
    assert qtsv(conn, "cjk", "东京都") == {"东京": (1,), "京都": (2,)}
    assert tsv(conn, "cjk_unigrams", "东京都") == {"东": (1,), "东京": (1,), "京": (2,), "京都": (2,), "都": (3,)}
    assert qtsv(conn, "cjk_unigrams", "东京都") == tsv(conn, "cjk_unigrams", "东京都")
    assert tsv(conn, "cjk_bigram", "东京都") == qtsv(conn, "cjk_bigram", "东京都") == {"东京": (1,), "京都": (2,)}
    for config in ("cjk", "cjk_simple", "cjk_bigram", "cjk_unigrams", "auto"):
        assert tsv(conn, config, "京") == qtsv(conn, config, "京") == {"京": (1,)}, config
    # a run takes one position per character (cjk_bigram: per bigram), a word one
    assert tsv(conn, "cjk", "东京 京都 京") == {"东京": (1,), "京": (2, 5), "京都": (3,), "都": (4,)}
    assert qtsv(conn, "cjk", "东京 京都 京") == {"东京": (1,), "京都": (3,), "京": (5,)}
    assert tsv(conn, "cjk_bigram", "东京 京都 京") == {"东京": (1,), "京都": (2,), "京": (3,)}
    mixed = tsv(conn, "cjk", "The iPhone 15 Pro是苹果的手机")
    assert mixed["iphon"] == (2,) and mixed["15"] == (3,) and mixed["pro"] == (4,) and mixed["苹果"] == (6,)
    assert mixed["机"] == (10,) and "苹" not in mixed
    assert "the" not in mixed  # English stop word, still counted in positions
    assert tsv(conn, "cjk_simple", "The Cats") == {"the": (1,), "cats": (2,)}
    assert qtsv(conn, "english", "The running cats") == tsv(conn, "english", "The running cats")
    assert tsv(conn, "auto", "东京都 running") == {"东京": (1,), "京都": (2,), "都": (3,), "run": (4,)}
    assert qtsv(conn, "auto", "东京都 running") == {"东京": (1,), "京都": (2,), "run": (4,)}


def test_single_character_query_matches_a_character_inside_a_run(conn: psycopg.Connection[Any]) -> None:
    def matches(config: str, document: str, query: str) -> bool:
        return bool(
            conn.execute(
                "SELECT pgretrieval.text_to_tsvector(%s, %s) @@ pgretrieval._tsquery_combine("
                "  ARRAY(SELECT tsq FROM pgretrieval.parse_query(%s, %s)), true)",
                (config, document, config, query),
            ).fetchone()[0]
        )

    for config in ("cjk", "cjk_simple", "cjk_unigrams", "auto"):
        for document in ("我住在东京都", "我住在东京", "东京", "京", "京 都"):
            assert matches(config, document, "京"), (config, document)
        assert not matches(config, "我住在大阪", "京"), config
    assert matches("cjk_bigram", "京 都", "京") and not matches("cjk_bigram", "我住在东京都", "京")  # Lucene
    assert conn.execute("SELECT array_agg(tsq::text) FROM pgretrieval.parse_query('cjk', '京 东京')").fetchone()[0] == [
        "'京':*",
        "'东京'",
    ]
    assert conn.execute("SELECT pgretrieval._is_prefix_lexeme('cjk', '京')").fetchone()[0]
    not_prefixes = (("cjk", "东京"), ("cjk", "a"), ("cjk_bigram", "京"), ("cjk_unigrams", "京"), ("english", "京"))
    for config, lexeme in not_prefixes:
        assert not conn.execute("SELECT pgretrieval._is_prefix_lexeme(%s, %s)", (config, lexeme)).fetchone()[0]


def test_nfkc_case_scripts_and_traditional_chinese(conn: psycopg.Connection[Any]) -> None:
    assert tsv(conn, "cjk", "ＡＢＣ１２３") == {"abc123": (1,)}
    assert tsv(conn, "cjk", "ｶﾀｶﾅ") == tsv(conn, "cjk", "カタカナ")
    assert tsv(conn, "cjk_simple", "ÉCOLE Straße ΑΣ") == {"école": (1,), "straße": (2,), "ασ": (3,)}
    assert {"한국", "국어"} <= set(tsv(conn, "cjk", "한국어를 배웁니다"))
    # no Traditional/Simplified conversion: 中國 and 中国 share only 中, so only the query 中 finds both
    assert set(tsv(conn, "cjk_unigrams", "中國")) & set(tsv(conn, "cjk_unigrams", "中国")) == {"中"}
    assert not set(tsv(conn, "cjk", "中國")) & set(tsv(conn, "cjk", "中国"))
    for document in ("中國", "中国"):
        assert conn.execute(
            "SELECT pgretrieval.text_to_tsvector('cjk', %s) @@ tsq FROM pgretrieval.parse_query('cjk', '中')",
            (document,),
        ).fetchone()[0]


EMPTY_TEXTS: list[str | None] = [
    "",
    "   ",
    "。！？；…",
    "!!! ??? ...",
    "the of and",
    "😀🎉👍🏽\u200d🔥",
    "\x01\x02\x7f",
    "\u200d\ufe0f\ufeff",
    None,
]


def test_nothing_to_index_gives_an_empty_vector(conn: psycopg.Connection[Any]) -> None:
    for config in ("cjk", "cjk_simple", "cjk_bigram", "cjk_unigrams", "auto"):
        for text in EMPTY_TEXTS:
            expected = {"the": (1,), "of": (2,), "and": (3,)} if config == "cjk_simple" and text == "the of and" else {}
            assert tsv(conn, config, text) == expected, (config, text)
            assert qtsv(conn, config, text) == expected, (config, text)


def test_odd_code_points_never_crash(conn: psycopg.Connection[Any]) -> None:
    text = "a\u0378b \ue000 \U0010fffd \U000e0001 \u0301x 日\u0300本 ㈱ ①② \ufdfa 𠀀𠀁 \U0003134a \ufffd"
    for config in ("cjk", "cjk_simple", "cjk_bigram", "cjk_unigrams", "auto"):
        vector = tsv(conn, config, text)
        assert "𠀀𠀁" in vector and "日" in vector and "株" in vector and "12" in vector, config
        assert {"𠀀𠀁", "日", "株", "12"} <= set(qtsv(conn, config, text)), config


def test_long_runs_and_words_respect_postgres_limits(conn: psycopg.Connection[Any]) -> None:
    long_run = tsv(conn, "cjk_unigrams", "中" * 40_000)
    assert long_run == cjk.to_tsvector("中" * 40_000, "cjk_unigrams")
    assert len(long_run["中"]) == 256 and len(long_run["中中"]) == 256
    assert tsv(conn, "cjk", "中" * 40_000) == {"中中": long_run["中中"], "中": (16383,)}
    assert tsv(conn, "cjk", "一二" * 9000 + "。三")["三"] == (16383,)
    assert tsv(conn, "cjk_simple", "a" * 2047 + " b") == {"b": (2,)}
    assert tsv(conn, "cjk_simple", "a" * 2046) == {"a" * 2046: (1,)}


def test_grouped_path_for_long_texts_gives_the_same_vectors(conn: psycopg.Connection[Any]) -> None:
    rng = random.Random(7)
    texts = ["".join(chr(rng.randint(0x4E00, 0x4FFF)) for _ in range(3000)) + " running cats the 東京", "東京 abc"]
    for config in ("cjk", "cjk_simple", "cjk_bigram", "cjk_unigrams"):
        for text in texts:
            for query in (False, True):
                assert conn.execute(
                    "SELECT pgretrieval._cjk_vector(%s, %s, %s, true) = pgretrieval._cjk_vector(%s, %s, %s, false)",
                    (config, text, query, config, text, query),
                ).fetchone()[0]
            assert conn.execute(
                "SELECT pgretrieval._cjk_tsvector(%s, %s) = pgretrieval.text_to_tsvector(%s, %s)",
                (config, text, config, text),
            ).fetchone()[0]
    for text in texts:
        for query in (False, True):
            assert conn.execute(
                "SELECT pgretrieval._auto_vector(%s, %s, true) = pgretrieval._auto_vector(%s, %s, false)",
                (text, query, text, query),
            ).fetchone()[0]
        assert conn.execute(
            "SELECT pgretrieval._auto_tsvector(%s) = pgretrieval.text_to_tsvector('auto', %s)", (text, text)
        ).fetchone()[0]


def test_text_beyond_one_tsvector_is_a_clear_error(conn: psycopg.Connection[Any]) -> None:
    rng = random.Random(3)
    huge = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(400_000))
    with pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT pgretrieval.text_to_tsvector('cjk', %s)", (huge,))
    assert info.value.sqlstate == "PR002"
    assert "too long" in str(info.value) and info.value.diag.message_hint


def test_auto_is_english_outside_cjk_runs(conn: psycopg.Connection[Any]) -> None:
    english = "The e-mail x@y.com costs 3.5 dollars, running"
    assert conn.execute(
        "SELECT pgretrieval.text_to_tsvector('auto', %s) = to_tsvector('english', %s)", (english, english)
    ).fetchone()[0]
    mixed = tsv(conn, "auto", "The e-mail 是苹果 running")
    assert mixed == {
        "e-mail": (2,), "e": (3,), "mail": (4,), "是苹": (5,), "苹果": (6,), "果": (7,), "run": (8,),
    }  # fmt: skip
    assert qtsv(conn, "auto", "The e-mail 是苹果 running") == {k: v for k, v in mixed.items() if k != "果"}
    assert qtsv(conn, "auto", english) == tsv(conn, "auto", english)


def test_valid_configs_and_create_collection(conn: psycopg.Connection[Any]) -> None:
    for config in ("cjk", "cjk_simple", "cjk_bigram", "cjk_unigrams", "auto", "english", "simple"):
        assert conn.execute("SELECT pgretrieval.is_valid_text_config(%s)", (config,)).fetchone()[0], config
    assert not conn.execute("SELECT pgretrieval.is_valid_text_config('cjk_klingon')").fetchone()[0]
    with pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT pgretrieval.text_to_tsvector('klingon', 'x')")
    assert info.value.sqlstate == "PR002" and "cjk" in (info.value.diag.message_hint or "")
    with pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT pgretrieval.query_to_tsvector('klingon', 'x')")
    assert info.value.sqlstate == "PR002"


def test_cjk_collection_postings_and_statistics_are_exact(conn: psycopg.Connection[Any]) -> None:
    cid = conn.execute("SELECT pgretrieval.create_collection('zh', text_config => 'cjk')").fetchone()[0]
    docs = {
        "a": ("东京", ["东京都是日本的首都。", "京都是古都 Kyoto"]),
        "b": ("", ["台北是臺灣的城市", "京"]),
        "c": ("Tokyo", ["!!!"]),
    }
    expected: dict[int, dict[str, int]] = {}
    for ext, (title, chunks) in docs.items():
        doc_id = conn.execute(
            "INSERT INTO pgretrieval.documents (collection_id, external_id, title, content) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            (cid, ext, title, "\n".join(chunks)),
        ).fetchone()[0]
        for ordinal, text in enumerate(chunks):
            chunk_id = conn.execute(
                "INSERT INTO pgretrieval.chunks (collection_id, document_id, ordinal, content) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (cid, doc_id, ordinal, text),
            ).fetchone()[0]
            expected[chunk_id] = cjk.term_frequencies(title + "\n" + text, "cjk")
    postings: dict[int, dict[str, int]] = {}
    for chunk_id, term, tf, doc_len in conn.execute(
        "SELECT chunk_id, term, tf, doc_len FROM pgretrieval.postings WHERE collection_id = %s", (cid,)
    ):
        postings.setdefault(chunk_id, {})[term] = tf
        assert doc_len == sum(expected[chunk_id].values())
    assert postings == {k: v for k, v in expected.items() if v}
    n, total = conn.execute(
        "SELECT sum(n_chunks), sum(total_len) FROM pgretrieval.collection_stats WHERE collection_id = %s", (cid,)
    ).fetchone()
    assert (n, total) == (len(expected), sum(sum(v.values()) for v in expected.values()))
    df = dict(
        conn.execute(
            "SELECT term, sum(df) FROM pgretrieval.term_stats WHERE collection_id = %s GROUP BY term", (cid,)
        ).fetchall()
    )
    # 京 on its own: the run-final 京 of 东京 (title of a, twice) and the one-character chunk of b
    assert df["京"] == 3 and df["东京"] == 2 and df["京都"] == 2 and df["tokyo"] == 1 and "!!!" not in df


def test_cjk_requires_a_utf8_database(server_dsn: str) -> None:
    name = "pgr_cjk_sql_ascii"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'SQL_ASCII' LOCALE_PROVIDER libc LOCALE 'C' TEMPLATE template0"
            ).format(sql.Identifier(name))
        )
    try:
        dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
        install(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert not conn.execute("SELECT pgretrieval.is_valid_text_config('cjk')").fetchone()[0]
            with pytest.raises(psycopg.Error) as info:
                conn.execute("SELECT pgretrieval.text_to_tsvector('cjk', 'x')")
            assert info.value.sqlstate == "PR002" and "UTF8" in str(info.value)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
