"""``pgretrieval quickstart``: the main job on a fresh machine, end to end, in about a minute.

Starts the embedded server (unless PGRETRIEVAL_DATABASE_URL is set), installs the schema, ingests 300
SciFact abstracts that ship with the package, and shows hybrid results next to dense-only and lexical-only
results for the same queries, marking the abstracts SciFact judges relevant.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

from rich.console import Console

from pgretrieval.config import Settings

SAMPLE_CORPUS = "scifact_sample.jsonl"
SAMPLE_TESTSET = "scifact_sample_testset.jsonl"

# Queries that show why fusion matters: exact identifiers and rare terms (BM25's strength) next to
# paraphrases (the embedder's strength). The first four are SciFact test claims, the last a paraphrase.
EXAMPLE_QUERIES = [
    "ADAR1 binds to Dicer to cleave pre-miRNA.",
    "A deficiency of vitamin B12 increases blood levels of homocysteine.",
    "CX3CR1 on the Th2 cells promotes airway inflammation.",
    "Insomnia can be effectively treated with cognitive behavioral therapy.",
    "can talking therapy help people who cannot sleep?",
]


def sample_path() -> Any:
    return resources.files("pgretrieval") / "data" / SAMPLE_CORPUS


def sample_relevance() -> dict[str, set[str]]:
    """Query text → ids of the sample abstracts SciFact judges relevant."""
    text = (resources.files("pgretrieval") / "data" / SAMPLE_TESTSET).read_text(encoding="utf-8")
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            out[record["query"]] = set(record["relevant_docs"])
    return out


def run_quickstart(settings: Settings, *, collection: str, console: Console) -> None:
    from pgretrieval.db import redact, resolve_dsn
    from pgretrieval.display import best_chunk_per_document, comparison_table
    from pgretrieval.install import install

    started = time.perf_counter()
    console.rule("[bold]pgretrieval quickstart")

    # 1. database
    if settings.database_url:
        console.print(f"Using the database at {redact(settings.database_url)} (PGRETRIEVAL_DATABASE_URL).")
    else:
        console.print(f"Starting the embedded PostgreSQL server (data in {settings.home}) …")
    dsn = resolve_dsn(settings)
    report = install(dsn)
    console.print(
        f"Schema {'installed' if report.changed else 'already up to date'}: pgretrieval.hybrid_search(...) "
        "and friends are ready."
    )

    # 2. model
    from pgretrieval.embed import load_embedder

    console.print(f"Loading the embedding model {settings.embed_model} (offline) …")
    embedder = load_embedder(settings.embed_model, device=settings.device)

    # 3. data
    from pgretrieval.ingest import ingest_documents
    from pgretrieval.readers import read_documents

    with resources.as_file(sample_path()) as corpus_file:
        console.print(f"Ingesting {SAMPLE_CORPUS}: 300 SciFact abstracts (CC BY-NC 2.0) into '{collection}' …")
        ingest_report = ingest_documents(dsn, collection, read_documents(corpus_file, format="jsonl"), embedder)
    console.print(ingest_report.summary())

    # 4. searches
    from pgretrieval.search import Retriever

    relevance = sample_relevance()
    console.print(
        "\nThe same queries through three retrieval modes (✓ = judged relevant by SciFact). Dense search finds "
        "paraphrases, BM25 finds exact terms and identifiers, hybrid fuses both lists inside PostgreSQL:"
    )
    with Retriever(dsn, settings=settings, embedder=embedder) as retriever:
        for query in EXAMPLE_QUERIES:
            by_mode = {
                mode: best_chunk_per_document(retriever.search(query, k=12, collection=collection, mode=mode), 3)
                for mode in ("hybrid", "dense", "lexical")
            }
            console.print(comparison_table(query, by_mode, relevance.get(query)))

    elapsed = time.perf_counter() - started
    console.rule(f"done in {elapsed:.0f} s")
    console.print(
        "Next:\n"
        f'  pgretrieval search "vitamin B12 homocysteine" -c {collection}\n'
        '  psql "$(pgretrieval db url)" -c "SELECT external_id, title, score, dense_rank, lexical_rank '
        f"FROM pgretrieval.lexical_search('vitamin B12', 5, collection => '{collection}')\"\n"
        "  See README.md for SQL usage, the Python API and deployment with alembic."
    )
