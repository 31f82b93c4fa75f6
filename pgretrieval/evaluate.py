"""Evaluate retrieval on its own: run a test set through the real search functions, mode by mode.

This module opens no database connection: it takes a ``search`` callable (the CLI passes
``Retriever.search``), so the numbers come from exactly the SQL that serves users. It turns chunk hits into a
document ranking (a document ranks where its best chunk ranks), scores it with :mod:`pgretrieval.metrics`,
compares every mode with a baseline (paired permutation test + bootstrap CI), and writes the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pgretrieval.errors import InvalidInputError
from pgretrieval.metrics import Comparison, MetricSummary, RunEvaluation, evaluate_run
from pgretrieval.testsets import TestSet
from pgretrieval.types import SearchResults

DEFAULT_KS = (1, 3, 5, 10, 20, 100)
KNOWN_MODES = ("dense", "lexical", "hybrid", "hybrid+rerank", "dense+rerank", "lexical+rerank")
# The guide's targets (chapter 5), checked at the report's main cut-off.
GUIDE_TARGETS = {"recall": 0.8, "precision": 0.6, "rr": 0.7, "ndcg": 0.75}

SearchFn = Callable[[str, str, bool, int], SearchResults]  # (query, mode, rerank, k) -> results


@dataclass(frozen=True)
class ModeRun:
    """One mode over the whole test set: its evaluation and per-query latencies in ms."""

    mode: str
    evaluation: RunEvaluation
    sql_ms: tuple[float, ...]
    total_ms: tuple[float, ...]
    rankings: Mapping[str, tuple[str, ...]] = field(repr=False, default_factory=dict)

    def latency(self, which: str = "sql") -> tuple[float, float]:
        """(p50, p95) in ms; ``which`` is "sql" (database time) or "total" (embedding + SQL + rerank)."""
        values = np.asarray(self.sql_ms if which == "sql" else self.total_ms, dtype=float)
        if values.size == 0:
            return (float("nan"), float("nan"))
        return float(np.percentile(values, 50)), float(np.percentile(values, 95))


@dataclass(frozen=True)
class EvalReport:
    """Everything `pgretrieval eval` prints and writes."""

    testset: str
    split: str
    collection: str
    ks: tuple[int, ...]
    main_k: int
    runs: tuple[ModeRun, ...]
    baseline: str
    summaries: Mapping[str, Mapping[str, MetricSummary]]
    comparisons: Mapping[str, Comparison]  # mode -> comparison with the baseline on ndcg@main_k

    def run(self, mode: str) -> ModeRun:
        for run in self.runs:
            if run.mode == mode:
                return run
        raise KeyError(mode)


def parse_modes(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"dense,lexical,hybrid"`` → validated tuple, in the order given, without duplicates."""
    items = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in items if m not in KNOWN_MODES]
    if unknown or not items:
        raise InvalidInputError(f"unknown mode(s) {unknown or text!r}; choose from {', '.join(KNOWN_MODES)}")
    return tuple(dict.fromkeys(items))


