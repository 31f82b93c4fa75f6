"""Metric definitions checked against hand-computed values (trec_eval semantics) and, when installed, pytrec_eval."""

from __future__ import annotations

import json
import math
import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgretrieval.errors import InvalidInputError
from pgretrieval.metrics import (
    Comparison,
    MetricSummary,
    bootstrap_ci,
    compare,
    evaluate_run,
    hit_at_k,
    map_at_k,
    metric_name,
    ndcg_at_k,
    paired_bootstrap_ci,
    paired_permutation_test,
    precision_at_k,
    query_metrics,
    rank_run,
    recall_at_k,
    rr_at_k,
)

L2 = math.log2
ABS = 1e-12

# ------------------------------------------------------------------------------------------- binary relevance

# Ranking d1..d5; relevant: d2, d4 and d9 (d9 never retrieved), so 3 relevant docs in all.
# Relevance by rank:  1:d1=0  2:d2=1  3:d3=0  4:d4=1  5:d5=0
BIN_RANKED = ["d1", "d2", "d3", "d4", "d5"]
BIN_QRELS = {"d2": 1, "d4": 1, "d9": 1, "d3": 0}


def test_binary_precision_recall_hit() -> None:
    # P@1 = 0/1; P@3 = 1/3; P@5 = 2/5; P@10 = 2/10 (trec_eval divides by k although only 5 were retrieved)
    assert precision_at_k(BIN_RANKED, BIN_QRELS, 1) == pytest.approx(0.0, abs=ABS)
    assert precision_at_k(BIN_RANKED, BIN_QRELS, 3) == pytest.approx(1 / 3, abs=ABS)
    assert precision_at_k(BIN_RANKED, BIN_QRELS, 5) == pytest.approx(2 / 5, abs=ABS)
    assert precision_at_k(BIN_RANKED, BIN_QRELS, 10) == pytest.approx(2 / 10, abs=ABS)
    # R@1 = 0/3; R@3 = 1/3; R@5 = R@100 = 2/3 (d9 is never found)
    assert recall_at_k(BIN_RANKED, BIN_QRELS, 1) == pytest.approx(0.0, abs=ABS)
    assert recall_at_k(BIN_RANKED, BIN_QRELS, 3) == pytest.approx(1 / 3, abs=ABS)
    assert recall_at_k(BIN_RANKED, BIN_QRELS, 100) == pytest.approx(2 / 3, abs=ABS)
    # hit@1 = 0 (d1 not relevant); hit@2 = 1
    assert hit_at_k(BIN_RANKED, BIN_QRELS, 1) == 0.0
    assert hit_at_k(BIN_RANKED, BIN_QRELS, 2) == 1.0


def test_binary_rr_map_ndcg() -> None:
    # First relevant doc at rank 2: RR@1 = 0, RR@2 = RR@10 = 1/2
    assert rr_at_k(BIN_RANKED, BIN_QRELS, 1) == 0.0
    assert rr_at_k(BIN_RANKED, BIN_QRELS, 2) == pytest.approx(0.5, abs=ABS)
    assert rr_at_k(BIN_RANKED, BIN_QRELS, 10) == pytest.approx(0.5, abs=ABS)
    # AP@3 = P@2 / 3 = (1/2) / 3 = 1/6;  AP@5 = (P@2 + P@4) / 3 = (1/2 + 2/4) / 3 = 1/3  (divides by all 3 relevant)
    assert map_at_k(BIN_RANKED, BIN_QRELS, 3) == pytest.approx(1 / 6, abs=ABS)
    assert map_at_k(BIN_RANKED, BIN_QRELS, 5) == pytest.approx(1 / 3, abs=ABS)
    # DCG@5 = 1/log2(3) + 1/log2(5); ideal has 3 relevant docs: 1/log2(2) + 1/log2(3) + 1/log2(4)
    dcg5 = 1 / L2(3) + 1 / L2(5)
    idcg5 = 1 + 1 / L2(3) + 1 / L2(4)
    assert ndcg_at_k(BIN_RANKED, BIN_QRELS, 5) == pytest.approx(dcg5 / idcg5, abs=ABS)
    # nDCG@2 = (1/log2(3)) / (1 + 1/log2(3))
    assert ndcg_at_k(BIN_RANKED, BIN_QRELS, 2) == pytest.approx((1 / L2(3)) / (1 + 1 / L2(3)), abs=ABS)


