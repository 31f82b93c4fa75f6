"""Retrieval metrics that agree with trec_eval, with bootstrap confidence intervals and a paired test.

Why our own code: the package must stay numpy-only, and evaluation runs inside ``pgretrieval eval``/``tune`` on
every query of a split. The definitions are trec_eval's (v9, as in ``pytrec_eval``), checked to 1e-9:

=================  ==========================================================================================
``recall@k``       relevant docs in the top k / all relevant docs of the query (trec_eval ``recall_k``)
``precision@k``    relevant docs in the top k / k, also when fewer than k were retrieved (``P_k``)
``rr@k``           1 / rank of the first relevant doc if it is within the top k, else 0 (``recip_rank`` on the
                   top k; its mean is MRR@k)
``ndcg@k``         DCG@k / ideal DCG@k, gain = relevance grade, discount 1 / log2(rank + 1); the ideal ranking
                   is built from *all* judged relevant docs of the query, not only retrieved ones (``ndcg_cut_k``)
``map@k``          sum of precision@r over ranks r <= k holding a relevant doc / all relevant docs (``map_cut_k``)
``hit@k``          1 if any relevant doc is in the top k, else 0; its mean is the hit rate (``success_k``)
=================  ==========================================================================================

Relevance: a judged grade ``>= relevance_level`` (default 1, trec_eval's default) is relevant; unjudged docs count
as grade 0. Gains in nDCG are the grades themselves; grades ``<= 0`` give no gain (trec_eval ignores negative
gains too).

Edge cases, decided once here:

- **Runs are ranked lists** (best first). A per-query ``{doc_id: score}`` mapping is also accepted and is ordered
  exactly as trec_eval orders it (score descending, then doc id descending): see :func:`rank_run`.
- **Duplicate doc ids** in a ranked list: only the first occurrence counts; later ones are dropped and the docs after
  them move up (what trec_eval sees after a ``{doc: score}`` mapping has collapsed them).
- **k larger than the list**: missing ranks are non-relevant (precision still divides by k, as trec_eval does).
- **Queries absent from the qrels** are not evaluated (trec_eval skips them too); they are listed in
  :attr:`RunEvaluation.unjudged`.
- **Queries in the qrels but absent from the run** count as an empty ranking, so every metric is 0 for them
  (trec_eval's ``-c``): a system that returns nothing must not look better by it. Listed in
  :attr:`RunEvaluation.missing_from_run`.
- **Queries whose qrels hold no relevant doc** (only grade <= 0 judgements): no system can score on them, so by
  default (``no_relevant="skip"``) they are left out of every mean and listed in :attr:`RunEvaluation.no_relevant`.
  ``no_relevant="zero"`` keeps them with every metric 0, which is exactly what trec_eval reports for them. The
  single-query functions (:func:`ndcg_at_k`, ...) return 0.0 for such queries, like trec_eval.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pgretrieval.errors import InvalidInputError

__all__ = [
    "DEFAULT_KS",
    "METRIC_FAMILIES",
    "Comparison",
    "MetricSummary",
    "QueryMetrics",
    "RunEvaluation",
    "bootstrap_ci",
    "compare",
    "evaluate_run",
    "hit_at_k",
    "map_at_k",
    "metric_name",
    "ndcg_at_k",
    "paired_bootstrap_ci",
    "paired_permutation_test",
    "precision_at_k",
    "query_metrics",
    "rank_run",
    "recall_at_k",
    "rr_at_k",
]

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 20, 100)
METRIC_FAMILIES: tuple[str, ...] = ("recall", "precision", "rr", "ndcg", "map", "hit")
DEFAULT_RESAMPLES = 10_000

# Other spellings people (and trec_eval) use for the same measures.
_ALIASES: dict[str, str] = {
    "recall": "recall",
    "r": "recall",
    "precision": "precision",
    "p": "precision",
    "rr": "rr",
    "mrr": "rr",
    "recip_rank": "rr",
    "ndcg": "ndcg",
    "ndcg_cut": "ndcg",
    "map": "map",
    "map_cut": "map",
    "ap": "map",
    "hit": "hit",
    "hits": "hit",
    "hit_rate": "hit",
    "hitrate": "hit",
    "success": "hit",
}
_NAME_RE = re.compile(r"^(?P<family>[a-z_]+?)\s*[@_]\s*(?P<k>\d+)$")

Ranking = Sequence[str] | Mapping[str, float]
NoRelevantPolicy = Literal["skip", "zero"]
FloatArray = npt.NDArray[np.float64]


def metric_name(name: str) -> tuple[str, int]:
    """Parse ``"ndcg@10"``, ``"NDCG@10"``, ``"P_5"``, ``"mrr@10"``, ``"success@1"`` into (family, k)."""
    m = _NAME_RE.match(name.strip().lower())
    family = _ALIASES.get(m.group("family")) if m else None
    if m is None or family is None or int(m.group("k")) < 1:
        raise InvalidInputError(
            f"unknown metric {name!r}: use FAMILY@K with FAMILY one of {', '.join(METRIC_FAMILIES)} "
            "(aliases: p, mrr, success, hit_rate, ndcg_cut, map_cut) and K >= 1, e.g. 'ndcg@10'"
        )
    return family, int(m.group("k"))


def _canonical(name: str) -> str:
    family, k = metric_name(name)
    return f"{family}@{k}"


def _check_ks(ks: Sequence[int] | int) -> tuple[int, ...]:
    if isinstance(ks, int):
        ks = (ks,)
    out: set[int] = set()
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidInputError(f"cutoff k must be a positive integer, got {k!r}")
        out.add(int(k))
    if not out:
        raise InvalidInputError("give at least one cutoff k")
    return tuple(sorted(out))


# ---------------------------------------------------------------------------------------------------- ranking


def rank_run(scores: Mapping[str, float]) -> list[str]:
    """Order a ``{doc_id: score}`` run as trec_eval does: score descending, ties by doc id descending.

    trec_eval breaks ties with ``strcmp`` on the doc ids; Python compares str by code point, which orders UTF-8
    bytes the same way, so the result is identical for any ids.
    """
    for doc, s in scores.items():
        if not isinstance(s, int | float | np.integer | np.floating) or isinstance(s, bool) or math.isnan(s):
            raise InvalidInputError(f"score of document {doc!r} must be a number, got {s!r}")
    return sorted(scores, key=lambda d: (float(scores[d]), d), reverse=True)


def _as_ranking(qid: str, ranking: Ranking) -> Sequence[str]:
    if isinstance(ranking, Mapping):
        return rank_run(ranking)
    if isinstance(ranking, str | bytes):
        raise InvalidInputError(f"run for query {qid!r} must be a list of doc ids, got a single string {ranking!r}")
    return ranking


# ------------------------------------------------------------------------------------------------ core (matrix)


@dataclass(frozen=True)
class _Judged:
    """One row per evaluated query: grades of the ranked docs up to the deepest k, and the ideal gains."""

    grades: FloatArray  # (n, depth) grade of the doc at each rank; 0 for unjudged or past the end of the list
    ideal: FloatArray  # (n, depth) positive grades of all judged docs, sorted descending, zero padded
    num_rel: FloatArray  # (n,) judged docs with grade >= relevance_level
    num_ret: npt.NDArray[np.int64]  # (n,) distinct docs in the ranking


def _judge(
    rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, float]], depth: int, relevance_level: float
) -> _Judged:
    n = len(rankings)
    grades = np.zeros((n, depth))
    ideal = np.zeros((n, depth))
    num_rel = np.zeros(n)
    num_ret = np.zeros(n, dtype=np.int64)
    for i, (ranking, judged) in enumerate(zip(rankings, qrels, strict=True)):
        seen: set[str] = set()
        row: list[float] = []
        for doc in ranking:
            if not isinstance(doc, str):
                raise InvalidInputError(f"doc ids in a run must be strings (as in the qrels), got {doc!r}")
            if doc in seen:
                continue  # later duplicates are ignored
            seen.add(doc)
            if len(row) < depth:
                row.append(judged.get(doc, 0))
        num_ret[i] = len(seen)
        grades[i, : len(row)] = row
        positive = sorted((g for g in judged.values() if g > 0), reverse=True)[:depth]
        ideal[i, : len(positive)] = positive
        num_rel[i] = sum(1 for g in judged.values() if g >= relevance_level)
    return _Judged(grades, ideal, num_rel, num_ret)


def _compute(j: _Judged, ks: tuple[int, ...], relevance_level: float) -> dict[str, FloatArray]:
    """All metric families at all ks, vectorised over queries (10k queries x depth 100 is ~1M cells)."""
    n, depth = j.grades.shape
    rel = (j.grades >= relevance_level).astype(np.float64)
    ranks = np.arange(1, depth + 1, dtype=np.float64)
    hits = np.cumsum(rel, axis=1)
    discount = 1.0 / np.log2(ranks + 1.0)
    dcg = np.cumsum(np.maximum(j.grades, 0.0) * discount, axis=1)
    idcg = np.cumsum(j.ideal * discount, axis=1)
    ap_sum = np.cumsum(rel * hits / ranks, axis=1)
    first = np.where(rel.any(axis=1), np.argmax(rel, axis=1) + 1, depth + 1)  # rank of first relevant doc

    has_rel = j.num_rel > 0
    safe_rel = np.where(has_rel, j.num_rel, 1.0)
    out: dict[str, FloatArray] = {}
    for k in ks:
        out[f"recall@{k}"] = np.where(has_rel, hits[:, k - 1] / safe_rel, 0.0)
    for k in ks:
        out[f"precision@{k}"] = hits[:, k - 1] / k
    for k in ks:
        out[f"rr@{k}"] = np.where(first <= k, 1.0 / first, 0.0)
    for k in ks:
        out[f"ndcg@{k}"] = np.divide(dcg[:, k - 1], idcg[:, k - 1], out=np.zeros(n), where=idcg[:, k - 1] > 0)
    for k in ks:
        out[f"map@{k}"] = np.where(has_rel, ap_sum[:, k - 1] / safe_rel, 0.0)
    for k in ks:
        out[f"hit@{k}"] = (hits[:, k - 1] > 0).astype(np.float64)
    return out


# --------------------------------------------------------------------------------------------- single query


def query_metrics(
    ranked: Ranking, qrels: Mapping[str, float], ks: Sequence[int] | int = DEFAULT_KS, *, relevance_level: float = 1
) -> dict[str, float]:
    """Every metric at every k for one query, as ``{"ndcg@10": ..., ...}``."""
    ks_t = _check_ks(ks)
    j = _judge([_as_ranking("<query>", ranked)], [qrels], max(ks_t), relevance_level)
    return {name: float(v[0]) for name, v in _compute(j, ks_t, relevance_level).items()}


def _one(family: str, ranked: Ranking, qrels: Mapping[str, float], k: int, relevance_level: float) -> float:
    return query_metrics(ranked, qrels, k, relevance_level=relevance_level)[f"{family}@{k}"]


def ndcg_at_k(ranked: Ranking, qrels: Mapping[str, float], k: int, *, relevance_level: float = 1) -> float:
    """nDCG@k of one ranked list (trec_eval ``ndcg_cut``); 0.0 when the query has no relevant doc."""
    return _one("ndcg", ranked, qrels, k, relevance_level)


def recall_at_k(ranked: Ranking, qrels: Mapping[str, float], k: int, *, relevance_level: float = 1) -> float:
    """Recall@k of one ranked list; 0.0 when the query has no relevant doc (trec_eval's value)."""
    return _one("recall", ranked, qrels, k, relevance_level)


def precision_at_k(ranked: Ranking, qrels: Mapping[str, float], k: int, *, relevance_level: float = 1) -> float:
    """Precision@k (trec_eval ``P``): divides by k even if fewer than k docs were retrieved."""
    return _one("precision", ranked, qrels, k, relevance_level)


def rr_at_k(ranked: Ranking, qrels: Mapping[str, float], k: int, *, relevance_level: float = 1) -> float:
    """Reciprocal rank of the first relevant doc within the top k (0.0 if none); its mean is MRR@k."""
    return _one("rr", ranked, qrels, k, relevance_level)


def map_at_k(ranked: Ranking, qrels: Mapping[str, float], k: int, *, relevance_level: float = 1) -> float:
    """Average precision cut at k (trec_eval ``map_cut``): divides by all relevant docs, not min(k, relevant)."""
    return _one("map", ranked, qrels, k, relevance_level)


def hit_at_k(ranked: Ranking, qrels: Mapping[str, float], k: int, *, relevance_level: float = 1) -> float:
    """1.0 if a relevant doc is in the top k, else 0.0 (trec_eval ``success``); its mean is the hit rate."""
    return _one("hit", ranked, qrels, k, relevance_level)


# -------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class QueryMetrics:
    """One query's values, keyed by canonical metric name (``"ndcg@10"``)."""

    qid: str
    num_relevant: int
    num_retrieved: int
    values: Mapping[str, float]

    def __getitem__(self, metric: str) -> float:
        return self.values[_canonical(metric)]


@dataclass(frozen=True)
class MetricSummary:
    """Mean over queries with a percentile-bootstrap confidence interval."""

    metric: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    confidence: float = 0.95


@dataclass(frozen=True)
class Comparison:
    """Candidate minus baseline on the same queries: mean difference, its bootstrap CI and a paired p-value."""

    metric: str
    baseline_mean: float
    candidate_mean: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    wins: int  # queries where the candidate scores higher
    losses: int
    ties: int
    confidence: float = 0.95

    def significant(self, alpha: float = 0.05) -> bool:
        """True when the two-sided paired randomisation test rejects 'no difference' at level alpha."""
        return self.p_value < alpha


@dataclass(frozen=True, eq=False)
class RunEvaluation:
    """Per-query metric values of one run (rows in :attr:`qids` order) and their summaries.

    Compared by identity: it holds numpy arrays, whose ``==`` is elementwise.
    """

    qids: tuple[str, ...]
    ks: tuple[int, ...]
    num_relevant: tuple[int, ...]
    num_retrieved: tuple[int, ...]
    _values: Mapping[str, FloatArray] = field(repr=False)
    no_relevant: tuple[str, ...] = ()  # judged queries without a relevant doc, left out (policy "skip")
    missing_from_run: tuple[str, ...] = ()  # judged queries the run has no entry for (scored as empty)
    unjudged: tuple[str, ...] = ()  # run queries absent from the qrels (not evaluated)
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {q: i for i, q in enumerate(self.qids)})

    @property
    def metrics(self) -> tuple[str, ...]:
        """Canonical names of every metric held, e.g. ``("recall@1", "precision@1", ...)``."""
        return tuple(self._values)

    def __len__(self) -> int:
        return len(self.qids)

    def values(self, metric: str) -> FloatArray:
        """Per-query values of one metric as a (read-only) array aligned with :attr:`qids`."""
        name = _canonical(metric)
        if name not in self._values:
            raise InvalidInputError(f"metric {name!r} was not computed; this evaluation has ks={list(self.ks)}")
        return self._values[name]

    def per_query(self, metric: str) -> dict[str, float]:
        """``{qid: value}`` for one metric."""
        return dict(zip(self.qids, self.values(metric).tolist(), strict=True))

    def query(self, qid: str) -> QueryMetrics:
        """Every metric of one query."""
        i = self._index.get(qid)
        if i is None:
            raise InvalidInputError(f"query {qid!r} is not part of this evaluation")
        vals = {name: float(v[i]) for name, v in self._values.items()}
        return QueryMetrics(qid, self.num_relevant[i], self.num_retrieved[i], MappingProxyType(vals))

    def queries(self) -> Iterator[QueryMetrics]:
        for qid in self.qids:
            yield self.query(qid)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: means, per-query values and the query bookkeeping (for reports)."""
        return {
            "ks": list(self.ks),
            "num_queries": len(self.qids),
            "means": {m: self.mean(m) for m in self.metrics},
            "per_query": {
                q: {"num_relevant": nr, "num_retrieved": nt, **{m: float(v[i]) for m, v in self._values.items()}}
                for i, (q, nr, nt) in enumerate(zip(self.qids, self.num_relevant, self.num_retrieved, strict=True))
            },
            "no_relevant": list(self.no_relevant),
            "missing_from_run": list(self.missing_from_run),
            "unjudged": list(self.unjudged),
        }

    def mean(self, metric: str) -> float:
        """Plain mean over the evaluated queries (0.0 when there are none)."""
        v = self.values(metric)
        return float(v.mean()) if v.size else 0.0

    def __getitem__(self, metric: str) -> float:
        return self.mean(metric)

    def summary(
        self,
        metric: str,
        *,
        confidence: float = 0.95,
        n_resamples: int = DEFAULT_RESAMPLES,
        seed: int | None = 0,
    ) -> MetricSummary:
        """Mean of one metric with a percentile-bootstrap CI over queries."""
        return self.summaries([metric], confidence=confidence, n_resamples=n_resamples, seed=seed)[_canonical(metric)]

    def summaries(
        self,
        metrics: Sequence[str] | None = None,
        *,
        confidence: float = 0.95,
        n_resamples: int = DEFAULT_RESAMPLES,
        seed: int | None = 0,
    ) -> dict[str, MetricSummary]:
        """Summaries of several metrics (default: all) from one shared set of bootstrap resamples."""
        names = [_canonical(m) for m in metrics] if metrics is not None else list(self._values)
        if not self.qids:
            raise InvalidInputError("no query was evaluated (empty run or qrels), so there is nothing to summarise")
        matrix = np.column_stack([self.values(m) for m in names])
        lows, highs = _bootstrap_bounds(matrix, confidence, n_resamples, seed)
        n = len(self.qids)
        return {
            m: MetricSummary(m, float(matrix[:, c].mean()), float(lows[c]), float(highs[c]), n, confidence)
            for c, m in enumerate(names)
        }

    def compare(
        self,
        candidate: RunEvaluation,
        metric: str,
        *,
        confidence: float = 0.95,
        n_resamples: int = DEFAULT_RESAMPLES,
        seed: int | None = 0,
    ) -> Comparison:
        """Compare ``candidate`` against this run (the baseline); see :func:`compare`."""
        return compare(self, candidate, metric, confidence=confidence, n_resamples=n_resamples, seed=seed)


def evaluate_run(
    run: Mapping[str, Ranking],
    qrels: Mapping[str, Mapping[str, float]],
    ks: Sequence[int] | int = DEFAULT_KS,
    *,
    relevance_level: float = 1,
    no_relevant: NoRelevantPolicy = "skip",
) -> RunEvaluation:
    """Evaluate a whole run: ``run[qid]`` is a ranked list of doc ids (or a ``{doc: score}`` mapping).

    The evaluated queries are the judged ones (keys of ``qrels``), in qrels order; see the module docstring for
    queries missing from the run, unjudged run queries and queries with no relevant doc.
    """
    ks_t = _check_ks(ks)
    if no_relevant not in ("skip", "zero"):
        raise InvalidInputError(f"no_relevant must be 'skip' or 'zero', got {no_relevant!r}")
    qids: list[str] = []
    rankings: list[Sequence[str]] = []
    judgements: list[Mapping[str, float]] = []
    skipped: list[str] = []
    missing: list[str] = []
    for qid, judged in qrels.items():
        for doc, grade in judged.items():
            if isinstance(grade, bool) or not isinstance(grade, int | float | np.integer | np.floating):
                raise InvalidInputError(f"qrels grade of query {qid!r}, doc {doc!r} must be a number, got {grade!r}")
        if no_relevant == "skip" and not any(g >= relevance_level for g in judged.values()):
            skipped.append(qid)
            continue
        ranking = run.get(qid)
        if ranking is None:
            missing.append(qid)
            ranking = ()
        qids.append(qid)
        rankings.append(_as_ranking(qid, ranking))
        judgements.append(judged)
    unjudged = tuple(q for q in run if q not in qrels)
    if run and qids and len(unjudged) == len(run):
        raise InvalidInputError(
            f"none of the run's {len(run)} query ids is in the qrels (e.g. run has {next(iter(run))!r}, qrels have "
            f"{qids[0]!r}); check that both use the same query ids and types"
        )
    j = _judge(rankings, judgements, max(ks_t), relevance_level)
    values = _compute(j, ks_t, relevance_level)
    for v in values.values():
        v.flags.writeable = False
    return RunEvaluation(
        qids=tuple(qids),
        ks=ks_t,
        num_relevant=tuple(int(x) for x in j.num_rel),
        num_retrieved=tuple(int(x) for x in j.num_ret),
        _values=MappingProxyType(values),
        no_relevant=tuple(skipped),
        missing_from_run=tuple(missing),
        unjudged=unjudged,
    )


# -------------------------------------------------------------------------------------------------- statistics


def _check_stats_args(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise InvalidInputError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _as_matrix(values: Sequence[float] | npt.ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise InvalidInputError("need at least one per-query value to compute a confidence interval")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("per-query values must be finite numbers (found NaN or infinity)")
    return arr


def _bootstrap_means(matrix: FloatArray, n_resamples: int, rng: np.random.Generator) -> FloatArray:
    """Means of ``n_resamples`` resamples (rows drawn with replacement); every column shares the same resamples.

    Each resample is turned into a count per row, so all columns cost one matrix product; work is chunked to keep
    memory near 16 MB even for 10k queries x 10k resamples.
    """
    n = matrix.shape[0]
    out = np.empty((n_resamples, matrix.shape[1]))
    step = max(1, min(n_resamples, 2_000_000 // n))
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out[start : start + b] = counts @ matrix / n
    return out


def _bootstrap_bounds(
    matrix: FloatArray, confidence: float, n_resamples: int, seed: int | None
) -> tuple[FloatArray, FloatArray]:
    _check_stats_args(confidence, n_resamples)
    matrix = _as_matrix(matrix)
    means = _bootstrap_means(matrix, n_resamples, np.random.default_rng(seed))
    alpha = (1.0 - confidence) / 2.0
    lows, highs = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    # A constant column has a zero-width interval; say so exactly rather than up to rounding in the product.
    constant = np.ptp(matrix, axis=0) == 0
    return np.where(constant, matrix[0], lows), np.where(constant, matrix[0], highs)


def bootstrap_ci(
    values: Sequence[float] | npt.ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of per-query values (seedable)."""
    lows, highs = _bootstrap_bounds(_as_matrix(values), confidence, n_resamples, seed)
    return float(lows[0]), float(highs[0])


