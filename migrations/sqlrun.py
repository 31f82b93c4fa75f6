"""Run packaged SQL scripts on alembic's connection, verbatim.

The scripts go straight to the psycopg cursor (no SQLAlchemy ``text()``): they contain ``::casts``,
``:=`` and ``%`` format strings that a bind-parameter parser would mangle.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from pgretrieval import sqlfiles


def run_script(connection: Connection, script: str) -> None:
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor:
        cursor.execute(script.encode("utf-8"))


def apply_schema_step(connection: Connection, name: str) -> None:
    """Apply one schema step unless it is already recorded (e.g. installed by `pgretrieval migrate`)."""
    step = sqlfiles.schema_step(name)
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor:
        cursor.execute(b"SELECT pg_advisory_xact_lock(1885827700)")
        cursor.execute(b"SELECT to_regclass('pgretrieval.schema_steps') IS NOT NULL")
        row = cursor.fetchone()
        if row and row[0]:
            cursor.execute("SELECT 1 FROM pgretrieval.schema_steps WHERE step = %s", (name,))
            if cursor.fetchone():
                return
    run_script(connection, step.text)


def apply_functions_if_changed(connection: Connection) -> None:
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor:
        cursor.execute(b"SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'pgretrieval'")
        row = cursor.fetchone()
    wanted = sqlfiles.FUNCTIONS_MARKER + sqlfiles.functions_hash()
    if row is not None and row[0] != wanted:
        run_script(connection, sqlfiles.functions_script())


def uninstall(connection: Connection) -> None:
    run_script(connection, sqlfiles.uninstall_script())
