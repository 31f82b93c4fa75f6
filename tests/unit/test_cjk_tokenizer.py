"""The pure-Python cjk tokenizer (pgretrieval/cjk.py): what it emits, at which positions, under Postgres' limits,
and that its character classes are the very strings the SQL side (020_text.sql) uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pgretrieval import cjk

SQL_FILE = Path(__file__).resolve().parents[2] / "sql" / "functions" / "020_text.sql"


def _sql_class(function: str) -> str:
    """The regular expression class a RETURN-only SQL function of 020_text.sql returns (adjacent literals)."""
    text = SQL_FILE.read_text(encoding="utf-8")
    body = re.search(rf"FUNCTION pgretrieval\.{function}\(\).*?\nRETURN (.*?);", text, re.S)
    assert body, function
    return "".join(re.findall(r"'([^']*)'", body.group(1)))


@pytest.mark.parametrize(
    ("function", "python"),
    [("_cjk_chars", cjk.CJK_CHARS), ("_cjk_separators", cjk.SEPARATORS), ("_cjk_ignored", cjk.IGNORED)],
)
def test_character_classes_match_the_sql_file(function: str, python: str) -> None:
    assert _sql_class(function) == python


def test_bigrams_and_the_last_character() -> None:
    assert cjk.to_tsvector("东京都") == {"东京": (1,), "京都": (2,), "都": (3,)}
    assert cjk.to_tsvector("东京都", query=True) == {"东京": (1,), "京都": (2,)}  # queries: bigrams only
    assert cjk.to_tsvector("京", query=True) == {"京": (1,)}  # ... or the character of a one-character run
    assert cjk.to_tsvector("东京 京都 京", query=True) == {"东京": (1,), "京都": (3,), "京": (5,)}
    assert cjk.to_tsvector("东京都", "cjk_simple") == cjk.to_tsvector("东京都")


def test_cjk_unigrams_stacks_every_character() -> None:
    expected = {"东": (1,), "东京": (1,), "京": (2,), "京都": (2,), "都": (3,)}
    assert cjk.to_tsvector("东京都", "cjk_unigrams") == expected
    assert cjk.to_tsvector("东京都", "cjk_unigrams", query=True) == expected


def test_prefix_lexemes() -> None:
    assert cjk.is_prefix_lexeme("京") and cjk.is_prefix_lexeme("京", "auto")
    assert cjk.is_prefix_lexeme("ア", "cjk_simple") and cjk.is_prefix_lexeme("한")
    assert not cjk.is_prefix_lexeme("东京") and not cjk.is_prefix_lexeme("a") and not cjk.is_prefix_lexeme("")
    assert not cjk.is_prefix_lexeme("京", "cjk_bigram") and not cjk.is_prefix_lexeme("京", "cjk_unigrams")
    # every occurrence of a character is the first character of an indexed bigram or the run-final unigram
    text = "京都在东京，京。东京京"
    occurrences = sum(1 for ch in cjk.normalize(text) if ch == "京")
    tf = cjk.term_frequencies(text)
    assert sum(n for lexeme, n in tf.items() if lexeme.startswith("京")) == occurrences == 5


def test_cjk_bigram_is_lucene_cjk_bigram_filter() -> None:
    assert cjk.to_tsvector("东京都", "cjk_bigram") == {"东京": (1,), "京都": (2,)}
    assert cjk.to_tsvector("京", "cjk_bigram") == {"京": (1,)}  # a one-character run keeps its character
    assert cjk.to_tsvector("东京 京都 京", "cjk_bigram") == {"东京": (1,), "京都": (2,), "京": (3,)}
    assert cjk.to_tsvector("东京 京都 京", "cjk_bigram", query=True) == cjk.to_tsvector("东京 京都 京", "cjk_bigram")


def test_single_character_query_matches_inside_longer_runs() -> None:
    for document in ("我去东京都", "我去东京", "京"):
        assert any(lexeme.startswith("京") for lexeme in cjk.to_tsvector(document)), document
        assert set(cjk.to_tsvector("京", "cjk_unigrams", query=True)) <= set(cjk.to_tsvector(document, "cjk_unigrams"))


def test_runs_are_cut_at_punctuation_and_scripts_mix_within_a_run() -> None:
    assert set(cjk.to_tsvector("东京。大阪")) == {"东京", "京", "大阪", "阪"}
    # Han + Hiragana + Katakana in one run (Lucene bigrams across them too), Hangul, Traditional as written
    assert "京に" in cjk.to_tsvector("東京にいる")
    assert {"한국", "국어"} <= set(cjk.to_tsvector("한국어"))
    assert "臺北" in cjk.to_tsvector("臺北") and "台北" not in cjk.to_tsvector("臺北")


def test_latin_words_are_stemmed_and_stop_words_keep_their_position() -> None:
    tokens = cjk.tokenize("The cats 跑步 running")
    assert tokens == [("cat", 2), ("跑步", 3), ("步", 4), ("run", 5)]
    assert cjk.tokenize("The cats 跑步 running", "cjk_unigrams") == [
        ("cat", 2), ("跑", 3), ("跑步", 3), ("步", 4), ("run", 5)
    ]  # fmt: skip
    assert cjk.tokenize("The cats", "cjk_simple") == [("the", 1), ("cats", 2)]


def test_nfkc_case_and_invisible_characters() -> None:
    assert cjk.to_tsvector("ＡＢＣ１２３") == {"abc123": (1,)}  # full-width Latin and digits
    assert set(cjk.to_tsvector("ｶﾀｶﾅ")) == set(cjk.to_tsvector("カタカナ"))  # half-width katakana
    assert cjk.to_tsvector("ΑΣ İ", "cjk_simple") == {"ασ": (1,), "i": (2,)}  # simple case mapping, like Postgres
    assert cjk.to_tsvector("co\u00adop\u200dera\u2060te", "cjk_simple") == {"cooperate": (1,)}
    assert cjk.to_tsvector("葛\U000e0100城") == cjk.to_tsvector("葛城")  # a variation selector does not cut a run


@pytest.mark.parametrize(
    "text", ["", "   ", "。！？…", "!!! ??? ...", "the and of", "😀🎉👍🏽", "\u200d\ufe0f", "\x01\x02\x1f"]
)
def test_nothing_to_index_gives_an_empty_vector(text: str) -> None:
    assert cjk.to_tsvector(text) == {}


def test_emoji_and_symbols_separate_words() -> None:
    assert set(cjk.to_tsvector("東京😀大阪 cat👍dog")) == {"東京", "京", "大阪", "阪", "cat", "dog"}


def test_unassigned_and_private_use_code_points_are_kept_as_words() -> None:
    assert cjk.to_tsvector("a\u0378b \ue000", "cjk_simple") == {"a\u0378b": (1,), "\ue000": (2,)}


def test_postgres_limits() -> None:
    long_run = "中" * 40_000
    vector = cjk.to_tsvector(long_run, "cjk_unigrams")
    assert len(vector["中"]) == cjk.MAX_POSITIONS_PER_LEXEME
    assert vector["中中"][:2] == (1, 2)
    assert cjk.to_tsvector(long_run)["中"] == (cjk.MAX_POSITION,)  # the run-final character, clamped
    assert cjk.to_tsvector("一二" * 9000 + "。三")["三"] == (cjk.MAX_POSITION,)  # position 18001, clamped
    assert cjk.to_tsvector("a" * 2047 + " b", "cjk_simple") == {"b": (2,)}  # too long: skipped, keeps its position
    assert cjk.to_tsvector("a" * 2046, "cjk_simple") == {"a" * 2046: (1,)}
    assert cjk.to_tsvector("running" * 200) == {"running" * 200: (1,)}  # over 1000 bytes: not stemmed


def test_term_frequencies_and_bm25_tokens_follow_the_tsvector() -> None:
    assert cjk.term_frequencies("东京 东京") == {"东京": 2, "京": 2}
    assert sorted(cjk.bm25_tokens("东京 东京")) == ["东京", "东京", "京", "京"]
    assert len(cjk.bm25_tokens("中" * 1000, "cjk_unigrams")) == 2 * cjk.MAX_POSITIONS_PER_LEXEME
    assert len(cjk.bm25_tokens("中" * 1000)) == cjk.MAX_POSITIONS_PER_LEXEME + 1


def test_custom_stemmer_and_words_to_stem() -> None:
    assert cjk.words_to_stem("The Cats 东京 running") == {"the", "cats", "running"}
    lexicon = {"the": None, "cats": "CAT", "running": "RUN"}
    assert cjk.tokenize("The Cats 东京", stem=lexicon.__getitem__)[0] == ("CAT", 2)


def test_auto_and_unknown_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="english parser"):
        cjk.tokenize("东京", "auto")
    with pytest.raises(ValueError, match="not 'english'"):
        cjk.tokenize("x", "english")
    assert cjk.is_cjk_config("cjk") and not cjk.is_cjk_config("auto")
