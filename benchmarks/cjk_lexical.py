"""Chinese BM25 without server extensions: the cjk text configurations against references measured in the same run.

Quality (nDCG@10, Recall@10, test split) of pgretrieval.lexical_search on xquad-zh (Simplified) and drcd-zh-tw
(Traditional) with the cjk (unigrams + bigrams) and cjk_bigram (Lucene CJKBigramFilter) configurations, against
- Postgres' own `simple` configuration (what you get without pgretrieval's tokenizer),
- bm25s (method "lucene", k1=1.2, b=0.75) fed exactly the same tokens by pgretrieval.cjk (Python), which must
  land within 0.01 of our BM25,
and xquad-en with `english` as the parallel English baseline (xquad-en and xquad-zh are translations of each other,
so they are "the same size" for the speed comparison: same documents, same queries).
Speed: ingest (documents + chunks rows, tsv filled by the trigger, postings and statistics by triggers) and search
(lexical_search, one query at a time) of each collection, interleaved and repeated, best of N; and the tokenizer
alone (text_to_tsvector per document).

    python benchmarks/cjk_lexical.py                   # embedded server in a temporary directory
    PGRETRIEVAL_DATABASE_URL=... python benchmarks/cjk_lexical.py --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgretrieval import cjk
from pgretrieval.install import install
from pgretrieval.metrics import evaluate_run

ROOT = Path(__file__).resolve().parent
DATASETS = ROOT.parent.parent / "shared" / "datasets"
RESULTS = ROOT / "results" / "cjk_lexical.md"
RUNS: list[tuple[str, str]] = [
    ("xquad-en", "english"),
    ("xquad-zh", "cjk"),
    ("xquad-zh", "cjk_bigram"),
    ("xquad-zh", "simple"),
    ("drcd-zh-tw", "cjk"),
    ("drcd-zh-tw", "cjk_bigram"),
    ("drcd-zh-tw", "simple"),
]


NOTES = """## Reading the figures

- `simple` is what Postgres does without pgretrieval's tokenizer: its parser keeps a whole CJK run between two
  punctuation marks as one "word", so a query matches only documents containing that exact clause.
- `cjk` indexes character unigrams and overlapping bigrams (stacked on the same positions), `cjk_bigram` bigrams
  only (a one-character run keeps its character), as Lucene's CJKBigramFilter. Both tokenize queries the same way
  as documents (one entry point, `text_to_tsvector`), so with `cjk` a one-character query matches the character
  inside longer runs, with `cjk_bigram` only where it stands alone.
- Cost is driven by the number of terms: a Chinese paragraph yields about one bigram per character (plus one
  unigram with `cjk`), an English one about one stem per word after stop words; postings/doc above shows it. Ingest
  is dominated by writing postings; search by reading the postings of the query terms, and with `cjk` the
  unigrams of common characters (的, 是, 在) have posting lists as long as the collection.
- The tokenizer is set-based SQL (one regular expression pass, one unnest per CJK run, one tsvector literal); it
  costs several times Postgres' C `to_tsvector('english')` per document.
- The × english columns divide by xquad-en/english; only the xquad-zh rows are the same content (drcd-zh-tw
  paragraphs are longer and the collection 8× larger, so its rows show how cost grows, not a like-for-like ratio).
