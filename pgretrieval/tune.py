"""`pgretrieval tune`: choose a collection's default search settings on a training split, check them once on test.

Why staged: a plain grid (hundreds of settings x 809 queries x ~20 ms per ``hybrid_search``) takes hours on two
cores. Most settings only change how two ranked lists are fused, so the work is split where hybrid_search splits:

1. **Branch lists**, fetched once per branch setting (candidates, ef_search for the dense list; candidates, k1, b
   for the lexical list) through ``pgretrieval.dense_search`` / ``lexical_search``, for every query in one
   statement, into a temporary table on the server.
2. **Fusion**, for many fusion settings at once (method, weights, rrf_k): one statement calls
   ``pgretrieval.rrf_fuse`` / ``score_fuse`` on the stored lists, exactly as hybrid_search does, and returns each
   query's top chunk ids. Nothing of retrieval or fusion is re-implemented in Python.
3. **Coordinate search**: the whole fusion grid at the current branch setting, then one branch parameter at a
   time (each value with the current fusion and its neighbouring weights), repeated until a round changes nothing.
   A move must gain at least ``min_gain`` nDCG on the training queries, so noise does not pull settings away from
   the defaults; among branch values within ``min_gain`` of a stage's best, the cheapest (candidates, ef_search)
   or the one closest to the default (k1, b) is taken.

The chosen setting is then run through the real ``hybrid_search`` and must reproduce the staged rankings exactly
(checked on both splits). The test split is scored once, for a fixed list of settings chosen before it is read.

Layout (DESIGN.md): the search, the evaluation and the report are plain functions over a :class:`TuneBackend`;
:class:`SqlTuneBackend` is the only part that talks to PostgreSQL, through a psycopg connection it is given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from pgretrieval.embed import Embedder
from pgretrieval.errors import InvalidInputError, PgRetrievalError, from_database_error
from pgretrieval.metrics import Comparison, MetricSummary, RunEvaluation, compare, evaluate_run
from pgretrieval.testsets import TestSet

__all__ = [
    "DEFAULT_SETTING",
    "GUIDE_PRESETS",
    "ROW_DEFAULTS",
    "ROW_DENSE",
    "ROW_LEXICAL",
    "ROW_TUNED",
    "BranchParams",
    "Evaluator",
    "FusionParams",
    "Setting",
    "SqlTuneBackend",
    "TuneBackend",
    "TuneReport",
    "TuneSpace",
    "comparison_text",
    "coordinate_search",
    "embedder_id",
    "prepare",
    "print_report",
    "require_verified",
    "run_tune",
    "save_settings",
    "sweep_rows",
    "verification_text",
    "verify",
    "write_report",
]

FUSIONS = ("rrf", "minmax", "zscore")
Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class BranchParams:
    """What the branch lists depend on (hybrid_search's defaults)."""

    candidates: int = 100
    ef_search: int = 100
    k1: float = 1.2
    b: float = 0.75


@dataclass(frozen=True)
class FusionParams:
    """How the two lists are fused (rrf_k matters to ``rrf`` only)."""

    fusion: str = "rrf"
    vector_weight: float = 0.5
    bm25_weight: float = 0.5
    rrf_k: int = 60


@dataclass(frozen=True)
class Setting:
    branch: BranchParams = field(default_factory=BranchParams)
    fusion: FusionParams = field(default_factory=FusionParams)

    def arguments(self) -> dict[str, Any]:
        """hybrid_search's named arguments, also the keys stored by ``set_search_settings``."""
        return {**asdict(self.fusion), **asdict(self.branch)}

    def label(self) -> str:
        f, b = self.fusion, self.branch
        method = f"rrf k={f.rrf_k}" if f.fusion == "rrf" else f.fusion
        return (
            f"{method} {f.vector_weight:g}/{f.bm25_weight:g}, cand {b.candidates}, ef {b.ef_search}, "
            f"k1 {b.k1:g}, b {b.b:g}"
        )


DEFAULT_SETTING = Setting()
# The guide's weight presets (vector / BM25), with its RRF k = 60, at the default branch settings.
GUIDE_PRESETS: dict[str, tuple[float, float]] = {
    "guide semantic 0.7/0.3": (0.7, 0.3),
    "guide exact-match 0.3/0.7": (0.3, 0.7),
    "guide balanced 0.5/0.5": (0.5, 0.5),  # = the defaults
}
# Names of the fixed rows of the report (the references scored once on the test split).
ROW_TUNED = "tuned (best on train)"
ROW_DEFAULTS = "defaults = plain RRF(k=60) 0.5/0.5"
ROW_DENSE = "dense only"
ROW_LEXICAL = "lexical only"


def _pair(w: float) -> tuple[float, float]:
    return round(w, 2), round(1.0 - w, 2)


@dataclass(frozen=True)
class TuneSpace:
    """The values swept. Only the vector/BM25 ratio matters to both fusion methods, so weights are w, 1 - w."""

    fusions: tuple[str, ...] = FUSIONS
    vector_weights: tuple[float, ...] = tuple(round(i / 10, 1) for i in range(11))
    rrf_ks: tuple[int, ...] = (5, 10, 20, 40, 60, 100, 200)
    candidates: tuple[int, ...] = (30, 50, 100, 200, 300, 500)
    ef_search: tuple[int, ...] = (40, 100, 200, 400)
    k1: tuple[float, ...] = (0.6, 0.9, 1.2, 1.5, 2.0)
    b: tuple[float, ...] = (0.3, 0.5, 0.75, 0.9, 1.0)

    def __post_init__(self) -> None:
        unknown = [f for f in self.fusions if f not in FUSIONS]
        if unknown or not self.fusions:
            raise InvalidInputError(f"unknown fusion method(s) {unknown}; choose from {', '.join(FUSIONS)}")
        if any(not 0.0 <= w <= 1.0 for w in self.vector_weights) or not self.vector_weights:
            raise InvalidInputError("vector weights must lie between 0 and 1")
        checks = {
            "candidates": (self.candidates, 1, 10000),
            "ef_search": (self.ef_search, 1, 1000),
            "rrf_k": (self.rrf_ks, 0, 10**6),
            "k1": (self.k1, 0, 100),
            "b": (self.b, 0, 1),
        }
        for name, (values, lo, hi) in checks.items():
            if not values or any(not lo <= v <= hi for v in values):
                raise InvalidInputError(f"{name} values must lie between {lo} and {hi}, got {values}")

    def fusion_grid(self) -> list[FusionParams]:
        grid: list[FusionParams] = []
        for method in self.fusions:
            for k in self.rrf_ks if method == "rrf" else (60,):
                grid += [FusionParams(method, *_pair(w), k) for w in self.vector_weights]
        return grid

    def neighbours(self, fusion: FusionParams) -> list[FusionParams]:
        """The fusion itself and its weights one grid step either side (a branch change may shift the balance)."""
        ws = sorted(self.vector_weights)
        if fusion.vector_weight not in ws:
            return [fusion]
        i = ws.index(fusion.vector_weight)
        near = [ws[j] for j in (i, i - 1, i + 1) if 0 <= j < len(ws)]
        return [replace(fusion, vector_weight=w, bm25_weight=_pair(w)[1]) for w in near]


# --------------------------------------------------------------------------------------------- the backend


class TuneBackend(Protocol):
    """Where rankings come from: chunk ids per query id, best first, at most ``match_count`` long."""

    def fused(
        self, split: str, branch: BranchParams, fusions: Sequence[FusionParams], match_count: int
    ) -> list[dict[str, list[int]]]: ...

    def single(self, split: str, branch: BranchParams, which: str, match_count: int) -> dict[str, list[int]]: ...

    def hybrid(self, split: str, setting: Setting, match_count: int) -> dict[str, list[int]]: ...

    def documents(self) -> Mapping[int, str]: ...


def document_ranking(chunk_ids: Iterable[int], documents: Mapping[int, str], depth: int) -> tuple[str, ...]:
    """Chunk ids → document ids in the order of each document's best chunk (as evaluate.document_ranking)."""
    seen: dict[str, None] = {}
    for chunk_id in chunk_ids:
        seen.setdefault(documents[chunk_id], None)
        if len(seen) >= depth:
            break
    return tuple(seen)


@dataclass
class Trial:
    """One setting scored on the training split during the search."""

    stage: str
    setting: Setting
    mean: float


class Evaluator:
    """Scores settings on a split, remembering every result so no setting is computed twice."""

    def __init__(
        self,
        backend: TuneBackend,
        testsets: Mapping[str, TestSet],
        *,
        k: int = 10,
        chunks_per_document: int = 2,
    ) -> None:
        self.backend = backend
        self.testsets = dict(testsets)
        self.k = k
        self.ks = tuple(sorted({1, 3, 5, k} & set(range(1, k + 1))))
        self.metric = f"ndcg@{k}"
        self.match_count = k * chunks_per_document
        self._documents = backend.documents()
        self._cache: dict[tuple[str, Any], RunEvaluation] = {}
        self.fusion_calls = 0

    def _evaluate(self, split: str, run: Mapping[str, Sequence[int]]) -> RunEvaluation:
        rankings = {q: document_ranking(ids, self._documents, self.k) for q, ids in run.items()}
        return evaluate_run(rankings, self.testsets[split].qrels, ks=self.ks)

    def settings(self, split: str, settings: Sequence[Setting]) -> list[RunEvaluation]:
        """Evaluations of ``settings``, fusing per branch setting in one backend call."""
        todo: dict[BranchParams, list[FusionParams]] = {}
        for s in settings:
            if (split, s) not in self._cache and s.fusion not in todo.setdefault(s.branch, []):
                todo[s.branch].append(s.fusion)
        for branch, fusions in todo.items():
            if not fusions:
                continue
            runs = self.backend.fused(split, branch, fusions, self.match_count)
            self.fusion_calls += len(fusions)
            for fusion, run in zip(fusions, runs, strict=True):
                self._cache[(split, Setting(branch, fusion))] = self._evaluate(split, run)
        return [self._cache[(split, s)] for s in settings]

    def single(self, split: str, which: str, branch: BranchParams | None = None) -> RunEvaluation:
        """dense_search or lexical_search alone (``match_count`` rows, the branch's ef_search or k1/b)."""
        branch = branch or BranchParams()
        key = (split, (which, branch))
        if key not in self._cache:
            self._cache[key] = self._evaluate(split, self.backend.single(split, branch, which, self.match_count))
        return self._cache[key]

    def mean(self, evaluation: RunEvaluation) -> float:
        return evaluation.mean(self.metric)


# Among branch values within min_gain of a stage's best: fewer candidates and a smaller ef_search are faster;
# k1 and b closest to the well-known defaults generalise best.
_PREFER: dict[str, Callable[[Setting], float]] = {
    "candidates": lambda s: s.branch.candidates,
    "ef_search": lambda s: s.branch.ef_search,
    "k1": lambda s: abs(s.branch.k1 - BranchParams.k1),
    "b": lambda s: abs(s.branch.b - BranchParams.b),
}


def coordinate_search(
    evaluator: Evaluator,
    space: TuneSpace,
    *,
    split: str = "train",
    min_gain: float = 0.001,
    max_rounds: int = 3,
    log: Log | None = None,
) -> tuple[Setting, list[Trial], list[Trial]]:
    """Best setting on ``split`` by coordinate ascent from the defaults: (best, every setting scored, the moves)."""
    trials: list[Trial] = []
    path: list[Trial] = []
    seen: set[Setting] = set()

    def score(stage: str, candidates: list[Setting]) -> list[float]:
        means = [evaluator.mean(e) for e in evaluator.settings(split, candidates)]
        for s, m in zip(candidates, means, strict=True):
            if s not in seen:
                seen.add(s)
                trials.append(Trial(stage, s, m))
        return means

    current = DEFAULT_SETTING
    current_score = score("defaults", [current])[0]
    path.append(Trial("defaults", current, current_score))

    def consider(stage: str, candidates: list[Setting], prefer: Callable[[Setting], float] | None = None) -> bool:
        nonlocal current, current_score
        means = score(stage, candidates)
        i = int(np.argmax(means))  # ties: the first listed; the current setting stays unless beaten by min_gain
        moved = means[i] > current_score + min_gain
        if moved and prefer is not None:
            # within min_gain of the best, a difference is noise: take the cheapest / most default-like value
            near = [j for j, m in enumerate(means) if m >= means[i] - min_gain and m > current_score + min_gain]
            i = min(near, key=lambda j: (prefer(candidates[j]), -means[j], j))
        if moved:
            current, current_score = candidates[i], means[i]
            path.append(Trial(stage, current, current_score))
        if log:
            best = f"best {means[i]:.4f}; now {current.label()} = {current_score:.4f}"
            log(f"  {stage}: {len(candidates)} settings, {best}")
        return moved

    for round_no in range(1, max_rounds + 1):
        changed = consider(f"round {round_no} fusion", [Setting(current.branch, f) for f in space.fusion_grid()])
        for name in ("candidates", "k1", "b", "ef_search"):
            now = getattr(current.branch, name)
            values = [now] + [v for v in getattr(space, name) if v != now]
            near = space.neighbours(current.fusion)
            candidates = [Setting(replace(current.branch, **{name: v}), f) for v in values for f in near]
            changed = consider(f"round {round_no} {name}", candidates, _PREFER[name]) or changed
        if not changed:
            break
    return current, trials, path


# --------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Row:
    """A reference setting scored on one split (train and, once, test)."""

    name: str
    setting: Setting | None  # None: a single branch
    train: MetricSummary
    test: MetricSummary | None = None


@dataclass(frozen=True)
class Verification:
    """A setting's staged rankings against the real hybrid_search, with hybrid_search's time per query."""

    split: str
    setting: str
    staged_mean: float
    hybrid_mean: float
    identical_queries: int
    queries: int
    ms_per_query: float

    @property
    def ok(self) -> bool:
        return self.identical_queries == self.queries and abs(self.staged_mean - self.hybrid_mean) < 1e-12


@dataclass(frozen=True)
class TuneReport:
    testset: str
    collection: str
    train_split: str
    test_split: str | None
    metric: str
    match_count: int
    min_gain: float
    best: Setting
    trials: list[Trial]
    path: list[Trial]  # the defaults, then each move of the search
    rows: list[Row]
    comparisons: dict[str, Comparison]  # on the test split (the train split when there is none)
    verifications: list[Verification]
    best_single: str
    seconds: dict[str, float]
    counts: dict[str, int]
    saved: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """Whether hybrid_search reproduced the staged rankings of the chosen setting on every split."""
        return all(v.ok for v in self.verifications)

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def _check_splits(train: TestSet, test: TestSet | None) -> list[str]:
    notes: list[str] = []
    if test is None:
        return ["no test split: the figures below are training figures only"]
    shared = set(train.qrels) & set(test.qrels)
    same_text = {train.queries[q] for q in train.qrels} & {test.queries[q] for q in test.qrels}
    if shared or same_text:
        notes.append(
            f"{len(shared)} query ids and {len(same_text)} query texts are in both splits: the test figures are "
            "optimistic for those queries"
        )
    return notes


def run_tune(
    backend: TuneBackend,
    train: TestSet,
    test: TestSet | None = None,
    *,
    collection: str,
    space: TuneSpace | None = None,
    k: int = 10,
    chunks_per_document: int = 2,
    min_gain: float = 0.001,
    max_rounds: int = 3,
    seed: int = 0,
    log: Log | None = None,
) -> TuneReport:
    """Search on ``train``; then score the chosen setting and fixed references on ``test`` once; verify."""
    space = space or TuneSpace()
    started = time.perf_counter()
    splits = {"train": train} | ({"test": test} if test is not None else {})
    evaluator = Evaluator(backend, splits, k=k, chunks_per_document=chunks_per_document)
    if log:
        log(f"tuning on {len(train.qrels)} {train.split} queries, objective {evaluator.metric}")
    best, trials, path = coordinate_search(evaluator, space, min_gain=min_gain, max_rounds=max_rounds, log=log)
    search_seconds = time.perf_counter() - started

    # Fixed references, decided before the test split is read.
    references: list[tuple[str, Setting | None, tuple[str, BranchParams] | None]] = [
        (ROW_TUNED, best, None),
        (ROW_DEFAULTS, DEFAULT_SETTING, None),
    ]
    for name, (wv, wl) in GUIDE_PRESETS.items():
        if (wv, wl) != (0.5, 0.5):
            references.append((name, Setting(fusion=FusionParams("rrf", wv, wl, 60)), None))
    references.append((ROW_DENSE, None, ("dense", BranchParams())))
    references.append((ROW_LEXICAL, None, ("lexical", BranchParams())))
    if (best.branch.k1, best.branch.b) != (BranchParams().k1, BranchParams().b):
        tuned_bm25 = replace(BranchParams(), k1=best.branch.k1, b=best.branch.b)
        name = f"lexical only, tuned k1={best.branch.k1:g} b={best.branch.b:g}"
        references.append((name, None, ("lexical", tuned_bm25)))

    def evaluation(split: str, setting: Setting | None, single: tuple[str, BranchParams] | None) -> RunEvaluation:
        if setting is not None:
            return evaluator.settings(split, [setting])[0]
        assert single is not None
        return evaluator.single(split, single[0], single[1])

    metrics = [f"ndcg@{k}", f"recall@{k}", f"rr@{k}"]
    train_single = {w: evaluator.mean(evaluator.single("train", w)) for w in ("dense", "lexical")}
    best_single = max(train_single, key=lambda w: train_single[w])  # chosen on train, like everything else
    rows: list[Row] = []
    evaluations: dict[str, RunEvaluation] = {}
    for name, setting, single in references:
        tr = evaluation("train", setting, single).summaries(metrics, seed=seed)[evaluator.metric]
        te = None
        if test is not None:
            evaluations[name] = evaluation("test", setting, single)
            te = evaluations[name].summaries(metrics, seed=seed)[evaluator.metric]
        else:
            evaluations[name] = evaluation("train", setting, single)
        rows.append(Row(name, setting, tr, te))
    # the best single branch (chosen on train) first: that is the comparison the issue asks for
    order = [best_single] + [w for w in ("dense", "lexical") if w != best_single]
    singles = {w: next(n for n, _, s in references if s == (w, BranchParams())) for w in order}
    pairs = {"tuned vs defaults": (references[1][0], references[0][0])}
    for w in order:
        pairs[f"tuned vs {w} only"] = (singles[w], references[0][0])
        pairs[f"defaults vs {w} only"] = (singles[w], references[1][0])
    comparisons = {
        label: compare(evaluations[a], evaluations[b], evaluator.metric, seed=seed) for label, (a, b) in pairs.items()
    }
    if log:
        log("verifying the chosen setting through the real hybrid_search")
    # the chosen setting on every split; the defaults once more on the last one, for their latency
    checks = [(split, ROW_TUNED, best) for split in splits] + [(list(splits)[-1], ROW_DEFAULTS, DEFAULT_SETTING)]
    verifications = [verify(evaluator, split, setting, name) for split, name, setting in checks]
    seconds = {"search": search_seconds, "total": time.perf_counter() - started} | getattr(backend, "seconds", {})
    counts = {"settings_scored": len(trials), "fusion_evaluations": evaluator.fusion_calls}
    counts |= getattr(backend, "counts", {})
    notes = _check_splits(train, test)
    return TuneReport(
        testset=train.name,
        collection=collection,
        train_split=train.split,
        test_split=test.split if test is not None else None,
        metric=evaluator.metric,
        match_count=evaluator.match_count,
        min_gain=min_gain,
        best=best,
        trials=trials,
        path=path,
        rows=rows,
        comparisons=comparisons,
        verifications=verifications,
        best_single=best_single,
        seconds=seconds,
        counts=counts,
        notes=notes,
    )


def verify(evaluator: Evaluator, split: str, setting: Setting, name: str = ROW_TUNED) -> Verification:
    """The staged rankings of ``setting`` against one real ``hybrid_search`` call per query."""
    staged = evaluator.settings(split, [setting])[0]
    started = time.perf_counter()
    real_run = evaluator.backend.hybrid(split, setting, evaluator.match_count)
    ms = 1000 * (time.perf_counter() - started) / max(1, len(real_run))
    real = evaluator._evaluate(split, real_run)
    staged_run = evaluator.backend.fused(split, setting.branch, [setting.fusion], evaluator.match_count)[0]
    identical = sum(1 for q in real_run if real_run[q] == staged_run.get(q))
    return Verification(split, name, evaluator.mean(staged), evaluator.mean(real), identical, len(real_run), ms)


# --------------------------------------------------------------------------------------------- SQL adapter


_SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS pgr_tune_queries ("
    " split text, qno integer, qid text NOT NULL, text text NOT NULL, embedding vector NOT NULL,"
    " PRIMARY KEY (split, qno))",
    "CREATE TEMP TABLE IF NOT EXISTS pgr_tune_lists ("
    " key integer, qno integer, ids bigint[] NOT NULL, scores double precision[] NOT NULL, PRIMARY KEY (key, qno))",
)

_FETCH = {
    "dense": (
        "INSERT INTO pg_temp.pgr_tune_lists (key, qno, ids, scores)"
        " SELECT %(key)s, q.qno, coalesce(r.ids, '{}'), coalesce(r.scores, '{}')"
        "   FROM pg_temp.pgr_tune_queries q CROSS JOIN LATERAL ("
        "     SELECT array_agg(s.chunk_id ORDER BY s.dense_rank) AS ids,"
        "            array_agg(s.dense_score ORDER BY s.dense_rank) AS scores"
        "       FROM pgretrieval.dense_search(q.embedding, match_count => %(candidates)s,"
        "            collection => %(collection)s, embedder => %(embedder)s, ef_search => %(ef_search)s) s) r"
        "  WHERE q.split = %(split)s"
    ),
    "lexical": (
        "INSERT INTO pg_temp.pgr_tune_lists (key, qno, ids, scores)"
        " SELECT %(key)s, q.qno, coalesce(r.ids, '{}'), coalesce(r.scores, '{}')"
        "   FROM pg_temp.pgr_tune_queries q CROSS JOIN LATERAL ("
        "     SELECT array_agg(s.chunk_id ORDER BY s.lexical_rank) AS ids,"
        "            array_agg(s.lexical_score ORDER BY s.lexical_rank) AS scores"
        "       FROM pgretrieval.lexical_search(q.text, match_count => %(candidates)s,"
        "            collection => %(collection)s, k1 => %(k1)s, b => %(b)s) s) r"
        "  WHERE q.split = %(split)s"
    ),
}

# Many fusion settings x every query in one statement, ordered exactly as hybrid_search orders its result.
_FUSE = (
    "SELECT f.n, d.qno, CASE WHEN f.method = 'rrf' THEN"
    "   ARRAY(SELECT r.chunk_id FROM pgretrieval.rrf_fuse(d.ids, l.ids, NULL, f.wv, f.wl, 0.3, f.k) r"
    "          ORDER BY r.score DESC, r.chunk_id LIMIT %(m)s)"
    " ELSE"
    "   ARRAY(SELECT r.chunk_id FROM pgretrieval.score_fuse(d.ids, d.scores, l.ids, l.scores, NULL, NULL,"
    "          f.wv, f.wl, 0.3, f.method) r ORDER BY r.score DESC, r.chunk_id LIMIT %(m)s)"
    " END"
    "  FROM unnest(%(n)s::integer[], %(method)s::text[], %(wv)s::float8[], %(wl)s::float8[], %(k)s::integer[])"
    "       AS f(n, method, wv, wl, k)"
    " CROSS JOIN pg_temp.pgr_tune_lists d"
    "  JOIN pg_temp.pgr_tune_lists l ON l.key = %(lexical)s AND l.qno = d.qno"
    " WHERE d.key = %(dense)s"
)

_HYBRID = (
    "SELECT q.qno, ARRAY(SELECT h.chunk_id FROM pgretrieval.hybrid_search("
    "   query_text => q.text, query_embedding => q.embedding, match_count => %(m)s, collection => %(collection)s,"
    "   embedder => %(embedder)s, fusion => %(fusion)s, vector_weight => %(vector_weight)s,"
    "   bm25_weight => %(bm25_weight)s, rrf_k => %(rrf_k)s, candidates => %(candidates)s,"
    "   ef_search => %(ef_search)s, k1 => %(k1)s, b => %(b)s) WITH ORDINALITY h ORDER BY h.ordinality)"
    "  FROM pg_temp.pgr_tune_queries q WHERE q.split = %(split)s"
)


def _vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


def embedder_id(conn: psycopg.Connection[Any], collection: str, embedder: str) -> int:
    """The id of an embedder that has vectors in the collection (its query vectors are comparable)."""
    row = conn.execute(
        "SELECT ce.embedder_id FROM pgretrieval.collection_embedders ce JOIN pgretrieval.embedders e"
        " ON e.id = ce.embedder_id WHERE ce.collection_id = pgretrieval.collection_id(%s) AND e.name = %s",
        (collection, embedder),
    ).fetchone()
    if row is None:
        raise InvalidInputError(
            f"embedder {embedder!r} has no vectors in collection {collection!r}; ingest the corpus with it first "
            "(or pass the model the collection was ingested with)"
        )
    return int(row[0])


class SqlTuneBackend:
    """The tuning engine's database side, on one connection (its temporary tables hold the cached lists).

    The connection is switched to autocommit while in use and restored by :meth:`close`; pass a dedicated one
    (e.g. from ``pool.connection()``), with one backend per connection at a time (they share the temp tables).
    """

    def __init__(self, conn: psycopg.Connection[Any], collection: str, embedder: str) -> None:
        self.conn = conn
        self.collection = collection
        self.embedder = embedder
        self._qids: dict[str, list[str]] = {}
        self._keys: dict[tuple[Any, ...], int] = {}
        self._next_key = 0
        self.counts = {"branch_list_fetches": 0, "fusion_statements": 0, "hybrid_search_calls": 0}
        self.seconds = {"fetch": 0.0, "fuse": 0.0, "hybrid": 0.0}
        self._autocommit = conn.autocommit
        self.conn.autocommit = True
        for statement in _SCHEMA:
            self._execute(statement)

    def close(self) -> None:
        """Drop the temporary tables and restore the connection's mode (it may go back to a pool)."""
        if not self.conn.closed:
            self._execute("DROP TABLE IF EXISTS pg_temp.pgr_tune_lists, pg_temp.pgr_tune_queries")
            self.conn.autocommit = self._autocommit

    def __enter__(self) -> SqlTuneBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, statement: str, params: Any = None) -> psycopg.Cursor[Any]:
        try:
            return self.conn.execute(statement, params)
        except psycopg.Error as exc:
            mapped = from_database_error(exc)
            if mapped is not None:
                raise mapped from exc
            raise

    def embed(self, model: Embedder, texts: Sequence[str]) -> np.ndarray:
        """Query vectors through the embedding cache (purpose 'query'), one batch for all texts."""
        from pgretrieval.ingest import cached_embeddings

        eid = embedder_id(self.conn, self.collection, self.embedder)
        with self.conn.transaction():
            vectors, _, _ = cached_embeddings(self.conn, model, eid, "query", list(texts))
        return vectors

    def load_queries(self, split: str, testset: TestSet, vectors: np.ndarray) -> None:
        """Put a split's judged queries and their vectors in the temporary table (replacing the split's rows)."""
        qids = list(testset.qrels)
        if len(vectors) != len(qids):
            raise InvalidInputError(f"{len(qids)} queries but {len(vectors)} query vectors")
        with self.conn.transaction():
            self._execute("DELETE FROM pg_temp.pgr_tune_queries WHERE split = %s", (split,))
            self._execute(
                "INSERT INTO pg_temp.pgr_tune_queries (split, qno, qid, text, embedding)"
                " SELECT %s, x.n::integer, x.q, x.t, x.v::vector"
                "   FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS x(q, t, v, n)",
                (split, qids, [testset.queries[q] for q in qids], [_vector_text(v) for v in vectors]),
            )
            self._execute("ANALYZE pg_temp.pgr_tune_queries")
            stale = [v for k, v in self._keys.items() if k[0] == split]
            self._execute("DELETE FROM pg_temp.pgr_tune_lists WHERE key = ANY(%s)", (stale,))
        self._qids[split] = qids
        self._keys = {k: v for k, v in self._keys.items() if k[0] != split}

    def _list_key(self, split: str, which: str, branch: BranchParams, match_count: int) -> int:
        """Fetch a branch's lists for every query of a split once; key them by what they depend on."""
        candidates = max(branch.candidates, match_count)  # hybrid_search: candidates = greatest(candidates, k)
        if which == "dense":
            params: dict[str, Any] = {"candidates": candidates, "ef_search": branch.ef_search}
            identity: tuple[Any, ...] = (split, which, candidates, min(1000, max(branch.ef_search, candidates)))
        else:
            params = {"candidates": candidates, "k1": branch.k1, "b": branch.b}
            identity = (split, which, candidates, branch.k1, branch.b)
        if identity not in self._keys:
            self._next_key += 1
            key = self._next_key
            started = time.perf_counter()
            params |= {"key": key, "split": split, "collection": self.collection, "embedder": self.embedder}
            with self.conn.transaction():
                self._execute(_FETCH[which], params)
                self._execute("ANALYZE pg_temp.pgr_tune_lists")
            self.seconds["fetch"] += time.perf_counter() - started
            self.counts["branch_list_fetches"] += 1
            self._keys[identity] = key
        return self._keys[identity]

    def fused(
        self, split: str, branch: BranchParams, fusions: Sequence[FusionParams], match_count: int
    ) -> list[dict[str, list[int]]]:
        dense = self._list_key(split, "dense", branch, match_count)
        lexical = self._list_key(split, "lexical", branch, match_count)
        qids = self._qids[split]
        out: list[dict[str, list[int]]] = [{} for _ in fusions]
        started = time.perf_counter()
        rows = self._execute(
            _FUSE,
            {
                "m": match_count,
                "n": list(range(len(fusions))),
                "method": [f.fusion for f in fusions],
                "wv": [float(f.vector_weight) for f in fusions],
                "wl": [float(f.bm25_weight) for f in fusions],
                "k": [int(f.rrf_k) for f in fusions],
                "dense": dense,
                "lexical": lexical,
            },
        ).fetchall()
        for n, qno, ids in rows:
            out[n][qids[qno - 1]] = list(ids)
        self.seconds["fuse"] += time.perf_counter() - started
        self.counts["fusion_statements"] += 1
        return out

    def single(self, split: str, branch: BranchParams, which: str, match_count: int) -> dict[str, list[int]]:
        """The branch alone: its list fetched with ``match_count`` candidates is exactly that search's result."""
        key = self._list_key(split, which, replace(branch, candidates=match_count), match_count)
        qids = self._qids[split]
        rows = self._execute("SELECT qno, ids FROM pg_temp.pgr_tune_lists WHERE key = %s", (key,)).fetchall()
        return {qids[qno - 1]: list(ids) for qno, ids in rows}

    def hybrid(self, split: str, setting: Setting, match_count: int) -> dict[str, list[int]]:
        started = time.perf_counter()
        params = setting.arguments() | {
            "m": match_count,
            "collection": self.collection,
            "embedder": self.embedder,
            "split": split,
        }
        rows = self._execute(_HYBRID, params).fetchall()
        self.seconds["hybrid"] += time.perf_counter() - started
        self.counts["hybrid_search_calls"] += len(rows)
        qids = self._qids[split]
        return {qids[qno - 1]: list(ids) for qno, ids in rows}

    def documents(self) -> dict[int, str]:
        rows = self._execute(
            "SELECT c.id, d.external_id FROM pgretrieval.chunks c JOIN pgretrieval.documents d"
            " ON d.collection_id = c.collection_id AND d.id = c.document_id"
            " WHERE c.collection_id = pgretrieval.collection_id(%s)",
            (self.collection,),
        ).fetchall()
        return {int(c): str(e) for c, e in rows}


