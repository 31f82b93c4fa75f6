"""The SQLAlchemy repository: mapped classes match the schema, search runs in the caller's session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from pgretrieval.embed import Embedder, load_embedder
from pgretrieval.ingest import ingest_documents
from pgretrieval.repository import (
    Base,
    ChunkRecord,
    CollectionRecord,
    DocumentRecord,
    RetrievalRepository,
    sqlalchemy_url,
)
from pgretrieval.types import Document, SearchHit

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
pytestmark = pytest.mark.skipif(not MODELS.exists(), reason="shared models not present")


@pytest.fixture(scope="module")
def tiny() -> Embedder:
    return load_embedder(str(MODELS / "tiny-static-minilm-64"))


@pytest.fixture
def engine(dsn: str, tiny: Embedder) -> Iterator[Engine]:
    docs = [
        Document(id="a", title="Apples", text="Red apples grow on trees in the orchard.", metadata={"kind": "fruit"}),
        Document(id="b", title="Bikes", text="A bicycle has two wheels and a chain.", metadata={"kind": "thing"}),
        Document(id="c", title="Cherries", text="Cherries are small red stone fruits.", metadata={"kind": "fruit"}),
    ]
    ingest_documents(dsn, "things", docs, tiny, progress=False)
    eng = create_engine(sqlalchemy_url(dsn))
    try:
        yield eng
    finally:
        eng.dispose()


def test_sqlalchemy_url_forms() -> None:
    assert sqlalchemy_url("postgresql://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert sqlalchemy_url("postgres+psycopg2://h/db") == "postgresql+psycopg://h/db"
    url = sqlalchemy_url("host=localhost port=5433 dbname=x user=me password=s3cret sslmode=disable")
    assert url == "postgresql+psycopg://me:s3cret@localhost:5433/x?sslmode=disable"


def test_mapped_columns_match_the_database(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        db_columns = {c["name"]: c for c in inspector.get_columns(table.name, schema="pgretrieval")}
        assert set(db_columns) == {c.name for c in table.columns}, table.name
        for col in table.columns:
            assert db_columns[col.name]["nullable"] == col.nullable, f"{table.name}.{col.name}"


def test_orm_reads(engine: Engine) -> None:
    with Session(engine) as session:
        repo = RetrievalRepository(session)
        (collection,) = repo.collections()
        assert collection.name == "things" and collection.default_embedder is not None
        doc = repo.get_document("things", "a")
        assert doc is not None and doc.metadata_ == {"kind": "fruit"} and len(doc.content_hash) == 32
        assert [c.content for c in doc.chunks] == ["Red apples grow on trees in the orchard."]
        assert repo.count_documents("things") == 3
        n = session.scalar(select(ChunkRecord.id).join(DocumentRecord).where(DocumentRecord.external_id == "b"))
        assert isinstance(n, int)
        assert session.scalar(select(CollectionRecord.text_config)) == "english"


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_search_in_the_callers_transaction(engine: Engine, tiny: Embedder, mode: str) -> None:
    with Session(engine) as session, session.begin():
        # Something the application did in the same transaction, not yet committed, is visible to search.
        session.execute(
            text("UPDATE pgretrieval.documents SET metadata = metadata || '{\"seen\": true}' WHERE external_id = 'c'")
        )
        repo = RetrievalRepository(session, embedder=tiny, collection="things")
        hits = repo.search("red fruit", k=3, mode=mode, filters={"kind": "fruit"})
        assert hits and all(isinstance(h, SearchHit) for h in hits)
        assert {h.external_id for h in hits} <= {"a", "c"}
        seen = {h.external_id: h.metadata.get("seen") for h in hits}
        assert seen.get("c", True) is True
        session.rollback()


def test_search_with_a_precomputed_embedding_and_options(engine: Engine, tiny: Embedder) -> None:
    vector = tiny.embed_queries(["two wheels"])[0]
    with Session(engine) as session:
        repo = RetrievalRepository(session)
        hits = repo.search(
            "two wheels",
            k=2,
            collection="things",
            query_embedding=vector,
            embedder=tiny.name,
            weights=(0.5, 0.5),
            rrf_k=10,
        )
        assert hits[0].external_id == "b"
        with pytest.raises(Exception, match="needs an embedder"):
            repo.search("x", collection="things", mode="dense")