# -------------------------------------------------------------------------------------------- graded relevance


def test_graded_ndcg_uses_grade_as_gain_and_all_judged_docs_for_the_ideal() -> None:
    # Ranking a, b, c; qrels a=1, b=0, c=2, e=2 (e not retrieved), x=-1 (negative grade: no gain, not relevant).
    ranked = ["x", "a", "b", "c"]
    qrels = {"a": 1, "b": 0, "c": 2, "e": 2, "x": -1}
    # Gains by rank: 1:x=0 (negative clipped), 2:a=1, 3:b=0, 4:c=2
    # DCG@4  = 0 + 1/log2(3) + 0 + 2/log2(5)
    # IDCG@4 = ideal gains 2, 2, 1 -> 2/log2(2) + 2/log2(3) + 1/log2(4) = 2 + 2/log2(3) + 0.5
    dcg4 = 1 / L2(3) + 2 / L2(5)
    idcg4 = 2 + 2 / L2(3) + 0.5
    assert ndcg_at_k(ranked, qrels, 4) == pytest.approx(dcg4 / idcg4, abs=ABS)
    # nDCG@1 = 0 / 2 = 0 (x has grade -1);  nDCG@2 = (1/log2(3)) / (2 + 2/log2(3))
    assert ndcg_at_k(ranked, qrels, 1) == 0.0
    assert ndcg_at_k(ranked, qrels, 2) == pytest.approx((1 / L2(3)) / (2 + 2 / L2(3)), abs=ABS)
    # Binary measures: relevant = grade >= 1 -> a, c, e (3). P@4 = 2/4, R@4 = 2/3, RR = 1/2,
    # AP@4 = (P@2 + P@4) / 3 = (1/2 + 2/4) / 3 = 1/3
    m = query_metrics(ranked, qrels, (4,))
    assert m["precision@4"] == pytest.approx(0.5, abs=ABS)
    assert m["recall@4"] == pytest.approx(2 / 3, abs=ABS)
    assert m["rr@4"] == pytest.approx(0.5, abs=ABS)
    assert m["map@4"] == pytest.approx(1 / 3, abs=ABS)


def test_relevance_level_changes_binary_measures_but_not_ndcg_gains() -> None:
    # With relevance_level=2 only c and e are relevant: P@4 = 1/4 (c at rank 4), R@4 = 1/2, RR@4 = 1/4.
    ranked = ["a", "b", "x", "c"]
    qrels = {"a": 1, "c": 2, "e": 2}
    m = query_metrics(ranked, qrels, 4, relevance_level=2)
    assert m["precision@4"] == pytest.approx(0.25, abs=ABS)
    assert m["recall@4"] == pytest.approx(0.5, abs=ABS)
    assert m["rr@4"] == pytest.approx(0.25, abs=ABS)
    # nDCG still uses every positive grade: DCG = 1 + 2/log2(5); IDCG = 2 + 2/log2(3) + 1/log2(4)
    assert m["ndcg@4"] == pytest.approx((1 + 2 / L2(5)) / (2 + 2 / L2(3) + 0.5), abs=ABS)


def test_perfect_ranking_scores_one() -> None:
    qrels = {"a": 3, "b": 2, "c": 1}
    m = query_metrics(["a", "b", "c"], qrels, (3, 10))
    for name in ("ndcg@3", "ndcg@10", "recall@3", "map@3", "rr@3", "hit@3", "precision@3"):
        assert m[name] == pytest.approx(1.0, abs=ABS), name
    assert m["precision@10"] == pytest.approx(0.3, abs=ABS)


# -------------------------------------------------------------------------------------------------- edge cases


def test_k_larger_than_the_list_and_empty_ranking() -> None:
    # One relevant doc at rank 1 of a 1-doc list: P@100 = 1/100, R@100 = 1, nDCG@100 = 1, AP@100 = 1
    m = query_metrics(["a"], {"a": 1}, 100)
    assert m["precision@100"] == pytest.approx(0.01, abs=ABS)
    assert m["recall@100"] == m["ndcg@100"] == m["map@100"] == m["rr@100"] == 1.0
    empty = query_metrics([], {"a": 1}, (1, 5))
    assert all(v == 0.0 for v in empty.values())