def prepare(backend: SqlTuneBackend, model: Embedder, splits: Mapping[str, TestSet | None]) -> None:
    """Embed each split's queries (cached) and load them, so every later statement runs server-side."""
    for split, testset in splits.items():
        if testset is not None:
            texts = [testset.queries[q] for q in testset.qrels]
            backend.load_queries(split, testset, backend.embed(model, texts))


def save_settings(conn: psycopg.Connection[Any], collection: str, setting: Setting) -> dict[str, Any]:
    """Store ``setting`` as the collection's default search settings (``pgretrieval.set_search_settings``)."""
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT pgretrieval.set_search_settings(%s, %s, merge => true)",
                (collection, Jsonb(setting.arguments())),
            ).fetchone()
    except psycopg.Error as exc:
        mapped = from_database_error(exc)
        if mapped is not None:
            raise mapped from exc
        raise
    assert row is not None
    return dict(row[0])


# --------------------------------------------------------------------------------------------- report


def _ci(s: MetricSummary | None) -> str:
    return "" if s is None else f"{s.mean:.4f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def _args_cells(setting: Setting | None) -> list[str]:
    if setting is None:
        return ["—"] * 6
    f, b = setting.fusion, setting.branch
    return [
        f.fusion if f.fusion != "rrf" else f"rrf k={f.rrf_k}",
        f"{f.vector_weight:g} / {f.bm25_weight:g}",
        str(b.candidates),
        str(b.ef_search),
        f"{b.k1:g}",
        f"{b.b:g}",
    ]