- Timings come from a 2-CPU machine shared with other work: compare rows of one run, not runs.
"""


@dataclass
class Dataset:
    name: str
    doc_ids: list[str]
    titles: list[str]
    texts: list[str]
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, float]]


def load(name: str) -> Dataset:
    folder = DATASETS / name
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines() if line]
    qrels: dict[str, dict[str, float]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, grade = line.split("\t")
        qrels.setdefault(qid, {})[did] = float(grade)
    return Dataset(
        name,
        [d["_id"] for d in docs],
        [d.get("title") or "" for d in docs],
        [d["text"] for d in docs],
        [q["_id"] for q in queries],
        [q["text"] for q in queries],
        qrels,
    )


@contextlib.contextmanager
def database(explicit_dsn: str | None) -> Iterator[str]:
    """A fresh database with pgretrieval installed, on PGRETRIEVAL_DATABASE_URL or a temporary embedded server."""
    server = None
    if explicit_dsn:
        admin = explicit_dsn
    else:
        from pgretrieval.server import EmbeddedServer, free_port

        server = EmbeddedServer(Path(tempfile.mkdtemp(prefix="pgr-bench-")) / "home", port=free_port())
        server.start()
        admin = server.admin_url()
    name = f"pgr_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(admin, dbname=name)
    try:
        install(dsn)
        yield dsn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if server is not None:
            server.destroy()


def ingest(conn: psycopg.Connection[Any], ds: Dataset, config: str, name: str) -> float:
    """Create the collection and load it with plain SQL (one chunk per document); seconds taken."""
    conn.execute("SELECT pgretrieval.drop_collection(%s, if_exists => true)", (name,))
    cid = conn.execute("SELECT pgretrieval.create_collection(%s, text_config => %s)", (name, config)).fetchone()[0]
    conn.execute("CHECKPOINT")
    start = time.perf_counter()
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE stage (ext text, title text, body text) ON COMMIT DROP")
        with conn.cursor().copy("COPY stage FROM STDIN") as copy:
            for row in zip(ds.doc_ids, ds.titles, ds.texts, strict=True):
                copy.write_row(row)
        conn.execute(
            "INSERT INTO pgretrieval.documents (collection_id, external_id, title, content) "
            "SELECT %s, ext, title, body FROM stage",
            (cid,),
        )
        conn.execute(
            "INSERT INTO pgretrieval.chunks (collection_id, document_id, ordinal, content) "
            "SELECT collection_id, id, 0, content FROM pgretrieval.documents WHERE collection_id = %s",
            (cid,),
        )
    return time.perf_counter() - start


def has_lexical_search(conn: psycopg.Connection[Any]) -> bool:
    return bool(conn.execute("SELECT to_regproc('pgretrieval.lexical_search') IS NOT NULL").fetchone()[0])


# Until lexical_search existed: Lucene BM25 straight over postings and the summed statistics.
PLAIN_BM25 = """
WITH q AS (SELECT DISTINCT u.lexeme COLLATE "C" AS term
             FROM unnest(pgretrieval.text_to_tsvector(%(config)s, %(query)s)) u),
     n AS (SELECT sum(n_chunks)::float8 AS n, sum(total_len)::float8 / sum(n_chunks) AS avglen
             FROM pgretrieval.collection_stats WHERE collection_id = %(cid)s),
     t AS (SELECT q.term, ln(1 + (n.n - sum(s.df) + 0.5) / (sum(s.df) + 0.5)) AS idf
             FROM q CROSS JOIN n JOIN pgretrieval.term_stats s ON s.collection_id = %(cid)s AND s.term = q.term
            GROUP BY q.term, n.n HAVING sum(s.df) > 0)
SELECT d.external_id FROM (
    SELECT p.chunk_id, sum(t.idf * p.tf / (p.tf + 1.2 * (1 - 0.75 + 0.75 * p.doc_len / n.avglen))) AS score
      FROM t CROSS JOIN n JOIN pgretrieval.postings p ON p.collection_id = %(cid)s AND p.term = t.term
     GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT 10) s
