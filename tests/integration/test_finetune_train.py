"""Fine-tuning a real (tiny, 64-d static) model for a few steps on made-up data: saved output, history, early
stopping, reproducibility, crash safety. Runs in well under a minute on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgretrieval.errors import InvalidInputError, ModelError
from pgretrieval.finetune import (
    METADATA_FILE,
    FinetuneResult,
    HistoryPoint,
    RetrievalData,
    TrainingPair,
    finetune,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TINY = SHARED / "models" / "tiny-static-minilm-64"

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(not TINY.is_dir(), reason=f"{TINY} not present (shared models folder absent)"),
    pytest.mark.filterwarnings("ignore::pgretrieval.finetune.FewTrainingPairsWarning"),
]

TOPICS = [
    ("aspirin", "heart attack prevention"),
    ("malaria", "mosquito nets"),
    ("insulin", "blood sugar control"),
    ("vaccines", "measles immunity"),
    ("statins", "cholesterol levels"),
    ("antibiotics", "bacterial resistance"),
    ("sleep", "memory consolidation"),
    ("smoking", "lung cancer"),
]


def make_pairs() -> list[TrainingPair]:
    pairs = []
    for i, (thing, effect) in enumerate(TOPICS):
        other = TOPICS[(i + 1) % len(TOPICS)]
        for j, ask in enumerate(("does {} help {}", "evidence on {} and {}", "{} effect on {}")):
            pairs.append(
                TrainingPair(
                    ask.format(thing, effect) + "?",
                    f"Study {j}: {thing} is linked to {effect} in a trial of {100 + j} patients.",
                    f"Study {j}: {other[0]} is linked to {other[1]} in a trial of {100 + j} patients.",
                )
            )
    return pairs


def validation_set() -> RetrievalData:
    corpus = {f"d{i}": f"Review: {thing} and {effect}." for i, (thing, effect) in enumerate(TOPICS)}
    queries = {f"q{i}": f"what does {thing} do for {effect}" for i, (thing, effect) in enumerate(TOPICS)}
    return RetrievalData(queries, corpus, {f"q{i}": {f"d{i}": 1} for i in range(len(TOPICS))})


def run(out: Path, **kw: object) -> FinetuneResult:
    args: dict[str, object] = {
        "output_dir": out,
        "validation": 0.25,
        "batch_size": 6,
        "epochs": 3,
        "learning_rate": 5e-3,
        "eval_steps": 2,
        "patience": None,
        "seed": 3,
        "device": "cpu",
    }
    args.update(kw)
    return finetune(str(TINY), make_pairs(), **args)  # type: ignore[arg-type]


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_trains_saves_a_loadable_model_and_records_history(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    result = run(tmp_path / "model", max_steps=6)
    assert result.model_path == (tmp_path / "model").resolve()
    assert [h.step for h in result.history] == [0, 2, 4, 6]
    assert all(isinstance(h, HistoryPoint) and 0.0 <= (h.val_ndcg10 or 0.0) <= 1.0 for h in result.history)
    assert result.history[0].train_loss is None and all(h.train_loss is not None for h in result.history[1:])
    best = max(result.history, key=lambda h: h.val_ndcg10 or 0.0)
    assert result.best_val_ndcg10 == best.val_ndcg10 and result.steps_run == 6
    assert any("held out" in n for n in result.notes) and any("at least 1000" in n for n in result.notes)
    assert (result.model_path / METADATA_FILE).is_file()
    assert leftovers(tmp_path) == []  # the temporary training folder was renamed into place

    model = SentenceTransformer(str(result.model_path), device="cpu")
    vectors = model.encode(["aspirin and the heart"], normalize_embeddings=True)
    assert vectors.shape == (1, 64) and np.isfinite(vectors).all()


def test_same_seed_same_result_on_cpu(tmp_path: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(123)
    outside = torch.random.get_rng_state()
    a = run(tmp_path / "a", max_steps=6, validation=validation_set())
    assert torch.equal(torch.random.get_rng_state(), outside)  # the caller's RNG state is left alone
    b = run(tmp_path / "b", max_steps=6, validation=validation_set())
    assert a.history == b.history and a.best_step == b.best_step
    texts = ["insulin and blood sugar", "sleep"]
    va = SentenceTransformer(str(a.model_path), device="cpu").encode(texts)
    vb = SentenceTransformer(str(b.model_path), device="cpu").encode(texts)
    assert np.array_equal(va, vb)
    c = run(tmp_path / "c", max_steps=6, validation=validation_set(), seed=4)
    assert [h.train_loss for h in c.history] != [h.train_loss for h in a.history]  # the seed does matter


def test_early_stopping_with_patience_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    # No later point can beat the first by a whole nDCG point, so patience 2 stops at the second point after it.
    result = run(tmp_path / "m", patience=2, min_delta=1.0, eval_base=True)
    assert result.stopped_early and result.steps_run == 4 and len(result.history) == 3
    assert result.best_step == 0 and result.best_val_ndcg10 == result.history[0].val_ndcg10
    assert any("early stopping at step 4" in n for n in result.notes)
    assert any("saved model is the base model" in n for n in result.notes)


def test_cosine_loss_and_explicit_validation_tuple(tmp_path: Path) -> None:
    v = validation_set()
    result = run(tmp_path / "m", loss="cosine", max_steps=4, validation=(v.queries, v.corpus, v.qrels))
    assert [h.step for h in result.history] == [0, 2, 4]
    assert result.config["loss"] == "cosine"


def test_interrupt_leaves_nothing_at_output_dir(tmp_path: Path) -> None:
    def interrupt(point: HistoryPoint) -> None:
        if point.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "m", on_eval=interrupt)
    assert not (tmp_path / "m").exists() and leftovers(tmp_path) == []


def test_overwrite_replaces_only_at_the_end(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("old model")
    with pytest.raises(InvalidInputError, match="already exists"):
        run(out, max_steps=2)

    def interrupt(point: HistoryPoint) -> None:
        if point.step == 2:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        run(out, max_steps=2, overwrite=True, on_eval=interrupt)
    assert (out / "keep.txt").read_text() == "old model"  # a failed run leaves the old content alone
    result = run(out, max_steps=2, overwrite=True)
    assert not (out / "keep.txt").exists() and (result.model_path / "modules.json").is_file()
    assert leftovers(tmp_path) == []


def test_unreadable_model_path_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "modules.json").write_text("{ broken")
    with pytest.raises(ModelError, match="cannot load base model"):
        finetune(str(bad), make_pairs(), output_dir=tmp_path / "out", validation=None, device="cpu")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_validation_queries_seen_in_training_are_noted(tmp_path: Path) -> None:
    pairs = make_pairs()
    leaky = RetrievalData({"q": pairs[0].query}, {"d": pairs[0].positive, "x": "unrelated"}, {"q": {"d": 1}})
    result = run(tmp_path / "m", max_steps=2, validation=leaky)
    assert any("1 validation queries also appear in the training pairs" in n for n in result.notes)
