"""The base schema and its triggers: postings and BM25 statistics stay exact through inserts,
updates and deletes (including cascades), and install() is idempotent."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pgretrieval.install import install, schema_is_current


def _add_document(conn: psycopg.Connection[Any], collection_id: int, ext: str, title: str, chunks: list[str]) -> int:
    doc_id = conn.execute(
        "INSERT INTO pgretrieval.documents (collection_id, external_id, title, content) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        (collection_id, ext, title, "\n\n".join(chunks)),
    ).fetchone()[0]
    for ordinal, text in enumerate(chunks):
        conn.execute(
            "INSERT INTO pgretrieval.chunks (collection_id, document_id, ordinal, content) VALUES (%s, %s, %s, %s)",
            (collection_id, doc_id, ordinal, text),
        )
    return int(doc_id)


def _stats(conn: psycopg.Connection[Any], collection_id: int) -> tuple[int, int, dict[str, int]]:
    n, total = conn.execute(
        "SELECT coalesce(sum(n_chunks), 0), coalesce(sum(total_len), 0) FROM pgretrieval.collection_stats "
        "WHERE collection_id = %s",
        (collection_id,),
    ).fetchone()
    df = dict(
        conn.execute(
            "SELECT term, sum(df) FROM pgretrieval.term_stats WHERE collection_id = %s GROUP BY term "
            "HAVING sum(df) <> 0",
            (collection_id,),
        ).fetchall()
    )
    return int(n), int(total), {k: int(v) for k, v in df.items()}


def _recount(conn: psycopg.Connection[Any], collection_id: int) -> tuple[int, int, dict[str, int]]:
    """Statistics recomputed from scratch from the chunks' tsvectors."""
    rows = conn.execute(
        "SELECT c.id, u.lexeme, greatest(coalesce(cardinality(u.positions), 0), 1) "
        "FROM pgretrieval.chunks c LEFT JOIN LATERAL unnest(c.tsv) u ON true WHERE c.collection_id = %s",
        (collection_id,),
    ).fetchall()
    chunk_ids = {r[0] for r in rows}
    total = sum(r[2] for r in rows if r[1] is not None)
    df: dict[str, int] = {}
    for _, lexeme, _tf in rows:
        if lexeme is not None:
            df[lexeme] = df.get(lexeme, 0) + 1
    return len(chunk_ids), total, df


def test_install_is_idempotent_and_current(dsn: str, conn: psycopg.Connection[Any]) -> None:
    report = install(dsn)
    assert not report.changed
    assert schema_is_current(conn)


def test_postings_and_stats_follow_inserts_updates_and_deletes(conn: psycopg.Connection[Any]) -> None:
    cid = conn.execute("SELECT pgretrieval.create_collection('docs')").fetchone()[0]
    _add_document(conn, cid, "a", "Cats", ["The cat sat on the mat with another cat", "Dogs bark at cats"])
    doc_b = _add_document(conn, cid, "b", "Birds", ["Birds sing in the morning", "!!!"])
    assert _stats(conn, cid) == _recount(conn, cid)
    n, total, df = _stats(conn, cid)
    assert n == 4
    assert df["cat"] == 2  # both chunks of document a (title "Cats" counts in every chunk)

    tf = conn.execute(
        "SELECT tf, doc_len FROM pgretrieval.postings p JOIN pgretrieval.chunks c ON c.id = p.chunk_id "
        "WHERE p.term = 'cat' AND c.ordinal = 0 AND c.document_id <> %s",
        (doc_b,),
    ).fetchone()
    assert tf == (3, 6)  # "Cats" + cat + cat; length counts non-stopword tokens: cats cat sat mat anoth cat

    conn.execute(
        "UPDATE pgretrieval.chunks SET content = 'Birds fly south', tsv = NULL WHERE document_id = %s AND ordinal = 1",
        (doc_b,),
    )
    assert _stats(conn, cid) == _recount(conn, cid)

    conn.execute("DELETE FROM pgretrieval.documents WHERE id = %s", (doc_b,))  # cascades to chunks
    assert _stats(conn, cid) == _recount(conn, cid)
    assert conn.execute("SELECT count(*) FROM pgretrieval.postings WHERE term = 'bird'").fetchone()[0] == 0

    conn.execute("SELECT pgretrieval.compact_stats()")
    assert _stats(conn, cid) == _recount(conn, cid)
    per_term = conn.execute(
        "SELECT max(c) FROM (SELECT count(*) c FROM pgretrieval.term_stats GROUP BY collection_id, term) x"
    ).fetchone()[0]
    assert per_term == 1


