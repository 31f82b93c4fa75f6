"""The ``pgretrieval`` command line. Each command is a few lines that delegate to the package.

User mistakes print one clear line and exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pgretrieval.config import Settings, load_settings
from pgretrieval.errors import PgRetrievalError, from_database_error

app = typer.Typer(
    name="pgretrieval",
    help="PostgreSQL-native retrieval for RAG: dense + BM25 + metadata + time decay + fusion, all in SQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the embedded PostgreSQL server (used when PGRETRIEVAL_DATABASE_URL is unset).")
app.add_typer(db_app, name="db")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class State:
    settings: Settings


state = State()


@app.callback()
def _global(
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="PostgreSQL URL (default: $PGRETRIEVAL_DATABASE_URL, else embedded)."),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Embedded server data folder (default: $PGRETRIEVAL_HOME or the user data dir)."),
    ] = None,
) -> None:
    state.settings = load_settings(database_url=database_url, home=home)


# ----------------------------------------------------------------------------- db
def _server() -> Any:
    from pgretrieval.server import EmbeddedServer

    settings = state.settings
    if settings.database_url:
        err_console.print(
            "[yellow]note:[/] PGRETRIEVAL_DATABASE_URL is set, so pgretrieval uses that server; "
            "`db` manages only the embedded one."
        )
    return EmbeddedServer(settings.home, port=settings.port)


@db_app.command("start")
def db_start() -> None:
    """Start the embedded server (idempotent: a running server is reused)."""
    status = _server().start()
    if status.message:
        console.print(status.message)
    console.print(f"embedded PostgreSQL is running on port {status.port} (pid {status.pid}), data in {status.data_dir}")


@db_app.command("stop")
def db_stop(
    immediate: Annotated[bool, typer.Option(help="Stop without a checkpoint (crash-like; recovery on start).")] = False,
) -> None:
    """Stop the embedded server."""
    status = _server().stop(mode="immediate" if immediate else "fast")
    console.print(f"embedded PostgreSQL: {status.message} (data in {status.data_dir})")


@db_app.command("status")
def db_status() -> None:
    """Say whether the embedded server runs and where its data lives."""
    status = _server().status()
    state_word = "running" if status.running else "not running"
    detail = f", port {status.port}, pid {status.pid}" if status.running else ""
    extra = f" ({status.message})" if status.message else ""
    console.print(f"embedded PostgreSQL: {state_word}{detail}{extra}\ndata: {status.data_dir}")
    if not status.running:
        raise typer.Exit(3)


@db_app.command("url")
def db_url() -> None:
    """Print the embedded server's connection URL (e.g. for psql or PGRETRIEVAL_DATABASE_URL)."""
    print(_server().url())


# ----------------------------------------------------------------------------- migrate
@app.command()
def migrate(
    uninstall: Annotated[bool, typer.Option(help="Remove the pgretrieval schema and everything in it.")] = False,
) -> None:
    """Install or upgrade the pgretrieval schema and SQL functions (no alembic needed; re-running is a no-op)."""
    from pgretrieval.db import redact, resolve_dsn
    from pgretrieval.install import install
    from pgretrieval.install import uninstall as do_uninstall

    dsn = resolve_dsn(state.settings)
    if uninstall:
        do_uninstall(dsn)
        console.print(f"removed the pgretrieval schema from {redact(dsn)}")
        return
    report = install(dsn)
    if not report.changed:
        console.print(f"pgretrieval schema is up to date at {redact(dsn)}")
        return
    steps = ", ".join(report.applied_steps) or "none"
    console.print(f"migrated {redact(dsn)}: schema steps applied: {steps}; functions (re)installed")


