"""pgretrieval: PostgreSQL-native retrieval for RAG.

Dense search (pgvector HNSW), real BM25 over tsvector, JSONB metadata filters, time decay and rank fusion
all run inside PostgreSQL behind ``pgretrieval.hybrid_search(...)``; this package embeds, chunks, ingests,
reranks, evaluates and fine-tunes. Importing it loads no model stack (torch is imported lazily).
"""

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
]
