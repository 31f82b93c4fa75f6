"""Alembic environment for pgretrieval.

Revisions apply the packaged schema steps (``sql/schema``) one each; after any upgrade that reaches head,
the function files (``sql/functions``) are re-applied whenever their combined hash differs from the one
recorded in the database, so upgrading the package and running ``alembic upgrade head`` always installs
today's functions, even when no schema step changed. Everything runs in one transaction.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import URL, Engine

from migrations.sqlrun import apply_functions_if_changed

config = context.config


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("PGRETRIEVAL_DATABASE_URL")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        from pgretrieval.config import load_settings
        from pgretrieval.db import resolve_dsn

        url = resolve_dsn(load_settings())
    return url


def _engine() -> Engine:
    """An engine for a URL (any postgres scheme) or a libpq key=value DSN."""
    url = _database_url()
    if "://" not in url:
        from psycopg.conninfo import conninfo_to_dict

        parts = {key: str(value) for key, value in conninfo_to_dict(url).items()}
        port = parts.pop("port", None)
        sa_url = URL.create(
            "postgresql+psycopg",
            username=parts.pop("user", None),
            password=parts.pop("password", None),
            host=parts.pop("host", None),
            port=int(port) if port else None,
            database=parts.pop("dbname", None),
            query=parts,
        )
        return create_engine(sa_url, poolclass=pool.NullPool)
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, poolclass=pool.NullPool)


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), literal_binds=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(connection=connection, transactional_ddl=True, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()
            heads = set(context.get_context().get_current_heads())
            if heads and heads == set(context.script.get_heads()):
                apply_functions_if_changed(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
