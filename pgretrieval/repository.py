"""SQLAlchemy 2.0 access for applications that already use sessions: mapped classes over the pgretrieval
tables and a repository whose ``search`` calls ``pgretrieval.hybrid_search`` (via ``func``) in the caller's
session and transaction.

The mapped classes mirror ``sql/schema`` column for column; they are for reading and for joining with the
application's own tables. Writes should go through ingest (chunking, embeddings and BM25 statistics are
maintained together there and by the triggers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
from pgvector.sqlalchemy import VECTOR
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    bindparam,
    cast,
    column,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, TSVECTOR
from sqlalchemy.engine import URL
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine

from pgretrieval.errors import InvalidInputError
from pgretrieval.types import SearchHit

SCHEMA = "pgretrieval"
TIMESTAMPTZ = TIMESTAMP(timezone=True)


def sqlalchemy_url(dsn: str) -> str:
    """A ``postgresql+psycopg://`` URL from a libpq URL or a ``key=value`` DSN."""
    if re.match(r"^postgres(ql)?(\+\w+)?://", dsn):
        return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", dsn)
    parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    query = {k: v for k, v in parts.items() if k not in ("user", "password", "host", "port", "dbname")}
    url = URL.create(
        "postgresql+psycopg",
        username=parts.get("user"),
        password=parts.get("password"),
        host=parts.get("host"),
        port=int(parts["port"]) if parts.get("port") else None,
        database=parts.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class EmbedderRecord(Base):
    __tablename__ = "embedders"

    id: Mapped[int] = mapped_column(Integer, Identity(always=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    backend: Mapped[str] = mapped_column(Text, server_default="sentence-transformers")
    model: Mapped[str] = mapped_column(Text)
    dimensions: Mapped[int] = mapped_column(Integer)
    distance: Mapped[str] = mapped_column(Text, server_default="cosine")
    normalize: Mapped[bool] = mapped_column(Boolean, server_default="true")
    query_prompt: Mapped[str] = mapped_column(Text, server_default="")
    passage_prompt: Mapped[str] = mapped_column(Text, server_default="")
    max_seq_length: Mapped[int | None] = mapped_column(Integer)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())


class CollectionRecord(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, Identity(always=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    tenant: Mapped[str] = mapped_column(Text, server_default="default")
    text_config: Mapped[str] = mapped_column(Text, server_default="english")
    default_embedder_id: Mapped[int | None] = mapped_column(ForeignKey(EmbedderRecord.id))
    search_settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())

    default_embedder: Mapped[EmbedderRecord | None] = relationship(lazy="joined")
    documents: Mapped[list[DocumentRecord]] = relationship(back_populates="collection", viewonly=True)


class DocumentRecord(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "external_id"),)

    collection_id: Mapped[int] = mapped_column(ForeignKey(CollectionRecord.id, ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    external_id: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, server_default="")
    content: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())
    content_hash: Mapped[bytes] = mapped_column(LargeBinary)

    collection: Mapped[CollectionRecord] = relationship(back_populates="documents", viewonly=True)
    chunks: Mapped[list[ChunkRecord]] = relationship(
        back_populates="document", order_by="ChunkRecord.ordinal", viewonly=True
    )


class ChunkRecord(Base):
    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("collection_id", "document_id", "ordinal"),
        ForeignKeyConstraint(
            ["collection_id", "document_id"], [DocumentRecord.collection_id, DocumentRecord.id], ondelete="CASCADE"
        ),
        CheckConstraint("ordinal >= 0"),
    )

    collection_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    document_id: Mapped[int] = mapped_column(BigInteger)
    ordinal: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer, server_default="0")
    start_offset: Mapped[int | None] = mapped_column(Integer)
    end_offset: Mapped[int | None] = mapped_column(Integer)
    embed_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    tsv: Mapped[Any] = mapped_column(TSVECTOR)

    document: Mapped[DocumentRecord] = relationship(back_populates="chunks", viewonly=True)


class EmbeddingRecord(Base):
    __tablename__ = "embeddings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["collection_id", "chunk_id"], [ChunkRecord.collection_id, ChunkRecord.id], ondelete="CASCADE"
        ),
    )

    collection_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunk_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    embedder_id: Mapped[int] = mapped_column(ForeignKey(EmbedderRecord.id), primary_key=True)
    embedding: Mapped[Any] = mapped_column(VECTOR())


# ----------------------------------------------------------------------------------------- named arguments


class NamedArgument(ColumnElement[Any]):
    """``name => value`` inside a function call: PostgreSQL's named notation, which SQLAlchemy lacks."""

    __visit_name__ = "pgretrieval_named_argument"
    inherit_cache = True
    _traverse_internals = [("name", InternalTraversal.dp_string), ("value", InternalTraversal.dp_clauseelement)]

    def __init__(self, name: str, value: ColumnElement[Any]) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise InvalidInputError(f"invalid SQL argument name {name!r}")
        self.name = name
        self.value = value
        self.type = value.type


