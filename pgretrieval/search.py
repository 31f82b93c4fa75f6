"""The Retriever: a connection pool, an embedder and a reranker wired around the SQL search functions.

Every search is one call of ``pgretrieval.hybrid_search`` / ``dense_search`` / ``lexical_search`` with named
arguments; nothing of the retrieval itself is re-implemented here. Python only embeds the query (through the
``embedding_cache``, purpose 'query') and, when asked, reranks the SQL candidates with a cross-encoder.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from pgretrieval.config import Settings, load_settings
from pgretrieval.db import create_pool, resolve_dsn
from pgretrieval.embed import Embedder, load_embedder
from pgretrieval.errors import ConfigurationError, InvalidInputError, NotFoundError, from_database_error
from pgretrieval.ingest import cached_embeddings, delete_documents, ingest_documents
from pgretrieval.readers import parse_datetime
from pgretrieval.rerank import Reranker, load_reranker, rerank_hits
from pgretrieval.types import CollectionInfo, Document, IngestReport, SearchHit, SearchResults

MODES = ("hybrid", "dense", "lexical")
COLD_START_DOCUMENTS = 100  # the guide: under ~100 documents, skip vectors and use full-text matching
DEFAULT_RERANK_CANDIDATES = 100

# The SQL functions' named arguments and their types (casts keep overload resolution unambiguous).
ARG_TYPES: dict[str, str] = {
    "query_text": "text",
    "query_embedding": "vector",
    "match_count": "integer",
    "collection": "text",
    "embedder": "text",
    "filter": "jsonb",
    "created_after": "timestamptz",
    "created_before": "timestamptz",
    "fusion": "text",
    "vector_weight": "double precision",
    "bm25_weight": "double precision",
    "rrf_k": "integer",
    "candidates": "integer",
    "metadata_boost": "jsonb",
    "metadata_weight": "double precision",
    "decay": "jsonb",
    "ef_search": "integer",
    "k1": "double precision",
    "b": "double precision",
    "require_all_terms": "boolean",
    "exact": "boolean",
}
_COMMON = ("match_count", "collection", "filter", "created_after", "created_before")
FUNCTION_ARGS: dict[str, frozenset[str]] = {
    "hybrid": frozenset(
        (*_COMMON, "query_text", "query_embedding", "embedder", "fusion", "vector_weight", "bm25_weight", "rrf_k")
        + ("candidates", "metadata_boost", "metadata_weight", "decay", "ef_search", "k1", "b", "require_all_terms")
    ),
    "dense": frozenset((*_COMMON, "query_embedding", "embedder", "ef_search", "exact")),
    "lexical": frozenset((*_COMMON, "query_text", "k1", "b", "require_all_terms")),
}


def search_call(mode: str, args: Mapping[str, Any]) -> tuple[sql.Composed, list[Any]]:
    """``SELECT * FROM pgretrieval.<mode>_search(name => $1::type, ...)`` for the non-None arguments."""
    allowed = FUNCTION_ARGS[mode]
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for name, value in args.items():
        if value is None:
            continue
        if name not in allowed:
            raise InvalidInputError(f"{mode}_search has no argument {name!r}; it takes {', '.join(sorted(allowed))}.")
        parts.append(sql.SQL("{} => %s::{}").format(sql.Identifier(name), sql.SQL(ARG_TYPES[name])))
        params.append(_adapt(value))
    query = sql.SQL("SELECT * FROM pgretrieval.{}({})").format(
        sql.Identifier(f"{mode}_search"), sql.SQL(", ").join(parts)
    )
    return query, params


def _adapt(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return Vector(value)
    if isinstance(value, (Mapping, list)):
        return Jsonb(value)
    return value


def _timestamp(value: Any, field: str) -> datetime | None:
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise InvalidInputError(f"{field}: {exc}") from exc


class Retriever:
    """Connect (DSN, or the embedded server by default), manage collections, ingest, search and rerank.

    ``embedder`` may be an Embedder, a model name/path, or None: then each collection is searched with its
    default embedder as registered in the database (loaded once), and ingest uses PGRETRIEVAL_EMBED_MODEL.
    ``reranker`` likewise (None: PGRETRIEVAL_RERANK_MODEL, loaded on the first ``rerank=`` search).
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        settings: Settings | None = None,
        embedder: Embedder | str | None = None,
        reranker: Reranker | str | None = None,
        pool_size: int = 4,
        collection: str | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.dsn = dsn or resolve_dsn(self.settings)
        self.collection = collection
        self._embedder_spec = embedder
        self._reranker_spec = reranker
        self._embedders: dict[str, Embedder] = {}
        self._reranker: Reranker | None = reranker if not isinstance(reranker, (str, type(None))) else None
        self._embedder_ids: dict[str, int | None] = {}
        self.pool: ConnectionPool = create_pool(self.dsn, min_size=1, max_size=max(1, pool_size))
        try:
            from pgretrieval.install import require_schema

            with self.pool.connection() as conn:
                require_schema(conn)
        except BaseException:
            self.pool.close()
            raise

    # -- lifecycle

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- collections

    def create_collection(
        self,
        name: str,
        *,
        text_config: str = "english",
        tenant: str = "default",
        description: str = "",
        if_not_exists: bool = False,
    ) -> int:
        row = self._fetch(
            "SELECT pgretrieval.create_collection(%s, text_config => %s, tenant => %s, description => %s, "
            "if_not_exists => %s)",
            (name, text_config, tenant, description, if_not_exists),
        )
        return int(row[0][0])

    def list_collections(self) -> list[CollectionInfo]:
        rows = self._fetch(
            "SELECT c.name, c.text_config, c.tenant, c.description, de.name,"
            " coalesce((SELECT array_agg(e.name ORDER BY e.name) FROM pgretrieval.collection_embedders ce"
            "   JOIN pgretrieval.embedders e ON e.id = ce.embedder_id WHERE ce.collection_id = c.id), '{}'),"
            " (SELECT count(*) FROM pgretrieval.documents d WHERE d.collection_id = c.id),"
            " (SELECT count(*) FROM pgretrieval.chunks k WHERE k.collection_id = c.id), c.created_at"
            " FROM pgretrieval.collections c LEFT JOIN pgretrieval.embedders de ON de.id = c.default_embedder_id"
            " ORDER BY c.name"
        )
        return [
            CollectionInfo(
                name=r[0],
                text_config=r[1],
                tenant=r[2],
                description=r[3],
                default_embedder=r[4],
                embedders=tuple(r[5]),
                documents=int(r[6]),
                chunks=int(r[7]),
                created_at=r[8],
            )
            for r in rows
        ]

    def drop_collection(self, name: str, *, if_exists: bool = False) -> bool:
        return bool(self._fetch("SELECT pgretrieval.drop_collection(%s, if_exists => %s)", (name, if_exists))[0][0])

    # -- documents

    def add_documents(
        self,
        documents: Iterable[Document],
        *,
        collection: str | None = None,
        embedder: Embedder | str | None = None,
        **options: Any,
    ) -> IngestReport:
        """Upsert documents (see :func:`pgretrieval.ingest.ingest_documents` for the options)."""
        name = collection or self.collection
        if not name:
            raise InvalidInputError("pass collection= (or Retriever(collection=...)) to add documents.")
        model = self._ingest_embedder(embedder)
        options.setdefault("progress", False)
        # Its own two connections (not the pool's): one writes while the other reads ahead for the next batch.
        return ingest_documents(self.dsn, name, documents, model, **options)

    def delete_documents(
        self,
        ids: Sequence[str] | None = None,
        *,
        collection: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> int:
        name = self._collection_name(collection)
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                return delete_documents(conn, name, ids=ids, filter=filter)
            finally:
                conn.autocommit = False

    # -- search

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        collection: str | None = None,
        mode: str | None = None,
        filters: Mapping[str, Any] | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        weights: tuple[float, float] | None = None,
        decay: Mapping[str, Any] | None = None,
        rerank: bool | int = False,
        embedder: str | None = None,
        **sql_options: Any,
    ) -> SearchResults:
        """Search one collection. ``mode`` None means hybrid, or lexical while the collection is cold (under
        100 documents; a note says so). ``weights`` = (vector, bm25). ``rerank=True`` reranks the top 100,
        ``rerank=N`` the top N. Other keyword arguments go to the SQL function by name (fusion, rrf_k, ...)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query is empty.")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        if mode is not None and mode not in MODES:
            raise InvalidInputError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}.")
        name = self._collection_name(collection)
        notes: list[str] = []
        timings: dict[str, float] = {}
        started = time.perf_counter()
        used_mode = mode or "hybrid"
        if mode is None and self._is_cold(name):
            used_mode = "lexical"
            notes.append(
                f"collection {name!r} has fewer than {COLD_START_DOCUMENTS} documents: searched lexically (cold "
                "start); pass mode='hybrid' or mode='dense' to use vectors anyway."
            )
        candidates = self._rerank_depth(rerank, k)
        args: dict[str, Any] = {
            "match_count": candidates or k,
            "collection": name,
            "filter": dict(filters) if filters is not None else None,
            "created_after": _timestamp(created_after, "created_after"),
            "created_before": _timestamp(created_before, "created_before"),
        }
        if used_mode in ("hybrid", "lexical"):
            args["query_text"] = query
        if weights is not None or decay is not None:
            if used_mode == "hybrid":
                if weights is not None:
                    if len(weights) != 2:
                        raise InvalidInputError(f"weights is (vector_weight, bm25_weight), got {weights!r}")
                    args["vector_weight"], args["bm25_weight"] = float(weights[0]), float(weights[1])
                args["decay"] = dict(decay) if decay is not None else None
            elif mode is None:
                notes.append("weights/decay apply to hybrid search only and were not used.")
            else:
                raise InvalidInputError("weights and decay apply to mode='hybrid' only.")
        if used_mode in ("hybrid", "dense"):
            t0 = time.perf_counter()
            model, model_name = self._search_embedder(name, embedder)
            args["embedder"] = model_name
            args["query_embedding"] = self.embed_query(query, model)
            timings["embed"] = 1000 * (time.perf_counter() - t0)
        for key, value in sql_options.items():
            if key in args:
                raise InvalidInputError(f"{key!r} is set by search() itself; use its own parameter.")
            args[key] = value
        statement, params = search_call(used_mode, args)
        t0 = time.perf_counter()
        rows = self._fetch(statement, params)
        timings["sql"] = 1000 * (time.perf_counter() - t0)
        hits = [SearchHit.from_row(r) for r in rows]
        if candidates:
            t0 = time.perf_counter()
            hits = rerank_hits(self._get_reranker(), query, hits, k)
            timings["rerank"] = 1000 * (time.perf_counter() - t0)
        timings["total"] = 1000 * (time.perf_counter() - started)
        return SearchResults(hits=tuple(hits), mode=used_mode, timings=timings, notes=notes)

    def embed_query(self, query: str, embedder: Embedder | None = None) -> np.ndarray:
        """The query's vector, from ``embedding_cache`` when this text was embedded before."""
        model = embedder or self._ingest_embedder(None)
        with self.pool.connection() as conn:
            eid = self._embedder_id(conn, model.name)
            if eid is None:
                return np.asarray(model.embed_queries([query])[0], dtype=np.float32)
            with conn.transaction():
                vectors, _, _ = cached_embeddings(conn, model, eid, "query", [query])
            return np.asarray(vectors[0], dtype=np.float32)

    # -- helpers

    def _fetch(self, statement: Any, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.pool.connection() as conn:
            try:
                with conn.transaction():
                    return conn.execute(statement, params).fetchall()
            except psycopg.Error as exc:
                mapped = from_database_error(exc)
                if mapped is not None:
                    raise mapped from exc
                raise

    def _collection_name(self, collection: str | None) -> str:
        name = collection or self.collection
        if name:
            return name
        names = [r[0] for r in self._fetch("SELECT name FROM pgretrieval.collections ORDER BY name")]
        if len(names) == 1:
            return str(names[0])
        if not names:
            raise NotFoundError("there is no collection yet; ingest documents first (pgretrieval ingest PATH).")
        raise InvalidInputError(f"pass collection=; there are {len(names)} collections: {', '.join(names)}.")

    def _is_cold(self, name: str) -> bool:
        rows = self._fetch(
            "SELECT count(*) FROM (SELECT 1 FROM pgretrieval.documents WHERE collection_id = "
            "pgretrieval.collection_id(%s) LIMIT %s) x",
            (name, COLD_START_DOCUMENTS),
        )
        return int(rows[0][0]) < COLD_START_DOCUMENTS

    @staticmethod
    def _rerank_depth(rerank: bool | int, k: int) -> int:
        if rerank is False or rerank is None:
            return 0
        if rerank is True:
            return max(DEFAULT_RERANK_CANDIDATES, k)
        if isinstance(rerank, int) and rerank >= 1:
            return max(int(rerank), k)
        raise InvalidInputError(f"rerank is True, False or a number of candidates, got {rerank!r}")

    def _embedder_id(self, conn: psycopg.Connection[Any], name: str) -> int | None:
        if name not in self._embedder_ids:
            with conn.transaction():
                row = conn.execute("SELECT id FROM pgretrieval.embedders WHERE name = %s", (name,)).fetchone()
            if row is None:
                return None  # not registered (yet): don't remember, ingest may register it
            self._embedder_ids[name] = int(row[0])
        return self._embedder_ids[name]

    def _ingest_embedder(self, spec: Embedder | str | None) -> Embedder:
        spec = spec if spec is not None else self._embedder_spec
        if spec is None:
            spec = self.settings.embed_model
        if isinstance(spec, str):
            if spec not in self._embedders:
                model = load_embedder(spec, device=self.settings.device, batch_size=self.settings.embed_batch_size)
                self._embedders[spec] = model
                self._embedders.setdefault(model.name, model)
            return self._embedders[spec]
        return spec

    def _search_embedder(self, collection: str, name: str | None) -> tuple[Embedder, str]:
        """The query embedder: the Retriever's own if given, else the one registered for the collection."""
        if name is None and self._embedder_spec is not None:
            model = self._ingest_embedder(None)
            return model, model.name
        if name is not None and name in self._embedders:
            return self._embedders[name], name
        rows = self._fetch(
            "SELECT e.name, e.backend, e.model, e.query_prompt, e.passage_prompt, e.normalize, e.dimensions "
            "FROM pgretrieval.embedders e WHERE e.id = coalesce("
            " (SELECT id FROM pgretrieval.embedders WHERE name = %s),"
            " (SELECT default_embedder_id FROM pgretrieval.collections WHERE name = %s))",
            (name, collection),
        )
        if not rows:
            if name is not None:
                raise NotFoundError(f"unknown embedder {name!r}.")
            raise InvalidInputError(
                f"collection {collection!r} has no embedder, so it cannot be searched with vectors; use "
                "mode='lexical' or ingest with an embedding model."
            )
        reg_name, backend, model_id, query_prompt, passage_prompt, normalize, dims = rows[0]
        if reg_name not in self._embedders:
            model = load_embedder(
                model_id,
                backend=backend,
                device=self.settings.device,
                batch_size=self.settings.embed_batch_size,
                name=reg_name,
                query_prompt=query_prompt,
                passage_prompt=passage_prompt,
                normalize=normalize,
            )
            if model.dimensions != dims:
                raise ConfigurationError(
                    f"embedder {reg_name!r} is registered with {dims} dimensions but {model_id!r} now produces "
                    f"{model.dimensions}; the model changed. Re-ingest under a new embedder name."
                )
            self._embedders[reg_name] = model
        return self._embedders[reg_name], reg_name

    def _get_reranker(self) -> Reranker:
        if self._reranker is None:
            spec = self._reranker_spec if isinstance(self._reranker_spec, str) else self.settings.rerank_model
            self._reranker = load_reranker(spec, device=self.settings.device)
        return self._reranker
