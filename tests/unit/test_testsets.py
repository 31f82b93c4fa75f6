"""Test-set loading: BEIR folders, the guide's JSON format, and errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgretrieval.errors import InvalidInputError
from pgretrieval.testsets import (
    CorpusRecord,
    TestSet,
    iter_beir_corpus,
    load_beir,
    load_json_testset,
    load_testset,
    read_corpus_ids,
    write_json_testset,
)

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"

# -------------------------------------------------------------------------------------------------- helpers


def _jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _beir(
    root: Path,
    *,
    qrels: str = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td3\t1\n",
    queries: list[dict[str, object]] | None = None,
    corpus: list[dict[str, object]] | None = None,
    split: str = "test",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    _jsonl(
        root / "corpus.jsonl",
        corpus
        if corpus is not None
        else [
            {"_id": "d1", "title": "Reset", "text": "How to reset a password."},
            {"_id": "d2", "title": "Billing", "text": "Invoices.", "metadata": {"lang": "en"}},
            {"_id": "d3", "text": "No title here.", "year": 2020},
            {"_id": "d4", "title": None, "text": ""},
        ],
    )
    _jsonl(
        root / "queries.jsonl",
        queries
        if queries is not None
        else [
            {"_id": "q1", "text": "reset password"},
            {"_id": "q2", "text": "untitled doc"},
            {"_id": "q9", "text": "a query without qrels"},
        ],
    )
    (root / "qrels" / f"{split}.tsv").write_text(qrels, encoding="utf-8")
    return root


def _error(excinfo: pytest.ExceptionInfo[InvalidInputError]) -> str:
    return str(excinfo.value)


# ----------------------------------------------------------------------------------------------------- BEIR


def test_load_beir_folder(tmp_path: Path) -> None:
    root = _beir(tmp_path / "tiny")
    ts = load_beir(root)
    assert isinstance(ts, TestSet)
    assert (ts.name, ts.split, ts.source) == ("tiny", "test", root)
    assert ts.corpus_path == root / "corpus.jsonl"
    # Only queries with qrels in the split are loaded; q9 has none.
    assert ts.queries == {"q1": "reset password", "q2": "untitled doc"}
    assert ts.qrels == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}
    assert ts.relevant("q1") == {"d1": 2}
    assert ts.doc_ids() == {"d1", "d2", "d3"}
    assert (ts.num_queries, ts.num_judgements) == (2, 3)
    assert load_testset(root) == ts


def test_qrels_without_header_and_trec_format(tmp_path: Path) -> None:
    plain = load_beir(_beir(tmp_path / "a", qrels="q1\td1\t1\n\nq2\td3\t1\n"))
    assert plain.qrels == {"q1": {"d1": 1}, "q2": {"d3": 1}}
    trec = load_beir(_beir(tmp_path / "b", qrels="q1 0 d1 1\nq2 0 d3 2\n"))
    assert trec.qrels == {"q1": {"d1": 1}, "q2": {"d3": 2}}


def test_split_specific_queries_file(tmp_path: Path) -> None:
    root = _beir(tmp_path / "s", qrels="q7\td1\t1\n", split="train")
    _jsonl(root / "queries-train.jsonl", [{"_id": "q7", "text": "training query"}])
    ts = load_beir(root, "train")
    assert ts.queries == {"q7": "training query"}
    assert ts.split == "train"


def test_unknown_split_lists_available_ones(tmp_path: Path) -> None:
    root = _beir(tmp_path / "s")
    with pytest.raises(InvalidInputError, match=r"split 'dev'; available splits: \['test'\]"):
        load_beir(root, "dev")


def test_qrels_naming_a_document_not_in_the_corpus(tmp_path: Path) -> None:
    root = _beir(tmp_path / "s", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\tnope\t1\nq2\tnope2\t1\n")
    with pytest.raises(InvalidInputError) as excinfo:
        load_beir(root)
    msg = _error(excinfo)
    assert f"{root / 'qrels' / 'test.tsv'}:3:" in msg
    assert "'nope'" in msg and "not in the corpus" in msg and "1 more unknown document" in msg
    # Checking can be switched off, or done against another id set (e.g. the documents in the database).
    assert load_beir(root, check_corpus=False).qrels["q2"] == {"nope": 1, "nope2": 1}
    assert load_beir(root, corpus_ids={"d1", "nope", "nope2"}).num_queries == 2


def test_qrels_query_without_text(tmp_path: Path) -> None:
    root = _beir(tmp_path / "s", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq5\td1\t1\n")
    with pytest.raises(InvalidInputError) as excinfo:
        load_beir(root)
    assert f"{root / 'qrels' / 'test.tsv'}:3: query 'q5' has no text in queries.jsonl" in _error(excinfo)


def test_query_with_empty_text_names_the_queries_line(tmp_path: Path) -> None:
    root = _beir(tmp_path / "s", queries=[{"_id": "q1", "text": "ok"}, {"_id": "q2", "text": "  "}])
    with pytest.raises(InvalidInputError) as excinfo:
        load_beir(root)
    assert f"{root / 'queries.jsonl'}:2: query 'q2' has no text" in _error(excinfo)


def test_malformed_json_and_missing_fields_name_the_line(tmp_path: Path) -> None:
    root = _beir(tmp_path / "s")
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": \n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"queries\.jsonl:2: malformed JSON"):
        load_beir(root)
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"queries\.jsonl:2: query has no '_id' field"):
        load_beir(root)
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n["q2"]\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"queries\.jsonl:2: expected a JSON object"):
        load_beir(root)


def test_bad_qrels_lines(tmp_path: Path) -> None:
    cases = {
        "query-id\tcorpus-id\tscore\nq1\td1\n": r"test\.tsv:2: expected 3 tab-separated columns",
        "q1\td1\t1\nq1\td1\thigh\n": r"test\.tsv:2: score 'high' is not an integer",
        "q1\td1\t1\nq1\td1\t2\n": r"test\.tsv:2: query 'q1', document 'd1' is judged 2 here but 1 on line 1",
        "q1\td1\t1.5\n": r"test\.tsv:1: score '1.5' is not an integer",
        "query-id\tcorpus-id\tscore\n": r"empty test set",
    }
    for i, (qrels, pattern) in enumerate(cases.items()):
        with pytest.raises(InvalidInputError, match=pattern):
            load_beir(_beir(tmp_path / f"c{i}", qrels=qrels))
    # An integral float and a repeated identical line are fine.
    assert load_beir(_beir(tmp_path / "ok", qrels="q1\td1\t1.0\nq1\td1\t1\n")).qrels == {"q1": {"d1": 1}}


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a BEIR dataset folder"):
        load_beir(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="no such test set"):
        load_testset(tmp_path / "missing")


# --------------------------------------------------------------------------------------------------- corpus


def test_iter_beir_corpus_records_and_metadata(tmp_path: Path) -> None:
    root = _beir(tmp_path / "c")
    _jsonl(root / "metadata.jsonl", [{"_id": "d1", "year": 1998, "venue": "X"}])
    records = list(iter_beir_corpus(root))
    assert records[0] == CorpusRecord("d1", "Reset", "How to reset a password.", {"year": 1998, "venue": "X"})
    assert records[1].metadata == {"lang": "en"}  # nested "metadata" object
    assert records[2] == CorpusRecord("d3", "", "No title here.", {"year": 2020})  # extra field -> metadata
    assert records[3].title == "" and records[3].text == ""  # null title, empty text allowed
    assert list(iter_beir_corpus(root, sidecar_metadata=False))[0].metadata == {}
    assert [r.id for r in iter_beir_corpus(root / "corpus.jsonl")] == ["d1", "d2", "d3", "d4"]
    assert read_corpus_ids(root) == {"d1", "d2", "d3", "d4"}


def test_bad_corpus_records(tmp_path: Path) -> None:
    cases: list[tuple[list[dict[str, object]], str]] = [
        ([{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}], r"corpus\.jsonl:2: document id 'd1' repeats line 1"),
        ([{"_id": "d1", "title": "t"}], r"corpus\.jsonl:1: missing field 'text'"),
        ([{"title": "t", "text": "x"}], r"corpus\.jsonl:1: document has no '_id' field"),
        ([{"_id": "d1", "text": 5}], r"corpus\.jsonl:1: field 'text' must be a string"),
        ([{"_id": "d1", "text": "a", "metadata": [1]}], r"corpus\.jsonl:1: field 'metadata' must be an object"),
    ]
    for i, (corpus, pattern) in enumerate(cases):
        root = _beir(tmp_path / f"c{i}", corpus=corpus)
        with pytest.raises(InvalidInputError, match=pattern):
            list(iter_beir_corpus(root))


# ----------------------------------------------------------------------------------------------- guide JSON

# The guide's own example, verbatim, comments included.
GUIDE_EXAMPLE = """[
  {
    "query": "如何重置密码？",
    "relevant_docs": [
      "doc_123",  // 强相关
      "doc_456"   // 中等相关
    ],
    "irrelevant_docs": [
      "doc_789"   // 不相关（用于负样本）
    ]
  }
]
"""


def test_guide_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "guide.json"
    path.write_text(GUIDE_EXAMPLE, encoding="utf-8")
    ts = load_json_testset(path)
    assert ts.queries == {"q1": "如何重置密码？"}
    assert ts.qrels == {"q1": {"doc_123": 1, "doc_456": 1, "doc_789": 0}}
    assert (ts.name, ts.split, ts.source, ts.corpus_path) == ("guide", "test", path, None)
    assert load_testset(path) == ts


def test_graded_objects_ids_and_jsonl(tmp_path: Path) -> None:
    items = [
        {"id": "reset", "query": "reset password", "relevant_docs": [{"id": "a", "grade": 2}, "b"]},
        {"query": "billing // not a comment inside a string", "relevant_docs": [7], "irrelevant_docs": [{"id": "c"}]},
    ]
    jsonl = _jsonl(tmp_path / "t.jsonl", items)  # type: ignore[arg-type]
    ts = load_json_testset(jsonl)
    # Without an "id" the second case is named after its position: q2.
    assert ts.queries == {"reset": "reset password", "q2": "billing // not a comment inside a string"}
    assert ts.qrels == {"reset": {"a": 2, "b": 1}, "q2": {"7": 1, "c": 0}}
    array = tmp_path / "t.json"
    array.write_text(json.dumps(items, indent=2), encoding="utf-8")
    assert load_json_testset(array).qrels == ts.qrels


def test_round_trip(tmp_path: Path) -> None:
    ts = TestSet({"q1": "a", "q2": "b"}, {"q1": {"x": 2, "y": 1, "z": 0}, "q2": {"x": 1}}, name="rt")
    path = write_json_testset(ts, tmp_path / "rt.jsonl")
    back = load_json_testset(path)
    assert (back.queries, back.qrels) == (ts.queries, ts.qrels)


def _json_error(tmp_path: Path, text: str, **kwargs: object) -> str:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError) as excinfo:
        load_json_testset(path, **kwargs)  # type: ignore[arg-type]
    return _error(excinfo).replace(str(path), "FILE")


def test_guide_json_errors_name_the_line(tmp_path: Path) -> None:
    ok = '{"query": "a", "relevant_docs": ["d1"]}'
    assert _json_error(tmp_path, f'[\n{ok},\n{{"relevant_docs": ["d1"]}}\n]').startswith(
        "FILE:3: missing field 'query'"
    )
    assert _json_error(tmp_path, f'{ok}\n{{"query": "b"}}\n').startswith("FILE:2: missing field 'relevant_docs'")
    assert _json_error(tmp_path, f'{ok}\n{{"query": " ", "relevant_docs": []}}\n').startswith(
        "FILE:2: query 'q2' has no text"
    )
    assert _json_error(tmp_path, f'[\n{ok},\n{{"query": "b", "relevant_docs": [}}\n]').startswith(
        "FILE:3: malformed JSON"
    )
    assert _json_error(tmp_path, f"[{ok} {ok}]").startswith("FILE:1: malformed JSON: expected ',' or ']'")
    assert _json_error(tmp_path, f'{ok}\n{{"query": "b", "relevant_docs": [{{"id": "x", "grade": 0}}]}}').startswith(
        "FILE:2: relevant document 'x' has grade 0"
    )
    assert "lists document 'd1' twice" in _json_error(
        tmp_path, '{"query": "a", "relevant_docs": ["d1"], "irrelevant_docs": ["d1"]}'
    )
    assert "repeats the one on line 1" in _json_error(
        tmp_path, '{"id": "x", "query": "a", "relevant_docs": ["d1"]}\n{"id": "x", "query": "b", "relevant_docs": []}'
    )
    assert "has no 'id' field" in _json_error(tmp_path, '{"query": "a", "relevant_docs": [{"grade": 2}]}')
    assert "must be a list" in _json_error(tmp_path, '{"query": "a", "relevant_docs": "d1"}')
    assert "must be a JSON object" in _json_error(tmp_path, '["just a string"]')


def test_empty_guide_test_sets(tmp_path: Path) -> None:
    assert "empty test set" in _json_error(tmp_path, "[]")
    assert "empty test set" in _json_error(tmp_path, "  \n// nothing here\n")
    assert "no test case has a relevant document" in _json_error(
        tmp_path, '{"query": "a", "relevant_docs": [], "irrelevant_docs": ["x"]}'
    )
    with pytest.raises(InvalidInputError, match="file not found"):
        load_json_testset(tmp_path / "absent.json")


def test_guide_json_corpus_check(tmp_path: Path) -> None:
    text = '{"query": "a", "relevant_docs": ["d1"]}\n{"query": "b", "relevant_docs": ["d2"], "irrelevant_docs": ["zz"]}'
    msg = _json_error(tmp_path, text, corpus_ids={"d1", "d2"})
    assert msg.startswith("FILE:2: query 'q2' names document 'zz', which is not in the corpus")


# -------------------------------------------------------------------------------------------------- TestSet


def test_testset_validation() -> None:
    with pytest.raises(InvalidInputError, match="is empty"):
        TestSet({}, {})
    with pytest.raises(InvalidInputError, match="query 'q2' has judgements but no query text"):
        TestSet({"q1": "a"}, {"q1": {"d": 1}, "q2": {"d": 1}})
    with pytest.raises(InvalidInputError, match="no relevant judgement"):
        TestSet({"q1": "a"}, {"q1": {"d": 0}})
    ts = TestSet({"q1": "a"}, {"q1": {"d": 1, "e": 0}})
    ts.check_corpus({"d", "e"})
    with pytest.raises(InvalidInputError, match="query 'q1' names document 'e', which is not in the corpus"):
        ts.check_corpus({"d"})


# ----------------------------------------------------------------------------------------- shared datasets


@pytest.mark.skipif(not (DATASETS / "scifact").is_dir(), reason="shared datasets not present")
def test_shared_scifact_splits() -> None:
    test = load_beir(DATASETS / "scifact")
    assert (test.num_queries, test.num_judgements) == (300, 339)
    train = load_beir(DATASETS / "scifact", "train")
    assert (train.num_queries, train.num_judgements) == (809, 919)
    assert not set(test.queries) & set(train.queries)
    first = next(iter_beir_corpus(DATASETS / "scifact"))
    assert first.id == "4983" and first.title.startswith("Microstructural") and first.metadata["year"] == 1998


@pytest.mark.skipif(not DATASETS.is_dir(), reason="shared datasets not present")
def test_every_shared_dataset_loads() -> None:
    for folder in sorted(p for p in DATASETS.iterdir() if (p / "qrels" / "test.tsv").is_file()):
        ts = load_beir(folder)
        assert ts.num_queries > 0, folder
