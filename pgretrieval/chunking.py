"""Token-aware chunking with overlap, splitting at paragraph and sentence boundaries (Chinese included).

Sizes are counted with the embedding model's own tokenizer, so a chunk never silently overflows the model.
The algorithm: cut the text into *units* (paragraphs; a paragraph too long becomes sentences; a sentence too
long becomes word-aligned token windows), then pack consecutive units greedily up to the budget. Each new
chunk starts with the trailing units of the previous one that fit in the overlap budget. Every boundary is a
unit boundary, so chunks end at a paragraph or sentence end wherever the text allows it.

This module takes and returns plain data; it never loads a model or opens a connection.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pgretrieval.types import Chunk

DEFAULT_CHUNK_SIZE = 512  # the guide's 500-1000 token target, at its lower end (models are often 256-512 max)
MIN_CHUNK_SIZE = 16


class Tokenizer(Protocol):
    """What chunking needs from a tokenizer: token counts and per-token character spans (no special tokens)."""

    def count(self, texts: Sequence[str]) -> list[int]: ...

    def spans(self, text: str) -> list[tuple[int, int]]: ...


_WORD_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|\w+|[^\w\s]", re.UNICODE)


class RegexTokenizer:
    """A model-free approximation (words, punctuation, and one token per CJK character).

    Used for backends whose tokenizer is not available locally (HTTP embedders). Subword tokenizers usually
    produce somewhat more tokens than this, so callers keep a safety margin.
    """

    def count(self, texts: Sequence[str]) -> list[int]:
        return [sum(1 for _ in _WORD_RE.finditer(text)) for text in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _WORD_RE.finditer(text)]


class HFTokenizer:
    """Adapter over a Hugging Face ``tokenizers.Tokenizer`` (what fast tokenizers and StaticEmbedding use)."""

    def __init__(self, backend: object) -> None:
        from tokenizers import Tokenizer as _Tok

        if not isinstance(backend, _Tok):
            raise TypeError(f"expected a tokenizers.Tokenizer, got {type(backend).__name__}")
        # A private copy without truncation or padding: chunking needs the full, true token count.
        tok = _Tok.from_str(backend.to_str())
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def spans(self, text: str) -> list[tuple[int, int]]:
        return list(self._tok.encode(text, add_special_tokens=False).offsets)

    def spans_batch(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        if not texts:
            return []
        return [list(e.offsets) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def special_tokens(self) -> int:
        """How many special tokens the model adds around a text ([CLS] and [SEP] for BERT: 2)."""
        return len(self._tok.encode("", add_special_tokens=True).ids)


@dataclass(frozen=True)
class ChunkPlan:
    """The chunk budget decided for a model: what was asked, what is used, and why (for the ingest report)."""

    chunk_size: int
    overlap: int
    requested_size: int
    note: str = ""


def default_overlap(chunk_size: int) -> int:
    """~15% of the chunk, kept inside the guide's 100-200 token range when the chunk is large enough for it."""
    overlap = round(0.15 * chunk_size)
    if chunk_size >= 500:
        overlap = min(max(overlap, 100), 200)
    return overlap


def plan_chunks(
    max_seq_length: int | None,
    *,
    chunk_size: int | None = None,
    overlap: int | None = None,
    reserved_tokens: int = 0,
    model_name: str = "the model",
) -> ChunkPlan:
    """Decide chunk size and overlap, clamped so that prompt + title + chunk fit the model's window.

    ``reserved_tokens`` covers what is added around every chunk for all documents (special tokens, the passage
    prompt, a typical title); per-document title length is handled again by :func:`chunk_document`.
    """
    requested = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    if requested < MIN_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be at least {MIN_CHUNK_SIZE} tokens, got {requested}")
    size, note = requested, ""
    if max_seq_length is not None:
        limit = max(MIN_CHUNK_SIZE, max_seq_length - reserved_tokens)
        if size > limit:
            size = limit
            note = (
                f"chunk size {requested} tokens exceeds what {model_name} reads ({max_seq_length} tokens, "
                f"{reserved_tokens} of them kept for special tokens/prompt/title); using {size}-token chunks."
            )
    if overlap is None:
        ov = default_overlap(size)
    else:
        ov = int(overlap)
        if ov < 0:
            raise ValueError(f"chunk_overlap must be >= 0, got {ov}")
        if ov >= size:
            clamped = size // 4
            note = (note + " " if note else "") + (
                f"chunk overlap {ov} is not smaller than the chunk size {size}; using {clamped}."
            )
            ov = clamped
    return ChunkPlan(chunk_size=size, overlap=ov, requested_size=requested, note=note)


_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A sentence ends at . ! ? (followed by space) or at Chinese/Japanese 。！？；… (no space needed),
# optionally followed by closing quotes/brackets.
_SENTENCE_RE = re.compile(r"(?:[.!?]+[\"'”’)\]]*(?=\s)|[。！？；!?;…]+[”’」』）)\]\"']*)\s*")


