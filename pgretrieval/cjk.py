"""The ``cjk`` text configurations in pure Python, lexeme for lexeme and position for position what
``pgretrieval.text_to_tsvector`` (``sql/functions/020_text.sql``) computes in Postgres.

Why a Python copy: to tokenize client-side when that is faster, and to feed reference BM25 implementations
(``bm25s``) exactly the tokens Postgres indexes. ``tests/integration/test_cjk_parity.py`` compares both on
thousands of generated strings, for documents (``text_to_tsvector``) and queries (``query_to_tsvector``,
``query=True`` here). The algorithm is described at the top of ``020_text.sql``; in short: NFKC, invisible
characters removed, lowercase; a CJK run becomes its overlapping character bigrams plus its last character
(queries: the bigrams only; ``cjk_bigram``: bigrams only; ``cjk_unigrams``: bigrams and every character), a
run of one character that character; other words go through Snowball English (PyStemmer, the same algorithm
Postgres' ``english_stem`` runs) minus Postgres' English stop words (``cjk_simple``: lowercased only).

English stems: Postgres bundles its own copy of Snowball, and PyStemmer's is another release: about 0.2% of English
word types stem differently (PyStemmer 3.x: "international" -> internat, Postgres 18: intern; "biologist").
For exact parity pass ``stem=`` a lookup filled from Postgres (``ts_lexize('english_stem', word)`` for the words of
:func:`words_to_stem`, one query per batch); the default PyStemmer stems are exact for CJK text, for ``cjk_simple``
and for the ~99.8% of English words both releases agree on.

Parity holds on a UTF8 database for text made of characters known to both Unicode versions (Python's
``unicodedata`` and Postgres' tables): NFKC and case mapping of characters assigned in a later Unicode version
than the other side knows can differ. Before Postgres 17 lowercasing follows the database collation (identical to
Python for every letter under a Unicode-aware locale, ASCII only under the C locale). ``auto`` is not available
here: it runs Postgres' own english parser.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

__all__ = [
    "CJK_CHARS",
    "CONFIGS",
    "ENGLISH_STOP_WORDS",
    "IGNORED",
    "MAX_POSITION",
    "MAX_POSITIONS_PER_LEXEME",
    "SEPARATORS",
    "Stem",
    "bm25_tokens",
    "english_lexeme",
    "has_cjk",
    "is_cjk_config",
    "is_prefix_lexeme",
    "normalize",
    "term_frequencies",
    "tokenize",
    "to_tsvector",
    "words_to_stem",
]

Stem = Callable[[str], "str | None"]
"""Lowercased word -> its lexeme, or None for a stop word (what ``ts_lexize('english_stem', word)`` gives)."""

# Character classes, written exactly as in 020_text.sql (_cjk_chars, _cjk_separators, _cjk_ignored);
# tests/unit/test_cjk_tokenizer.py checks that the SQL file holds the same strings.
CJK_CHARS = (
    r"\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3041-\u3096\u3099-\u309a"
    r"\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u3131-\u318e\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f\uffa0-\uffdc"
    r"\U0001aff0-\U0001b16f\U00020000-\U0003fffd"
)
SEPARATORS = (
    r"\u0001-\u002f\u003a-\u0040\u005b-\u0060\u007b-\u00bf\u00d7\u00f7"
    r"\u055a-\u055f\u0589-\u058a\u05be\u05c0\u05c3\u05c6\u05f3-\u05f4\u0600-\u060f\u061b-\u061f"
    r"\u066a-\u066d\u06d4\u0964-\u0965\u0970\u0e4f\u0e5a-\u0e5b\u104a-\u104f\u10fb\u1360-\u1368"
    r"\u166d-\u166e\u1680\u17d4-\u17da\u1800-\u180a\u180e"
    r"\u2000-\u206f\u20a0-\u20cf\u2190-\u245f\u2500-\u2bff\u2e00-\u2fff"
    r"\u3000-\u3004\u3008-\u3020\u302a-\u3030\u3036-\u3037\u303d-\u303f\u309b-\u309c\u30a0\u30fb"
    r"\u3190-\u319f\u31c0-\u31ef\u3200-\u33ff\u4dc0-\u4dff\ufd3e-\ufd3f\ufe10-\ufe1f\ufe30-\ufe6f"
    r"\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\uffe0-\uffff\U0001f000-\U0001fbff"
)
IGNORED = r"\u00ad\u034f\u180b-\u180d\u180f\u200c\u200d\u2060-\u2064\ufe00-\ufe0f\ufeff\U000e0000-\U000e0fff"

CONFIGS: tuple[str, ...] = ("cjk", "cjk_simple", "cjk_bigram", "cjk_unigrams")
PREFIX_CONFIGS: tuple[str, ...] = ("cjk", "cjk_simple", "auto")  # one-character query runs match as prefixes
MAX_POSITION = 16383  # Postgres clamps larger positions to this one
MAX_POSITIONS_PER_LEXEME = 256  # and keeps the first 256 positions of a lexeme
MAX_WORD_BYTES = 2047  # words this long or longer are not indexed (they keep their position)
MAX_STEM_BYTES = 1000  # Postgres' Snowball dictionaries return longer words unstemmed

# Postgres' share/tsearch_data/english.stop (the english_stem dictionary's stop words).
_ENGLISH_STOP = """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
hers herself it its itself they them their theirs themselves what which who whom this that these those am is are was
were be been being have has had having do does did doing a an the and but if or because as until while of at by for
with about against between into through during before after above below to from up down in out on off over under
again further then once here there when where why how all any both each few more most other some such no nor not only
own same so than too very s t can will just don should now"""
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(_ENGLISH_STOP.split())

_IGNORED_RE = re.compile(f"[{IGNORED}]+")
_TOKEN_RE = re.compile(f"([{CJK_CHARS}]+)|([^{CJK_CHARS}{SEPARATORS}]+)")
_CJK_RE = re.compile(f"[{CJK_CHARS}]")
# Python's full case mapping differs from Postgres' simple one for these (İ -> i + dot, final sigma).
_FULL_CASE_SPECIALS = re.compile("[\u0130\u03a3]")


def is_cjk_config(config: str) -> bool:
    """True for the configurations this module reproduces (``auto`` needs Postgres' parser)."""
    return config in CONFIGS


def is_prefix_lexeme(lexeme: str, config: str = "cjk") -> bool:
    """Does this query lexeme match every lexeme that starts with it (``pgretrieval._is_prefix_lexeme``)?

    True for one CJK character in ``cjk``, ``cjk_simple`` and ``auto``: their documents index a character on its
    own only where it ends a run (elsewhere it starts a bigram), so the character's bigrams and its run-final
    unigram together carry its exact term frequency and document frequency."""
    return config in PREFIX_CONFIGS and len(lexeme) == 1 and _CJK_RE.match(lexeme) is not None


def _simple_lower(text: str) -> str:
    """Unicode simple lowercase mapping, as Postgres' ``lower()`` (no context or multi-character rules)."""
    if text.isascii() or not _FULL_CASE_SPECIALS.search(text):
        return text.lower()
    return "".join("i" if c == "\u0130" else c.lower() for c in text)


def normalize(text: str) -> str:
    """NFKC, invisible format characters removed, lowercase: step 1 of the cjk configurations."""
    return _simple_lower(_IGNORED_RE.sub("", unicodedata.normalize("NFKC", text)))


def has_cjk(text: str) -> bool:
    """Does the (normalized) text hold a character that is tokenized as CJK?"""
    return _CJK_RE.search(text) is not None


@lru_cache(maxsize=1)
def _english_stemmer() -> Callable[[str], str]:
    try:
        import Stemmer  # PyStemmer: the Snowball C library, the same algorithm as Postgres' english_stem
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the cjk configuration stems English words with PyStemmer; `pip install PyStemmer` "
            "(or use cjk_simple, which does not stem)"
        ) from exc
    stemmer = Stemmer.Stemmer("english")
    stemmer.maxCacheSize = 100_000
    return stemmer.stemWord  # type: ignore[no-any-return]