def parse_ks(text: str | Iterable[int]) -> tuple[int, ...]:
    try:
        values = [int(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError as exc:
        raise InvalidInputError(f"--k takes comma-separated positive integers, not {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise InvalidInputError(f"--k takes comma-separated positive integers, not {text!r}")
    return tuple(sorted(set(values)))


def document_ranking(results: SearchResults, depth: int) -> tuple[str, ...]:
    """Chunk hits → document ids in the order of each document's best chunk, at most ``depth`` long."""
    seen: dict[str, None] = {}
    for hit in results:
        seen.setdefault(str(hit.external_id), None)
        if len(seen) >= depth:
            break
    return tuple(seen)


def run_mode(
    search: SearchFn,
    testset: TestSet,
    mode: str,
    ks: Sequence[int],
    *,
    chunks_per_document: int = 2,
    progress: Callable[[int], None] | None = None,
) -> ModeRun:
    """Run every query of the test set through one mode and evaluate the document rankings."""
    base_mode, rerank = (mode.split("+", 1)[0], True) if mode.endswith("+rerank") else (mode, False)
    depth = max(ks)
    rankings: dict[str, tuple[str, ...]] = {}
    sql_ms: list[float] = []
    total_ms: list[float] = []
    for qid, text in testset.queries.items():
        if qid not in testset.qrels:
            continue
        started = time.perf_counter()
        results = search(text, base_mode, rerank, depth * chunks_per_document)
        total_ms.append((time.perf_counter() - started) * 1000)
        sql_ms.append(float(results.timings.get("sql", total_ms[-1])))
        rankings[qid] = document_ranking(results, depth)
        if progress:
            progress(1)
    evaluation = evaluate_run(rankings, testset.qrels, ks=tuple(ks))
    return ModeRun(mode, evaluation, tuple(sql_ms), tuple(total_ms), rankings)


def build_report(
    runs: Sequence[ModeRun],
    testset: TestSet,
    collection: str,
    ks: Sequence[int],
    *,
    baseline: str | None = None,
    seed: int = 0,
) -> EvalReport:
    """Summaries with 95% bootstrap CIs, and each mode's paired comparison with the baseline mode."""
    if not runs:
        raise InvalidInputError("no mode was run")
    main_k = 10 if 10 in ks else max(ks)
    base = baseline or ("dense" if any(r.mode == "dense" for r in runs) else runs[0].mode)
    by_mode = {r.mode: r for r in runs}
    if base not in by_mode:
        raise InvalidInputError(f"baseline mode {base!r} was not run")
    summaries = {r.mode: r.evaluation.summaries(seed=seed) for r in runs}
    comparisons = {
        r.mode: by_mode[base].evaluation.compare(r.evaluation, f"ndcg@{main_k}", seed=seed)
        for r in runs
        if r.mode != base
    }
    return EvalReport(
        testset=testset.name,
        split=testset.split,
        collection=collection,
        ks=tuple(ks),
        main_k=main_k,
        runs=tuple(runs),
        baseline=base,
        summaries=summaries,
        comparisons=comparisons,
    )


def target_check(metric: str, value: float) -> bool | None:
    """Whether a metric meets the guide's target (None when the guide sets none for it)."""
    family = metric.split("@", 1)[0]
    target = GUIDE_TARGETS.get(family)
    return None if target is None else value > target


def _fmt(summary: MetricSummary) -> str:
    return f"{summary.mean:.4f} [{summary.ci_low:.3f}, {summary.ci_high:.3f}]"


def report_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (shared by the terminal and the Markdown report)."""
    k = report.main_k
    metrics = [f"recall@{k}", f"precision@{k}", f"rr@{k}", f"ndcg@{k}"]
    header = [
        "mode",
        *[f"{m} (target > {GUIDE_TARGETS[m.split('@')[0]]})" for m in metrics],
        f"Δ ndcg@{k} vs {report.baseline} (p)",
        "SQL p50/p95 ms",
        "total p50/p95 ms",
    ]
    rows = []
    for run in report.runs:
        cells = [run.mode]
        for metric in metrics:
            summary = report.summaries[run.mode][metric]
            ok = target_check(metric, summary.mean)
            cells.append(f"{_fmt(summary)} {'pass' if ok else 'FAIL'}")
        comparison = report.comparisons.get(run.mode)
        cells.append("baseline" if comparison is None else f"{comparison.delta:+.4f} (p={comparison.p_value:.3f})")
        p50, p95 = run.latency("sql")
        t50, t95 = run.latency("total")
        cells.extend([f"{p50:.1f} / {p95:.1f}", f"{t50:.1f} / {t95:.1f}"])
        rows.append(cells)
    return header, rows


def to_json(report: EvalReport) -> dict[str, Any]:
    return {
        "testset": report.testset,
        "split": report.split,
        "collection": report.collection,
        "ks": list(report.ks),
        "baseline": report.baseline,
        "guide_targets": GUIDE_TARGETS,
        "modes": {
            run.mode: {
                "summaries": {
                    name: {"mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n}
                    for name, s in report.summaries[run.mode].items()
                },
                "latency_ms": {
                    "sql_p50": run.latency("sql")[0],
                    "sql_p95": run.latency("sql")[1],
                    "total_p50": run.latency("total")[0],
                    "total_p95": run.latency("total")[1],
                },
                "evaluation": run.evaluation.to_dict(),
            }
            for run in report.runs
        },
        "comparisons": {
            mode: {
                "metric": c.metric,
                "baseline_mean": c.baseline_mean,
                "candidate_mean": c.candidate_mean,
                "delta": c.delta,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "p_value": c.p_value,
                "wins": c.wins,
                "losses": c.losses,
                "ties": c.ties,
            }
            for mode, c in report.comparisons.items()
        },
    }


def to_markdown(report: EvalReport, command: str = "") -> str:
    header, rows = report_rows(report)
    lines = [
        f"# Retrieval evaluation: {report.testset} ({report.split} split), collection `{report.collection}`",
        "",
        f"Means over {len(report.runs[0].evaluation)} queries with 95% bootstrap confidence intervals; "
        f"'pass'/'FAIL' against the guide's targets at K={report.main_k}; Δ is a paired comparison with "
        f"`{report.baseline}` (two-sided permutation test). SQL latency is database time per query; total adds "
        "query embedding (cached after the first run) and reranking.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## All metrics (means)", ""]
    metric_names = list(report.runs[0].evaluation.metrics)
    lines.append("| mode | " + " | ".join(metric_names) + " |")
    lines.append("|" + "---|" * (len(metric_names) + 1))
    for run in report.runs:
        lines.append(f"| {run.mode} | " + " | ".join(f"{run.evaluation.mean(m):.4f}" for m in metric_names) + " |")
    if report.comparisons:
        lines += ["", f"## Per-query wins and losses on ndcg@{report.main_k} vs {report.baseline}", ""]
        for mode, c in report.comparisons.items():
            lines.append(f"- {mode}: {c.wins} better, {c.losses} worse, {c.ties} equal")
    if command:
        lines += ["", "Produced by:", "", f"    {command}"]
    return "\n".join(lines) + "\n"


def write_charts(report: EvalReport, out_dir: Path) -> list[Path]:
    """metrics.png (metric by mode with CIs) and wins_losses.png (per-query deltas vs the baseline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = report.main_k
    metrics = [f"recall@{k}", f"precision@{k}", f"rr@{k}", f"ndcg@{k}"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(report.runs), 1)
    x = np.arange(len(metrics))
    for i, run in enumerate(report.runs):
        summaries = [report.summaries[run.mode][m] for m in metrics]
        means = np.array([s.mean for s in summaries])
        errors = np.array([[s.mean - s.ci_low for s in summaries], [s.ci_high - s.mean for s in summaries]])
        ax.bar(x + i * width, means, width, yerr=errors, capsize=3, label=run.mode)
    for j, metric in enumerate(metrics):
        target = GUIDE_TARGETS[metric.split("@")[0]]
        ax.hlines(target, j - 0.1, j + 0.9, colors="grey", linestyles="dashed", linewidth=1)
    ax.set_xticks(x + width * (len(report.runs) - 1) / 2, metrics)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean (95% CI); dashed: guide target")
    ax.set_title(f"{report.testset} ({report.split}): metric by mode")
    ax.legend()
    fig.tight_layout()
    paths = [out_dir / "metrics.png"]
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    if report.comparisons:
        fig, axes = plt.subplots(1, len(report.comparisons), figsize=(4.5 * len(report.comparisons), 4), squeeze=False)
        base = report.run(report.baseline).evaluation
        for ax, (mode, comparison) in zip(axes[0], report.comparisons.items(), strict=True):
            metric = comparison.metric
            delta = np.sort(report.run(mode).evaluation.values(metric) - base.values(metric))[::-1]
            colors = ["tab:green" if d > 0 else "tab:red" if d < 0 else "tab:grey" for d in delta]
            ax.bar(np.arange(delta.size), delta, color=colors, width=1.0)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_title(f"{mode} vs {report.baseline}: {comparison.wins} wins, {comparison.losses} losses")
            ax.set_xlabel("queries (sorted)")
            ax.set_ylabel(f"Δ {metric}")
        fig.tight_layout()
        paths.append(out_dir / "wins_losses.png")
        fig.savefig(paths[1], dpi=120)
        plt.close(fig)
    return paths


def write_trec_run(run: ModeRun, path: Path) -> Path:
    """The mode's document rankings as a TREC run file (``qid Q0 doc rank score tag``; score = 1/rank), the
    input of ``pgretrieval judge`` and of trec_eval."""
    tag = run.mode.replace("+", "_")
    lines = [
        f"{qid} Q0 {doc} {rank} {1.0 / rank:.6f} {tag}"
        for qid, docs in run.rankings.items()
        for rank, doc in enumerate(docs, start=1)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_report(report: EvalReport, out_dir: Path, command: str = "") -> list[Path]:
    """Write report.md, report.json, the charts and one TREC run file per mode; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "report.md"
    md.write_text(to_markdown(report, command), encoding="utf-8")
    js = out_dir / "report.json"
    js.write_text(json.dumps(to_json(report), indent=2), encoding="utf-8")
    runs = [write_trec_run(run, out_dir / f"run.{run.mode.replace('+', '_')}.trec") for run in report.runs]
    return [md, js, *write_charts(report, out_dir), *runs]