def paired_bootstrap_ci(
    baseline: Sequence[float] | npt.ArrayLike,
    candidate: Sequence[float] | npt.ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Bootstrap CI of mean(candidate - baseline), resampling queries (pairs stay together)."""
    return bootstrap_ci(_differences(baseline, candidate), confidence=confidence, n_resamples=n_resamples, seed=seed)


def _differences(baseline: Sequence[float] | npt.ArrayLike, candidate: Sequence[float] | npt.ArrayLike) -> FloatArray:
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise InvalidInputError(
            f"paired values must be two 1-d sequences of the same length, got shapes {a.shape} and {b.shape}"
        )
    if a.size == 0:
        raise InvalidInputError("need at least one query to compare two runs")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InvalidInputError("per-query values must be finite numbers (found NaN or infinity)")
    return b - a


def paired_permutation_test(
    baseline: Sequence[float] | npt.ArrayLike,
    candidate: Sequence[float] | npt.ArrayLike,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = 0,
) -> float:
    """Two-sided paired randomisation test of mean(candidate - baseline) = 0; returns the p-value.

    Under the null hypothesis each query's pair is exchangeable, so each difference's sign is flipped at random.
    With ``2**n <= n_resamples`` all sign patterns are enumerated (exact p); otherwise the p-value is
    ``(hits + 1) / (n_resamples + 1)``, which never returns 0 and keeps the test valid. Identical runs give 1.0.
    """
    _check_stats_args(0.95, n_resamples)
    d = _differences(baseline, candidate)
    n = d.size
    total = float(d.sum())
    observed = abs(total) / n
    tol = 1e-12 * max(1.0, observed)  # sums of the same terms in another order may differ in the last bits
    if 2**n <= n_resamples:
        patterns = np.arange(2**n)[:, None] >> np.arange(n)[None, :]
        signs = (patterns & 1) * 2.0 - 1.0
        stats = np.abs(signs @ d) / n
        return float(np.count_nonzero(stats >= observed - tol) / 2**n)
    rng = np.random.default_rng(seed)
    hits = 0
    step = max(1, min(n_resamples, 2_000_000 // n))
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        # One random bit per query and resample; sum(sign * d) = 2 * sum(bit * d) - sum(d).
        bits = np.unpackbits(rng.integers(0, 256, size=(b, (n + 7) // 8), dtype=np.uint8), axis=1, count=n)
        stats = np.abs(2.0 * (bits.astype(np.float64) @ d) - total) / n
        hits += int(np.count_nonzero(stats >= observed - tol))
    return (hits + 1) / (n_resamples + 1)


def compare(
    baseline: RunEvaluation,
    candidate: RunEvaluation,
    metric: str,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = 0,
) -> Comparison:
    """Paired comparison of two evaluations of the same queries on one metric (delta = candidate - baseline)."""
    name = _canonical(metric)
    if set(baseline.qids) != set(candidate.qids):
        only_a = sorted(set(baseline.qids) - set(candidate.qids))[:5]
        only_b = sorted(set(candidate.qids) - set(baseline.qids))[:5]
        raise InvalidInputError(
            "a paired comparison needs the same queries in both evaluations; "
            f"only in baseline: {only_a}, only in candidate: {only_b} (first 5 shown)"
        )
    a = baseline.values(name)
    by_qid = candidate.per_query(name)
    b = np.array([by_qid[q] for q in baseline.qids], dtype=np.float64)
    low, high = paired_bootstrap_ci(a, b, confidence=confidence, n_resamples=n_resamples, seed=seed)
    p = paired_permutation_test(a, b, n_resamples=n_resamples, seed=seed)
    d = b - a
    return Comparison(
        metric=name,
        baseline_mean=float(a.mean()),
        candidate_mean=float(b.mean()),
        delta=float(d.mean()),
        ci_low=low,
        ci_high=high,
        p_value=p,
        n=int(d.size),
        wins=int(np.count_nonzero(d > 0)),
        losses=int(np.count_nonzero(d < 0)),
        ties=int(np.count_nonzero(d == 0)),
        confidence=confidence,
    )
