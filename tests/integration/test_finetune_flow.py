"""`pgretrieval finetune` end to end on a made-up BEIR folder with a tiny static model: mining with our own hybrid
search, a few training steps, the second embedder filled, base vs fine-tuned compared, the default switched only
when asked. Runs in well under a minute on 2 CPU cores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgretrieval.config import load_settings
from pgretrieval.db import connect
from pgretrieval.errors import InvalidInputError
from pgretrieval.finetune_flow import run_finetune

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TINY = SHARED / "models" / "tiny-static-minilm-64"

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(not TINY.is_dir(), reason=f"{TINY} not present (shared models folder absent)"),
    pytest.mark.filterwarnings("ignore::pgretrieval.finetune.FewTrainingPairsWarning"),
]

TOPICS = {
    "cats": "cats purr chase mice sleep sun whiskers",
    "postgres": "postgresql heap pages write ahead logging durability vacuum",
    "python": "python indentation dynamic typing standard library generators",
    "volcano": "volcano magma gas ash erupts crust lava",
}


def _beir(folder: Path) -> Path:
    """12 documents (3 per topic); 8 train queries (2 per topic) and 4 test queries, each asking for a topic."""
    (folder / "qrels").mkdir(parents=True)
    docs = [
        {"_id": f"{t}{i}", "title": f"{t} note {i}", "text": f"{text} note {i} about {t}"}
        for t, text in TOPICS.items()
        for i in range(3)
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    for split, starts, name in (("train", (0, 2), "queries-train.jsonl"), ("test", (4,), "queries.jsonl")):
        queries = [
            {"_id": f"{split}-{t}-{s}", "text": " ".join(TOPICS[t].split()[s : s + 2])} for t in TOPICS for s in starts
        ]
        (folder / name).write_text("".join(json.dumps(q) + "\n" for q in queries))
        rows = [f"{q['_id']}\t{q['_id'].split('-')[1]}{i}\t1" for q in queries for i in range(3)]
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return folder


def _state(dsn: str) -> tuple[str, dict[str, int], int]:
    with connect(dsn, autocommit=True) as conn:
        default = conn.execute(
            "SELECT e.name FROM pgretrieval.collections c JOIN pgretrieval.embedders e "
            "ON e.id = c.default_embedder_id WHERE c.name = 'notes'"
        ).fetchone()
        per = conn.execute(
            "SELECT e.name, count(*) FROM pgretrieval.embeddings x JOIN pgretrieval.embedders e "
            "ON e.id = x.embedder_id GROUP BY 1"
        ).fetchall()
        chunks = conn.execute("SELECT count(*) FROM pgretrieval.chunks").fetchone()
    assert default is not None and chunks is not None
    return str(default[0]), {str(n): int(c) for n, c in per}, int(chunks[0])


def test_finetune_flow_adds_embedder_compares_and_keeps_default(dsn: str, tmp_path: Path) -> None:
    folder = _beir(tmp_path / "beir")
    settings = load_settings(database_url=dsn, embed_model=str(TINY), device="cpu")
    logs: list[str] = []
    options: dict[str, Any] = {"max_steps": 3, "batch_size": 4, "seed": 1, "validation": 0.25, "progress": False}
    report = run_finetune(settings, folder, "notes", output=tmp_path / "ft", name="tiny-ft", log=logs.append, **options)
    default, per, chunks = _state(dsn)
    base = report.base_embedder
    assert default == base == report.default_embedder and not report.switched
    assert per == {base: chunks, "tiny-ft": chunks} and chunks == 12
    assert report.embedded.chunks_written == 12
    assert report.training.steps_run == 3 and report.training.model_path == (tmp_path / "ft").resolve()
    assert report.train_pairs > 0 and any("hard negative" in line for line in logs)
    assert report.evaluation is not None
    assert [r.mode for r in report.evaluation.runs] == [
        "dense (base)",
        "dense (fine-tuned)",
        "hybrid (base)",
        "hybrid (fine-tuned)",
    ]
    assert report.evaluation.baseline == "dense (base)"
    assert set(report.comparisons) == {"dense", "hybrid"}
    assert all(c.n == 4 for c in report.comparisons.values())
    assert any("set_default_embedder" in note for note in report.notes)

    # the same name again would reuse another model's vectors: refused before any training
    with pytest.raises(InvalidInputError, match="already registered"):
        run_finetune(settings, folder, "notes", output=tmp_path / "ft-again", name="tiny-ft", **options)
    assert not (tmp_path / "ft-again").exists()


def test_cli_finetune_switches_default_only_when_asked(dsn: str, tmp_path: Path, capsys: Any) -> None:
    from pgretrieval.cli import main

    folder = _beir(tmp_path / "beir")
    argv = ["--database-url", dsn, "finetune", str(folder), "--collection", "notes", "--base-model", str(TINY)]
    argv += ["--max-steps", "2", "--batch-size", "4", "--seed", "1", "--max-seq-length", "32"]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--output", str(tmp_path / "a"), "--name", "tiny-a"])
    assert info.value.code == 0
    default, per, chunks = _state(dsn)
    assert default != "tiny-a" and per["tiny-a"] == chunks
    out = capsys.readouterr().out
    assert "base vs fine-tuned" in out and "fine-tuned minus base, ndcg@10, paired" in out
    assert "default embedder of 'notes' unchanged" in out

    with pytest.raises(SystemExit) as info:
        main([*argv, "--output", str(tmp_path / "b"), "--name", "tiny-b", "--switch-default"])
    assert info.value.code == 0
    default, per, chunks = _state(dsn)
    assert default == "tiny-b" and per["tiny-b"] == per["tiny-a"] == chunks
    assert "switched to 'tiny-b'" in capsys.readouterr().out