# ----------------------------------------------------------------------------- ingest
@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="JSONL file, BEIR folder, CSV file, or a folder of .txt/.md files.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to ingest into.")],
    model: Annotated[str | None, typer.Option(help="Embedding model name or path.")] = None,
    input_format: Annotated[
        str | None, typer.Option("--format", help="jsonl, beir, csv or dir (default: detected).")
    ] = None,
    text_config: Annotated[str, typer.Option(help="Text search configuration for BM25 (new collections).")] = "english",
    chunk_size: Annotated[int | None, typer.Option(help="Target chunk size in model tokens.")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Overlap between chunks in model tokens.")] = None,
    batch_size: Annotated[int, typer.Option(help="Documents per transaction.")] = 64,
    skip_errors: Annotated[bool, typer.Option(help="Skip (and report) bad documents instead of stopping.")] = False,
    strip_nul: Annotated[
        bool, typer.Option(help="Remove NUL characters (PostgreSQL text cannot hold them) instead of failing.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Ingest at most this many documents.")] = None,
) -> None:
    """Chunk, embed (cached) and store documents; unchanged documents are skipped, changed ones replaced."""
    import itertools

    from pgretrieval.db import resolve_dsn
    from pgretrieval.embed import load_embedder
    from pgretrieval.ingest import ingest_documents
    from pgretrieval.install import install
    from pgretrieval.readers import read_documents

    if not path.exists():
        raise PgRetrievalError(f"{path} does not exist")
    settings = state.settings
    dsn = resolve_dsn(settings)
    install(dsn)
    read_errors: list[Any] = []
    documents = read_documents(path, format=input_format, errors=read_errors if skip_errors else None)
    if limit is not None:
        documents = itertools.islice(documents, limit)
    embedder = load_embedder(model or settings.embed_model, device=settings.device)
    report = ingest_documents(
        dsn,
        collection,
        documents,
        embedder,
        text_config=text_config,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        batch_size=batch_size,
        skip_errors=skip_errors,
        strip_nul=strip_nul,
        read_errors=read_errors,
    )
    console.print(report.summary())
    if report.documents_failed and not skip_errors:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- search
@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Collection to search.")] = None,
    mode: Annotated[
        str | None,
        typer.Option(help="hybrid, dense or lexical (default: hybrid; lexical while a collection is under 100 docs)."),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Number of results.")] = 10,
    filter_json: Annotated[
        str | None, typer.Option("--filter", help='Metadata filter as JSON, e.g. \'{"year": {"gte": 2010}}\'.')
    ] = None,
    rerank: Annotated[bool, typer.Option(help="Rerank the top candidates with a cross-encoder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per result.")] = False,
) -> None:
    """Search a collection with one call into pgretrieval.hybrid_search / dense_search / lexical_search."""
    from pgretrieval.search import Retriever

    filters = _parse_json_option("--filter", filter_json)
    with Retriever(settings=state.settings) as retriever:
        results = retriever.search(query, k=k, collection=collection, mode=mode, filters=filters, rerank=rerank)
    if as_json:
        for hit in results:
            print(json.dumps(_hit_dict(hit), ensure_ascii=False, default=str))
        return
    from pgretrieval.display import results_table

    console.print(results_table(results, title=f"{results.mode} results for {query!r}"))
    for note in results.notes:
        console.print(f"[dim]note: {note}[/]")


