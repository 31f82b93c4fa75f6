"""pgretrieval: PostgreSQL-native retrieval for RAG.

Dense search (pgvector HNSW), real BM25 over tsvector, JSONB metadata filters, time decay and rank fusion
all run inside PostgreSQL behind ``pgretrieval.hybrid_search(...)``; this package embeds, chunks, ingests,
reranks, evaluates and fine-tunes. Importing it loads no model stack (torch is imported lazily), and the
heavier parts of the public API below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from pgretrieval.config import Settings, load_settings
from pgretrieval.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    IngestError,
    InvalidInputError,
    ModelError,
    NotFoundError,
    PgRetrievalError,
    SchemaError,
    ServerError,
)

__version__ = "0.1.0"

# name -> module that defines it, imported when the name is first used
_LAZY = {
    "Retriever": "pgretrieval.search",
    "RetrievalRepository": "pgretrieval.repository",
    "Document": "pgretrieval.types",
    "SearchHit": "pgretrieval.types",
    "SearchResults": "pgretrieval.types",
    "IngestReport": "pgretrieval.types",
    "load_embedder": "pgretrieval.embed",
    "load_reranker": "pgretrieval.rerank",
    "ingest_documents": "pgretrieval.ingest",
    "read_documents": "pgretrieval.readers",
    "evaluate_run": "pgretrieval.metrics",
    "load_testset": "pgretrieval.testsets",
}

__all__ = [
    "ConfigurationError",
    "DatabaseUnavailableError",
    "IngestError",
    "InvalidInputError",
    "ModelError",
    "NotFoundError",
    "PgRetrievalError",
    "SchemaError",
    "ServerError",
    "Settings",
    "__version__",
    "load_settings",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pgretrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
