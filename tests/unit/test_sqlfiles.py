"""Schema steps are frozen once released: their hashes are pinned here. A change to a released step is a
bug; new schema changes go into a new numbered step (and a new alembic revision)."""

from __future__ import annotations

from pathlib import Path

from pgretrieval import sqlfiles

ROOT = Path(__file__).resolve().parents[2]

FROZEN_STEPS = {
    "0001_base": "178b3dede706af7c817d0de546aa12932836958600c2a722fe5523c40c7bc0d5",
}


def test_released_schema_steps_are_unchanged() -> None:
    steps = {step.name: step.sha256 for step in sqlfiles.schema_steps()}
    for name, digest in FROZEN_STEPS.items():
        assert steps.get(name) == digest, f"schema step {name} changed after release; add a new step instead"


def test_every_schema_step_has_an_alembic_revision_and_records_itself() -> None:
    revisions = {path.stem for path in (ROOT / "migrations" / "versions").glob("*.py")}
    for step in sqlfiles.schema_steps():
        assert step.name in revisions, f"no alembic revision applies sql/schema/{step.name}.sql"
        assert f"INSERT INTO pgretrieval.schema_steps (step) VALUES ('{step.name}')" in step.text


def test_function_files_are_create_or_replace_with_pinned_search_path() -> None:
    import re

    for file in sqlfiles.function_files():
        # top-level statements only (dynamic DDL inside function bodies is indented or quoted)
        creates = re.findall(r"^CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|TRIGGER|TABLE|INDEX|VIEW)", file.text, re.M)
        plain = re.findall(r"^CREATE\s+(FUNCTION|TRIGGER|TABLE|INDEX|VIEW)\b", file.text, re.M)
        assert creates, file.name
        assert not plain, f"{file.name}: use CREATE OR REPLACE so re-applying is safe"
        functions = len(re.findall(r"CREATE OR REPLACE FUNCTION", file.text))
        pinned = len(re.findall(r"SET search_path = pg_catalog, pgretrieval", file.text))
        assert pinned >= functions, f"{file.name}: every function pins its search_path"
