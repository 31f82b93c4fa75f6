"""Finds and reads the packaged ``sql/`` files: the single source of truth for schema and functions.

``install`` and the alembic revisions both execute the scripts built here, so the two roads cannot drift.
Schema steps run once each (they record themselves in ``pgretrieval.schema_steps``); function files are
``CREATE OR REPLACE`` and are re-applied as one script whenever their combined hash changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

SCHEMA_DIR = "schema"
FUNCTIONS_DIR = "functions"
FUNCTIONS_MARKER = "pgretrieval functions sha256="


@dataclass(frozen=True)
class SqlFile:
    """One SQL file from the package: its name (without ``.sql``) and text."""

    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def sql_root() -> Traversable:
    return resources.files("pgretrieval") / "sql"


def _read_dir(subdir: str) -> list[SqlFile]:
    folder = sql_root() / subdir
    files = [entry for entry in folder.iterdir() if entry.name.endswith(".sql")]
    return [
        SqlFile(name=entry.name[: -len(".sql")], text=entry.read_text(encoding="utf-8"))
        for entry in sorted(files, key=lambda e: e.name)
    ]


def schema_steps() -> list[SqlFile]:
    """Run-once DDL steps in the order they must be applied."""
    return _read_dir(SCHEMA_DIR)


def schema_step(name: str) -> SqlFile:
    for step in schema_steps():
        if step.name == name:
            return step
    raise KeyError(f"no schema step named {name!r} in the pgretrieval package")


def function_files() -> list[SqlFile]:
    """``CREATE OR REPLACE`` files in dependency order (their numeric prefixes)."""
    return _read_dir(FUNCTIONS_DIR)


def functions_hash() -> str:
    digest = hashlib.sha256()
    for file in function_files():
        digest.update(file.name.encode())
        digest.update(b"\0")
        digest.update(file.text.encode("utf-8"))
    return digest.hexdigest()


def functions_script() -> str:
    """All function files as one script, ending with a schema comment that records their hash."""
    parts = [f"-- {file.name}.sql\n{file.text}" for file in function_files()]
    parts.append(f"COMMENT ON SCHEMA pgretrieval IS '{FUNCTIONS_MARKER}{functions_hash()}';\n")
    return "\n".join(parts)


def uninstall_script() -> str:
    return (sql_root() / "uninstall.sql").read_text(encoding="utf-8")
