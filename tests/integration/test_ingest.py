"""Ingest end to end against a real PostgreSQL with real (tiny) models: upserts, cache, atomicity, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgretrieval.embed import Embedder, load_embedder
from pgretrieval.errors import IngestError, ModelError
from pgretrieval.ingest import delete_documents, ingest_documents
from pgretrieval.types import Document

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TINY = SHARED / "models" / "tiny-static-minilm-64"


@pytest.fixture(scope="module")
def tiny() -> Embedder:
    if not TINY.exists():
        pytest.skip(f"{TINY} is not present")
    return load_embedder(str(TINY))


def _docs(n: int = 3) -> list[Document]:
    return [
        Document(
            id=f"d{i}",
            title=f"Title {i}",
            text=f"Document number {i} talks about cats and dogs.\n\nA second paragraph about topic {i}.",
            metadata={"n": i, "kind": "even" if i % 2 == 0 else "odd"},
            created_at=datetime(2024, 1, 1 + i, tzinfo=timezone.utc),
        )
        for i in range(n)
    ]


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM pgretrieval.{table}").fetchone()[0])


def test_ingest_writes_documents_chunks_vectors_and_postings(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder
) -> None:
    report = ingest_documents(dsn, "docs", _docs(), tiny, progress=False)
    assert (report.documents_added, report.documents_failed) == (3, 0)
    assert report.chunks_written == _count(conn, "chunks") == 3
    assert _count(conn, "embeddings") == 3
    assert _count(conn, "postings") > 0
    row = conn.execute(
        "SELECT d.title, d.metadata, d.created_at, c.content, c.token_count, c.embed_hash IS NOT NULL, "
        "c.tsv @@ to_tsquery('english', 'cat') FROM pgretrieval.documents d JOIN pgretrieval.chunks c "
        "ON c.document_id = d.id WHERE d.external_id = 'd1'"
    ).fetchone()
    assert row[0] == "Title 1" and row[1] == {"n": 1, "kind": "odd"}
    assert row[2] == datetime(2024, 1, 2, tzinfo=timezone.utc)
    assert row[3].startswith("Document number 1") and row[4] > 0 and row[5] and row[6]
    assert "documents/s" in report.summary()


def test_reingest_skips_unchanged_and_never_calls_the_model(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder
) -> None:
    ingest_documents(dsn, "docs", _docs(), tiny, progress=False)
    chunk_ids = conn.execute("SELECT array_agg(id ORDER BY id) FROM pgretrieval.chunks").fetchone()[0]
    again = ingest_documents(dsn, "docs", _docs(), tiny, progress=False)
    assert (again.documents_added, again.documents_updated, again.documents_unchanged) == (0, 0, 3)
    assert again.texts_embedded == 0 and again.chunks_written == 0
    assert conn.execute("SELECT array_agg(id ORDER BY id) FROM pgretrieval.chunks").fetchone()[0] == chunk_ids


def test_changed_content_replaces_chunks_and_metadata_change_does_not_reembed(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder
) -> None:
    docs = _docs()
    ingest_documents(dsn, "docs", docs, tiny, progress=False)
    old_chunk = conn.execute(
        "SELECT c.id FROM pgretrieval.chunks c JOIN pgretrieval.documents d ON d.id = "
        "c.document_id WHERE d.external_id = 'd0'"
    ).fetchone()[0]
    changed = [
        Document(id="d0", title="Title 0", text="Completely new text about parrots.", metadata={"n": 0}),
        Document(id="d1", title="Title 1", text=docs[1].text, metadata={"n": 1, "kind": "changed"}),
        Document(
            id="d2",
            title="Title 2",
            text=docs[2].text,
            metadata=docs[2].metadata,
            created_at=datetime(2030, 1, 1, tzinfo=timezone.utc),
        ),
    ]
    report = ingest_documents(dsn, "docs", changed, tiny, progress=False)
    assert (report.documents_added, report.documents_updated, report.documents_unchanged) == (0, 3, 0)
    assert report.texts_embedded == 1  # only the new text of d0
    rows = dict(
        conn.execute(
            "SELECT d.external_id, array_agg(c.content) FROM pgretrieval.documents d "
            "JOIN pgretrieval.chunks c ON c.document_id = d.id GROUP BY 1"
        ).fetchall()
    )
    assert rows["d0"] == ["Completely new text about parrots."]
    assert conn.execute("SELECT count(*) FROM pgretrieval.chunks WHERE id = %s", (old_chunk,)).fetchone()[0] == 0
    meta, created = conn.execute(
        "SELECT metadata, created_at FROM pgretrieval.documents WHERE external_id = 'd1'"
    ).fetchone()
    assert meta == {"n": 1, "kind": "changed"}
    assert created == datetime(2024, 1, 2, tzinfo=timezone.utc)  # created_at not given: kept
    d2 = conn.execute("SELECT created_at FROM pgretrieval.documents WHERE external_id = 'd2'").fetchone()[0]
    assert d2.year == 2030
    # BM25 statistics follow the replacement: 'parrot' is known, the old chunk's postings are gone.
    assert conn.execute("SELECT sum(df) FROM pgretrieval.term_stats WHERE term = 'parrot'").fetchone()[0] == 1
    assert (
        _count(conn, "postings")
        == conn.execute("SELECT count(*) FROM pgretrieval.chunks c, unnest(c.tsv) u").fetchone()[0]
    )


def test_embedding_cache_is_shared_across_collections(dsn: str, conn: psycopg.Connection[Any], tiny: Embedder) -> None:
    first = ingest_documents(dsn, "a", _docs(), tiny, progress=False)
    second = ingest_documents(dsn, "b", _docs(), tiny, progress=False)
    assert first.texts_embedded == 3 and first.cache_hits == 0
    assert second.texts_embedded == 0 and second.cache_hits == 3
    assert _count(conn, "embedding_cache") == 3
    same = conn.execute(
        "SELECT bool_and(e.embedding = c.embedding) FROM pgretrieval.embeddings e JOIN pgretrieval.chunks ch "
        "ON ch.id = e.chunk_id JOIN pgretrieval.embedding_cache c ON c.text_hash = ch.embed_hash"
    ).fetchone()[0]
    assert same


def test_duplicate_text_in_one_batch_is_embedded_once(dsn: str, tiny: Embedder) -> None:
    docs = [Document(id=f"x{i}", text="The same words everywhere.") for i in range(5)]
    report = ingest_documents(dsn, "docs", docs, tiny, progress=False)
    assert report.documents_added == 5 and report.texts_embedded == 1 and report.cache_hits == 4


def test_interrupted_ingest_resumes_without_redoing_work(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder
) -> None:
    docs = _docs(7)

    def interrupted() -> Iterator[Document]:
        for i, doc in enumerate(docs):
            if i == 5:
                raise KeyboardInterrupt
            yield doc

    with pytest.raises(KeyboardInterrupt):
        ingest_documents(dsn, "docs", interrupted(), tiny, batch_size=2, progress=False)
    assert _count(conn, "documents") == 4  # two whole batches committed, the third never half-written
    assert _count(conn, "chunks") == _count(conn, "embeddings") == 4
    report = ingest_documents(dsn, "docs", docs, tiny, batch_size=2, progress=False)
    assert (report.documents_added, report.documents_unchanged) == (3, 4)
    assert report.texts_embedded == 3


def _bad(kind: str) -> Document:
    if kind == "empty":
        return Document(id="bad", text="   \n ")
    if kind == "nul":
        return Document(id="bad", text="abc\x00def")
    if kind == "utf8":
        return Document(id="bad", text=b"caf\xe9 au lait".decode("utf-8", "surrogateescape"))
    if kind == "metadata":
        return Document(id="bad", text="fine", metadata=[1, 2])  # type: ignore[arg-type]
    if kind == "created_at":
        return Document(id="bad", text="fine", created_at="next tuesday")  # type: ignore[arg-type]
    if kind == "big":
        return Document(id="bad", text="word " * 50_000)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "field", "fragment"),
    [
        ("empty", "text", "empty"),
        ("nul", "text", "NUL"),
        ("utf8", "text", "UTF-8"),
        ("metadata", "metadata", "JSON object"),
        ("created_at", "created_at", "cannot parse"),
        ("big", "text", "over the limit"),
    ],
)
def test_bad_document_names_document_and_field_and_commits_nothing_of_its_batch(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder, kind: str, field: str, fragment: str
) -> None:
    docs = [*_docs(2), _bad(kind)]
    with pytest.raises(IngestError) as info:
        ingest_documents(dsn, "docs", docs, tiny, progress=False, max_document_bytes=100_000)
    message = str(info.value)
    assert "'bad'" in message and f"field {field!r}" in message and fragment in message
    assert _count(conn, "documents") == 0

    report = ingest_documents(dsn, "docs", docs, tiny, progress=False, skip_errors=True, max_document_bytes=100_000)
    assert (report.documents_added, report.documents_failed) == (2, 1)
    assert report.errors[0].document_id == "bad" and report.errors[0].field == field
    assert "skipped: document 'bad'" in report.summary()
    assert _count(conn, "documents") == 2


def test_duplicate_ids_in_one_input_are_rejected(dsn: str, conn: psycopg.Connection[Any], tiny: Embedder) -> None:
    docs = [Document(id="a", text="one"), Document(id="b", text="two"), Document(id="a", text="three")]
    with pytest.raises(IngestError, match=r"document 'a', field 'id': duplicate id"):
        ingest_documents(dsn, "docs", docs, tiny, progress=False)
    assert _count(conn, "documents") == 0
    report = ingest_documents(dsn, "docs", docs, tiny, progress=False, skip_errors=True)
    assert report.documents_added == 2 and report.documents_failed == 1
    assert conn.execute("SELECT content FROM pgretrieval.documents WHERE external_id = 'a'").fetchone()[0] == "one"


def test_strip_nul_removes_nuls_and_says_so(dsn: str, conn: psycopg.Connection[Any], tiny: Embedder) -> None:
    report = ingest_documents(
        dsn, "docs", [Document(id="n", text="ab\x00cd", title="t\x00")], tiny, progress=False, strip_nul=True
    )
    assert report.documents_added == 1 and any("NUL" in note for note in report.notes)
    assert conn.execute("SELECT title, content FROM pgretrieval.documents").fetchone() == ("t", "abcd")


def test_database_rejection_is_per_document_with_skip_errors(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder
) -> None:
    # A constraint only the database knows about: the bulk write fails, the savepoint retry finds the culprit.
    conn.execute("ALTER TABLE pgretrieval.documents ADD CONSTRAINT no_forbidden CHECK (title <> 'FORBIDDEN')")
    docs = [*_docs(3), Document(id="evil", title="FORBIDDEN", text="some text")]
    with pytest.raises(IngestError, match=r"document 'evil'.*no_forbidden"):
        ingest_documents(dsn, "docs", docs, tiny, progress=False)
    assert _count(conn, "documents") == 0 and _count(conn, "postings") == 0
    report = ingest_documents(dsn, "docs", docs, tiny, progress=False, skip_errors=True)
    assert (report.documents_added, report.documents_failed) == (3, 1)
    assert report.errors[0].document_id == "evil"
    assert _count(conn, "documents") == 3 and _count(conn, "embeddings") == 3


def test_one_megabyte_document_is_chunked_within_the_model_window(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder
) -> None:
    sentence = "Retrieval quality depends on chunking, embeddings and ranking. "
    text = "\n\n".join(sentence * 8 for _ in range(2100))
    assert len(text.encode()) > 1_000_000
    report = ingest_documents(
        dsn, "docs", [Document(id="big", title="Big", text=text)], tiny, progress=False, chunk_size=300
    )
    assert report.documents_added == 1 and report.chunks_written > 1000
    longest = conn.execute("SELECT max(token_count) FROM pgretrieval.chunks").fetchone()[0]
    assert longest <= 300


def test_dimension_mismatch_with_registered_embedder(dsn: str, conn: psycopg.Connection[Any], tiny: Embedder) -> None:
    conn.execute("SELECT pgretrieval.register_embedder(%s, 'other', 128)", (tiny.name,))
    with pytest.raises(IngestError, match="registered with 128 dimensions"):
        ingest_documents(dsn, "docs", _docs(), tiny, progress=False)
    assert _count(conn, "documents") == 0


def test_model_that_cannot_be_loaded() -> None:
    with pytest.raises(ModelError, match="no such folder"):
        load_embedder("/nonexistent/model/dir")


def test_delete_by_id_and_by_filter_keeps_statistics_exact(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder
) -> None:
    ingest_documents(dsn, "docs", _docs(5), tiny, progress=False)
    assert delete_documents(dsn, "docs", ids=["d0"]) == 1
    assert delete_documents(dsn, "docs", filter={"kind": "odd"}) == 2
    assert sorted(r[0] for r in conn.execute("SELECT external_id FROM pgretrieval.documents")) == ["d2", "d4"]
    n = conn.execute("SELECT sum(n_chunks) FROM pgretrieval.collection_stats").fetchone()[0]
    assert n == _count(conn, "chunks") == _count(conn, "embeddings") == 2
    with pytest.raises(Exception, match="refusing"):
        delete_documents(dsn, "docs")


def test_second_embedder_backfills_vectors_of_unchanged_documents(
    dsn: str, conn: psycopg.Connection[Any], tiny: Embedder
) -> None:
    ingest_documents(dsn, "docs", _docs(), tiny, progress=False)
    other = load_embedder(str(TINY), name="tiny-second")
    report = ingest_documents(dsn, "docs", _docs(), other, progress=False)
    assert report.documents_unchanged == 3 and report.chunks_written == 0
    assert report.cache_hits == 0 and report.texts_embedded == 3  # a different embedder id: its own cache entries
    per_embedder = dict(
        conn.execute(
            "SELECT e.name, count(*) FROM pgretrieval.embeddings x "
            "JOIN pgretrieval.embedders e ON e.id = x.embedder_id GROUP BY 1"
        ).fetchall()
    )
    assert per_embedder == {tiny.name: 3, "tiny-second": 3}
    assert any("side by side" in note for note in report.notes)