def _hit_dict(hit: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(hit)


def _parse_json_option(name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise PgRetrievalError(f"{name} is not valid JSON ({exc.msg} at character {exc.pos})") from exc


# ----------------------------------------------------------------------------- cold start: synthetic queries, judge
@app.command("synth-queries")
def synth_queries(
    corpus: Annotated[Path, typer.Argument(help="Corpus to write questions for (JSONL, BEIR folder, CSV, folder).")],
    out: Annotated[Path, typer.Option("--out", help="Test set to write (guide JSON Lines).")],
    model: Annotated[str | None, typer.Option(help="Chat model (default: $PGRETRIEVAL_LLM_MODEL).")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL (default: $PGRETRIEVAL_LLM_BASE_URL).")
    ] = None,
    per_chunk: Annotated[int, typer.Option(help="Questions per document (or paragraph).")] = 1,
    limit: Annotated[int | None, typer.Option(help="Use at most this many documents, spread over the corpus.")] = None,
    paragraphs: Annotated[bool, typer.Option(help="One question source per paragraph instead of per document.")] = (
        False
    ),
    language: Annotated[str | None, typer.Option(help="Language to write the questions in.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Call cache (default: OUT.cache/); re-runs resume.")] = None,
) -> None:
    """No query log? Generate questions per document with an LLM into a test set (cached, resumable).
    The API key comes from $PGRETRIEVAL_LLM_API_KEY or $OPENAI_API_KEY only."""
    from pgretrieval.synth import run_synth_queries

    failures: list[Any] = []
    path = run_synth_queries(
        corpus,
        out,
        model=model,
        base_url=base_url,
        per_chunk=per_chunk,
        limit=limit,
        paragraphs=paragraphs,
        language=language,
        cache_dir=cache_dir,
        failures=failures,
    )
    console.print(f"wrote {path}; {len(failures)} source(s) gave no usable question")


@app.command("judge")
def judge(
    testset: Annotated[Path, typer.Argument(help="Test set with the queries (BEIR folder or guide JSON).")],
    run: Annotated[Path, typer.Argument(help="Run to judge: a TREC run file (e.g. from `eval`) or JSON.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for qrels.tsv, testset.jsonl and the prompt.")],
    corpus: Annotated[Path | None, typer.Option(help="Corpus with the document texts (default: the BEIR folder).")] = (
        None
    ),
    depth: Annotated[int, typer.Option(help="Judge the top N documents per query.")] = 10,
    model: Annotated[str | None, typer.Option(help="Chat model (default: $PGRETRIEVAL_LLM_MODEL).")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL (default: $PGRETRIEVAL_LLM_BASE_URL).")
    ] = None,
    scale: Annotated[str, typer.Option(help="Grades, comma-separated.")] = "0,1,2,3",
    cache_dir: Annotated[Path | None, typer.Option(help="Call cache (default: OUT/cache); re-runs resume.")] = None,
) -> None:
    """No labels? Grade retrieved documents with an LLM (graded scale; the prompt is stored beside the labels)."""
    from pgretrieval.synth import run_judge

    try:
        grades = tuple(sorted({int(part) for part in scale.split(",")}))
    except ValueError:
        raise PgRetrievalError(f"--scale takes comma-separated integers, not {scale!r}") from None
    result = run_judge(
        testset,
        run,
        out,
        corpus_path=corpus,
        depth=depth,
        model=model,
        base_url=base_url,
        scale=grades,
        cache_dir=cache_dir,
    )
    console.print(f"{result.num_labels} labels written to {out}; {len(result.failures)} answer(s) unusable")


# ----------------------------------------------------------------------------- eval
@app.command("eval")
def eval_command(
    dataset: Annotated[
        Path, typer.Argument(help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a guide-format JSON test set.")
    ],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to evaluate (and ingest into).")],
    modes: Annotated[str, typer.Option(help="Comma-separated: dense, lexical, hybrid, hybrid+rerank.")] = (
        "dense,lexical,hybrid"
    ),
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "1,3,5,10,20,100",
    split: Annotated[str, typer.Option(help="qrels split of a BEIR folder.")] = "test",
    corpus: Annotated[
        Path | None, typer.Option(help="Corpus to ingest for a JSON test set (BEIR folders bring their own).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Embedding model name or path.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.md, report.json and the charts.")] = Path(
        "pgretrieval-eval"
    ),
    ingest_corpus: Annotated[
        bool, typer.Option("--ingest/--no-ingest", help="Ingest the corpus first (idempotent, cached).")
    ] = True,
    baseline: Annotated[str | None, typer.Option(help="Mode the others are compared with (default: dense).")] = None,
) -> None:
    """Evaluate retrieval on its own: every query through the real SQL functions, metrics with CIs, report."""
    from rich.progress import Progress

    from pgretrieval.db import resolve_dsn
    from pgretrieval.embed import load_embedder
    from pgretrieval.evaluate import build_report, parse_ks, parse_modes, report_rows, run_mode, write_report
    from pgretrieval.install import install
    from pgretrieval.search import Retriever
    from pgretrieval.testsets import load_testset

    mode_list = parse_modes(modes)
    ks = parse_ks(k)
    if not dataset.exists():
        raise PgRetrievalError(f"{dataset} does not exist")
    testset = load_testset(dataset, split)
    settings = state.settings
    dsn = resolve_dsn(settings)
    install(dsn)
    embedder = load_embedder(model or settings.embed_model, device=settings.device)
    if ingest_corpus:
        corpus_path = corpus if corpus is not None else (dataset if dataset.is_dir() else None)
        if corpus_path is None:
            raise PgRetrievalError("a JSON test set needs --corpus (the documents to search), or --no-ingest")
        from pgretrieval.ingest import ingest_documents
        from pgretrieval.readers import read_documents

        report = ingest_documents(dsn, collection, read_documents(corpus_path), embedder)
        console.print(report.summary())
    reranker = None
    if any(m.endswith("+rerank") for m in mode_list):
        from pgretrieval.rerank import load_reranker

        reranker = load_reranker(settings.rerank_model)
    runs = []
    with Retriever(dsn, settings=settings, embedder=embedder, reranker=reranker) as retriever:

        def search(query: str, mode: str, rerank: bool, depth: int) -> Any:
            return retriever.search(query, k=depth, collection=collection, mode=mode, rerank=rerank)

        with Progress(console=err_console, transient=True) as bar:
            for mode in mode_list:
                task = bar.add_task(f"{mode}", total=len(testset.qrels))
                runs.append(run_mode(search, testset, mode, ks, progress=lambda n, t=task: bar.advance(t, n)))
    result = build_report(runs, testset, collection, ks, baseline=baseline)
    from rich.table import Table

    header, rows = report_rows(result)
    table = Table(title=f"{testset.name} ({testset.split}), {len(runs[0].evaluation)} queries", title_justify="left")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*[c.replace("FAIL", "[red]FAIL[/]").replace("pass", "[green]pass[/]") for c in row])
    console.print(table)
    files = write_report(result, out, command="pgretrieval " + " ".join(sys.argv[1:]))
    console.print("report: " + ", ".join(str(f) for f in files))


@app.command("tune")
def tune_command(
    dataset: Annotated[Path, typer.Argument(help="BEIR folder with a training split (qrels/train.tsv).")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to tune (and ingest into).")],
    split: Annotated[str, typer.Option(help="Split the settings are chosen on.")] = "train",
    test_split: Annotated[str, typer.Option(help="Split scored once at the end ('none' to skip).")] = "test",
    model: Annotated[str | None, typer.Option(help="Embedding model name or path.")] = None,
    k: Annotated[int, typer.Option("--k", help="Objective: nDCG at this cut-off.")] = 10,
    min_gain: Annotated[float, typer.Option(help="Smallest train gain that moves a setting.")] = 0.001,
    out: Annotated[Path, typer.Option(help="Folder for tune.md and tune.json.")] = Path("pgretrieval-tune"),
    ingest_corpus: Annotated[bool, typer.Option("--ingest/--no-ingest", help="Ingest the corpus first.")] = True,
    save: Annotated[bool, typer.Option(help="Store the best setting as the collection's defaults.")] = False,
) -> None:
    """Choose fusion, weights, RRF k, candidates, BM25 k1/b and ef_search on a training split; test once."""
    import dataclasses

    from pgretrieval import tune
    from pgretrieval.db import resolve_dsn
    from pgretrieval.embed import load_embedder
    from pgretrieval.install import install
    from pgretrieval.search import Retriever
    from pgretrieval.testsets import load_testset

    if not dataset.is_dir():
        raise PgRetrievalError(f"{dataset} is not a BEIR folder (corpus.jsonl, queries, qrels/{split}.tsv)")
    train = load_testset(dataset, split)
    test = None if test_split.lower() == "none" else load_testset(dataset, test_split)
    settings = state.settings
    dsn = resolve_dsn(settings)
    install(dsn)
    embedder = load_embedder(model or settings.embed_model, device=settings.device)
    if ingest_corpus:
        from pgretrieval.ingest import ingest_documents
        from pgretrieval.readers import read_documents

        console.print(ingest_documents(dsn, collection, read_documents(dataset), embedder).summary())
    with Retriever(dsn, settings=settings, embedder=embedder) as retriever, retriever.pool.connection() as conn:
        with tune.SqlTuneBackend(conn, collection, embedder.name) as backend:
            tune.prepare(backend, embedder, {"train": train, "test": test})
            report = tune.run_tune(
                backend, train, test, collection=collection, k=k, min_gain=min_gain, log=console.print
            )
        if save and report.verified:
            report = dataclasses.replace(report, saved=tune.save_settings(conn, collection, report.best))
    tune.print_report(report, console)
    files = tune.write_report(report, out, command="pgretrieval " + " ".join(sys.argv[1:]))
    console.print("report: " + ", ".join(str(f) for f in files))
    tune.require_verified(report)  # a mismatch is a bug: fail loudly (and nothing was saved)


@app.command("finetune")
def finetune_command(
    dataset: Annotated[Path, typer.Argument(help="BEIR folder with a train split, or a guide-format JSON pairs file.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to mine, embed and evaluate.")],
    base_model: Annotated[str | None, typer.Option(help="Base embedding model (default: the configured one).")] = None,
    output: Annotated[Path | None, typer.Option(help="Folder for the fine-tuned model.")] = None,
    split: Annotated[str, typer.Option(help="qrels split to train on.")] = "train",
    test_split: Annotated[str, typer.Option(help="qrels split evaluated before/after ('none' to skip).")] = "test",
    test_set: Annotated[Path | None, typer.Option(help="Test set to evaluate when DATASET is a JSON file.")] = None,
    skip_top: Annotated[int, typer.Option(help="Top hybrid results never used as negatives.")] = 3,
    max_steps: Annotated[int | None, typer.Option(help="Stop training after this many steps.")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 32,
    max_seq_length: Annotated[int | None, typer.Option(help="Truncation length while training.")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    loss: Annotated[str, typer.Option(help="mnrl (with hard negatives) or cosine.")] = "mnrl",
    name: Annotated[str | None, typer.Option(help="Embedder name of the fine-tuned model.")] = None,
    switch_default: Annotated[
        bool, typer.Option("--switch-default/--no-switch-default", help="Make the fine-tuned model the default.")
    ] = False,
) -> None:
    """Fine-tune the embedder on mined hard negatives, embed the collection with it, compare, optionally switch."""
    from pgretrieval.finetune_flow import print_report, run_finetune

    report = run_finetune(
        state.settings, dataset, collection, base_model=base_model, output=output, split=split,
        test_split=test_split, test_set=test_set, skip_top=skip_top, max_steps=max_steps, epochs=epochs,
        batch_size=batch_size, max_seq_length=max_seq_length, seed=seed, loss=loss,  # type: ignore[arg-type]
        name=name, switch_default=switch_default, log=console.print,
    )  # fmt: skip
    print_report(report, console)


# ----------------------------------------------------------------------------- quickstart
@app.command()
def quickstart(
    collection: Annotated[str, typer.Option(help="Collection to load the sample into.")] = "quickstart",
) -> None:
    """Start the embedded server, migrate, load a small real corpus and run example searches."""
    from pgretrieval.quickstart import run_quickstart

    run_quickstart(state.settings, collection=collection, console=console)


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning pgretrieval and database errors into one line on stderr."""
    import psycopg

    try:
        app(args=argv, standalone_mode=True)
    except PgRetrievalError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except psycopg.Error as exc:
        typed = from_database_error(exc)
        message = str(typed) if typed else " ".join(str(exc).split())
        err_console.print(f"[red]error:[/] {message}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: committed batches are kept; re-run to finish.")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