def _split(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Split text[start:end] after each match of ``pattern``; spans keep their original offsets."""
    pieces: list[tuple[int, int]] = []
    pos = start
    for m in pattern.finditer(text, start, end):
        if m.end() > pos and m.end() < end:
            pieces.append((pos, m.end()))
            pos = m.end()
    pieces.append((pos, end))
    return [(s, e) for s, e in (_strip(text, s, e) for s, e in pieces) if e > s]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


class _Tokens:
    """One tokenizer pass over a document: token spans, and token counts of any character range by bisection
    (so paragraphs and sentences are never re-tokenized)."""

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        self.spans = spans
        self.starts = [s for s, _ in spans]

    def index(self, offset: int) -> int:
        return bisect_left(self.starts, offset)

    def count(self, start: int, end: int) -> int:
        return self.index(end) - self.index(start)


def _windows(text: str, start: int, end: int, tokens: _Tokens, size: int) -> list[tuple[int, int, int]]:
    """Cut an over-long sentence into token windows of at most ``size`` tokens, ending at word starts if possible."""
    spans = tokens.spans
    first, last = tokens.index(start), tokens.index(end)
    out: list[tuple[int, int, int]] = []
    i = first
    while i < last:
        j = min(i + size, last)
        if j < last:
            # Prefer to cut where the next token starts a new word (whitespace before it), not inside a word.
            k = j
            while k > i + size // 2 and spans[k][0] == spans[k - 1][1]:
                k -= 1
            if k > i + size // 2:
                j = k
        out.append((spans[i][0], min(spans[j - 1][1], end), j - i))
        i = j
    return out


def _units(text: str, tokens: _Tokens, unit_limit: int) -> list[tuple[int, int, int]]:
    """(start, end, tokens) units: paragraphs, or sentences of long paragraphs, or windows of long sentences."""
    units: list[tuple[int, int, int]] = []
    for ps, pe in _split(text, 0, len(text), _PARAGRAPH_RE):
        n = tokens.count(ps, pe)
        if n <= unit_limit:
            units.append((ps, pe, n))
            continue
        for ss, se in _split(text, ps, pe, _SENTENCE_RE):
            m = tokens.count(ss, se)
            if m <= unit_limit:
                units.append((ss, se, m))
            else:
                units.extend(_windows(text, ss, se, tokens, unit_limit))
    return units


def chunk_text(
    text: str,
    tokenizer: Tokenizer,
    *,
    chunk_size: int,
    overlap: int,
    spans: Sequence[tuple[int, int]] | None = None,
) -> list[tuple[int, int, int]]:
    """(start, end, tokens) spans of ``text`` covering all of it, each at most ``chunk_size`` tokens.

    ``spans`` are the text's token offsets if the caller already tokenized it (batched, see chunk_documents).
    """
    start, end = _strip(text, 0, len(text))
    if start == end:
        return []
    tokens = _Tokens(tokenizer.spans(text) if spans is None else spans)
    total = tokens.count(start, end)
    if total <= chunk_size:
        return [(start, end, total)]  # very short documents are one chunk
    overlap = max(0, min(overlap, chunk_size // 2))
    # Long sentences are cut into windows small enough that the overlap can be made of whole units.
    unit_limit = chunk_size if overlap == 0 else max(MIN_CHUNK_SIZE // 2, min(chunk_size, chunk_size - overlap))
    units = _units(text, tokens, unit_limit)
    chunks: list[tuple[int, int, int]] = []
    i = 0
    while i < len(units):
        j, n = i, 0
        while j < len(units) and (j == i or n + units[j][2] <= chunk_size):
            n += units[j][2]
            j += 1
        chunks.append((units[i][0], units[j - 1][1], n))
        if j >= len(units):
            break
        # Next chunk starts with the trailing units of this one that fit the overlap budget (at least one new unit).
        k, carried = j, 0
        while (
            k - 1 > i and carried + units[k - 1][2] <= overlap and carried + units[k - 1][2] + units[j][2] <= chunk_size
        ):
            carried += units[k - 1][2]
            k -= 1
        i = k
    return chunks


def chunk_document(
    text: str,
    tokenizer: Tokenizer,
    *,
    title: str = "",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overlap: int | None = None,
    max_tokens: int | None = None,
    spans: Sequence[tuple[int, int]] | None = None,
    title_tokens: int | None = None,
) -> list[Chunk]:
    """Chunks of one document; ``embed_text`` carries the title. ``max_tokens`` bounds title + chunk together."""
    size = chunk_size
    if max_tokens is not None and title:
        used = (tokenizer.count([title])[0] if title_tokens is None else title_tokens) + 1
        # A long title eats into the chunk, but never below half the budget (the model truncates the rest).
        size = max(min(size, max_tokens - used), min(size, max(MIN_CHUNK_SIZE, max_tokens // 2)))
    ov = default_overlap(size) if overlap is None else min(overlap, size // 2)
    pieces = chunk_text(text, tokenizer, chunk_size=size, overlap=ov, spans=spans)
    prefix = f"{title}\n" if title else ""
    return [
        Chunk(ordinal=i, content=text[s:e], start_offset=s, end_offset=e, token_count=n, embed_text=prefix + text[s:e])
        for i, (s, e, n) in enumerate(pieces)
    ]


def chunk_documents(
    items: Sequence[tuple[str, str]],
    tokenizer: Tokenizer,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overlap: int | None = None,
    max_tokens: int | None = None,
) -> list[list[Chunk]]:
    """Chunk many (title, text) pairs with one batched tokenizer call (fast tokenizers run it in parallel)."""
    texts = [text for _, text in items]
    batch = getattr(tokenizer, "spans_batch", None)
    all_spans = batch(texts) if batch is not None else [tokenizer.spans(t) for t in texts]
    titles = [title for title, _ in items]
    title_counts = tokenizer.count(titles) if max_tokens is not None and any(titles) else [0] * len(items)
    return [
        chunk_document(
            text,
            tokenizer,
            title=title,
            chunk_size=chunk_size,
            overlap=overlap,
            max_tokens=max_tokens,
            spans=spans,
            title_tokens=n_title,
        )
        for (title, text), spans, n_title in zip(items, all_spans, title_counts, strict=True)
    ]
