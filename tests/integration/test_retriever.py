"""The Retriever against real PostgreSQL with the real SQL search functions and real tiny models."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from pgretrieval.config import Settings
from pgretrieval.embed import Embedder, load_embedder
from pgretrieval.errors import InvalidInputError, NotFoundError
from pgretrieval.search import Retriever, search_call
from pgretrieval.types import Document, SearchHit, SearchResults

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
TOPICS = {
    "cats": "Cats purr, chase mice and sleep in the sun for most of the afternoon.",
    "postgres": "PostgreSQL stores rows in heap pages and uses write-ahead logging for durability.",
    "python": "Python programs use indentation, dynamic typing and a large standard library.",
    "volcano": "A volcano erupts when magma, gas and ash escape from the crust of the earth.",
}
BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)

pytestmark = pytest.mark.skipif(not MODELS.exists(), reason="shared models not present")


class CountingEmbedder:
    """The real tiny model, counting how often it is asked to embed queries (to see the query cache work)."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.query_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.query_calls += 1
        return self._inner.embed_queries(texts)


@pytest.fixture(scope="module")
def tiny() -> Embedder:
    return load_embedder(str(MODELS / "tiny-static-minilm-64"))


def corpus(n_per_topic: int) -> list[Document]:
    docs = []
    for t, (topic, text) in enumerate(TOPICS.items()):
        for i in range(n_per_topic):
            docs.append(
                Document(
                    id=f"{topic}-{i}",
                    title=f"{topic.title()} note {i}",
                    text=f"{text} Note number {i} about {topic}.",
                    metadata={"topic": topic, "i": i},
                    created_at=BASE + timedelta(days=30 * t + i),
                )
            )
    return docs


@pytest.fixture
def retriever(dsn: str, tiny: Embedder) -> Any:
    with Retriever(dsn, embedder=tiny, pool_size=2) as r:
        r.add_documents(corpus(5), collection="small")
        yield r


def test_collections_lifecycle(retriever: Retriever) -> None:
    retriever.create_collection("zh", text_config="simple", description="Chinese notes")
    infos = {c.name: c for c in retriever.list_collections()}
    assert set(infos) == {"small", "zh"}
    assert (infos["small"].documents, infos["small"].chunks) == (20, 20)
    assert infos["small"].default_embedder == "tiny-static-minilm-64"
    assert infos["zh"].text_config == "simple" and infos["zh"].embedders == ()
    assert retriever.drop_collection("zh") is True
    assert retriever.drop_collection("zh", if_exists=True) is False
    with pytest.raises(NotFoundError, match="unknown collection"):
        retriever.drop_collection("zh")


def test_cold_start_searches_lexically_and_says_so(retriever: Retriever) -> None:
    results = retriever.search("magma erupts", k=3, collection="small")
    assert isinstance(results, SearchResults) and results.mode == "lexical"
    assert any("cold start" in n for n in results.notes)
    assert len(results) == 3 and all(h.external_id.startswith("volcano") for h in results)
    hit = results[0]
    assert isinstance(hit, SearchHit) and hit.lexical_rank == 1 and hit.dense_rank is None
    assert hit.title.startswith("Volcano note") and hit.metadata["topic"] == "volcano"
    assert "embed" not in results.timings and results.timings["sql"] > 0


@pytest.mark.parametrize("mode", ["dense", "hybrid", "lexical"])
def test_explicit_modes(retriever: Retriever, mode: str) -> None:
    results = retriever.search("PostgreSQL write-ahead logging", k=5, collection="small", mode=mode)
    assert results.mode == mode and not results.notes and len(results) == 5
    assert results[0].external_id.startswith("postgres")
    if mode != "lexical":
        assert results.timings["embed"] >= 0 and results[0].dense_rank is not None
    scores = [h.score for h in results]
    assert scores == sorted(scores, reverse=True)


def test_filters_dates_weights_and_decay(retriever: Retriever) -> None:
    only_cats = retriever.search("notes", k=10, mode="hybrid", filters={"topic": "cats"}, collection="small")
    assert {h.metadata["topic"] for h in only_cats} == {"cats"}
    later = retriever.search("note", k=20, mode="lexical", created_after=BASE + timedelta(days=60))
    assert later and all(h.created_at >= BASE + timedelta(days=60) for h in later)
    weighted = retriever.search("purr", k=3, mode="hybrid", weights=(0.0, 1.0), collection="small")
    assert weighted[0].external_id.startswith("cats")
    decayed = retriever.search(
        "note", k=5, mode="hybrid", decay={"scale": "30 days", "origin": "2024-04-01T00:00:00Z"}, collection="small"
    )
    assert all(h.recency is not None for h in decayed)


def test_query_embeddings_are_cached(dsn: str, tiny: Embedder, conn: psycopg.Connection[Any]) -> None:
    counting = CountingEmbedder(tiny)
    with Retriever(dsn, embedder=counting, pool_size=1) as r:  # type: ignore[arg-type]
        r.add_documents(corpus(2), collection="c")
        first = r.search("sleepy cats", mode="dense", collection="c")
        second = r.search("sleepy cats", mode="dense", collection="c")
    assert counting.query_calls == 1
    assert [h.chunk_id for h in first] == [h.chunk_id for h in second]
    assert conn.execute("SELECT count(*) FROM pgretrieval.embedding_cache WHERE purpose = 'query'").fetchone()[0] == 1


def test_warm_collection_defaults_to_hybrid_with_the_registered_embedder(dsn: str, tiny: Embedder) -> None:
    with Retriever(dsn, embedder=tiny) as r:
        r.add_documents(corpus(26), collection="big")  # 104 documents: past the cold start
    # A new Retriever without an embedder loads the collection's registered model by itself.
    with Retriever(settings=Settings(database_url=dsn)) as fresh:
        results = fresh.search("volcano ash", k=4)
    assert results.mode == "hybrid" and not results.notes
    assert results[0].external_id.startswith("volcano")
    assert results[0].dense_rank is not None or results[0].lexical_rank is not None


def test_errors_are_typed_and_clear(retriever: Retriever) -> None:
    with pytest.raises(NotFoundError, match='unknown collection "nope"'):
        retriever.search("x", collection="nope", mode="lexical")
    with pytest.raises(InvalidInputError, match="filter"):
        retriever.search("x", collection="small", mode="lexical", filters={"i": {"between": [1, 2]}})
    with pytest.raises(InvalidInputError, match="no argument 'exact'"):
        retriever.search("x", collection="small", mode="lexical", exact=True)
    with pytest.raises(InvalidInputError, match="empty"):
        retriever.search("  ", collection="small")
    with pytest.raises(InvalidInputError, match="unknown search mode"):
        retriever.search("x", collection="small", mode="fuzzy")
    with pytest.raises(InvalidInputError, match="hybrid"):
        retriever.search("x", collection="small", mode="dense", weights=(0.5, 0.5))


def test_delete_documents_through_the_retriever(retriever: Retriever) -> None:
    assert retriever.delete_documents(["cats-0"], collection="small") == 1
    assert retriever.delete_documents(collection="small", filter={"topic": "python"}) == 5
    assert retriever.list_collections()[0].documents == 14


def test_sql_call_uses_named_arguments_only_for_given_values() -> None:
    statement, params = search_call("lexical", {"query_text": "q", "match_count": 3, "k1": None})
    assert params == ["q", 3]
    assert statement.as_string(None) == (
        'SELECT * FROM pgretrieval."lexical_search"("query_text" => %s::text, "match_count" => %s::integer)'
    )
