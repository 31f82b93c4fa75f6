"""A synthetic corpus that looks like text to BM25 and like embeddings to HNSW, generated on the fly.

Why synthetic: scale runs need 10k to 1M chunks with vectors, and embedding a million real chunks on a 2-core
CPU takes days. What makes it realistic enough to measure retrieval cost:

* Text: a pseudo-word vocabulary with Zipf-distributed frequencies (exponent ~1.07, as in natural language),
  chunk lengths drawn from a log-normal distribution (median ~110 tokens, long right tail), and topics: each
  chunk mixes background words with words of its topic, so rare words cluster the way real terms do and
  queries have a few strongly matching chunks rather than uniformly scattered ones.
* Vectors: 384-d, derived from a low-dimensional latent space (topic centre + per-chunk offset in 24
  dimensions, projected by a fixed random matrix, plus a little isotropic noise). Real sentence embeddings
  have a low intrinsic dimension; uniform random 384-d vectors do not, and no ANN index finds their
  neighbours well, which would measure the data rather than the system.
* Metadata: a category (10 values, skewed), a year, and two buckets that make filters of known selectivity:
  ``{"pct": n}`` matches 1% of chunks, ``{"permille": n}`` matches 0.1%.

Everything is a pure function of (seed, chunk number), generated in blocks, so a 1M-chunk corpus never has to
be held in memory or written to disk, and the exact nearest neighbours can be recomputed block by block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

DIMENSIONS = 384
LATENT = 24
VOCABULARY = 60_000
TOPICS = 2_000
TOPIC_WORDS = 300
TOPIC_SHARE = 0.3
ZIPF_EXPONENT = 1.07
BLOCK = 2_000

_CONSONANTS = list("bcdfghklmnprstvz")
_VOWELS = list("aeiou")
_EPOCH = datetime(2021, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SyntheticChunk:
    """One generated chunk (a one-chunk document): what ingest receives, plus its topic for query making."""

    number: int
    external_id: str
    title: str
    text: str
    metadata: dict[str, object]
    created_at: datetime
    topic: int


class SyntheticCorpus:
    """Deterministic generator: ``blocks(n)`` yields (chunks, vectors) for chunk numbers 0..n-1."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.words = _vocabulary(rng, VOCABULARY)
        ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64)
        weights = ranks**-ZIPF_EXPONENT
        self.background = np.cumsum(weights / weights.sum())
        # Topic words come from the middle and tail of the vocabulary (the head is shared by all topics).
        self.topic_words = rng.integers(300, VOCABULARY, size=(TOPICS, TOPIC_WORDS))
        tw = np.arange(1, TOPIC_WORDS + 1, dtype=np.float64) ** -1.0
        self.topic_cdf = np.cumsum(tw / tw.sum())
        topic_pop = np.arange(1, TOPICS + 1, dtype=np.float64) ** -0.6
        self.topic_pick = np.cumsum(topic_pop / topic_pop.sum())
        self.centres = rng.normal(size=(TOPICS, LATENT)).astype(np.float32)
        self.projection = (rng.normal(size=(LATENT, DIMENSIONS)) / np.sqrt(LATENT)).astype(np.float32)

    # -- generation

    def _block_rng(self, block: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, block])

    def block(self, block: int, n_total: int) -> tuple[list[SyntheticChunk], np.ndarray, np.ndarray]:
        """Chunks ``block*BLOCK .. min(n_total, (block+1)*BLOCK)-1``: (chunks, vectors, latent points)."""
        start = block * BLOCK
        count = min(BLOCK, n_total - start)
        rng = self._block_rng(block)
        topics = np.searchsorted(self.topic_pick, rng.random(count))
        lengths = np.clip(rng.lognormal(mean=np.log(110), sigma=0.55, size=count), 8, 600).astype(int)
        latent = self.centres[topics] + rng.normal(scale=0.55, size=(count, LATENT)).astype(np.float32)
        vectors = self._vectors(latent, rng)
        categories = np.minimum(rng.zipf(1.6, size=count), 10) - 1
        years = rng.integers(2000, 2026, size=count)
        seconds = rng.integers(0, 5 * 365 * 86400, size=count)
        chunks = []
        for i in range(count):
            number = start + i
            words = self._words(rng, int(topics[i]), int(lengths[i]))
            title = " ".join(words[:6]).capitalize()
            chunks.append(
                SyntheticChunk(
                    number=number,
                    external_id=f"syn-{number}",
                    title=title,
                    text=_sentences(words),
                    metadata={
                        "category": f"cat{int(categories[i])}",
                        "year": int(years[i]),
                        "pct": number % 100,
                        "permille": number % 1000,
                    },
                    created_at=_EPOCH + timedelta(seconds=int(seconds[i])),
                    topic=int(topics[i]),
                )
            )
        return chunks, vectors, latent

    def blocks(self, n_total: int) -> Iterator[tuple[list[SyntheticChunk], np.ndarray]]:
        for b in range((n_total + BLOCK - 1) // BLOCK):
            chunks, vectors, _ = self.block(b, n_total)
            yield chunks, vectors

    def vector_blocks(self, n_total: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first chunk number, vectors) per block, for exact nearest neighbours without the text."""
        for b in range((n_total + BLOCK - 1) // BLOCK):
            _, vectors, _ = self.block(b, n_total)
            yield b * BLOCK, vectors

    def _vectors(self, latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        v = latent @ self.projection + rng.normal(scale=0.02, size=(latent.shape[0], DIMENSIONS)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v.astype(np.float32)

    def _words(self, rng: np.random.Generator, topic: int, length: int) -> list[str]:
        from_topic = rng.random(length) < TOPIC_SHARE
        background = np.searchsorted(self.background, rng.random(length))
        topical = self.topic_words[topic][np.searchsorted(self.topic_cdf, rng.random(length))]
        ids = np.where(from_topic, topical, background)
        return [self.words[int(i)] for i in ids]

    # -- queries

    def queries(self, n_total: int, count: int, seed: int = 99) -> list[tuple[str, np.ndarray, int]]:
        """``count`` queries: (text, vector, source chunk number). Text: 2-5 words of a chunk, biased to its
        rarer words (as people type distinctive terms), sometimes with a common word; vector: the chunk's latent
        point moved a little, projected like the corpus."""
        rng = np.random.default_rng([self.seed, seed])
        picks = rng.integers(0, n_total, size=count)
        out = []
        for number in picks:
            block, offset = divmod(int(number), BLOCK)
            chunks, _, latent = self.block(block, n_total)
            chunk = chunks[offset]
            words = chunk.text.replace(".", "").lower().split()
            ranks = np.array([self._rank(w) for w in words], dtype=np.float64)
            weights = np.log1p(ranks)
            weights /= weights.sum()
            n_words = int(rng.integers(2, 6))
            chosen = list(dict.fromkeys(rng.choice(words, size=n_words, p=weights)))
            if rng.random() < 0.3:
                chosen.append(self.words[int(rng.integers(0, 50))])
            z = latent[offset] + rng.normal(scale=0.25, size=LATENT).astype(np.float32)
            vec = self._vectors(z[None, :], rng)[0]
            out.append((" ".join(chosen), vec, int(number)))
        return out

    def _rank(self, word: str) -> int:
        if not hasattr(self, "_rank_of"):
            self._rank_of = {w: i for i, w in enumerate(self.words)}
        return self._rank_of.get(word, VOCABULARY)


def exact_neighbours(
    corpus: SyntheticCorpus, n_total: int, queries: np.ndarray, k: int = 10, mask: np.ndarray | None = None
) -> np.ndarray:
    """Chunk numbers of the exact top-k by cosine for each query, streaming over the corpus blocks.
    ``mask(numbers) -> bool array`` restricts the candidates (for filtered recall)."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    for first, vectors in corpus.vector_blocks(n_total):
        numbers = np.arange(first, first + len(vectors))
        sims = queries @ vectors.T
        if mask is not None:
            sims[:, ~mask(numbers)] = -np.inf
        scores = np.concatenate([best_scores, sims], axis=1)
        ids = np.concatenate([best_ids, np.broadcast_to(numbers, sims.shape)], axis=1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_ids = np.take_along_axis(ids, top, axis=1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, axis=1)


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """Distinct pronounceable pseudo-words, shortest for the most frequent ranks (as in real languages)."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        syllables = 1 + min(4, int(rng.exponential(0.6 + len(words) / size * 2.0)))
        w = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
        if rng.random() < 0.3:
            w += rng.choice(_CONSONANTS)
        if len(w) >= 3 and w not in seen:
            seen.add(w)
            words.append(w)
    return words


def _sentences(words: list[str]) -> str:
    """Words into sentences of 8-20 words, so chunking and the text parser see ordinary prose."""
    out, i, n = [], 0, len(words)
    while i < n:
        step = 8 + (i * 7919) % 13
        sentence = words[i : i + step]
        out.append(" ".join(sentence).capitalize() + ".")
        i += step
    return " ".join(out)
