"""The command line end to end on a real database: ingest a JSONL file, search it (table and JSON), and
user mistakes (unknown collection, bad filter JSON, missing file) as one clear line without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY_MODEL = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "tiny-static-minilm-64"


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGRETRIEVAL_")}
    env["PGRETRIEVAL_DATABASE_URL"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "pgretrieval", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    docs = [
        {"id": "d1", "title": "Cats", "text": "Cats purr and sleep most of the day.", "metadata": {"kind": "pet"}},
        {
            "id": "d2",
            "title": "Rockets",
            "text": "Rockets burn liquid oxygen and kerosene.",
            "metadata": {"kind": "space"},
        },
        {
            "id": "d3",
            "title": "Dogs",
            "text": "Dogs bark at the mail carrier.",
            "metadata": {"kind": "pet"},
            "created_at": "2020-05-01T00:00:00Z",
        },
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    return path


@pytest.mark.skipif(not TINY_MODEL.exists(), reason="needs ../shared/models/tiny-static-minilm-64")
def test_ingest_then_search(dsn: str, corpus: Path) -> None:
    ingest = _cli(dsn, "ingest", str(corpus), "-c", "notes", "--model", str(TINY_MODEL))
    assert ingest.returncode == 0, ingest.stderr
    assert "3 added" in ingest.stdout
    again = _cli(dsn, "ingest", str(corpus), "-c", "notes", "--model", str(TINY_MODEL))
    assert "3 unchanged" in again.stdout

    result = _cli(dsn, "search", "liquid oxygen", "-c", "notes", "--mode", "lexical", "--json", "-k", "2")
    assert result.returncode == 0, result.stderr
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert hits[0]["external_id"] == "d2" and hits[0]["lexical_rank"] == 1

    filtered = _cli(
        dsn, "search", "animals", "-c", "notes", "--mode", "hybrid", "--json", "--filter", '{"kind": "pet"}'
    )
    assert filtered.returncode == 0, filtered.stderr
    assert {json.loads(line)["external_id"] for line in filtered.stdout.splitlines()} <= {"d1", "d3"}

    table = _cli(dsn, "search", "rockets", "-c", "notes", "--mode", "lexical")
    assert table.returncode == 0 and "Rockets" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "-c", "nope", "--mode", "lexical"], 'unknown collection "nope"'),
        (["search", "x", "-c", "notes", "--filter", "{not json"], "--filter is not valid JSON"),
        (["ingest", "/no/such/file.jsonl", "-c", "notes"], "does not exist"),
        (["eval", "/no/such/dataset", "-c", "notes", "--modes", "sparse"], "unknown mode"),
    ],
)
def test_user_mistakes_are_one_clear_line(dsn: str, args: list[str], message: str) -> None:
    result = _cli(dsn, *args)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0
