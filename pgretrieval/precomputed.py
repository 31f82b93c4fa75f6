"""Vectors computed elsewhere: an embedder that only names and describes the caller's model.

Teams often embed in their own pipeline (a GPU batch job, a hosted API called upstream) and only want the
vectors stored and searched. ``ExternalEmbedder`` registers that model in the database (name, dimensions,
distance, prompts) so SQL keeps its vectors apart from other models' and sizes its HNSW index, while the
vectors themselves arrive with each :class:`~pgretrieval.types.Document` (``Document.vectors``) and query
vectors are passed to the search functions directly. It never computes a vector: asking it to is an error
that says what to supply instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pgretrieval.chunking import RegexTokenizer, Tokenizer
from pgretrieval.errors import InvalidInputError, ModelError


class ExternalEmbedder:
    """A model whose vectors the caller supplies (``Document.vectors``, ``query_embedding=``)."""

    backend = "external"

    def __init__(
        self,
        name: str,
        dimensions: int,
        *,
        distance: str = "cosine",
        normalize: bool = True,
        model: str | None = None,
        query_prompt: str = "",
        passage_prompt: str = "",
        max_seq_length: int | None = None,
    ) -> None:
        if not name or not name.strip():
            raise InvalidInputError("an external embedder needs a name (the model the vectors come from)")
        if not 1 <= int(dimensions) <= 16000:
            raise InvalidInputError(f"dimensions must be 1 to 16000, got {dimensions}")
        if distance not in ("cosine", "ip", "l2"):
            raise InvalidInputError(f"distance must be cosine, ip or l2, got {distance!r}")
        self.name = name
        self.model = model or name
        self.dimensions = int(dimensions)
        self.distance = distance
        self.normalize = normalize
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt
        self.max_seq_length = max_seq_length
        self.batch_size = 1
        self._tokenizer = RegexTokenizer()

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def special_tokens(self) -> int:
        return 0

    def count_tokens(self, text: str) -> int:
        return self._tokenizer.count([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        raise ModelError(
            f"embedder {self.name!r} is external: pgretrieval cannot embed queries with it; pass the query vector "
            "(query_embedding=...) computed with the same model."
        )

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        raise ModelError(
            f"embedder {self.name!r} is external: pgretrieval cannot embed text with it; give every document its "
            "vectors (Document(vectors=...), one per chunk)."
        )

    def __repr__(self) -> str:
        return f"ExternalEmbedder(name={self.name!r}, dimensions={self.dimensions}, distance={self.distance!r})"
