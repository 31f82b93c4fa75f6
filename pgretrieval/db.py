"""Connections: resolve the DSN (explicit URL or the embedded server), connect, pool, register pgvector."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from pgretrieval.config import Settings
from pgretrieval.errors import DatabaseUnavailableError


def redact(dsn: str) -> str:
    """The DSN with its password replaced, for messages."""
    dsn = re.sub(r"(postgres(?:ql)?://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password=)\S+", r"\1***", dsn)


def resolve_dsn(settings: Settings, *, start: bool = True) -> str:
    """The DSN to use: PGRETRIEVAL_DATABASE_URL if set, else the embedded server's (started if needed)."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    from pgretrieval.server import EmbeddedServer  # the embedded server is only touched when used

    server = EmbeddedServer(settings.home, port=settings.port)
    return server.start().url if start else server.url()


def normalize_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs (``postgresql+psycopg://``) as well as plain libpq ones."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


def register_vector_if_available(conn: psycopg.Connection[Any]) -> None:
    """Register pgvector's adapters when the extension exists (before ``migrate`` it may not)."""
    from pgvector.psycopg import register_vector

    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_type WHERE typname = 'vector'")
        has_vector = cur.fetchone() is not None
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE and not conn.autocommit:
        conn.rollback()
    if has_vector:
        register_vector(conn)


def connect(dsn: str, *, autocommit: bool = False, register_vector: bool = True) -> psycopg.Connection[Any]:
    """Open a connection, turning "cannot connect" into one clear sentence."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(connect_failure_message(dsn, exc)) from exc
    if register_vector:
        register_vector_if_available(conn)
    return conn


def connect_failure_message(dsn: str, exc: BaseException) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    reason = re.sub(r"^connection failed: ", "", reason)
    return (
        f"cannot connect to {redact(dsn)}: {reason}. Check PGRETRIEVAL_DATABASE_URL (or unset it to use the "
        "embedded server) and that the server is running."
    )


def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 30.0) -> ConnectionPool:
    """A psycopg pool whose connections have pgvector registered."""

    def configure(conn: psycopg.Connection[Any]) -> None:
        register_vector_if_available(conn)
        conn.commit()

    # Fail fast with our message if the server cannot be reached at all.
    connect(dsn, register_vector=False).close()
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        configure=configure,
        kwargs={"connect_timeout": 10},
        open=False,
    )
    pool.open(wait=True, timeout=timeout)
    return pool