@compiles(NamedArgument)
def _compile_named(element: NamedArgument, compiler: Any, **kw: Any) -> str:
    return f"{element.name} => {compiler.process(element.value, **kw)}"


_SA_TYPES: dict[str, TypeEngine[Any]] = {
    "text": Text(),
    "vector": VECTOR(),
    "integer": Integer(),
    "jsonb": JSONB(),
    "timestamptz": TIMESTAMPTZ,
    "double precision": Float(),
    "boolean": Boolean(),
}


def result_columns() -> list[ColumnElement[Any]]:
    """The search functions' result columns (fresh objects per statement: a column belongs to one table)."""
    return [
        column("chunk_id", BigInteger),
        column("document_id", BigInteger),
        column("external_id", Text),
        column("title", Text),
        column("content", Text),
        column("metadata", JSONB),
        column("created_at", TIMESTAMPTZ),
        column("score", Float),
        column("dense_rank", Integer),
        column("dense_score", Float),
        column("lexical_rank", Integer),
        column("lexical_score", Float),
        column("metadata_rank", Integer),
        column("recency", Float),
    ]


def named(name: str, value: Any) -> NamedArgument:
    """A typed, bound ``name => CAST(:param AS type)`` argument for the pgretrieval search functions."""
    from pgretrieval.search import ARG_TYPES

    sa_type = _SA_TYPES[ARG_TYPES[name]]
    if isinstance(value, np.ndarray):
        value = value.astype(np.float32).tolist()
    return NamedArgument(name, cast(bindparam(None, value, type_=sa_type), sa_type))


class RetrievalRepository:
    """Search and read pgretrieval data through a SQLAlchemy Session (the caller's connection and transaction).

    ``embedder`` embeds queries for dense/hybrid search (or pass ``query_embedding``); lexical search needs none.
    """

    def __init__(self, session: Session, *, embedder: Any | None = None, collection: str | None = None) -> None:
        self.session = session
        self.embedder = embedder
        self.collection = collection

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        collection: str | None = None,
        mode: str = "hybrid",
        filters: Mapping[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        weights: tuple[float, float] | None = None,
        decay: Mapping[str, Any] | None = None,
        query_embedding: np.ndarray | list[float] | None = None,
        embedder: str | None = None,
        **sql_options: Any,
    ) -> list[SearchHit]:
        """One call of ``pgretrieval.<mode>_search`` with named arguments; rows mapped onto SearchHit."""
        from pgretrieval.search import FUNCTION_ARGS

        if mode not in FUNCTION_ARGS:
            raise InvalidInputError(f"unknown search mode {mode!r}; use hybrid, dense or lexical.")
        args: dict[str, Any] = {
            "match_count": k,
            "collection": collection or self.collection,
            "filter": dict(filters) if filters is not None else None,
            "created_after": created_after,
            "created_before": created_before,
        }
        if mode != "dense":
            args["query_text"] = query
        if mode != "lexical":
            if query_embedding is None:
                if self.embedder is None:
                    raise InvalidInputError(f"{mode} search needs an embedder or query_embedding=.")
                query_embedding = self.embedder.embed_queries([query])[0]
            args["query_embedding"] = np.asarray(query_embedding, dtype=np.float32)
            args["embedder"] = embedder or (getattr(self.embedder, "name", None) if self.embedder else None)
        if weights is not None:
            args["vector_weight"], args["bm25_weight"] = float(weights[0]), float(weights[1])
        if decay is not None:
            args["decay"] = dict(decay)
        args.update(sql_options)
        allowed = FUNCTION_ARGS[mode]
        unknown = sorted(n for n, v in args.items() if v is not None and n not in allowed)
        if unknown:
            raise InvalidInputError(f"{mode}_search has no argument(s) {', '.join(unknown)}.")
        fn = getattr(func.pgretrieval, f"{mode}_search")
        call = fn(*(named(n, v) for n, v in args.items() if v is not None))
        table = call.table_valued(*result_columns()).render_derived(name="hits")
        rows = self.session.execute(select(table)).all()
        return [SearchHit.from_row(tuple(r)) for r in rows]

    def collections(self) -> list[CollectionRecord]:
        return list(self.session.scalars(select(CollectionRecord).order_by(CollectionRecord.name)))

    def get_document(self, collection: str, external_id: str) -> DocumentRecord | None:
        stmt = (
            select(DocumentRecord)
            .join(CollectionRecord, CollectionRecord.id == DocumentRecord.collection_id)
            .where(CollectionRecord.name == collection, DocumentRecord.external_id == external_id)
        )
        return self.session.scalars(stmt).one_or_none()

    def count_documents(self, collection: str) -> int:
        stmt = (
            select(func.count())
            .select_from(DocumentRecord)
            .join(CollectionRecord, CollectionRecord.id == DocumentRecord.collection_id)
            .where(CollectionRecord.name == collection)
        )
        return int(self.session.scalar(stmt) or 0)
