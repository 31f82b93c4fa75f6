"""Rerankers, the guide's fine stage: top ~100 from SQL in, top k out, scored by a cross-encoder.

Backends: a sentence-transformers ``CrossEncoder`` (any model name or local folder) and a Cohere-compatible
HTTP ``/rerank`` endpoint (also served by Jina, Voyage, TEI and vLLM). torch is imported lazily; rerankers
never touch the database.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pgretrieval.embed import post_json
from pgretrieval.errors import ConfigurationError, ModelError
from pgretrieval.types import SearchHit


@runtime_checkable
class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant. Scores are comparable within one call only."""

    name: str

    def score(self, query: str, documents: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder, e.g. cross-encoder/ms-marco-MiniLM-L-6-v2 or a local folder."""

    backend = "cross-encoder"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        name: str | None = None,
    ) -> None:
        path = Path(model).expanduser()
        local = path.exists()
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        elif model.startswith(("/", ".", "~")) or model.count("/") > 1:
            raise ModelError(f"cannot load reranker {model!r}: no such folder (and not a model name).")
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise ModelError("sentence-transformers is not installed; pip install 'pgretrieval[models]'.") from exc
        try:
            kwargs: dict[str, Any] = {"device": device}
            if max_length is not None:
                kwargs["max_length"] = max_length
            self._ce = CrossEncoder(str(path.resolve()) if local else model, **kwargs)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ModelError(
                f"could not load reranker {model!r} ({reason}); pass a local cross-encoder folder or an available "
                "model name (PGRETRIEVAL_RERANK_MODEL)."
            ) from exc
        self.model = str(path.resolve()) if local else model
        self.name = name or (path.name if local else model)
        self.batch_size = batch_size

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        try:
            scores = self._ce.predict(
                [(query, d) for d in documents], batch_size=self.batch_size, show_progress_bar=False
            )
        except Exception as exc:
            raise ModelError(f"reranking with {self.name!r} failed: {exc}") from exc
        return [float(s) for s in scores]

    def __repr__(self) -> str:
        return f"CrossEncoderReranker(name={self.name!r})"


class HttpReranker:
    """A Cohere-compatible ``POST {base_url}/rerank``: ``{"model", "query", "documents"}`` in,
    ``{"results": [{"index", "relevance_score"}]}`` out (``data`` instead of ``results``, as Voyage answers, and
    TEI's bare list of ``{"index", "score"}`` are accepted too)."""

    backend = "http"

    def __init__(
        self,
        model: str = "rerank-v3.5",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        name: str | None = None,
        batch_size: int = 1000,
    ) -> None:
        base = base_url or os.environ.get("PGRETRIEVAL_RERANK_BASE_URL") or "https://api.cohere.com/v2"
        self.base_url = base.rstrip("/")
        self.api_key = api_key or os.environ.get("PGRETRIEVAL_RERANK_API_KEY") or os.environ.get("COHERE_API_KEY")
        self.model = model
        self.name = name or f"http:{model}"
        self.timeout = timeout
        self.batch_size = batch_size

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(documents), self.batch_size):
            part = list(documents[start : start + self.batch_size])
            scores.extend(self._score(query, part))
        return scores

    def _score(self, query: str, documents: list[str]) -> list[float]:
        if not documents:
            return []
        payload = {"model": self.model, "query": query, "documents": documents, "top_n": len(documents)}
        answer = post_json(f"{self.base_url}/rerank", payload, api_key=self.api_key, timeout=self.timeout)
        rows = answer if isinstance(answer, list) else (answer.get("results") or answer.get("data"))
        out = [float("-inf")] * len(documents)
        try:
            for row in rows:
                value = row.get("relevance_score", row.get("score"))
                out[int(row["index"])] = float(value)
        except (TypeError, KeyError, ValueError, IndexError, AttributeError) as exc:
            raise ModelError(f"{self.base_url}/rerank answered in an unexpected shape: {exc!r}") from exc
        return out

    def __repr__(self) -> str:
        return f"HttpReranker(name={self.name!r}, base_url={self.base_url!r})"


def load_reranker(
    model: str | None = None,
    *,
    backend: str | None = None,
    device: str | None = None,
    batch_size: int = 32,
    **options: Any,
) -> Reranker:
    """A reranker by name or path; ``cohere:MODEL``/``http:MODEL`` (or ``backend="http"``) selects HTTP.

    ``model`` None reads PGRETRIEVAL_RERANK_MODEL; there is no default because no reranker that improves
    quality is bundled (pick one that suits your language and domain).
    """
    model = model or os.environ.get("PGRETRIEVAL_RERANK_MODEL")
    if not model:
        raise ConfigurationError(
            "no reranker configured; pass a cross-encoder name or folder (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2) "
            "or set PGRETRIEVAL_RERANK_MODEL."
        )
    for prefix in ("cohere:", "http:"):
        if model.startswith(prefix):
            backend, model = "http", model[len(prefix) :]
    if backend in (None, "cross-encoder", "sentence-transformers"):
        return CrossEncoderReranker(model, device=device, batch_size=batch_size, **options)
    if backend in ("http", "cohere"):
        return HttpReranker(model, **options)
    raise ConfigurationError(f"unknown reranker backend {backend!r}; use 'cross-encoder' or 'http'.")


def passage_text(hit: SearchHit) -> str:
    """What the reranker reads for a hit: title and chunk, as the embedder did."""
    return f"{hit.title}\n{hit.content}" if hit.title else hit.content


def rerank_hits(reranker: Reranker, query: str, hits: Sequence[SearchHit], k: int) -> list[SearchHit]:
    """The top ``k`` of ``hits`` by reranker score, each with ``rerank_score`` set (ties keep SQL order)."""
    if not hits:
        return []
    scores = reranker.score(query, [passage_text(h) for h in hits])
    if len(scores) != len(hits):
        raise ModelError(f"reranker {reranker.name!r} returned {len(scores)} scores for {len(hits)} passages.")
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    return [dataclasses.replace(hits[i], rerank_score=scores[i]) for i in order[:k]]
