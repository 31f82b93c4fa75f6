"""Typed, frozen results that cross module boundaries (never raw tuples or dicts).

`SearchHit` mirrors the columns returned by ``pgretrieval.hybrid_search`` / ``dense_search`` /
``lexical_search`` one-to-one and in order, so a result row maps onto it with ``SearchHit(*row)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple, overload

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def embed_text(title: str, content: str) -> str:
    """What an embedder sees for a chunk or document: the title carried into every chunk, on its own line (the
    guide's "titles lost" fix). One rule for ingest, fine-tuning and judging, so their texts never drift."""
    return f"{title}\n{content}" if title else content


@dataclass(frozen=True)
class Document:
    """One input document. ``id`` is the caller's external id (upsert key); ``created_at`` None means now.

    Bring your own chunks and vectors: ``chunks`` (pieces of the text, stored as given instead of being
    chunked here) and ``vectors`` (one per chunk, or one for the whole text when ``chunks`` is None, from the
    ingest embedder's model: see :class:`~pgretrieval.precomputed.ExternalEmbedder`). Supplied vectors skip
    the model and the embedding cache.
    """

    id: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    created_at: datetime | None = None
    chunks: Sequence[str] | None = None
    vectors: Any = None


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's text, with character offsets into ``Document.text``.

    ``embed_text`` is what the embedder sees (title + newline + chunk): titles are embedded with every chunk.
    """

    ordinal: int
    content: str
    start_offset: int | None  # None for a supplied chunk not found verbatim in the text
    end_offset: int | None
    token_count: int
    embed_text: str


@dataclass(frozen=True)
class SearchHit:
    """One result row of the SQL search functions (same columns, same order), plus the rerank score."""

    chunk_id: int
    document_id: int
    external_id: str
    title: str
    content: str
    metadata: dict[str, Any]
    created_at: datetime
    score: float
    dense_rank: int | None
    dense_score: float | None
    lexical_rank: int | None
    lexical_score: float | None
    metadata_rank: int | None
    recency: float | None
    rerank_score: float | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SearchHit:
        """Build from a result row of the SQL functions (the 14 columns before ``rerank_score``)."""
        return cls(*row)

    @classmethod
    def sql_columns(cls) -> tuple[str, ...]:
        """The SQL result column names, in order (excludes ``rerank_score``, which SQL does not return)."""
        return tuple(f.name for f in fields(cls) if f.name != "rerank_score")


@dataclass(frozen=True)
class SearchResults(Sequence[SearchHit]):
    """The hits of one search, the mode actually used, per-stage timings in ms, and notes for the user."""

    hits: tuple[SearchHit, ...]
    mode: str
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @overload
    def __getitem__(self, index: int) -> SearchHit: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[SearchHit]: ...

    def __getitem__(self, index: int | slice) -> SearchHit | Sequence[SearchHit]:
        return self.hits[index]

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)


class IngestErrorRecord(NamedTuple):
    """A document that could not be ingested (or read): which one, which field, what was wrong."""

    document_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"document {self.document_id!r}, field {self.field!r}: {self.message}"


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did and how fast; ``summary()`` is what the CLI prints."""

    documents_added: int = 0
    documents_updated: int = 0
    documents_unchanged: int = 0
    documents_failed: int = 0
    chunks_written: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    db_seconds: float = 0.0
    errors: list[IngestErrorRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    texts_embedded: int = 0
    cache_hits: int = 0
    index_seconds: float = 0.0  # building a deferred HNSW index (bulk loads)
    maintenance_seconds: float = 0.0  # index builds and statistics compaction after the last batch

    @property
    def documents_seen(self) -> int:
        return self.documents_added + self.documents_updated + self.documents_unchanged + self.documents_failed

    def summary(self) -> str:
        """One paragraph: counts, documents/s, chunks/s, and how the time split between model and database."""
        secs = max(self.seconds, 1e-9)
        lines = [
            f"{self.documents_seen} documents: {self.documents_added} added, {self.documents_updated} updated, "
            f"{self.documents_unchanged} unchanged, {self.documents_failed} failed; {self.chunks_written} chunks "
            f"written.",
            f"{self.seconds:.1f} s: {self.documents_seen / secs:.1f} documents/s, {self.chunks_written / secs:.1f} "
            f"chunks/s; time in the embedding model {self.embed_seconds:.1f} s ({100 * self.embed_seconds / secs:.0f}% "
            f"of the run), in the database {self.db_seconds:.1f} s ({100 * self.db_seconds / secs:.0f}%; the two "
            "overlap when ingest is pipelined).",
            f"{self.texts_embedded} texts embedded, {self.cache_hits} taken from the embedding cache.",
        ]
        lines.extend(f"note: {note}" for note in self.notes)
        lines.extend(f"skipped: {error}" for error in self.errors)
        return "\n".join(lines)


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as ``Retriever.list_collections()`` reports it."""

    name: str
    text_config: str
    tenant: str
    description: str
    default_embedder: str | None
    embedders: tuple[str, ...]
    documents: int
    chunks: int
    created_at: datetime
