"""Packaging guarantees: the wheel carries the sql/ files (an installed wheel migrates without the source
tree), and importing pgretrieval, `pgretrieval migrate` and `alembic upgrade head` never load torch."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pgretrieval import sqlfiles

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed: {result.stderr[-2000:]}")
    return next(out.glob("pgretrieval-*.whl"))


def test_wheel_contains_every_sql_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("schema", "functions"):
        for path in (ROOT / "sql" / folder).glob("*.sql"):
            assert f"pgretrieval/sql/{folder}/{path.name}" in names
    assert "pgretrieval/sql/uninstall.sql" in names
    assert "pgretrieval/data/scifact_sample.jsonl" in names


def test_installed_wheel_migrates_without_the_source_tree(wheel: Path, empty_dsn: str, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    code = (
        "import sys, pgretrieval, pgretrieval.sqlfiles as s\n"
        f"assert pgretrieval.__file__.startswith({str(target)!r}), pgretrieval.__file__\n"
        "from pgretrieval.install import install\n"
        "r = install(sys.argv[1]); print(r.applied_steps, r.functions_applied)\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code, empty_dsn], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{[s.name for s in sqlfiles.schema_steps()]} True", "False"]


def test_migrate_and_alembic_never_import_torch(empty_dsn: str) -> None:
    code = (
        "import sys\n"
        "import pgretrieval\n"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules\n"
        "from pgretrieval.cli import main\n"
        "try:\n"
        "    main(['--database-url', sys.argv[1], 'migrate'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "from alembic import command\n"
        "from alembic.config import Config\n"
        f"cfg = Config({str(ROOT / 'alembic.ini')!r})\n"
        "cfg.cmd_opts = type('O', (), {'x': ['url=' + sys.argv[1]]})()\n"
        "command.upgrade(cfg, 'head')\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, empty_dsn], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
