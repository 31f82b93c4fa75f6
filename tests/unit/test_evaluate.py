"""Evaluation orchestration on plain data: chunk hits → document rankings, mode parsing, reports."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pgretrieval.errors import InvalidInputError
from pgretrieval.evaluate import build_report, document_ranking, parse_ks, parse_modes, run_mode, write_report
from pgretrieval.testsets import TestSet
from pgretrieval.types import SearchHit, SearchResults

NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _hit(chunk: int, doc: str, score: float) -> SearchHit:
    return SearchHit(chunk, 0, doc, "t", "c", {}, NOW, score, None, None, None, None, None, None)


def _results(docs: list[str], mode: str = "dense") -> SearchResults:
    return SearchResults(tuple(_hit(i, d, 1.0 / (i + 1)) for i, d in enumerate(docs)), mode, {"sql": 2.0})


def test_document_ranking_keeps_each_documents_best_chunk() -> None:
    results = _results(["a", "b", "a", "c", "b", "d"])
    assert document_ranking(results, 10) == ("a", "b", "c", "d")
    assert document_ranking(results, 2) == ("a", "b")


def test_parse_modes_and_ks() -> None:
    assert parse_modes("dense, lexical,hybrid,dense") == ("dense", "lexical", "hybrid")
    assert parse_modes(["hybrid+rerank"]) == ("hybrid+rerank",)
    with pytest.raises(InvalidInputError, match="unknown mode"):
        parse_modes("dense,sparse")
    assert parse_ks("10,1,5,10") == (1, 5, 10)
    with pytest.raises(InvalidInputError):
        parse_ks("0,5")
    with pytest.raises(InvalidInputError):
        parse_ks("ten")


def test_modes_are_compared_and_reported(tmp_path: Path) -> None:
    testset = TestSet(
        queries={"q1": "one", "q2": "two", "q3": "three"},
        qrels={"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "q3": {"d": 1}},
        name="toy",
    )
    answers = {
        "dense": {"one": ["x", "a"], "two": ["b", "c"], "three": ["y", "z"]},
        "hybrid": {"one": ["a", "x"], "two": ["b", "c"], "three": ["d"]},
    }
    calls: list[tuple[str, str, bool, int]] = []

    def search(query: str, mode: str, rerank: bool, k: int) -> SearchResults:
        calls.append((query, mode, rerank, k))
        return _results(answers[mode][query], mode)

    runs = [run_mode(search, testset, mode, (1, 10)) for mode in ("dense", "hybrid")]
    assert calls[0] == ("one", "dense", False, 20)  # depth 10 documents, 2 chunks per document
    assert runs[0].evaluation.per_query("rr@10") == {"q1": 0.5, "q2": 1.0, "q3": 0.0}
    assert runs[1].evaluation.mean("rr@10") == 1.0
    report = build_report(runs, testset, "toy", (1, 10))
    assert report.baseline == "dense"
    comparison = report.comparisons["hybrid"]
    assert (comparison.wins, comparison.losses, comparison.ties) == (2, 0, 1)
    files = write_report(report, tmp_path, command="pgretrieval eval toy")
    assert {f.name for f in files} == {
        "report.md",
        "report.json",
        "metrics.png",
        "wins_losses.png",
        "run.dense.trec",
        "run.hybrid.trec",
    }
    assert (tmp_path / "run.dense.trec").read_text().splitlines()[:2] == [
        "q1 Q0 x 1 1.000000 dense",
        "q1 Q0 a 2 0.500000 dense",
    ]
    md = (tmp_path / "report.md").read_text()
    assert "| hybrid |" in md and "pgretrieval eval toy" in md and "FAIL" in md
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["modes"]["hybrid"]["summaries"]["rr@10"]["mean"] == 1.0
    assert data["comparisons"]["hybrid"]["wins"] == 2
    assert (tmp_path / "metrics.png").stat().st_size > 1000


def test_rerank_modes_pass_the_flag() -> None:
    testset = TestSet(queries={"q": "x"}, qrels={"q": {"a": 1}}, name="t")
    seen: list[tuple[str, bool]] = []

    def search(query: str, mode: str, rerank: bool, k: int) -> SearchResults:
        seen.append((mode, rerank))
        return _results(["a"], mode)

    run_mode(search, testset, "hybrid+rerank", (10,))
    assert seen == [("hybrid", True)]