def test_duplicates_keep_the_first_occurrence_and_shift_later_docs_up() -> None:
    # ["a", "a", "b"] is read as ["a", "b"]: b (relevant) is at rank 2, not 3.
    # RR = 1/2; P@2 = 1/2; nDCG@2 = (1/log2(3)) / 1
    ranked = ["a", "a", "b", "a"]
    qrels = {"b": 1}
    assert rr_at_k(ranked, qrels, 10) == pytest.approx(0.5, abs=ABS)
    assert precision_at_k(ranked, qrels, 2) == pytest.approx(0.5, abs=ABS)
    assert ndcg_at_k(ranked, qrels, 2) == pytest.approx(1 / L2(3), abs=ABS)
    # A duplicated relevant doc is counted once: P@2 of ["b", "b"] = 1/2, not 2/2.
    assert precision_at_k(["b", "b"], qrels, 2) == pytest.approx(0.5, abs=ABS)
    ev = evaluate_run({"q": ranked}, {"q": qrels}, (2,))
    assert ev.query("q").num_retrieved == 2


def test_ties_are_broken_like_trec_eval() -> None:
    # Score descending, then doc id descending (strcmp): c(0.9), then the 0.5 tie as b before a, then d.
    assert rank_run({"a": 0.5, "b": 0.5, "c": 0.9, "d": 0.1}) == ["c", "b", "a", "d"]
    # Doc ids compare as strings, not numbers: "9" > "10".
    assert rank_run({"10": 1.0, "9": 1.0, "100": 1.0}) == ["9", "100", "10"]
    # A {doc: score} run is accepted directly and ordered the same way: relevant a lands at rank 3.
    # RR = 1/3; nDCG@3 = (1/log2(4)) / 1 = 0.5
    run = {"q": {"a": 0.5, "b": 0.5, "c": 0.9}}
    ev = evaluate_run(run, {"q": {"a": 1}}, (3,))
    assert ev.mean("rr@3") == pytest.approx(1 / 3, abs=ABS)
    assert ev.mean("ndcg@3") == pytest.approx(0.5, abs=ABS)
    with pytest.raises(InvalidInputError, match="must be a number"):
        rank_run({"a": float("nan")})


def test_queries_without_relevant_docs_are_skipped_or_zero() -> None:
    run = {"q1": ["a", "b"], "q2": ["x"], "q3": ["z"]}
    # q2 has only a grade-0 judgement; q3 has no qrels at all; q4 is judged but missing from the run.
    qrels = {"q1": {"b": 1}, "q2": {"x": 0}, "q4": {"a": 1}}
    ev = evaluate_run(run, qrels, (1, 2))
    assert ev.qids == ("q1", "q4")
    assert ev.no_relevant == ("q2",)
    assert ev.unjudged == ("q3",)
    assert ev.missing_from_run == ("q4",)
    # q1: RR@2 = 1/2; q4 (missing) = 0  -> mean (0.5 + 0) / 2 = 0.25
    assert ev.mean("mrr@2") == pytest.approx(0.25, abs=ABS)
    # trec_eval's own behaviour keeps q2 with every value 0: mean (0.5 + 0 + 0) / 3
    ev0 = evaluate_run(run, qrels, (1, 2), no_relevant="zero")
    assert ev0.qids == ("q1", "q2", "q4")
    assert ev0.mean("rr@2") == pytest.approx(0.5 / 3, abs=ABS)
    assert all(v == 0.0 for v in ev0.query("q2").values.values())
    # The single-query functions return trec_eval's 0.0 for such a query.
    assert ndcg_at_k(["x"], {"x": 0}, 10) == recall_at_k(["x"], {}, 10) == map_at_k(["x"], {}, 10) == 0.0