def english_lexeme(word: str) -> str | None:
    """``ts_lexize('english_stem', word)`` for a lowercased word (None: a stop word), with PyStemmer's Snowball."""
    if len(word.encode("utf-8")) > MAX_STEM_BYTES:
        return word
    if word in ENGLISH_STOP_WORDS:
        return None
    return _english_stemmer()(word)


def words_to_stem(text: str) -> set[str]:
    """The distinct words of ``text`` the cjk and cjk_bigram configurations pass to the English stemmer."""
    return {
        m.group(2)
        for m in _TOKEN_RE.finditer(normalize(text))
        if m.group(2) is not None and len(m.group(2).encode("utf-8")) < MAX_WORD_BYTES
    }


def tokenize(text: str, config: str = "cjk", *, stem: Stem | None = None, query: bool = False) -> list[tuple[str, int]]:
    """Lexemes with their positions (1-based) in text order, before Postgres' tsvector limits apply.

    ``query``: the lexemes of a query piece (``pgretrieval.query_to_tsvector``) rather than of a document.
    ``stem`` replaces the PyStemmer English stems (see the module docstring); cjk_simple never stems."""
    if config not in CONFIGS:
        raise ValueError(
            f"pgretrieval.cjk reproduces the configurations {', '.join(CONFIGS)}, not {config!r}"
            + (" (auto runs Postgres' english parser; tokenize it in SQL)" if config == "auto" else "")
        )
    unigrams = config == "cjk_unigrams"  # every character of a run
    last = unigrams or (config in ("cjk", "cjk_simple") and not query)  # the last character of a run
    shrink = 1 if config == "cjk_bigram" else 0  # a run takes n - 1 positions (Lucene)
    lexeme_of: Stem | None = (stem or english_lexeme) if config != "cjk_simple" else None
    out: list[tuple[str, int]] = []
    pos = 0
    for match in _TOKEN_RE.finditer(normalize(text)):
        run = match.group(1)
        if run is None:
            word = match.group(2)
            pos += 1
            if len(word.encode("utf-8")) < MAX_WORD_BYTES:
                lexeme = lexeme_of(word) if lexeme_of else word
                if lexeme:
                    out.append((lexeme, pos))
            continue
        n = len(run)
        if n == 1:
            out.append((run, pos + 1))
            pos += 1
            continue
        for i in range(n - 1):
            if unigrams:
                out.append((run[i], pos + i + 1))
            out.append((run[i : i + 2], pos + i + 1))
        if last:
            out.append((run[-1], pos + n))
        pos += n - shrink
    return out