def sweep_rows(report: TuneReport, top: int = 10) -> tuple[list[str], list[list[str]]]:
    """The table: the references (train with CI, test once), then the top settings of the sweep (train)."""
    split = report.test_split or "-"
    header = ["setting", "fusion", "vector / bm25", "cand", "ef", "k1", "b", f"train {report.metric}"]
    header.append(f"test ({split}) {report.metric}")
    rows = [[r.name, *_args_cells(r.setting), _ci(r.train), _ci(r.test)] for r in report.rows]
    ranked = sorted(report.trials, key=lambda t: -t.mean)[:top]
    rows += [[f"sweep #{i}", *_args_cells(t.setting), f"{t.mean:.4f}", ""] for i, t in enumerate(ranked, 1)]
    return header, rows


def naive_seconds(report: TuneReport) -> tuple[float, float] | None:
    """(ms per hybrid_search call with the defaults, measured in the check; seconds a query-by-query sweep of the
    scored settings would take at that speed)."""
    times = [v.ms_per_query for v in report.verifications if v.setting == ROW_DEFAULTS]
    if not times:
        return None
    return times[0], times[0] / 1000 * len(report.trials) * report.rows[0].train.n


def comparison_text(label: str, c: Comparison) -> str:
    return (
        f"{label}: Δ {c.metric} {c.delta:+.4f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}], p = {c.p_value:.3f} "
        f"({c.wins} better, {c.losses} worse, {c.ties} equal of {c.n})"
    )


