"""Both deployment roads (`pgretrieval migrate` and `alembic upgrade head`) build the same schema from the
same sql/ files, re-running either is a no-op, and `alembic downgrade base` removes what they created."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from pgretrieval.install import install, schema_is_current, uninstall
from pgretrieval.server import _bin_dir

ROOT = Path(__file__).resolve().parents[2]


def _alembic(dsn: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.cmd_opts = type("Opts", (), {"x": [f"url={dsn}"]})()  # same as `alembic -x url=...`
    return cfg


def _dump(dsn: str) -> str:
    out = subprocess.run(
        [str(_bin_dir() / "pg_dump"), "--schema-only", "--schema=pgretrieval", "--no-owner", dsn],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pg_dump 18 writes a random \restrict key per run; the rest must match byte for byte.
    return "\n".join(line for line in out.splitlines() if not re.match(r"\\(un)?restrict ", line))


def _objects(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgretrieval'),"
            " (SELECT count(*) FROM pg_extension WHERE extname = 'vector'),"
            " (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            "     AND c.relname NOT LIKE 'alembic_version%%' AND n.nspname NOT LIKE 'pg_temp%%')"
        ).fetchone()
    assert row is not None
    return {"schema": row[0], "vector": row[1], "relations": row[2]}


def test_alembic_and_install_build_identical_schemas(empty_dsn: str, server_dsn: str) -> None:
    other = psycopg.conninfo.make_conninfo(empty_dsn)
    # A second empty database for the alembic road.
    name = psycopg.conninfo.conninfo_to_dict(empty_dsn)["dbname"] + "_alembic"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    alembic_dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    try:
        install(other)
        command.upgrade(_alembic(alembic_dsn), "head")
        assert _dump(other) == _dump(alembic_dsn)

        # Re-running either road changes nothing.
        assert not install(other).changed
        command.upgrade(_alembic(alembic_dsn), "head")
        assert _dump(other) == _dump(alembic_dsn)
        with psycopg.connect(alembic_dsn) as conn:
            assert schema_is_current(conn)
            assert not install(alembic_dsn).changed  # the install road sees the alembic-built schema as current

        # Downgrade to base removes the schema and the vector extension it created.
        command.downgrade(_alembic(alembic_dsn), "base")
        assert _objects(alembic_dsn) == {"schema": 0, "vector": 0, "relations": 0}
        uninstall(other)
        assert _objects(other) == {"schema": 0, "vector": 0, "relations": 0}
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_uninstall_keeps_a_vector_extension_it_did_not_create(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE TABLE public.mine (v vector(3))")
    install(empty_dsn)
    uninstall(empty_dsn)
    assert _objects(empty_dsn) == {"schema": 0, "vector": 1, "relations": 1}


def test_functions_are_reapplied_when_they_change(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("COMMENT ON SCHEMA pgretrieval IS 'pgretrieval functions sha256=outdated'")
        conn.execute("DROP FUNCTION pgretrieval.compact_stats(text)")
        assert not schema_is_current(conn)
    command.upgrade(_alembic(dsn), "head")
    with psycopg.connect(dsn) as conn:
        assert schema_is_current(conn)
        conn.execute("SELECT pgretrieval.compact_stats()")


@pytest.mark.parametrize("road", ["install", "alembic"])
def test_failed_install_leaves_nothing_half_created(empty_dsn: str, road: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgretrieval import sqlfiles

    real = sqlfiles.functions_script
    monkeypatch.setattr(sqlfiles, "functions_script", lambda: real() + "\nSELECT this_is_not_sql(;\n")
    with pytest.raises(Exception, match="syntax error"):
        if road == "install":
            install(empty_dsn)
        else:
            command.upgrade(_alembic(empty_dsn), "head")
    assert _objects(empty_dsn) == {"schema": 0, "vector": 0, "relations": 0}
