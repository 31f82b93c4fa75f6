"""The OpenAI-compatible embedder against a real local HTTP server started by the test (no client mocks)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from pgretrieval.embed import OpenAIEmbedder, load_embedder
from pgretrieval.errors import ModelError


def _vector(text: str, dim: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 255.0 + 0.01 for b in digest[:dim]]


class _Handler(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []
    fail_next: list[int] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if type(self).fail_next:
            code = type(self).fail_next.pop(0)
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b'{"error": "nope"}')
            return
        if self.path != "/v1/embeddings":
            self.send_response(404)
            self.end_headers()
            return
        data = [{"object": "embedding", "index": i, "embedding": _vector(t)} for i, t in enumerate(body["input"])]
        payload = json.dumps({"object": "list", "data": list(reversed(data)), "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.requests = []
    _Handler.fail_next = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()


def test_http_embedder_probes_dimension_batches_and_orders(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGRETRIEVAL_OPENAI_BASE_URL", server)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    e = load_embedder("openai:my-model", batch_size=2)
    assert isinstance(e, OpenAIEmbedder)
    assert (e.name, e.dimensions, e.backend) == ("openai:my-model", 8, "openai")
    vectors = e.embed_passages(["a", "b", "c"])
    assert vectors.shape == (3, 8)
    expected = np.asarray([_vector(t) for t in "abc"], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-6)  # order restored from "index", normalised
    calls = _Handler.requests
    assert [len(c["body"]["input"]) for c in calls] == [1, 2, 1]  # probe, then batches of 2
    assert all(c["auth"] == "Bearer sk-test" and c["body"]["model"] == "my-model" for c in calls)


def test_http_embedder_prompts_and_retries(server: str) -> None:
    e = OpenAIEmbedder("intfloat/e5-small", base_url=server, dimensions=8)
    assert e.query_prompt == "query: "
    _Handler.fail_next = [503]
    e.embed_queries(["hello"])
    assert [c["body"]["input"] for c in _Handler.requests] == [["query: hello"], ["query: hello"]]


def test_http_errors_are_model_errors(server: str) -> None:
    e = OpenAIEmbedder("m", base_url=server, dimensions=8)
    _Handler.fail_next = [401]
    with pytest.raises(ModelError, match="HTTP 401"):
        e.embed_passages(["x"])
    bad = OpenAIEmbedder("m", base_url=server + "/wrong", dimensions=8)
    with pytest.raises(ModelError, match="HTTP 404"):
        bad.embed_passages(["x"])
    with pytest.raises(ModelError, match="cannot reach"):
        OpenAIEmbedder("m", base_url="http://127.0.0.1:9", dimensions=8, timeout=2).embed_passages(["x"])
