"""Chunking: sizes by the model's tokenizer, boundaries at paragraphs/sentences (Chinese too), overlap, title."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgretrieval.chunking import (
    DEFAULT_CHUNK_SIZE,
    HFTokenizer,
    RegexTokenizer,
    chunk_document,
    chunk_documents,
    chunk_text,
    default_overlap,
    plan_chunks,
)

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
TOKENIZER_JSON = MODELS / "tiny-static-minilm-64" / "tokenizer.json"


@pytest.fixture(scope="module")
def wordpiece() -> HFTokenizer:
    if not TOKENIZER_JSON.exists():
        pytest.skip("shared tokenizer not present")
    from tokenizers import Tokenizer

    return HFTokenizer(Tokenizer.from_file(str(TOKENIZER_JSON)))


def _english(paragraphs: int = 12, sentences: int = 6) -> str:
    return "\n\n".join(
        " ".join(f"Paragraph {p} sentence {s} explains retrieval and ranking in detail." for s in range(sentences))
        for p in range(paragraphs)
    )


def test_short_document_is_one_chunk(wordpiece: HFTokenizer) -> None:
    chunks = chunk_document("  A short note.  ", wordpiece, title="Note")
    assert len(chunks) == 1
    assert chunks[0].content == "A short note." and chunks[0].embed_text == "Note\nA short note."
    assert (chunks[0].start_offset, chunks[0].end_offset) == (2, 15)


def test_chunks_respect_size_end_at_sentences_and_overlap(wordpiece: HFTokenizer) -> None:
    text = _english()
    chunks = chunk_document(text, wordpiece, chunk_size=60, overlap=15)
    assert len(chunks) > 5
    for c in chunks:
        assert c.content == text[c.start_offset : c.end_offset]
        assert wordpiece.count([c.content])[0] <= 60
        assert c.content.endswith(".")  # every boundary is a sentence end
    overlaps = [a.end_offset > b.start_offset for a, b in zip(chunks, chunks[1:], strict=False)]
    assert all(overlaps)
    # Everything is covered, in order.
    assert chunks[0].start_offset == 0 and chunks[-1].end_offset == len(text)
    assert all(b.start_offset <= a.end_offset + 2 for a, b in zip(chunks, chunks[1:], strict=False))


def test_chinese_splits_at_full_width_punctuation(wordpiece: HFTokenizer) -> None:
    text = "黑豹队的防守只丢了三百分，在联赛中排名第六。同时也以二十四次拦截领先联盟！他们还有三次迫使掉球；真厉害…"
    text *= 20
    chunks = chunk_document(text, wordpiece, chunk_size=50, overlap=0)
    assert len(chunks) > 3
    for c in chunks:
        assert wordpiece.count([c.content])[0] <= 50
        assert c.content[-1] in "。！；…"


def test_sentence_longer_than_chunk_is_cut_at_word_starts(wordpiece: HFTokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(400))  # no punctuation at all
    spans = chunk_text(text, wordpiece, chunk_size=40, overlap=8)
    assert all(n <= 40 for _, _, n in spans)
    for s, e, _ in spans:
        assert s == 0 or text[s - 1] == " "
        assert e == len(text) or text[e] == " "


def test_title_is_carried_and_long_titles_shrink_the_chunk(wordpiece: HFTokenizer) -> None:
    title = "A rather long title about dense and lexical retrieval " * 3
    chunks = chunk_document(_english(), wordpiece, title=title, chunk_size=200, max_tokens=120)
    title_tokens = wordpiece.count([title])[0]
    for c in chunks:
        assert c.embed_text.startswith(title + "\n")
        assert c.token_count + title_tokens + 1 <= 120


def test_plan_clamps_to_the_model_window_and_says_so() -> None:
    plan = plan_chunks(256 - 2, model_name="all-MiniLM-L6-v2")
    assert plan.requested_size == DEFAULT_CHUNK_SIZE and plan.chunk_size == 254
    assert "all-MiniLM-L6-v2" in plan.note and "254" in plan.note
    assert plan.overlap == round(0.15 * 254)
    big = plan_chunks(None)
    assert (big.chunk_size, big.overlap, big.note) == (512, 100, "")
    assert plan_chunks(None, chunk_size=1000).overlap == 150
    assert "overlap" in plan_chunks(None, chunk_size=100, overlap=100).note
    with pytest.raises(ValueError):
        plan_chunks(None, chunk_size=4)


def test_default_overlap_stays_in_the_guides_range() -> None:
    assert default_overlap(512) == 100 and default_overlap(2000) == 200 and default_overlap(200) == 30


def test_regex_tokenizer_counts_cjk_characters() -> None:
    tok = RegexTokenizer()
    assert tok.count(["hello, world", "你好世界"]) == [3, 4]
    assert tok.spans("ab cd") == [(0, 2), (3, 5)]


def test_batched_chunking_matches_one_by_one(wordpiece: HFTokenizer) -> None:
    items = [("Title", _english(3)), ("", "short"), ("中文标题", "第一句。第二句！" * 40)]
    batched = chunk_documents(items, wordpiece, chunk_size=40, overlap=8, max_tokens=60)
    single = [
        chunk_document(text, wordpiece, title=title, chunk_size=40, overlap=8, max_tokens=60) for title, text in items
    ]
    assert batched == single and all(batched)


def test_whitespace_only_text_has_no_chunks(wordpiece: HFTokenizer) -> None:
    assert chunk_document(" \n\n ", wordpiece) == []
