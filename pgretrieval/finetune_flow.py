"""`pgretrieval finetune`: the wiring around :mod:`pgretrieval.finetune` (which stays database-free).

ingest the corpus (idempotent) → training pairs → hard negatives mined with our own ``hybrid_search`` → train →
register the model as a second embedder of the collection and embed every chunk with it (cached, resumable) →
evaluate base vs fine-tuned side by side on the test split (dense and hybrid, paired comparisons) → optionally
switch the collection's default embedder. The switch is the last step, so a crash or Ctrl-C anywhere before it
leaves the default embedder unchanged; the base model's vectors stay until ``pgretrieval.drop_embedder_vectors``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pgretrieval.config import Settings
from pgretrieval.errors import InvalidInputError, PgRetrievalError
from pgretrieval.evaluate import EvalReport, ModeRun, build_report, document_ranking, report_rows, run_mode
from pgretrieval.finetune import FinetuneResult, TrainingData
from pgretrieval.metrics import Comparison
from pgretrieval.testsets import TestSet
from pgretrieval.types import IngestReport

EVAL_KS = (1, 3, 5, 10, 20, 100)
FLOW_MODES = ("dense", "hybrid")


@dataclass(frozen=True)
class FinetuneFlowReport:
    """What one `pgretrieval finetune` run did."""

    collection: str
    base_embedder: str
    tuned_embedder: str
    training: FinetuneResult
    train_pairs: int
    embedded: IngestReport
    evaluation: EvalReport | None  # modes "dense (base)", "dense (fine-tuned)", "hybrid (base)", ...
    comparisons: Mapping[str, Comparison]  # mode -> fine-tuned vs base on ndcg@main_k, same queries
    default_embedder: str
    switched: bool
    ingested: IngestReport | None = None
    notes: tuple[str, ...] = ()


def _default_of(dsn: str, collection: str) -> str | None:
    from pgretrieval.db import connect

    with connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT e.name FROM pgretrieval.collections c LEFT JOIN pgretrieval.embedders e "
            "ON e.id = c.default_embedder_id WHERE c.name = %s",
            (collection,),
        ).fetchone()
    return None if row is None else row[0]


def _require_new_name(dsn: str, name: str) -> None:
    """A retrained model under an existing name would reuse the old model's cached and stored vectors."""
    from pgretrieval.db import connect

    with connect(dsn, autocommit=True) as conn:
        taken = conn.execute("SELECT 1 FROM pgretrieval.embedders WHERE name = %s", (name,)).fetchone()
    if taken:
        raise InvalidInputError(
            f"an embedder named {name!r} is already registered; its cached vectors belong to another model. "
            "Pick a new --name (or finish an interrupted run with pgretrieval.ingest.embed_collection)."
        )


def _doc_text_getter(dsn: str, collection: str, corpus: Mapping[str, str]) -> Callable[[str], str]:
    """Document text by external id: the training corpus first, else the collection (title + content)."""
    from pgretrieval.db import connect
    from pgretrieval.finetune import doc_embed_text

    def lookup(doc_id: str) -> str:
        if doc_id in corpus:
            return corpus[doc_id]
        with connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT title, content FROM pgretrieval.documents "
                "WHERE collection_id = pgretrieval.collection_id(%s) AND external_id = %s",
                (collection, doc_id),
            ).fetchone()
        if row is None:
            raise InvalidInputError(f"search returned document {doc_id!r}, which collection {collection!r} lacks")
        return doc_embed_text(row[0], row[1])

    return lookup


def mine_with_hybrid_search(
    retriever: Any,
    collection: str,
    embedder: str,
    data: Any,
    *,
    corpus: Mapping[str, str],
    skip_top: int,
    seed: int,
) -> TrainingData:
    """Hard negatives from ``hybrid_search`` (through ``Retriever.search``) with the base embedder."""
    from pgretrieval.finetune import mine_hard_negatives

    def search(query: str, k: int) -> Sequence[str]:
        results = retriever.search(query, k=2 * k, collection=collection, mode="hybrid", embedder=embedder)
        return document_ranking(results, k)

    doc_text = _doc_text_getter(retriever.dsn, collection, corpus)
    return mine_hard_negatives(data, search, doc_text=doc_text, skip_top=skip_top, seed=seed)


