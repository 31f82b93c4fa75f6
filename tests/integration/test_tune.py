"""`pgretrieval tune`: the staged computation equals hybrid_search, selection reads the train split only, and the
saved setting becomes what hybrid_search uses by default."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from search_helpers import (
    Doc,
    add_docs,
    add_embedder,
    add_embeddings,
    create_collection,
    rounded,
    scratch_database,
)

from pgretrieval import tune
from pgretrieval.testsets import TestSet
from pgretrieval.tune import BranchParams, FusionParams, Setting, SqlTuneBackend, TuneSpace

WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach", "pear", "plum"]
N = 60
DIMS = 8
SPACE = TuneSpace(
    vector_weights=(0.0, 0.3, 0.5, 0.7, 1.0),
    rrf_ks=(10, 60),
    candidates=(4, 10, 20),
    ef_search=(10, 40),
    k1=(0.9, 1.2),
    b=(0.5, 0.75),
)


def _docs() -> list[Doc]:
    return [
        Doc(f"d{i}", f"{WORDS[i % 10]} {WORDS[(i * 3) % 10]} {WORDS[(i * 7) % 10]} tok{i}", title=f"doc {i}")
        for i in range(N)
    ]


@pytest.fixture(scope="module")
def tdb(server_dsn: str, template_database: str) -> Iterator[tuple[psycopg.Connection[Any], np.ndarray]]:
    """60 one-chunk documents (a few shared words and one unique token each), 8-d vectors."""
    with scratch_database(server_dsn, template_database) as conn:
        cid = create_collection(conn, "t")
        ids = add_docs(conn, cid, _docs())
        eid = add_embedder(conn, "t", "e8", DIMS)
        vectors = rounded(np.random.default_rng(7).normal(size=(N, DIMS)))
        add_embeddings(conn, cid, eid, {ids[f"d{i}"]: vectors[i] for i in range(N)})
        yield conn, vectors


def split_sets(vectors: np.ndarray, *, lexical_right_on_test: bool = False) -> tuple[TestSet, TestSet, dict[str, Any]]:
    """Train: the text names the relevant document, the vector points elsewhere (BM25 is right, dense wrong).
    Test: the opposite (unless ``lexical_right_on_test``), so a selection that peeked at test would differ."""
    rng = np.random.default_rng(3)
    queries: dict[str, dict[str, str]] = {"train": {}, "test": {}}
    qrels: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    qvecs: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for split, targets in (("train", range(0, 20)), ("test", range(20, 40))):
        lexical_right = split == "train" or lexical_right_on_test
        for r in targets:
            other = (r + 30) % N
            qid = f"{split}{r}"
            queries[split][qid] = f"tok{r if lexical_right else other} {WORDS[r % 10]}"
            qvecs[split].append(vectors[other if lexical_right else r] + rng.normal(scale=0.05, size=DIMS))
            qrels[split][qid] = {f"d{r}": 1}
    train = TestSet(queries["train"], qrels["train"], name="synthetic", split="train")
    test = TestSet(queries["test"], qrels["test"], name="synthetic", split="test")
    return train, test, {"train": np.array(qvecs["train"]), "test": np.array(qvecs["test"])}


@pytest.fixture
def backend(tdb: tuple[psycopg.Connection[Any], np.ndarray]) -> Iterator[tuple[SqlTuneBackend, TestSet, TestSet]]:
    conn, vectors = tdb
    train, test, qvecs = split_sets(vectors)
    with SqlTuneBackend(conn, "t", "e8") as b:
        b.load_queries("train", train, qvecs["train"])
        b.load_queries("test", test, qvecs["test"])
        yield b, train, test


SETTINGS = [
    Setting(),
    Setting(fusion=FusionParams("rrf", 0.7, 0.3, 10)),
    Setting(fusion=FusionParams("minmax", 0.3, 0.7)),
    Setting(fusion=FusionParams("zscore", 1.0, 0.0)),
    Setting(BranchParams(candidates=3), FusionParams("minmax", 0.5, 0.5)),  # fewer than match_count: raised to it
    Setting(BranchParams(candidates=20, ef_search=5, k1=0.5, b=0.2), FusionParams("zscore", 0.6, 0.4)),
    Setting(BranchParams(candidates=8, ef_search=200, k1=2.0, b=1.0), FusionParams("rrf", 0.0, 1.0, 0)),
]


def test_staged_fusion_equals_hybrid_search(backend: tuple[SqlTuneBackend, TestSet, TestSet]) -> None:
    b, _, _ = backend
    for split in ("train", "test"):
        for setting in SETTINGS:
            staged = b.fused(split, setting.branch, [setting.fusion], 6)[0]
            real = b.hybrid(split, setting, 6)
            assert staged == real, setting.label()
            assert all(len(ids) == 6 for ids in real.values())
    # many fusion settings in one statement give what each gives alone
    fusions = [s.fusion for s in SETTINGS]
    together = b.fused("train", BranchParams(), fusions, 6)
    assert together == [b.fused("train", BranchParams(), [f], 6)[0] for f in fusions]
    # branch lists were fetched once per distinct (split, branch, parameters)
    fetches = b.counts["branch_list_fetches"]
    b.fused("train", BranchParams(ef_search=40), fusions, 6)  # ef below candidates: the same dense list
    assert b.counts["branch_list_fetches"] == fetches


def test_single_branches_equal_the_search_functions(
    backend: tuple[SqlTuneBackend, TestSet, TestSet], tdb: tuple[psycopg.Connection[Any], np.ndarray]
) -> None:
    b, train, _ = backend
    conn, _ = tdb
    dense = b.single("train", BranchParams(), "dense", 6)
    lexical = b.single("train", BranchParams(k1=0.9, b=0.5), "lexical", 6)
    for qno, qid in enumerate(train.qrels, 1):
        vec = conn.execute("SELECT embedding FROM pg_temp.pgr_tune_queries WHERE split = 'train' AND qno = %s", (qno,))
        emb = vec.fetchone()[0]  # type: ignore[index]
        rows = conn.execute("SELECT chunk_id FROM pgretrieval.dense_search(%s, 6, collection => 't')", (emb,))
        assert dense[qid] == [r[0] for r in rows]
        rows = conn.execute(
            "SELECT chunk_id FROM pgretrieval.lexical_search(%s, 6, collection => 't', k1 => 0.9, b => 0.5)",
            (train.queries[qid],),
        )
        assert lexical[qid] == [r[0] for r in rows]


class RecordingBackend:
    """The real backend, noting which split each ranking request was for (to prove what selection read)."""

    def __init__(self, inner: SqlTuneBackend) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.counts = inner.counts

    def fused(
        self, split: str, branch: BranchParams, fusions: Sequence[FusionParams], match_count: int
    ) -> list[dict[str, list[int]]]:
        self.calls += [("fused", split, (branch, f)) for f in fusions]
        return self.inner.fused(split, branch, fusions, match_count)

    def single(self, split: str, branch: BranchParams, which: str, match_count: int) -> dict[str, list[int]]:
        self.calls.append(("single", split, (which, branch)))
        return self.inner.single(split, branch, which, match_count)

    def hybrid(self, split: str, setting: Setting, match_count: int) -> dict[str, list[int]]:
        self.calls.append(("hybrid", split, (setting,)))
        return self.inner.hybrid(split, setting, match_count)

    def documents(self) -> Mapping[int, str]:
        return self.inner.documents()


def _tune(b: SqlTuneBackend, train: TestSet, test: TestSet | None) -> tuple[tune.TuneReport, RecordingBackend]:
    recorder = RecordingBackend(b)
    report = tune.run_tune(recorder, train, test, collection="t", space=SPACE, k=3, min_gain=0.0)
    return report, recorder


def test_selection_reads_the_train_split_only(tdb: tuple[psycopg.Connection[Any], np.ndarray]) -> None:
    conn, vectors = tdb
    train, test_dense, qvecs = split_sets(vectors)
    _, test_lexical, qvecs_lexical = split_sets(vectors, lexical_right_on_test=True)
    reports = []
    for test, test_vecs in ((test_dense, qvecs["test"]), (test_lexical, qvecs_lexical["test"]), (None, None)):
        with SqlTuneBackend(conn, "t", "e8") as b:
            b.load_queries("train", train, qvecs["train"])
            if test is not None and test_vecs is not None:
                b.load_queries("test", test, test_vecs)
            report, recorder = _tune(b, train, test)
        reports.append(report)
        # the search scored only train; test was asked for the fixed reference rows (and the check) once each
        searched = {c[2] for c in recorder.calls if c[1] == "train"}
        assert {(t.setting.branch, t.setting.fusion) for t in report.trials} <= searched
        test_calls = [c for c in recorder.calls if c[1] == "test"]
        references = {(r.setting.branch, r.setting.fusion) for r in report.rows if r.setting is not None}
        assert {c[2] for c in test_calls if c[0] == "fused"} <= references
        assert {c[2] for c in test_calls if c[0] == "hybrid"} <= {(report.best,), (tune.DEFAULT_SETTING,)}
        assert bool(test_calls) == (test is not None)
        assert all(v.ok for v in report.verifications), [tune.verification_text(v) for v in report.verifications]
    dense_test, lexical_test, no_test = reports
    # the same choice and the same training figures whatever the test split says
    assert dense_test.best == lexical_test.best == no_test.best
    assert [(t.setting, t.mean) for t in dense_test.trials] == [(t.setting, t.mean) for t in no_test.trials]
    # train says BM25 is right, so the choice leans on it; it is perfect on train and poor on this test split
    best = dense_test.best
    assert best.fusion.bm25_weight > best.fusion.vector_weight
    assert dense_test.rows[0].train.mean > dense_test.rows[1].train.mean  # tuned beats the defaults on train
    assert dense_test.rows[0].test is not None and lexical_test.rows[0].test is not None
    assert dense_test.rows[0].test.mean < lexical_test.rows[0].test.mean
    assert dense_test.best_single == "lexical"
    assert list(dense_test.comparisons) == [
        "tuned vs defaults",
        "tuned vs lexical only",
        "defaults vs lexical only",
        "tuned vs dense only",
        "defaults vs dense only",
    ]


def test_report_files_and_save_make_hybrid_search_use_the_setting(
    backend: tuple[SqlTuneBackend, TestSet, TestSet], tdb: tuple[psycopg.Connection[Any], np.ndarray], tmp_path: Path
) -> None:
    b, train, test = backend
    conn, _ = tdb
    report, _ = _tune(b, train, test)
    files = tune.write_report(report, tmp_path, command="pgretrieval tune synthetic")
    data = json.loads((tmp_path / "tune.json").read_text())
    assert [f.name for f in files] == ["tune.md", "tune.json"]
    assert data["best"] == report.best.arguments() and data["trials"] and data["verifications"][0]["ok"]
    assert report.best.label() in (tmp_path / "tune.md").read_text()

    # a setting unlike the defaults in every argument, saved, is what hybrid_search then uses without arguments
    chosen = Setting(BranchParams(candidates=10, ef_search=60, k1=0.9, b=0.5), FusionParams("zscore", 0.3, 0.7, 20))
    try:
        saved = tune.save_settings(conn, "t", chosen)
        assert saved == chosen.arguments()
        stored = conn.execute("SELECT pgretrieval.get_search_settings('t')").fetchone()
        assert stored is not None and stored[0] == chosen.arguments()
        explicit = b.hybrid("train", chosen, 6)
        plain: dict[str, list[int]] = {}
        for qid, chunk_id in conn.execute(
            "SELECT q.qid, h.chunk_id FROM pg_temp.pgr_tune_queries q, pgretrieval.hybrid_search("
            " query_text => q.text, query_embedding => q.embedding, match_count => 6) WITH ORDINALITY h"
            " WHERE q.split = 'train' ORDER BY q.qno, h.ordinality"
        ):
            plain.setdefault(qid, []).append(chunk_id)
        assert plain == explicit
        assert plain != b.hybrid("train", Setting(), 6)  # the built-in defaults rank differently here
    finally:
        conn.execute("UPDATE pgretrieval.collections SET search_settings = '{}'")


def test_bad_input(backend: tuple[SqlTuneBackend, TestSet, TestSet], tdb: tuple[psycopg.Connection[Any], Any]) -> None:
    from pgretrieval.errors import InvalidInputError, PgRetrievalError

    b, train, _ = backend
    conn, _ = tdb
    with pytest.raises(InvalidInputError, match="query vectors"):
        b.load_queries("train", train, np.zeros((3, DIMS)))
    with pytest.raises(InvalidInputError, match="no vectors"):
        tune.embedder_id(conn, "t", "missing-model")
    with pytest.raises(InvalidInputError, match="fusion"):
        TuneSpace(fusions=("weighted",))
    with pytest.raises(InvalidInputError, match="candidates"):
        TuneSpace(candidates=(0,))
    with pytest.raises(PgRetrievalError):
        tune.save_settings(conn, "t", Setting(fusion=FusionParams("rrf", 0.0, 0.0)))
    with pytest.raises(PgRetrievalError, match="unknown collection"):
        tune.save_settings(conn, "nope", Setting())
    assert conn.execute("SELECT search_settings FROM pgretrieval.collections WHERE name = 't'").fetchone() == ({},)


def test_cli_rejects_a_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pgretrieval.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--database-url", "postgresql://unused", "tune", str(tmp_path / "nope"), "--collection", "x"])
    assert info.value.code == 1
    assert "not a BEIR folder" in capsys.readouterr().err


MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
TOPICS = {
    "cats": "cats purr chase mice sleep sun",
    "postgres": "postgresql heap pages write ahead logging durability",
    "python": "python indentation dynamic typing standard library",
    "volcano": "volcano magma gas ash erupts crust",
}


def _beir(folder: Path) -> None:
    """A BEIR folder: 5 notes per topic; train and test queries ask for one topic's notes."""
    (folder / "qrels").mkdir(parents=True)
    docs = [
        {"_id": f"{t}{i}", "title": f"{t} note {i}", "text": f"{text} note {i} about {t}"}
        for t, text in TOPICS.items()
        for i in range(5)
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    for split, words, name in (("train", 0, "queries-train.jsonl"), ("test", 3, "queries.jsonl")):
        queries = [{"_id": f"{split}-{t}", "text": " ".join(TOPICS[t].split()[words : words + 2])} for t in TOPICS]
        (folder / name).write_text("".join(json.dumps(q) + "\n" for q in queries))
        rows = [f"{q['_id']}\t{q['_id'].split('-')[1]}{i}\t1" for q in queries for i in range(5)]
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")


@pytest.mark.skipif(not (MODELS / "tiny-static-minilm-64").exists(), reason="shared models not present")
def test_cli_tunes_reports_and_saves(dsn: str, tmp_path: Path) -> None:
    from pgretrieval.cli import main
    from pgretrieval.db import connect

    _beir(tmp_path / "beir")
    argv = ["--database-url", dsn, "tune", str(tmp_path / "beir"), "--collection", "notes"]
    argv += ["--model", str(MODELS / "tiny-static-minilm-64"), "--k", "5", "--out", str(tmp_path / "out"), "--save"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    data = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert data["train_split"] == "train" and data["test_split"] == "test"
    assert all(v["ok"] for v in data["verifications"])
    assert {r["name"] for r in data["rows"]} >= {tune.ROW_TUNED, tune.ROW_DEFAULTS, tune.ROW_DENSE, tune.ROW_LEXICAL}
    with connect(dsn) as conn:
        stored = conn.execute("SELECT pgretrieval.get_search_settings('notes')").fetchone()
        cached = conn.execute("SELECT count(*) FROM pgretrieval.embedding_cache WHERE purpose = 'query'").fetchone()
    assert stored is not None and stored[0] == data["best"] == data["saved"]
    assert cached == (8,)  # the 4 train + 4 test queries, embedded once through the cache