def test_evaluate_run_access_by_name_and_per_query() -> None:
    run = {"q1": BIN_RANKED, "q2": ["d2"]}
    qrels = {"q1": BIN_QRELS, "q2": {"d2": 2}}
    ev = evaluate_run(run, qrels)
    assert ev.ks == (1, 3, 5, 10, 20, 100)
    assert len(ev.metrics) == 6 * 6
    # q1 nDCG@5 from the hand computation above; q2 has its only relevant doc at rank 1 -> 1.0
    q1 = (1 / L2(3) + 1 / L2(5)) / (1 + 1 / L2(3) + 1 / L2(4))
    assert ev.per_query("ndcg@5") == pytest.approx({"q1": q1, "q2": 1.0}, abs=ABS)
    assert ev["NDCG@5"] == pytest.approx((q1 + 1.0) / 2, abs=ABS)
    assert ev.query("q1")["P@5"] == pytest.approx(0.4, abs=ABS)
    assert ev.query("q1").num_relevant == 3
    assert [q.qid for q in ev.queries()] == ["q1", "q2"]
    with pytest.raises(InvalidInputError, match="not computed"):
        ev.values("ndcg@7")
    with pytest.raises(ValueError, match="read-only"):
        ev.values("ndcg@10")[0] = 1.0
    with pytest.raises(InvalidInputError, match="single string"):
        evaluate_run({"q1": "d1"}, qrels)


def test_to_dict_is_json_ready() -> None:
    ev = evaluate_run({"q1": ["a", "b"], "zz": ["a"]}, {"q1": {"b": 1}, "q2": {"c": 0}}, (1, 2))
    d = ev.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["means"]["rr@2"] == 0.5
    assert d["per_query"]["q1"]["precision@2"] == 0.5 and d["per_query"]["q1"]["num_relevant"] == 1
    assert (d["no_relevant"], d["missing_from_run"], d["unjudged"]) == (["q2"], [], ["zz"])


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="positive integer"):
        evaluate_run({}, {"q": {"a": 1}}, (0,))
    with pytest.raises(InvalidInputError, match="no_relevant"):
        evaluate_run({}, {"q": {"a": 1}}, no_relevant="drop")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be a number"):
        evaluate_run({}, {"q": {"a": "1"}})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="doc ids in a run must be strings"):
        evaluate_run({"q": [1, 2]}, {"q": {"1": 1}})  # type: ignore[list-item]
    # A run whose query ids all miss the qrels is a bug (e.g. int vs str ids), not a score of 0.
    with pytest.raises(InvalidInputError, match="none of the run's 1 query ids is in the qrels"):
        evaluate_run({1: ["a"]}, {"1": {"a": 1}})  # type: ignore[dict-item]


def test_metric_names() -> None:
    assert metric_name("NDCG@10") == ("ndcg", 10)
    assert metric_name("P_5") == ("precision", 5)
    assert metric_name("mrr@10") == ("rr", 10)
    assert metric_name("success@1") == ("hit", 1)
    assert metric_name("hit_rate@3") == ("hit", 3)
    assert metric_name("map_cut_100") == ("map", 100)
    assert metric_name("ndcg_cut_20") == ("ndcg", 20)
    for bad in ("ndcg", "ndcg@0", "bleu@10", "@10"):
        with pytest.raises(InvalidInputError, match="unknown metric"):
            metric_name(bad)


# ------------------------------------------------------------------------------------------------- statistics


def test_bootstrap_constant_values_give_a_zero_width_interval() -> None:
    assert bootstrap_ci([0.3] * 50) == (0.3, 0.3)
    ev = evaluate_run({f"q{i}": ["a"] for i in range(20)}, {f"q{i}": {"a": 1} for i in range(20)}, (1,))
    s = ev.summary("ndcg@1")
    assert s == MetricSummary("ndcg@1", 1.0, 1.0, 1.0, 20, 0.95)


def test_bootstrap_is_seedable_and_plausible() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 2, size=400).astype(float)  # Bernoulli(0.5)-like, n = 400
    a = bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) == a
    assert bootstrap_ci(values, seed=8) != a
    low, high = a
    mean = float(values.mean())
    assert low < mean < high
    # Normal approximation: half width ~ 1.96 * sqrt(0.25 / 400) = 0.049
    assert 0.04 < (high - low) / 2 < 0.06
    # A wider confidence level gives a wider interval.
    low99, high99 = bootstrap_ci(values, seed=7, confidence=0.99)
    assert low99 <= low and high99 >= high
    with pytest.raises(InvalidInputError):
        bootstrap_ci([])
    with pytest.raises(InvalidInputError):
        bootstrap_ci([1.0], confidence=1.5)