JOIN pgretrieval.chunks c ON c.collection_id = %(cid)s AND c.id = s.chunk_id
JOIN pgretrieval.documents d ON d.collection_id = %(cid)s AND d.id = c.document_id
ORDER BY s.score DESC, s.chunk_id
"""


def search(conn: psycopg.Connection[Any], ds: Dataset, config: str, name: str) -> tuple[dict[str, list[str]], float]:
    """Top 10 of every query, one statement per query; (run, seconds)."""
    run: dict[str, list[str]] = {}
    use_function = has_lexical_search(conn)
    cid = conn.execute("SELECT pgretrieval.collection_id(%s)", (name,)).fetchone()[0]
    start = time.perf_counter()
    for qid, text in zip(ds.query_ids, ds.queries, strict=True):
        if use_function:
            rows = conn.execute(
                "SELECT external_id FROM pgretrieval.lexical_search(%s, 10, collection => %s)", (text, name)
            ).fetchall()
        else:
            rows = conn.execute(PLAIN_BM25, {"config": config, "query": text, "cid": cid}).fetchall()
        run[qid] = [r[0] for r in rows]
    return run, time.perf_counter() - start


def postgres_stems(conn: psycopg.Connection[Any], texts: Sequence[str]) -> dict[str, str | None]:
    """Postgres' own English stems for every word, so the Python tokens are exactly Postgres' (see cjk.py)."""
    words = sorted(set().union(*(cjk.words_to_stem(t) for t in texts)))
    rows = conn.execute("SELECT w, ts_lexize('english_stem', w) FROM unnest(%s::text[]) AS w", (words,)).fetchall()
    return {w: (lex[0] if lex else None) for w, lex in rows}


def bm25s_run(ds: Dataset, config: str, stems: dict[str, str | None]) -> tuple[dict[str, list[str]], float]:
    """bm25s (lucene, k1=1.2, b=0.75) over pgretrieval.cjk's tokens of title + text; distinct query lexemes."""
    import bm25s

    vocab: dict[str, int] = {}
    ids = [
        [vocab.setdefault(t, len(vocab)) for t in cjk.bm25_tokens(title + "\n" + text, config, stem=stems.get)]
        for title, text in zip(ds.titles, ds.texts, strict=True)
    ]
    start = time.perf_counter()
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    run: dict[str, list[str]] = {}
    for qid, text in zip(ds.query_ids, ds.queries, strict=True):
        terms = sorted({vocab[t] for t in cjk.to_tsvector(text, config, stem=stems.get) if t in vocab})
        if not terms:
            run[qid] = []
            continue
        scores = retriever.get_scores(terms)
        top = np.argsort(-scores, kind="stable")[:10]
        run[qid] = [ds.doc_ids[i] for i in top if scores[i] > 0]
    return run, time.perf_counter() - start


