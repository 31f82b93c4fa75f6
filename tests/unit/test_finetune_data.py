"""Training data for fine-tuning: the guide's JSON format, BEIR train splits, hard-negative mining. No model, no DB."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from pgretrieval.errors import InvalidInputError
from pgretrieval.finetune import (
    MIN_RECOMMENDED_PAIRS,
    FewTrainingPairsWarning,
    RetrievalData,
    TrainingData,
    TrainingPair,
    _batches,
    exact_cosine_run,
    load_training_pairs,
    mine_hard_negatives,
    pairs_from_beir,
)

pytestmark = pytest.mark.filterwarnings("ignore::pgretrieval.finetune.FewTrainingPairsWarning")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- guide JSON


def test_load_jsonl_with_single_list_and_missing_negatives(tmp_path: Path) -> None:
    lines = [
        {"query": "reset password?", "positive": "Go to settings.", "negative": "Passwords must be 8 chars."},
        {"query": "refund?", "positive": "Refunds take 5 days.", "negative": ["Shipping is free.", "Pay by card."]},
        {"query": "hours?", "positive": "Open 9-5."},
        {"query": "phone?", "positive": "Call 123.", "negative": None},
    ]
    f = write(tmp_path / "train.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    data = load_training_pairs(f)
    assert isinstance(data, TrainingData)
    assert list(data) == [
        TrainingPair("reset password?", "Go to settings.", "Passwords must be 8 chars."),
        TrainingPair("refund?", "Refunds take 5 days.", "Shipping is free."),
        TrainingPair("refund?", "Refunds take 5 days.", "Pay by card."),
        TrainingPair("hours?", "Open 9-5."),
        TrainingPair("phone?", "Call 123."),
    ]
    assert len(data) == 5 and data[0].negative == "Passwords must be 8 chars." and data.with_negative == 3
    assert data.source == str(f)


def test_load_json_array_with_comments_and_chinese(tmp_path: Path) -> None:
    text = """[
      // the guide's example
      {"query": "如何重置密码？", "positive": "在设置页面点击重置密码", "negative": "密码长度至少8位"},
      /* second */ {"query": "退款", "positive": "退款需要5天"}
    ]"""
    data = load_training_pairs(write(tmp_path / "train.json", text))
    assert [p.query for p in data] == ["如何重置密码？", "退款"]
    assert data[1].negative is None


def test_load_stream_of_multi_line_objects(tmp_path: Path) -> None:
    text = '{\n  "query": "a",\n  "positive": "b"\n}\n{\n  "query": "c",\n  "positive": "d"\n}\n'
    assert [p.query for p in load_training_pairs(write(tmp_path / "pretty.jsonl", text))] == ["a", "c"]


def test_training_pair_is_frozen() -> None:
    pair = TrainingPair("q", "p")
    with pytest.raises(AttributeError):
        pair.query = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ('{"query": "a", "positive": "b"}\n{"query": "c"}\n', 2, "missing field 'positive'"),
        ('{"query": "a", "positive": "b"}\n\n{"positive": "c"}\n', 3, "missing field 'query'"),
        ('{"query": "a", "positive": "b"}\n{"query": "c", "positive": \n', 2, "malformed JSON"),
        ('{"query": "a", "positive": "b"}\n{"query": "", "positive": "x"}\n', 2, "'query' must be a non-empty"),
        ('{"query": "a", "positive": 3}\n', 1, "'positive' must be a non-empty"),
        ('{"query": "a", "positive": "b", "negative": 5}\n', 1, "'negative' must be a string or a list"),
        ('{"query": "a", "positive": "b", "negative": ["ok", ""]}\n', 1, "each negative must be a non-empty"),
        ('{"query": "a", "positive": "b"}\n["q", "p"]\n', 2, "must be a JSON object"),
    ],
)
def test_bad_training_data_names_file_and_line(tmp_path: Path, content: str, line: int, fragment: str) -> None:
    f = write(tmp_path / "bad.jsonl", content)
    with pytest.raises(InvalidInputError) as err:
        load_training_pairs(f)
    assert f"{f}:{line}:" in str(err.value)
    assert fragment in str(err.value)


def test_bad_line_inside_a_json_array(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.json", '[\n  {"query": "a", "positive": "b"},\n  {"query": "c", "negative": "d"}\n]\n')
    with pytest.raises(InvalidInputError, match=r"bad\.json:3: missing field 'positive'"):
        load_training_pairs(f)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no training pairs"):
        load_training_pairs(write(tmp_path / "empty.jsonl", "\n\n"))
    with pytest.raises(InvalidInputError, match="file not found"):
        load_training_pairs(tmp_path / "absent.jsonl")


# ------------------------------------------------------------------------------------------- size advice


def test_fewer_than_1000_pairs_warns_and_notes(tmp_path: Path) -> None:
    f = write(tmp_path / "few.jsonl", json.dumps({"query": "q", "positive": "p"}) + "\n")
    with pytest.warns(FewTrainingPairsWarning, match="at least 1000"):
        data = load_training_pairs(f)
    assert any("only 1 training pairs" in n for n in data.notes)


def test_1000_pairs_do_not_warn(tmp_path: Path) -> None:
    rows = (json.dumps({"query": f"q{i}", "positive": f"p{i}"}) for i in range(MIN_RECOMMENDED_PAIRS))
    f = write(tmp_path / "enough.jsonl", "\n".join(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewTrainingPairsWarning)
        data = load_training_pairs(f)
    assert len(data) == MIN_RECOMMENDED_PAIRS and data.notes == ()


# -------------------------------------------------------------------------------------------------- BEIR


def make_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "d1", "title": "Aspirin", "text": "Aspirin lowers heart attack risk."},
        {"_id": "d2", "title": "", "text": "Malaria is spread by mosquitoes."},
        {"_id": "d3", "title": "Coffee", "text": "Coffee contains caffeine."},
    ]
    write(root / "corpus.jsonl", "\n".join(json.dumps(d) for d in docs) + "\n")
    queries = [{"_id": "1", "text": "does aspirin help the heart"}, {"_id": "2", "text": "how is malaria spread"}]
    write(root / "queries-train.jsonl", "\n".join(json.dumps(q) for q in queries) + "\n")
    write(root / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\n1\td1\t1\n2\td2\t1\n2\td3\t0\n")
    return root


def test_pairs_from_beir_train_split(tmp_path: Path) -> None:
    data = pairs_from_beir(make_beir(tmp_path / "ds"), "train")
    assert list(data) == [
        TrainingPair("does aspirin help the heart", "Aspirin\nAspirin lowers heart attack risk."),
        TrainingPair("how is malaria spread", "Malaria is spread by mosquitoes."),
    ]
    assert any("at least 1000" in n for n in data.notes)


def test_pairs_from_beir_reports_bad_qrels_line(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "ds")
    write(root / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\n1\td1\t1\n2\tnope\t1\n")
    with pytest.raises(InvalidInputError, match=r"train\.tsv:3: .*'nope'"):
        pairs_from_beir(root, "train")


# ------------------------------------------------------------------------------------------------ mining

CORPUS = {
    "a1": "aspirin reduces heart attack risk in adults",
    "a2": "aspirin and heart disease a large trial",
    "a3": "aspirin side effects include stomach bleeding",
    "a4": "heart attack symptoms in women",
    "a5": "aspirin dosage for children",
    "m1": "malaria spread by mosquito bites",
    "m2": "malaria vaccine trial results",
    "m3": "mosquito nets reduce malaria",
    "c1": "coffee and heart rhythm",
}
QUERIES = {"q1": "does aspirin reduce heart attack risk", "q2": "how is malaria spread by mosquito"}
RELEVANT = {"q1": {"a1"}, "q2": {"m1"}}


def overlap_search(query: str, k: int) -> list[str]:
    """A plain Python ranker: shared words, ties by doc id (stands in for hybrid_search)."""
    words = set(query.split())
    scored = sorted(CORPUS, key=lambda d: (-len(words & set(CORPUS[d].split())), d))
    return [d for d in scored if words & set(CORPUS[d].split())][:k]


def test_search_stub_ranking() -> None:
    assert overlap_search(QUERIES["q1"], 10)[:4] == ["a1", "a2", "a4", "a3"]


def test_mining_skips_relevant_and_the_top_few() -> None:
    data = mine_hard_negatives(QUERIES, overlap_search, RELEVANT, CORPUS, skip_top=3, per_query=1)
    by_query = {p.query: p for p in data}
    # q1 ranks a1 (relevant), a2, a4 in the top 3, all skipped; a3 is the first usable result.
    assert by_query[QUERIES["q1"]] == TrainingPair(QUERIES["q1"], CORPUS["a1"], CORPUS["a3"])
    # q2 has only three results (m1 relevant, m3, m2): all within the skipped top 3, so no negative.
    assert by_query[QUERIES["q2"]] == TrainingPair(QUERIES["q2"], CORPUS["m1"])
    assert any("mined hard negatives for 1 of 2 queries" in n for n in data.notes)
    data = mine_hard_negatives(QUERIES, overlap_search, RELEVANT, CORPUS, skip_top=2)
    assert [p.negative for p in data] == [CORPUS["a4"], CORPUS["m2"]]


def test_skip_top_zero_takes_the_hardest_non_relevant() -> None:
    data = mine_hard_negatives(QUERIES, overlap_search, RELEVANT, CORPUS, skip_top=0)
    assert {p.query: p.negative for p in data}[QUERIES["q1"]] == CORPUS["a2"]


def test_per_query_and_several_positives() -> None:
    relevant = {"q1": {"a1", "a2"}, "q2": {"m1"}}
    data = mine_hard_negatives(QUERIES, overlap_search, relevant, CORPUS.__getitem__, skip_top=0, per_query=2)
    q1 = [p for p in data if p.query == QUERIES["q1"]]
    assert len(q1) == 4  # 2 positives x 2 negatives
    assert {p.positive for p in q1} == {CORPUS["a1"], CORPUS["a2"]}
    assert {p.negative for p in q1} == {CORPUS["a4"], CORPUS["a3"]}


def test_random_sampling_is_seeded() -> None:
    def run(seed: int) -> list[str | None]:
        kw = {"skip_top": 1, "per_query": 2, "depth": 5, "sampling": "random", "seed": seed}
        return [p.negative for p in mine_hard_negatives(QUERIES, overlap_search, RELEVANT, CORPUS, **kw)]  # type: ignore[arg-type]

    assert run(7) == run(7)
    assert {tuple(run(s)) for s in range(10)} != {tuple(run(7))}


def test_query_without_usable_results_keeps_positive_pair() -> None:
    def short_search(query: str, k: int) -> Sequence[str]:
        return ["a1", "a2"] if "aspirin" in query else ["m1", "m1", "m3"]

    data = mine_hard_negatives(QUERIES, short_search, RELEVANT, CORPUS, skip_top=2)
    assert TrainingPair(QUERIES["q1"], CORPUS["a1"]) in list(data)  # everything skipped
    assert TrainingPair(QUERIES["q2"], CORPUS["m1"], CORPUS["m3"]) in list(data)  # duplicate m1 counted once
    assert any("1 queries got no hard negative" in n for n in data.notes)


def test_mining_from_pairs_excludes_passages_equal_to_a_positive() -> None:
    pairs = [
        TrainingPair(QUERIES["q1"], CORPUS["a1"]),
        TrainingPair(QUERIES["q1"], CORPUS["a2"]),
        TrainingPair("kept as is", "p", "n"),
    ]
    data = mine_hard_negatives(pairs, overlap_search, None, CORPUS, skip_top=0)
    assert TrainingPair("kept as is", "p", "n") in list(data)
    mined = [p for p in data if p.query == QUERIES["q1"]]
    assert {p.negative for p in mined} == {CORPUS["a4"]}  # a1, a2 are its positives, matched by text


def test_mining_from_retrieval_data_and_labels_by_query_text() -> None:
    rd = RetrievalData(QUERIES, CORPUS, {"q1": {"a1": 1, "a2": 0}, "q2": {"m1": 2}})
    data = mine_hard_negatives(rd, overlap_search, skip_top=0)
    assert {p.query: p.negative for p in data}[QUERIES["q1"]] == CORPUS["a2"]  # grade 0: judged not relevant
    pairs = [TrainingPair(QUERIES["q1"], CORPUS["a1"])]
    data = mine_hard_negatives(pairs, overlap_search, {QUERIES["q1"]: {"a2"}}, CORPUS, skip_top=0)
    assert data[0].negative == CORPUS["a4"]


def test_mining_errors() -> None:
    with pytest.raises(InvalidInputError, match="skip_top"):
        mine_hard_negatives(QUERIES, overlap_search, RELEVANT, CORPUS, skip_top=-1)
    with pytest.raises(InvalidInputError, match="needs `relevant`"):
        mine_hard_negatives(QUERIES, overlap_search, None, CORPUS)
    with pytest.raises(InvalidInputError, match="doc_text"):
        mine_hard_negatives(QUERIES, overlap_search, RELEVANT)
    with pytest.raises(InvalidInputError, match="'zz'"):
        mine_hard_negatives(QUERIES, lambda q, k: ["zz"], RELEVANT, CORPUS, skip_top=0)


def test_mining_warns_below_1000_pairs() -> None:
    with pytest.warns(FewTrainingPairsWarning):
        data = mine_hard_negatives(QUERIES, overlap_search, RELEVANT, CORPUS)
    assert any("at least 1000" in n for n in data.notes)


# ------------------------------------------------------------------------------------- validation data


def test_retrieval_data_checks_its_judgements() -> None:
    with pytest.raises(InvalidInputError, match="'zz', which is not in the corpus"):
        RetrievalData({"q": "text"}, {"d": "doc"}, {"q": {"zz": 1}})
    with pytest.raises(InvalidInputError, match="no relevant judgement"):
        RetrievalData({"q": "text"}, {"d": "doc"}, {"q": {"d": 0}})
    rd = RetrievalData(QUERIES, CORPUS, {"q1": {"a1": 1}, "q2": {"m1": 1}})
    assert list(rd.subset({"q2"}).queries) == ["q2"] and rd.relevant("q1") == {"a1"}
    assert len(rd.pairs()) == 2


# --------------------------------------------------------------------------------------- batches, search


def test_batches_never_repeat_a_text_and_separate_column_shapes() -> None:
    pairs = [TrainingPair(f"q{i % 5}", f"p{i}", f"n{i}" if i % 3 else None) for i in range(60)]
    batches = _batches(pairs, 4, random.Random(0), no_duplicates=True)
    for batch in batches:
        texts = [t for i in batch for t in (pairs[i].query, pairs[i].positive, pairs[i].negative) if t]
        assert len(texts) == len(set(texts))
        assert len({pairs[i].negative is None for i in batch}) == 1
    placed = {i for b in batches for i in b}
    assert {i for i, p in enumerate(pairs) if p.negative} <= placed  # every triplet is used
    dropped = set(range(60)) - placed  # only a lone pair without a negative (no contrast at all) is dropped
    assert len(dropped) <= 1 and all(pairs[i].negative is None for i in dropped)
    assert batches == _batches(pairs, 4, random.Random(0), no_duplicates=True)


def test_exact_cosine_run_orders_by_cosine() -> None:
    docs = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    queries = np.array([[3.0, 0.1], [0.0, 1.0]])
    run = exact_cosine_run(queries, docs, ["x", "y"], ["d0", "d1", "d2"], k=2)
    assert run == {"x": ["d0", "d2"], "y": ["d1", "d2"]}


def test_importing_finetune_does_not_load_torch() -> None:
    code = (
        "import sys, pgretrieval.finetune; sys.exit('torch' in sys.modules or 'sentence_transformers' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
