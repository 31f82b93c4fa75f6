"""Rerankers: a real (tiny) cross-encoder and a Cohere-compatible HTTP server the test starts itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pgretrieval.errors import ConfigurationError, ModelError
from pgretrieval.rerank import CrossEncoderReranker, HttpReranker, Reranker, load_reranker, rerank_hits
from pgretrieval.types import SearchHit

TINY_CE = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "tiny-ce-test"


def _hit(i: int, content: str) -> SearchHit:
    return SearchHit(
        chunk_id=i,
        document_id=i,
        external_id=f"d{i}",
        title=f"T{i}",
        content=content,
        metadata={},
        created_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
        score=1.0 / (i + 1),
        dense_rank=i + 1,
        dense_score=0.5,
        lexical_rank=None,
        lexical_score=None,
        metadata_rank=None,
        recency=None,
    )


@pytest.fixture(scope="module")
def tiny_ce() -> Reranker:
    if not TINY_CE.exists():
        pytest.skip(f"{TINY_CE} is not present")
    return load_reranker(str(TINY_CE))


def test_cross_encoder_scores_and_reranks(tiny_ce: Reranker) -> None:
    assert isinstance(tiny_ce, CrossEncoderReranker) and tiny_ce.name == "tiny-ce-test"
    scores = tiny_ce.score("heart attack", ["Myocardial infarction risk.", "Volcanoes erupt.", "Cats purr."])
    assert len(scores) == 3 and all(0.0 < s < 1.0 for s in scores)  # sigmoid activation from its config
    hits = [_hit(i, text) for i, text in enumerate(["alpha", "beta gamma", "delta", "epsilon zeta"])]
    top = rerank_hits(tiny_ce, "beta", hits, 2)
    assert len(top) == 2 and all(h.rerank_score is not None for h in top)
    assert top[0].rerank_score >= top[1].rerank_score  # type: ignore[operator]
    all_scores = tiny_ce.score("beta", [f"T{i}\n{h.content}" for i, h in enumerate(hits)])
    assert top[0].rerank_score == pytest.approx(max(all_scores))
    assert rerank_hits(tiny_ce, "q", [], 5) == []


def test_missing_or_unknown_rerankers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGRETRIEVAL_RERANK_MODEL", raising=False)
    with pytest.raises(ConfigurationError, match="no reranker configured"):
        load_reranker()
    with pytest.raises(ModelError, match="no such folder"):
        load_reranker(str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="unknown reranker backend"):
        load_reranker("x", backend="psychic")


class _CohereHandler(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.path != "/v2/rerank":
            self.send_response(404)
            self.end_headers()
            return
        words = set(body["query"].lower().split())
        scored = [
            {"index": i, "relevance_score": len(words & set(doc.lower().split())) / (1 + len(words))}
            for i, doc in enumerate(body["documents"])
        ]
        scored.sort(key=lambda r: -r["relevance_score"])  # Cohere answers best first
        payload = json.dumps({"id": "x", "results": scored[: body.get("top_n")]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cohere() -> Iterator[str]:
    _CohereHandler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CohereHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v2"
    finally:
        httpd.shutdown()


def test_http_reranker_against_a_local_cohere_compatible_server(cohere: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGRETRIEVAL_RERANK_BASE_URL", cohere)
    monkeypatch.setenv("COHERE_API_KEY", "co-test")
    reranker = load_reranker("cohere:rerank-v3.5")
    assert isinstance(reranker, HttpReranker)
    hits = [_hit(0, "nothing here"), _hit(1, "red apples grow"), _hit(2, "red apples and green apples")]
    top = rerank_hits(reranker, "red apples", hits, 2)
    assert [h.external_id for h in top] == ["d1", "d2"] or [h.external_id for h in top] == ["d2", "d1"]
    assert all(h.rerank_score and h.rerank_score > 0 for h in top)
    request = _CohereHandler.requests[0]
    assert request["auth"] == "Bearer co-test" and request["body"]["model"] == "rerank-v3.5"
    assert request["body"]["documents"][1] == "T1\nred apples grow"


def test_http_reranker_batches_and_reports_bad_answers(cohere: str) -> None:
    reranker = HttpReranker("m", base_url=cohere, batch_size=2)
    assert len(reranker.score("a", ["a", "b", "c"])) == 3
    assert [len(r["body"]["documents"]) for r in _CohereHandler.requests] == [2, 1]
    with pytest.raises(ModelError, match="HTTP 404"):
        HttpReranker("m", base_url=cohere + "/nope").score("a", ["b"])