def tokenizer_us(conn: psycopg.Connection[Any], ds: Dataset, config: str, repeat: int) -> float:
    """Microseconds per document of pgretrieval.text_to_tsvector alone (best of `repeat`)."""
    bodies = [t + "\n" + x for t, x in zip(ds.titles, ds.texts, strict=True)]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        conn.execute("SELECT count(pgretrieval.text_to_tsvector(%s, b)) FROM unnest(%s::text[]) b", (config, bodies))
        best = min(best, time.perf_counter() - start)
    return best / len(bodies) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="ingest/search repetitions (best of N)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    data = {name: load(name) for name in {d for d, _ in RUNS}}
    quality: dict[tuple[str, str], tuple[float, float, int]] = {}
    reference: dict[tuple[str, str], tuple[float, float]] = {}
    ingest_s: dict[tuple[str, str], list[float]] = {}
    search_s: dict[tuple[str, str], list[float]] = {}
    token_us: dict[tuple[str, str], float] = {}
    stats: dict[tuple[str, str], tuple[float, float]] = {}
    with database(os.environ.get("PGRETRIEVAL_DATABASE_URL")) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        engine = "lexical_search" if has_lexical_search(conn) else "plain SQL BM25 over postings"
        for rep in range(args.repeat):
            for ds_name, config in RUNS:
                ds, key, name = data[ds_name], (ds_name, config), f"{ds_name}-{config}"
                ingest_s.setdefault(key, []).append(ingest(conn, ds, config, name))
                run, seconds = search(conn, ds, config, name)
                search_s.setdefault(key, []).append(seconds)
                if rep == 0:
                    ev = evaluate_run(run, ds.qrels, ks=(10,))
                    quality[key] = (ev.mean("ndcg@10"), ev.mean("recall@10"), len(ev))
                    cid = conn.execute("SELECT pgretrieval.collection_id(%s)", (name,)).fetchone()[0]
                    postings, terms = conn.execute(
                        "SELECT count(*), count(DISTINCT term) FROM pgretrieval.postings WHERE collection_id = %s",
                        (cid,),
                    ).fetchone()
                    stats[key] = (postings / len(ds.doc_ids), float(terms))
                print(f"[{rep + 1}/{args.repeat}] {ds_name} {config}: ingest {ingest_s[key][-1]:.2f}s "
                      f"search {seconds:.2f}s", file=sys.stderr)  # fmt: skip
        for ds_name, config in RUNS:
            token_us[(ds_name, config)] = tokenizer_us(conn, data[ds_name], config, args.repeat)
            if config.startswith("cjk"):
                ds = data[ds_name]
                stems = postgres_stems(conn, ds.titles + ds.texts + ds.queries)
                run, _ = bm25s_run(ds, config, stems)
                ev = evaluate_run(run, ds.qrels, ks=(10,))
                reference[(ds_name, config)] = (ev.mean("ndcg@10"), ev.mean("recall@10"))
        server_version = conn.execute("SHOW server_version").fetchone()[0]

    en = ("xquad-en", "english")
    lines = [
        "# CJK lexical retrieval (BM25 in plain SQL, no server extension)",
        "",
        f"Command: `python benchmarks/cjk_lexical.py --repeat {args.repeat}` "
        f"(PostgreSQL {server_version}, {platform.machine()}, {os.cpu_count()} CPUs shared with other work; "
        f"search through {engine}; k1=1.2, b=0.75; each document is one chunk, title + text).",
        "",
        "## Quality (test split)",
        "",
        "| dataset | config | queries | nDCG@10 | Recall@10 | bm25s nDCG@10 | bm25s Recall@10 | |Δ nDCG| |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in RUNS:
        ndcg, recall, n = quality[key]
        ref = reference.get(key)
        cells = [f"{ref[0]:.4f}", f"{ref[1]:.4f}", f"{abs(ref[0] - ndcg):.4f}"] if ref else ["", "", ""]
        lines.append(f"| {key[0]} | {key[1]} | {n} | {ndcg:.4f} | {recall:.4f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "bm25s is fed `pgretrieval.cjk.bm25_tokens` (the Python tokenizer, with Postgres' English stems), i.e. the",
        "same lexemes and term frequencies as the postings; queries use their distinct lexemes, like lexical_search.",
        "",
        "## Speed, side by side (best of the repetitions; xquad-en and xquad-zh hold the same 240 paragraphs "
        "and 1,190 questions)",
        "",
        "| dataset | config | docs | postings/doc | distinct terms | tokenizer µs/doc | ingest ms/doc | "
        "× english | search ms/query | × english |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    en_ingest = min(ingest_s[en]) / len(data["xquad-en"].doc_ids)
    en_search = min(search_s[en]) / len(data["xquad-en"].query_ids)
    for key in RUNS:
        ds = data[key[0]]
        per_doc = min(ingest_s[key]) / len(ds.doc_ids)
        per_query = min(search_s[key]) / len(ds.query_ids)
        lines.append(
            f"| {key[0]} | {key[1]} | {len(ds.doc_ids)} | {stats[key][0]:.0f} | {stats[key][1]:.0f} | "
            f"{token_us[key]:.0f} | {per_doc * 1e3:.2f} | {per_doc / en_ingest:.2f} | {per_query * 1e3:.2f} | "
            f"{per_query / en_search:.2f} |"
        )
    lines += [
        "",
        "Ingest spread (s, all repetitions): "
        + "; ".join(f"{k[0]}/{k[1]}: {', '.join(f'{s:.2f}' for s in v)}" for k, v in ingest_s.items()),
        "",
        "Search spread (s, all repetitions): "
        + "; ".join(f"{k[0]}/{k[1]}: {', '.join(f'{s:.2f}' for s in v)}" for k, v in search_s.items()),
        "",
        "Median ingest ms/doc: "
        + "; ".join(
            f"{k[0]}/{k[1]}: {statistics.median(v) / len(data[k[0]].doc_ids) * 1e3:.2f}" for k, v in ingest_s.items()
        ),
        "",
    ]
    lines += NOTES.splitlines()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
