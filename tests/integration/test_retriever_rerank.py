"""search(..., rerank=...) end to end: SQL candidates, a real tiny cross-encoder, per-stage timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgretrieval.embed import load_embedder
from pgretrieval.errors import ConfigurationError
from pgretrieval.rerank import load_reranker
from pgretrieval.search import Retriever
from pgretrieval.types import Document

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
pytestmark = pytest.mark.skipif(not MODELS.exists(), reason="shared models not present")


def test_rerank_takes_top_n_and_returns_top_k(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGRETRIEVAL_RERANK_MODEL", raising=False)
    tiny = load_embedder(str(MODELS / "tiny-static-minilm-64"))
    docs = [
        Document(id=f"d{i}", title=f"Doc {i}", text=f"Heart disease study number {i} on blood pressure.")
        for i in range(30)
    ]
    with Retriever(dsn, embedder=tiny, reranker=str(MODELS / "tiny-ce-test")) as r:
        r.add_documents(docs, collection="c")
        results = r.search("blood pressure", k=5, collection="c", mode="hybrid", rerank=20)
        plain = r.search("blood pressure", k=20, collection="c", mode="hybrid")
    assert len(results) == 5 and all(h.rerank_score is not None for h in results)
    scores = [h.rerank_score for h in results]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert {h.chunk_id for h in results} <= {h.chunk_id for h in plain}
    assert {"embed", "sql", "rerank", "total"} <= set(results.timings)
    expected = load_reranker(str(MODELS / "tiny-ce-test")).score(
        "blood pressure", [f"{h.title}\n{h.content}" for h in plain]
    )
    assert results[0].rerank_score == pytest.approx(max(expected), rel=1e-5)


def test_rerank_without_a_configured_model_says_what_to_do(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGRETRIEVAL_RERANK_MODEL", raising=False)
    tiny = load_embedder(str(MODELS / "tiny-static-minilm-64"))
    with Retriever(dsn, embedder=tiny) as r:
        r.add_documents([Document(id="a", text="hello world")], collection="c")
        with pytest.raises(ConfigurationError, match="PGRETRIEVAL_RERANK_MODEL"):
            r.search("hello", collection="c", rerank=True)