def evaluate_side_by_side(
    retriever: Any,
    testset: TestSet,
    collection: str,
    embedders: Mapping[str, str],
    *,
    ks: Sequence[int] = EVAL_KS,
    seed: int = 0,
) -> tuple[EvalReport, dict[str, Comparison]]:
    """Every mode of FLOW_MODES with each embedder ({label: embedder name}, base first); the report's baseline is
    the first label's dense run, and each mode gets its own paired comparison of the last label against the first."""
    runs: list[ModeRun] = []
    for mode in FLOW_MODES:
        for label, name in embedders.items():

            def search(query: str, base_mode: str, rerank: bool, depth: int, name: str = name) -> Any:
                return retriever.search(query, k=depth, collection=collection, mode=base_mode, embedder=name)

            run = run_mode(search, testset, mode, ks)
            runs.append(dataclasses.replace(run, mode=f"{mode} ({label})"))
    labels = list(embedders)
    report = build_report(runs, testset, collection, ks, baseline=f"dense ({labels[0]})", seed=seed)
    comparisons = {
        mode: report.run(f"{mode} ({labels[0]})").evaluation.compare(
            report.run(f"{mode} ({labels[-1]})").evaluation, f"ndcg@{report.main_k}", seed=seed
        )
        for mode in FLOW_MODES
    }
    return report, comparisons