def test_rolled_back_ingest_leaves_no_statistics(conn: psycopg.Connection[Any]) -> None:
    cid = conn.execute("SELECT pgretrieval.create_collection('docs')").fetchone()[0]
    before = _stats(conn, cid)
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        _add_document(conn, cid, "a", "T", ["some words here"])
        conn.execute(
            "INSERT INTO pgretrieval.chunks (collection_id, document_id, ordinal, content) "
            "SELECT %s, id, -1, 'bad' FROM pgretrieval.documents",
            (cid,),
        )
    assert _stats(conn, cid) == before
    assert conn.execute("SELECT count(*) FROM pgretrieval.postings").fetchone()[0] == 0


def test_drop_collection_removes_everything(conn: psycopg.Connection[Any]) -> None:
    cid = conn.execute("SELECT pgretrieval.create_collection('docs')").fetchone()[0]
    _add_document(conn, cid, "a", "Cats", ["The cat sat"])
    conn.execute("SELECT pgretrieval.register_embedder('m', 'm', 3)")
    index = conn.execute("SELECT pgretrieval.attach_embedder('docs', 'm')").fetchone()[0]
    assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"pgretrieval.{index}",)).fetchone()[0]
    conn.execute(
        "INSERT INTO pgretrieval.embeddings (collection_id, chunk_id, embedder_id, embedding) "
        "SELECT collection_id, id, pgretrieval.embedder_id('m'), '[1,2,3]' FROM pgretrieval.chunks"
    )
    assert conn.execute("SELECT pgretrieval.drop_collection('docs')").fetchone()[0] is True
    for table in ("documents", "chunks", "embeddings", "postings", "term_stats", "collection_stats"):
        assert conn.execute(f"SELECT count(*) FROM pgretrieval.{table}").fetchone()[0] == 0, table
    assert not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"pgretrieval.{index}",)).fetchone()[0]
    assert conn.execute("SELECT pgretrieval.drop_collection('docs', if_exists => true)").fetchone()[0] is False


@pytest.mark.parametrize(
    ("statement", "sqlstate", "fragment"),
    [
        ("SELECT pgretrieval.collection_id('nope')", "PR001", 'unknown collection "nope"'),
        (
            "SELECT pgretrieval.create_collection('x', text_config => 'klingon')",
            "PR002",
            "text search configuration",
        ),
        ("SELECT pgretrieval.create_collection('')", "PR002", "invalid collection name"),
        ("SELECT pgretrieval.register_embedder('e', 'm', 0)", "PR002", "invalid embedding dimension"),
        (
            "SELECT pgretrieval.register_embedder('e', 'm', 3, distance => 'hamming')",
            "PR002",
            "invalid distance",
        ),
    ],
)
def test_bad_input_raises_clear_errors(
    conn: psycopg.Connection[Any], statement: str, sqlstate: str, fragment: str
) -> None:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(statement)
    assert info.value.sqlstate == sqlstate
    assert fragment in str(info.value)
    assert info.value.diag.message_hint


def test_embedder_reregistration_must_match(conn: psycopg.Connection[Any]) -> None:
    first = conn.execute("SELECT pgretrieval.register_embedder('e', 'm', 3)").fetchone()[0]
    assert conn.execute("SELECT pgretrieval.register_embedder('e', 'm', 3)").fetchone()[0] == first
    with pytest.raises(psycopg.Error, match="registered with 3 dimensions"):
        conn.execute("SELECT pgretrieval.register_embedder('e', 'm', 4)")
