"""Apply the packaged ``sql/`` files without alembic (``pgretrieval migrate``, tests, notebooks).

The whole install runs in one transaction under an advisory lock: two concurrent installs serialise, and a
failure leaves nothing half-created. Running it again is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from pgretrieval import sqlfiles
from pgretrieval.db import connect
from pgretrieval.errors import SchemaError

# pg_advisory_xact_lock key shared with the alembic revisions' expectations: "pgretrieval install".
INSTALL_LOCK_KEY = 0x70677274  # "pgrt"


@dataclass(frozen=True)
class InstallReport:
    """What one install did: the schema steps it applied and whether it (re)applied the functions."""

    applied_steps: list[str] = field(default_factory=list)
    functions_applied: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.applied_steps) or self.functions_applied


def applied_steps(conn: psycopg.Connection[Any]) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('pgretrieval.schema_steps') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return set()
        cur.execute("SELECT step FROM pgretrieval.schema_steps")
        return {r[0] for r in cur.fetchall()}


def installed_functions_hash(conn: psycopg.Connection[Any]) -> str | None:
    with conn.cursor() as cur:
        cur.execute("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'pgretrieval'")
        row = cur.fetchone()
    comment = row[0] if row else None
    if comment and comment.startswith(sqlfiles.FUNCTIONS_MARKER):
        return str(comment[len(sqlfiles.FUNCTIONS_MARKER) :])
    return None


def check_vector_available(conn: psycopg.Connection[Any]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector'),"
            " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
        )
        row = cur.fetchone()
    installed, available = row if row else (False, False)
    if not installed and not available:
        raise SchemaError(
            "the pgvector extension is not available on this PostgreSQL server; install pgvector "
            "(or use the pgvector/pgvector Docker image, or unset PGRETRIEVAL_DATABASE_URL to use the embedded "
            "server) and run migrate again."
        )


def install_on(conn: psycopg.Connection[Any]) -> InstallReport:
    """Install or upgrade on an open connection, inside the caller's transaction (not committed here)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK_KEY,))
    check_vector_available(conn)
    done = applied_steps(conn)
    applied: list[str] = []
    with conn.cursor() as cur:
        for step in sqlfiles.schema_steps():
            if step.name in done:
                continue
            cur.execute(step.text.encode("utf-8"))
            applied.append(step.name)
    functions_applied = False
    if applied or installed_functions_hash(conn) != sqlfiles.functions_hash():
        with conn.cursor() as cur:
            cur.execute(sqlfiles.functions_script().encode("utf-8"))
        functions_applied = True
    return InstallReport(applied_steps=applied, functions_applied=functions_applied)


def install(dsn: str) -> InstallReport:
    """Install or upgrade the pgretrieval schema and functions at ``dsn`` in one transaction."""
    conn = connect(dsn, register_vector=False)
    try:
        try:
            report = install_on(conn)
            conn.commit()
        except psycopg.errors.InsufficientPrivilege as exc:
            conn.rollback()
            raise SchemaError(
                f"the database user may not install pgretrieval ({exc.diag.message_primary}); run migrate as the "
                "database owner or a role allowed to CREATE EXTENSION vector and CREATE SCHEMA."
            ) from exc
        except psycopg.Error as exc:
            conn.rollback()
            raise SchemaError(f"installing pgretrieval failed and was rolled back: {exc}") from exc
        except BaseException:
            conn.rollback()
            raise
    finally:
        conn.close()
    return report


def uninstall(dsn: str) -> None:
    """Remove the pgretrieval schema (and the vector extension if pgretrieval created it)."""
    conn = connect(dsn, register_vector=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK_KEY,))
            cur.execute(sqlfiles.uninstall_script().encode("utf-8"))
        conn.commit()
    finally:
        conn.close()


def schema_is_current(conn: psycopg.Connection[Any]) -> bool:
    """True when every packaged schema step is applied and the functions match the package."""
    steps = {s.name for s in sqlfiles.schema_steps()}
    return steps <= applied_steps(conn) and installed_functions_hash(conn) == sqlfiles.functions_hash()


def require_schema(conn: psycopg.Connection[Any]) -> None:
    """Raise a clear error if the database has no (or an outdated) pgretrieval schema."""
    current = schema_is_current(conn)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE and not conn.autocommit:
        conn.rollback()
    if not current:
        raise SchemaError(
            "the pgretrieval schema is missing or outdated in this database; run `pgretrieval migrate` "
            "(or `alembic upgrade head`) first."
        )