def to_tsvector(
    text: str, config: str = "cjk", *, stem: Stem | None = None, query: bool = False
) -> dict[str, tuple[int, ...]]:
    """The tsvector Postgres stores (``query``: the one ``query_to_tsvector`` gives), as {lexeme: positions}:
    positions clamped to 16383, deduplicated, sorted, at most 256 per lexeme."""
    positions: dict[str, set[int]] = {}
    for lexeme, pos in tokenize(text, config, stem=stem, query=query):
        positions.setdefault(lexeme, set()).add(min(pos, MAX_POSITION))
    return {lex: tuple(sorted(p)[:MAX_POSITIONS_PER_LEXEME]) for lex, p in sorted(positions.items())}


def term_frequencies(text: str, config: str = "cjk", *, stem: Stem | None = None) -> dict[str, int]:
    """BM25 term frequencies as the postings triggers count them (positions per lexeme)."""
    return {lex: len(p) for lex, p in to_tsvector(text, config, stem=stem).items()}


def bm25_tokens(text: str, config: str = "cjk", *, stem: Stem | None = None) -> list[str]:
    """A token list for other BM25 implementations with exactly Postgres' term frequencies and length."""
    return [lex for lex, tf in term_frequencies(text, config, stem=stem).items() for _ in range(tf)]