def test_summaries_share_resamples_with_single_summary() -> None:
    rng = np.random.default_rng(3)
    qrels = {f"q{i}": {f"d{j}": int(rng.integers(0, 3)) for j in range(5)} | {"d0": 1} for i in range(60)}
    run = {q: [f"d{j}" for j in rng.permutation(8)] for q in qrels}
    ev = evaluate_run(run, qrels, (1, 5))
    both = ev.summaries(["ndcg@5", "recall@5"], seed=11)
    one = ev.summary("ndcg@5", seed=11)
    assert both["ndcg@5"].mean == one.mean
    assert both["ndcg@5"].ci_low == pytest.approx(one.ci_low, abs=1e-12)
    assert both["ndcg@5"].ci_high == pytest.approx(one.ci_high, abs=1e-12)
    assert set(ev.summaries()) == set(ev.metrics)


def test_permutation_test_exact_small_case() -> None:
    # d = (1, 1, 1): 2^3 = 8 sign patterns; |mean| >= 1 only for +++ and --- -> p = 2/8
    assert paired_permutation_test([0, 0, 0], [1, 1, 1]) == pytest.approx(0.25, abs=ABS)
    # d = (1, -1): patterns give means 0, 1, -1, 0 -> |mean| >= 0 for all 4 -> p = 1
    assert paired_permutation_test([0, 1], [1, 0]) == 1.0


def test_permutation_test_identical_and_clearly_better() -> None:
    rng = np.random.default_rng(5)
    base = rng.random(200)
    assert paired_permutation_test(base, base) == 1.0  # random sign flips of zeros
    assert paired_permutation_test(base[:5], base[:5]) == 1.0  # exact enumeration
    better = base + 0.1 + rng.normal(0, 0.05, size=200)
    p = paired_permutation_test(base, better, n_resamples=2000, seed=1)
    assert p == pytest.approx(1 / 2001)  # no sign pattern reached the observed mean
    assert paired_permutation_test(base, better, n_resamples=2000, seed=1) == p  # seedable
    noise = base + rng.normal(0, 0.05, size=200)
    assert paired_permutation_test(base, noise) > 0.01


def test_paired_bootstrap_ci_of_a_constant_shift() -> None:
    base = np.linspace(0, 1, 30)
    assert paired_bootstrap_ci(base, base + 0.25) == pytest.approx((0.25, 0.25), abs=1e-12)
    with pytest.raises(InvalidInputError, match="same length"):
        paired_bootstrap_ci([1, 2], [1])


def test_compare_two_runs() -> None:
    qrels = {f"q{i}": {"good": 1} for i in range(40)}
    baseline = evaluate_run({q: ["bad", "good"] for q in qrels}, qrels, (10,))  # RR = 1/2 everywhere
    candidate = evaluate_run({q: ["good"] if i % 2 else ["bad", "good"] for i, q in enumerate(qrels)}, qrels, (10,))
    c = compare(baseline, candidate, "mrr@10")
    assert isinstance(c, Comparison)
    # 20 queries go from 1/2 to 1 -> delta = 20 * 0.5 / 40 = 0.25
    assert c.delta == pytest.approx(0.25, abs=ABS)
    assert (c.wins, c.losses, c.ties, c.n) == (20, 0, 20, 40)
    assert c.ci_low <= c.delta <= c.ci_high
    assert c.p_value < 0.001 and c.significant()
    same = baseline.compare(baseline, "ndcg@10")
    assert same.p_value == 1.0 and same.delta == 0.0 and (same.ci_low, same.ci_high) == (0.0, 0.0)
    other = evaluate_run({"x": ["good"]}, {"x": {"good": 1}}, (10,))
    with pytest.raises(InvalidInputError, match="same queries"):
        compare(baseline, other, "ndcg@10")


# ------------------------------------------------------------------------------------------------ performance


def test_ten_thousand_queries_are_fast() -> None:
    rng = random.Random(0)
    qrels = {f"q{i}": {f"d{rng.randrange(500)}": rng.randint(0, 2) for _ in range(5)} for i in range(10_000)}
    run = {q: [f"d{rng.randrange(500)}" for _ in range(100)] for q in qrels}
    start = time.perf_counter()
    ev = evaluate_run(run, qrels)
    ev.summaries(["ndcg@10", "recall@100"], n_resamples=2000)
    assert time.perf_counter() - start < 20  # ~1-2 s in practice


