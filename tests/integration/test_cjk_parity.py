"""SQL vs Python: pgretrieval.text_to_tsvector(cjk*) and pgretrieval.cjk.to_tsvector, and for queries
pgretrieval.query_to_tsvector(cjk*) and pgretrieval.cjk.to_tsvector(query=True), give the same lexemes and
positions on a few thousand generated strings (Simplified and Traditional Chinese, Japanese kana, half-width
katakana, Korean, English with stop words, digits, full-width forms, punctuation of several scripts, emoji with
ZWJ and variation selectors, accented Latin, Greek, Cyrillic, combining marks, private-use and unassigned code
points, very long runs).

English stems: exact parity uses Postgres' own stems (``stem=``); PyStemmer's default stems are checked on a
vocabulary both Snowball releases agree on (see pgretrieval/cjk.py)."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest

from pgretrieval import cjk

SIMPLIFIED = "东京都是日本的首都中国人民共和国语言学习数据库检索系统的设计与实现我们你们他们这个那个时候"
TRADITIONAL = "臺灣台北國語學習資料庫檢索系統設計與實現們這個那個時候廣東話繁體字發展歷史經濟"
HIRAGANA = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
    "がぎぐげござじずぜぞゃゅょっ"
)
KATAKANA = (
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンーヴッャュョ々〆〇"
)
HALF_KATAKANA = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾞﾟｰ"
HANGUL = "한국어를배웁니다서울대학교검색시스템데이터베이스가나다라마바사아자차카타파하ㄱㄴㄷㅏㅓ"
EXT_B = "𠀀𠀁𠀂𡈽𤭢𪚥"
# Both Snowball releases (Postgres' and PyStemmer's) stem these alike.
_ENGLISH_WORDS = (
    "the a of and to in is are was were be running runs ran cats cat dogs searching search retrieval "
    "database databases system systems tokyo studies studying quickly happiness connection "
    "connected connecting iphone pro max apple google postgres vector index indexing queries query"
)
ENGLISH = _ENGLISH_WORDS.split()
LATIN_EXTRA = ["Café", "naïve", "ÉCOLE", "Straße", "ΑΣ", "Σοφία", "Москва", "ЁЛКА", "İstanbul", "ǅemal", "ﬁle"]
DIGITS = ["0", "15", "2024", "3.5", "1,000", "１２３", "①", "²", "½", "Ⅻ"]
FULL_WIDTH = ["ＡＢＣ", "ｄｅｆ", "Ｇ１", "（注）", "！", "？", "％"]
PUNCT = (
    list(" \t\n.,;:!?'\"()[]{}<>/\\|@#$%^&*-_=+~`")
    + list("。，、；：！？「」『』（）《》【】…—·・～〜")
    + [
        "\u3000",
        "\u00a0",
        "\u200b",
        "،",
        "।",
        "׃",
        "‼",
        "©",
        "™",
        "°C",
        "→",
    ]
)
EMOJI = ["😀", "🎉", "👍🏽", "👨\u200d👩\u200d👧", "❤\ufe0f", "🇯🇵", "1\ufe0f\u20e3", "☀", "㊗", "🀄"]
ODD = ["\u0378", "\ue000", "\U0010fffd", "\u0301", "\u00ad", "\u200d", "\ufeff", "\ufe0f", "\U000e0041", "\x01", "\x7f"]

PIECES: list[list[str]] = [
    list(SIMPLIFIED),
    list(TRADITIONAL),
    list(HIRAGANA),
    list(KATAKANA),
    list(HALF_KATAKANA),
    list(HANGUL),
    list(EXT_B),
    ENGLISH,
    LATIN_EXTRA,
    DIGITS,
    FULL_WIDTH,
    PUNCT,
    EMOJI,
    ODD,
]
WEIGHTS = [12, 8, 5, 5, 1, 5, 1, 10, 2, 3, 2, 8, 2, 1]


def generated_strings(n: int, seed: int = 20240601) -> list[str]:
    """Random mixtures: runs drawn from one script at a time, glued with or without spaces."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        parts: list[str] = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choices(PIECES, WEIGHTS)[0]
            run = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
            parts.append(run + rng.choice(["", "", " ", "，", ". "]))
        if i % 500 == 0:  # a few long runs without punctuation
            parts.append("".join(rng.choice(SIMPLIFIED) for _ in range(rng.randint(2000, 20000))))
        out.append("".join(parts))
    out += ["", "京", "东京都", "the", "😀", "。", "a" * 2047, "中" * 300]
    return out


def sql_vectors(
    conn: psycopg.Connection[Any], config: str, texts: list[str], *, query: bool = False
) -> list[dict[str, tuple[int, ...]]]:
    function = "query_to_tsvector" if query else "text_to_tsvector"
    rows = conn.execute(
        "SELECT t.n, u.lexeme, u.positions "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(body, n) "
        f"LEFT JOIN LATERAL unnest(pgretrieval.{function}(%s, t.body)) AS u ON true",
        (texts, config),
    ).fetchall()
    vectors: list[dict[str, tuple[int, ...]]] = [{} for _ in texts]
    for n, lexeme, positions in rows:
        if lexeme is not None:
            vectors[n - 1][lexeme] = tuple(positions)
    return vectors


def postgres_stems(conn: psycopg.Connection[Any], texts: list[str]) -> dict[str, str | None]:
    words = sorted(set().union(*(cjk.words_to_stem(t) for t in texts)))
    rows = conn.execute("SELECT w, ts_lexize('english_stem', w) FROM unnest(%s::text[]) AS w", (words,)).fetchall()
    return {w: (lex[0] if lex else None) for w, lex in rows}


@pytest.mark.parametrize("config", ["cjk", "cjk_simple", "cjk_bigram", "cjk_unigrams"])
@pytest.mark.parametrize("query", [False, True], ids=["document", "query"])
def test_sql_and_python_agree_on_generated_strings(conn: psycopg.Connection[Any], config: str, query: bool) -> None:
    texts = generated_strings(3000)
    stems = postgres_stems(conn, texts)
    expected = sql_vectors(conn, config, texts, query=query)
    mismatches = [
        t for t, e in zip(texts, expected, strict=True) if cjk.to_tsvector(t, config, stem=stems.get, query=query) != e
    ]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[0]!r}"


def test_prefix_lexemes_agree(conn: psycopg.Connection[Any]) -> None:
    lexemes = ["京", "东京", "a", "ア", "한", "𠀀", "。", "1", ""]
    for config in ("cjk", "cjk_simple", "cjk_bigram", "cjk_unigrams", "auto", "english"):
        rows = conn.execute(
            "SELECT l, pgretrieval._is_prefix_lexeme(%s, l) FROM unnest(%s::text[]) l", (config, lexemes)
        ).fetchall()
        assert {lexeme: bool(flag) for lexeme, flag in rows} == {
            lexeme: cjk.is_prefix_lexeme(lexeme, config) for lexeme in lexemes
        }, config


def test_pystemmer_default_agrees_on_a_common_vocabulary(conn: psycopg.Connection[Any]) -> None:
    texts = generated_strings(500, seed=7)
    expected = sql_vectors(conn, "cjk", texts)
    assert [cjk.to_tsvector(t, "cjk") for t in texts] == expected