def verification_text(v: Verification) -> str:
    status = "OK" if v.ok else "MISMATCH"
    return (
        f"{v.setting}, {v.split}: staged {v.staged_mean:.6f} vs hybrid_search {v.hybrid_mean:.6f}, identical "
        f"rankings for {v.identical_queries}/{v.queries} queries: {status} ({v.ms_per_query:.1f} ms per query)"
    )


def to_json(report: TuneReport, command: str = "") -> dict[str, Any]:
    def summary(s: MetricSummary | None) -> dict[str, Any] | None:
        return None if s is None else {"mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n}

    return {
        "testset": report.testset,
        "collection": report.collection,
        "train_split": report.train_split,
        "test_split": report.test_split,
        "metric": report.metric,
        "match_count": report.match_count,
        "min_gain": report.min_gain,
        "best": report.best.arguments(),
        "best_label": report.best.label(),
        "rows": [
            {
                "name": r.name,
                "arguments": r.setting.arguments() if r.setting else None,
                "train": summary(r.train),
                "test": summary(r.test),
            }
            for r in report.rows
        ],
        "best_single_branch": report.best_single,
        "comparisons": {k: asdict(c) for k, c in report.comparisons.items()},
        "verifications": [asdict(v) | {"ok": v.ok} for v in report.verifications],
        "path": [{"stage": t.stage, "arguments": t.setting.arguments(), "train_mean": t.mean} for t in report.path],
        "trials": [{"stage": t.stage, "arguments": t.setting.arguments(), "train_mean": t.mean} for t in report.trials],
        "seconds": report.seconds,
        "counts": report.counts,
        "saved": report.saved,
        "notes": report.notes,
        "command": command,
    }


def to_markdown(report: TuneReport, command: str = "") -> str:
    header, rows = sweep_rows(report, top=15)
    lines = [
        f"# Tuning {report.testset}, collection `{report.collection}`",
        "",
        f"Selected on the `{report.train_split}` split only ({report.rows[0].train.n} queries) by coordinate search; "
        f"the `{report.test_split}` split was scored once, for the fixed rows below. Objective {report.metric} over "
        f"document rankings (each query asks for {report.match_count} chunks; a document ranks at its best chunk); "
        f"95% bootstrap CIs; a move had to gain at least {report.min_gain:g} (and among branch values within that "
        "of the best, the cheapest or most default-like was taken). The tuned row's training figure is "
        "optimistic (it was selected on those queries); its test figure is the honest one.",
        "",
        f"**Best on train:** `{report.best.label()}`  ",
        f"hybrid_search arguments: `{json.dumps(report.best.arguments())}`",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Search path (train)", ""]
    lines += [f"- {t.stage}: `{t.setting.label()}` → {t.mean:.4f}" for t in report.path]
    lines += ["", f"## Paired comparisons ({report.test_split or report.train_split} split, permutation test)", ""]
    lines += [f"- {comparison_text(label, c)}" for label, c in report.comparisons.items()]
    lines += ["", f"The best single branch ({report.best_single}) was chosen on the training split."]
    lines += ["", "## Check against the real hybrid_search", ""]
    lines += [f"- {verification_text(v)}" for v in report.verifications]
    lines += ["", "## Cost", ""]
    lines.append(
        f"- {report.counts.get('settings_scored', 0)} settings scored on train; "
        f"{report.counts.get('branch_list_fetches', 0)} branch-list fetches, "
        f"{report.counts.get('fusion_statements', 0)} fusion statements, "
        f"{report.counts.get('hybrid_search_calls', 0)} hybrid_search calls (verification)"
    )
    lines.append(f"- search {report.seconds.get('search', 0):.0f} s, total {report.seconds.get('total', 0):.0f} s")
    naive = naive_seconds(report)
    if naive is not None:
        per_query, total = naive
        lines.append(
            f"- hybrid_search took {per_query:.1f} ms per query with the defaults here, so scoring the same settings "
            "one query at a "
            f"time would have taken about {total / 60:.0f} min"
        )
    if report.saved is not None:
        lines += ["", f"Saved as the collection's default search settings: `{json.dumps(report.saved)}`"]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    if command:
        lines += ["", "Produced by:", "", f"    {command}"]
    return "\n".join(lines) + "\n"


def print_report(report: TuneReport, console: Any) -> None:
    """The sweep table, the paired comparisons and the check, on a rich console."""
    from rich.table import Table

    header, rows = sweep_rows(report)
    table = Table(title=f"{report.testset}: best on {report.train_split} = {report.best.label()}", title_justify="left")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for label, comparison in report.comparisons.items():
        console.print(comparison_text(label, comparison))
    for verification in report.verifications:
        console.print("check " + verification_text(verification))


def write_report(report: TuneReport, out_dir: Path, command: str = "") -> list[Path]:
    """tune.md and tune.json in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "tune.md", out_dir / "tune.json"
    md.write_text(to_markdown(report, command), encoding="utf-8")
    js.write_text(json.dumps(to_json(report, command), indent=2, default=str), encoding="utf-8")
    return [md, js]


def require_verified(report: TuneReport) -> None:
    """Raise when the staged computation and hybrid_search disagree (a bug, never a user error)."""
    bad = [v for v in report.verifications if not v.ok]
    if bad:
        raise PgRetrievalError("tuning check failed: " + "; ".join(verification_text(v) for v in bad))