def run_finetune(
    settings: Settings,
    dataset: Path,
    collection: str,
    *,
    base_model: str | None = None,
    output: Path | None = None,
    split: str = "train",
    test_split: str = "test",
    test_set: Path | None = None,
    skip_top: int = 3,
    max_steps: int | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    max_seq_length: int | None = 256,
    seed: int = 42,
    loss: Literal["mnrl", "cosine"] = "mnrl",
    name: str | None = None,
    switch_default: bool = False,
    validation: float | None = 0.1,
    ingest: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> FinetuneFlowReport:
    """The whole flow (see the module docstring). ``dataset`` is a BEIR folder (``split`` trains, ``test_split``
    evaluates) or a guide-format JSON training file (then the collection must already hold the documents and
    ``test_set``, a BEIR folder or guide-format test set, is evaluated if given)."""
    from pgretrieval.db import resolve_dsn
    from pgretrieval.embed import load_embedder
    from pgretrieval.finetune import finetune, load_beir_split, load_training_pairs
    from pgretrieval.ingest import embed_collection, ingest_documents
    from pgretrieval.install import install
    from pgretrieval.search import Retriever
    from pgretrieval.testsets import load_testset

    if not dataset.exists():
        raise PgRetrievalError(f"{dataset} does not exist")
    if loss not in ("mnrl", "cosine"):
        raise InvalidInputError(f"--loss must be mnrl or cosine, got {loss!r}")
    dsn = resolve_dsn(settings)
    install(dsn)
    base = load_embedder(base_model or settings.embed_model, device=settings.device)
    tuned_name = name or f"{base.name}-ft-{collection}"
    if tuned_name == base.name:
        raise InvalidInputError(f"--name {tuned_name!r} is the base embedder's name; pick another")
    _require_new_name(dsn, tuned_name)
    out = output or Path("pgretrieval-finetuned") / tuned_name.replace("/", "_")
    notes: list[str] = []

    # 1. data: pairs to train on, the corpus (BEIR only), the test set
    ingested: IngestReport | None = None
    testset: TestSet | None = None
    if dataset.is_dir():
        data: Any = load_beir_split(dataset, split)
        corpus: Mapping[str, str] = data.corpus
        if test_split.lower() != "none":
            testset = load_testset(dataset, test_split)
        if ingest:
            from pgretrieval.readers import read_documents

            ingested = ingest_documents(dsn, collection, read_documents(dataset), base, progress=progress)
            log(ingested.summary())
    else:
        data = load_training_pairs(dataset)
        corpus = {}
    if test_set is not None:
        testset = load_testset(test_set, test_split)
    if _default_of(dsn, collection) is None:
        raise InvalidInputError(
            f"collection {collection!r} has no documents/embedder yet; ingest its corpus first (a BEIR folder is "
            "ingested automatically)"
        )
    before = _default_of(dsn, collection)
    assert before is not None

    with Retriever(dsn, settings=settings, embedder=None) as retriever:
        # 2. hard negatives from our own hybrid search, with the base embedder
        pairs = mine_with_hybrid_search(
            retriever, collection, base.name, data, corpus=corpus, skip_top=skip_top, seed=seed
        )
        log(f"{len(pairs)} training pairs ({pairs.with_negative} with a hard negative); " + "; ".join(pairs.notes))

        # 3. train (the model lands in `out` only when complete)
        result = finetune(
            base.model,
            pairs,
            output_dir=out,
            validation=validation,
            loss=loss,
            epochs=epochs,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            max_steps=max_steps,
            seed=seed,
            device=settings.device or "auto",
            query_prompt=base.query_prompt,
            passage_prompt=base.passage_prompt,
        )
        log(
            f"trained {result.steps_run} steps in {result.seconds:.1f} s on {result.device}; best step "
            f"{result.best_step} (validation nDCG@10 {result.best_val_ndcg10}); saved to {result.model_path}"
        )

        # 4. the new model as a second embedder of the collection, every chunk embedded (cached, resumable)
        tuned = load_embedder(
            str(Path(result.model_path).resolve()),
            device=settings.device,
            name=tuned_name,
            query_prompt=base.query_prompt,
            passage_prompt=base.passage_prompt,
            normalize=base.normalize,
        )
        embedded = embed_collection(dsn, collection, tuned, progress=progress)
        log(embedded.summary())

        # 5. base vs fine-tuned, side by side, on the same queries
        evaluation: EvalReport | None = None
        comparisons: dict[str, Comparison] = {}
        if testset is not None:
            evaluation, comparisons = evaluate_side_by_side(
                retriever, testset, collection, {"base": base.name, "fine-tuned": tuned_name}, seed=0
            )
        else:
            notes.append("no test set: base and fine-tuned were not compared (give a BEIR folder or --test-set)")

    # 6. last: switch the default embedder, only when asked
    switched = False
    if switch_default:
        from pgretrieval.db import connect

        with connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pgretrieval.set_default_embedder(%s, %s)", (collection, tuned_name))
        switched = True
    else:
        notes.append(
            f"default embedder of {collection!r} is still {before!r}; switch with --switch-default or "
            f"SELECT pgretrieval.set_default_embedder('{collection}', '{tuned_name}')"
        )
    return FinetuneFlowReport(
        collection=collection,
        base_embedder=base.name,
        tuned_embedder=tuned_name,
        training=result,
        train_pairs=len(pairs),
        embedded=embedded,
        evaluation=evaluation,
        comparisons=comparisons,
        default_embedder=tuned_name if switched else before,
        switched=switched,
        ingested=ingested,
        notes=tuple(notes),
    )


def print_report(report: FinetuneFlowReport, console: Any) -> None:
    """The side-by-side table, the paired comparisons, and what the default embedder is now."""
    from rich.table import Table

    if report.evaluation is not None:
        ev = report.evaluation
        header, rows = report_rows(ev)
        table = Table(title=f"{ev.testset} ({ev.split}): base vs fine-tuned", title_justify="left")
        for column in header:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        paired = Table(title=f"fine-tuned minus base, ndcg@{ev.main_k}, paired", title_justify="left")
        for column in ("mode", "base", "fine-tuned", "Δ [95% CI]", "p", "wins/losses/ties"):
            paired.add_column(column)
        for mode, c in report.comparisons.items():
            paired.add_row(
                mode,
                f"{c.baseline_mean:.4f}",
                f"{c.candidate_mean:.4f}",
                f"{c.delta:+.4f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]",
                f"{c.p_value:.3f}",
                f"{c.wins}/{c.losses}/{c.ties}",
            )
        console.print(paired)
    verb = "switched to" if report.switched else "unchanged:"
    console.print(f"default embedder of {report.collection!r} {verb} {report.default_embedder!r}")
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


__all__ = ["FinetuneFlowReport", "evaluate_side_by_side", "mine_with_hybrid_search", "print_report", "run_finetune"]