# ------------------------------------------------------------------------------- cross-check with trec_eval


def _random_collection(seed: int, n_queries: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    rng = random.Random(seed)
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i in range(n_queries):
        qid = f"q{i}"
        docs = [f"d{j}" for j in rng.sample(range(300), 150)]
        # Scores rounded to 1 decimal, so ties are frequent; some runs are shorter than the deepest k.
        run[qid] = {d: round(rng.random(), 1) for d in docs[: rng.choice([0, 3, 12, 60, 150])]}
        judged = rng.sample(docs, rng.randint(1, 25))
        qrels[qid] = {d: rng.choice([-1, 0, 0, 1, 1, 2, 3]) for d in judged}
    return {q: r for q, r in run.items() if r}, qrels


@pytest.mark.parametrize("relevance_level", [1, 2])
def test_agrees_with_pytrec_eval(relevance_level: int) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = _random_collection(seed=relevance_level, n_queries=400)
    ks = (1, 3, 5, 10, 20, 100)
    kstr = ",".join(map(str, ks))
    measures = {f"P.{kstr}", f"recall.{kstr}", f"ndcg_cut.{kstr}", f"map_cut.{kstr}", f"success.{kstr}"}
    ref = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=relevance_level).evaluate(run)
    # Same query set as trec_eval: judged queries present in the run, including those with no relevant doc.
    ours = evaluate_run(run, {q: qrels[q] for q in run}, ks, relevance_level=relevance_level, no_relevant="zero")
    assert set(ours.qids) == set(ref)
    trec_names = {"precision": "P", "recall": "recall", "ndcg": "ndcg_cut", "map": "map_cut", "hit": "success"}
    checked = 0
    for family, trec in trec_names.items():
        for k in ks:
            mine = ours.per_query(f"{family}@{k}")
            for qid, values in ref.items():
                assert mine[qid] == pytest.approx(values[f"{trec}_{k}"], abs=1e-9), (qid, family, k)
                checked += 1
    # trec_eval's recip_rank has no cutoff: compare rr@k with recip_rank on the run cut to trec_eval's top k.
    for k in ks:
        top = {q: {d: float(k - i) for i, d in enumerate(rank_run(r)[:k])} for q, r in run.items()}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=relevance_level).evaluate(top)
        mine = ours.per_query(f"rr@{k}")
        for qid, values in rr.items():
            assert mine[qid] == pytest.approx(values["recip_rank"], abs=1e-9), (qid, k)
            checked += 1
    assert checked > 5 * 6 * 300


# --------------------------------------------------------------------------- a naive reference, on random input


def _naive(ranked: list[str], qrels: dict[str, int], k: int) -> dict[str, float]:
    """The textbook definitions, written the slow and obvious way."""
    seen: list[str] = []
    for d in ranked:
        if d not in seen:
            seen.append(d)
    top = seen[:k]
    rel = [1 if qrels.get(d, 0) >= 1 else 0 for d in top]
    num_rel = sum(1 for g in qrels.values() if g >= 1)
    first = next((i + 1 for i, r in enumerate(rel) if r), None)
    dcg = sum(max(qrels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(top))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    ap = sum(sum(rel[: i + 1]) / (i + 1) for i, r in enumerate(rel) if r)
    return {
        f"precision@{k}": sum(rel) / k,
        f"recall@{k}": sum(rel) / num_rel if num_rel else 0.0,
        f"rr@{k}": 1 / first if first else 0.0,
        f"ndcg@{k}": dcg / idcg if idcg else 0.0,
        f"map@{k}": ap / num_rel if num_rel else 0.0,
        f"hit@{k}": 1.0 if any(rel) else 0.0,
    }


@given(
    ranked=st.lists(st.sampled_from([f"d{i}" for i in range(12)]), max_size=15),
    qrels=st.dictionaries(st.sampled_from([f"d{i}" for i in range(12)]), st.integers(-1, 3), max_size=8),
    k=st.integers(1, 20),
)
@settings(max_examples=300, deadline=None)
def test_matches_naive_definitions(ranked: list[str], qrels: dict[str, int], k: int) -> None:
    assert query_metrics(ranked, qrels, k) == pytest.approx(_naive(ranked, qrels, k), abs=1e-12)
