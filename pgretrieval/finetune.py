"""Fine-tuning an embedder on (query, positive, negative) pairs: data, hard-negative mining, training.

The guide's chapter 2: fine-tune when domain terms defeat a general model, with at least ~1,000 labelled pairs and
negatives that look relevant but are not (hard negatives). This module takes and returns plain data and never opens
a database connection: mining gets a ``search(query, k) -> ranked doc ids`` callable, so the CLI can pass our own
``hybrid_search`` while tests pass a plain Python function.

Training is a plain PyTorch loop over sentence-transformers' own losses rather than ``SentenceTransformerTrainer``:
the trainer needs the ``datasets`` and ``accelerate`` packages (not dependencies of pgretrieval), and the loop makes
early stopping on validation nDCG@10, keeping the best weights and seeded reproducibility simple to get right.
torch and sentence-transformers are imported inside functions only.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

import numpy as np

from pgretrieval.errors import InvalidInputError, ModelError
from pgretrieval.metrics import evaluate_run
from pgretrieval.testsets import _json_items, _read_text, _strip_comments, iter_beir_corpus, load_beir
from pgretrieval.types import embed_text

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "METADATA_FILE",
    "MIN_RECOMMENDED_PAIRS",
    "FewTrainingPairsWarning",
    "FinetuneResult",
    "HistoryPoint",
    "RetrievalData",
    "TrainingData",
    "TrainingPair",
    "doc_embed_text",
    "exact_cosine_run",
    "finetune",
    "load_beir_split",
    "load_training_pairs",
    "mine_hard_negatives",
    "pairs_from_beir",
]

logger = logging.getLogger(__name__)

MIN_RECOMMENDED_PAIRS = 1000  # the guide: at least 1,000 pairs, 5,000+ better
METADATA_FILE = "pgretrieval_finetune.json"
LossName = Literal["mnrl", "cosine"]


class FewTrainingPairsWarning(UserWarning):
    """Fewer training pairs than the guide's minimum: fine-tuning may overfit or not help."""


_FEW_MARKER = "the guide advises at least"


def _few_pairs_note(n: int) -> str | None:
    if n >= MIN_RECOMMENDED_PAIRS:
        return None
    return (
        f"only {n} training pairs: {_FEW_MARKER} {MIN_RECOMMENDED_PAIRS} (5,000+ better); "
        "expect a small or no gain and watch the validation score"
    )


def _warn_if_few(n: int, notes: list[str]) -> None:
    """Add the guide's minimum-size advice to ``notes`` and say it once through warnings and logging."""
    note = _few_pairs_note(n)
    if note:
        notes.append(note)
        logger.warning(note)
        warnings.warn(note, FewTrainingPairsWarning, stacklevel=3)


# ------------------------------------------------------------------------------------------------ data types


@dataclass(frozen=True)
class TrainingPair:
    """One training example: a query, a passage that answers it, and optionally one that looks relevant but is not."""

    query: str
    positive: str
    negative: str | None = None


@dataclass(frozen=True)
class TrainingData(Sequence[TrainingPair]):
    """Training pairs plus notes about how they were built (warnings, skipped items); usable as a sequence."""

    pairs: tuple[TrainingPair, ...]
    notes: tuple[str, ...] = ()
    source: str | None = None

    @overload
    def __getitem__(self, index: int) -> TrainingPair: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[TrainingPair]: ...

    def __getitem__(self, index: int | slice) -> TrainingPair | Sequence[TrainingPair]:
        return self.pairs[index]

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[TrainingPair]:
        return iter(self.pairs)

    @property
    def with_negative(self) -> int:
        """How many pairs carry a hard negative."""
        return sum(1 for p in self.pairs if p.negative is not None)


@dataclass(frozen=True)
class RetrievalData:
    """Queries, a corpus and graded judgements as plain text: a validation set, or a labelled split to mine from."""

    queries: Mapping[str, str]
    corpus: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]
    name: str = "data"

    def __post_init__(self) -> None:
        if not self.queries:
            raise InvalidInputError(f"{self.name}: no queries")
        if not self.corpus:
            raise InvalidInputError(f"{self.name}: empty corpus")
        for qid, judged in self.qrels.items():
            if qid not in self.queries:
                raise InvalidInputError(f"{self.name}: query {qid!r} has judgements but no text")
            unknown = [d for d in judged if d not in self.corpus]
            if unknown:
                raise InvalidInputError(
                    f"{self.name}: query {qid!r} names document {unknown[0]!r}, which is not in the corpus"
                )
        if not any(g >= 1 for judged in self.qrels.values() for g in judged.values()):
            raise InvalidInputError(f"{self.name}: no relevant judgement (grade >= 1), so nothing can be evaluated")

    def relevant(self, qid: str) -> set[str]:
        return {d for d, g in self.qrels.get(qid, {}).items() if g >= 1}

    def subset(self, qids: Collection[str], *, name: str | None = None) -> RetrievalData:
        """The same corpus with only the given queries (e.g. a held-out validation split)."""
        keep = [q for q in self.queries if q in set(qids)]
        return RetrievalData(
            {q: self.queries[q] for q in keep},
            self.corpus,
            {q: dict(self.qrels[q]) for q in keep if q in self.qrels},
            name=name or self.name,
        )

    def pairs(self) -> TrainingData:
        """One positive-only pair per (query, relevant doc); add negatives with :func:`mine_hard_negatives`."""
        out = [
            TrainingPair(self.queries[q], self.corpus[d])
            for q in self.queries
            for d, g in self.qrels.get(q, {}).items()
            if g >= 1
        ]
        notes: list[str] = []
        _warn_if_few(len(out), notes)
        return TrainingData(tuple(out), tuple(notes), source=self.name)


ValidationSpec = RetrievalData | tuple[Mapping[str, str], Mapping[str, str], Mapping[str, Mapping[str, int]]] | float


class HistoryPoint(NamedTuple):
    """One validation point: step, validation nDCG@10 (None without validation), mean training loss since the last
    point (None at step 0)."""

    step: int
    val_ndcg10: float | None
    train_loss: float | None


@dataclass(frozen=True)
class FinetuneResult:
    """Where the best model was saved and how training went."""

    model_path: Path
    best_step: int
    best_val_ndcg10: float | None
    history: tuple[HistoryPoint, ...]
    seconds: float
    notes: tuple[str, ...] = ()
    steps_run: int = 0
    stopped_early: bool = False
    device: str = "cpu"
    train_pairs: int = 0
    base_model: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- loading data


def _text_field(item: Mapping[str, Any], key: str, file: Path, line: int) -> str:
    if key not in item:
        raise InvalidInputError(f"{file}:{line}: missing field {key!r} (each item needs 'query' and 'positive')")
    value = item[key]
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{file}:{line}: field {key!r} must be a non-empty string, got {value!r:.60}")
    return value


def _read_items(file: Path) -> list[tuple[int, Any]]:
    """(line, value) of a JSON array or JSON Lines file. One record a line is tried first, so a broken record is
    reported on its own line; a stream of multi-line objects falls back to the stream parser."""
    text = _strip_comments(_read_text(file))
    if text.lstrip().startswith("["):
        return _json_items(text, file)
    items: list[tuple[int, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            try:
                return _json_items(text, file)
            except InvalidInputError:
                raise InvalidInputError(f"{file}:{lineno}: malformed JSON: {exc.msg} (column {exc.colno})") from None
    return items


def load_training_pairs(path: str | Path) -> TrainingData:
    """Read the guide's training data: a JSON array or JSON Lines of ``{"query", "positive", "negative"?}``.

    ``negative`` may be a string, a list of strings (one pair per negative), null or absent. ``//`` comments are
    allowed as in the guide's examples. Errors name the file and line.
    """
    file = Path(path)
    items = _read_items(file)
    if not items:
        raise InvalidInputError(f"{file}: no training pairs found (expected {{'query', 'positive', 'negative'?}})")
    pairs: list[TrainingPair] = []
    for line, item in items:
        if not isinstance(item, dict):
            raise InvalidInputError(f"{file}:{line}: each training item must be a JSON object, got {item!r:.60}")
        query = _text_field(item, "query", file, line)
        positive = _text_field(item, "positive", file, line)
        raw = item.get("negative")
        if raw is None:
            negatives: list[str] = []
        elif isinstance(raw, str):
            negatives = [raw]
        elif isinstance(raw, list):
            negatives = raw
        else:
            raise InvalidInputError(f"{file}:{line}: field 'negative' must be a string or a list of strings")
        for neg in negatives:
            if not isinstance(neg, str) or not neg.strip():
                raise InvalidInputError(f"{file}:{line}: each negative must be a non-empty string, got {neg!r:.60}")
        if negatives:
            pairs.extend(TrainingPair(query, positive, neg) for neg in negatives)
        else:
            pairs.append(TrainingPair(query, positive))
    notes: list[str] = []
    _warn_if_few(len(pairs), notes)
    return TrainingData(tuple(pairs), tuple(notes), source=str(file))


doc_embed_text = embed_text  # what the embedder sees for a document: the same rule as ingest (types.embed_text)


def load_beir_split(folder: str | Path, split: str = "train") -> RetrievalData:
    """Queries, qrels and corpus texts (title + body) of one BEIR split, loaded with :mod:`pgretrieval.testsets`."""
    testset = load_beir(folder, split)
    corpus = {rec.id: doc_embed_text(rec.title, rec.text) for rec in iter_beir_corpus(folder, sidecar_metadata=False)}
    return RetrievalData(testset.queries, corpus, testset.qrels, name=f"{testset.name}/{split}")


def pairs_from_beir(folder: str | Path, split: str = "train") -> TrainingData:
    """Positive-only pairs from a BEIR split (one per relevant judgement); mine negatives separately."""
    return load_beir_split(folder, split).pairs()


# ---------------------------------------------------------------------------------------------------- mining


def mine_hard_negatives(
    queries: RetrievalData | Mapping[str, str] | Sequence[TrainingPair],
    search: Callable[[str, int], Sequence[str]],
    relevant: Mapping[str, Collection[str]] | None = None,
    doc_text: Callable[[str], str] | Mapping[str, str] | None = None,
    *,
    skip_top: int = 3,
    per_query: int = 1,
    depth: int = 30,
    sampling: Literal["top", "random"] = "top",
    seed: int = 0,
) -> TrainingData:
    """Pairs with hard negatives: search results for the query that are not labelled relevant.

    ``search(query_text, k)`` returns ranked doc ids (e.g. our ``hybrid_search``). The first ``skip_top`` results are
    never used: unlabelled relevant documents cluster at the top, and training them as negatives hurts (false
    negatives). From the remaining results down to ``depth``, minus labelled-relevant ones, ``per_query`` negatives
    are taken, the highest-ranked (``sampling="top"``) or drawn at random with ``seed``.

    ``queries`` is one of:

    - :class:`RetrievalData` (``relevant`` and ``doc_text`` default to its qrels and corpus);
    - ``{qid: text}`` with ``relevant[qid]`` = relevant doc ids and ``doc_text`` mapping ids to text;
    - training pairs: grouped by query text; ``relevant`` (optional) is keyed by query text, and a result whose
      text equals one of the query's positives is never a negative. Pairs that already have a negative are kept.

    Each positive is paired with each mined negative; queries with no usable result keep positive-only pairs
    (counted in the notes).
    """
    if skip_top < 0 or per_query < 1 or depth < 1:
        raise InvalidInputError(
            f"need skip_top >= 0, per_query >= 1 and depth >= 1, got {skip_top}, {per_query}, {depth}"
        )
    if sampling not in ("top", "random"):
        raise InvalidInputError(f"sampling must be 'top' or 'random', got {sampling!r}")
    # Normalise the three input shapes to: key -> (query text, positive texts, relevant ids), plus kept pairs.
    groups: dict[str, tuple[str, list[str], set[str]]] = {}
    kept: list[TrainingPair] = []
    if isinstance(queries, RetrievalData):
        relevant = relevant if relevant is not None else {q: queries.relevant(q) for q in queries.queries}
        doc_text = doc_text if doc_text is not None else queries.corpus
        queries = queries.queries
    get_text = _text_getter(doc_text)
    if isinstance(queries, Mapping):
        if relevant is None:
            raise InvalidInputError("mining from {qid: text} needs `relevant` ({qid: relevant doc ids})")
        if get_text is None:
            raise InvalidInputError("mining needs `doc_text` (a mapping or function from doc id to text)")
        for qid, text in queries.items():
            rel = set(relevant.get(qid, ()))
            if rel:
                groups[qid] = (text, [get_text(d) for d in sorted(rel)], rel)
    else:
        if get_text is None:
            raise InvalidInputError("mining needs `doc_text` (a mapping or function from doc id to text)")
        for p in queries:
            if p.negative is not None:
                kept.append(p)
                continue
            _, positives, _ = groups.setdefault(p.query, (p.query, [], set((relevant or {}).get(p.query, ()))))
            if p.positive not in positives:
                positives.append(p.positive)
    rng = random.Random(seed)
    pairs: list[TrainingPair] = list(kept)
    unmined = 0
    for _key, (text, positives, rel) in groups.items():
        positive_set = {t.strip() for t in positives}
        candidates: list[str] = []
        seen: set[str] = set()
        for rank, doc in enumerate(search(text, depth + skip_top)):
            if doc in seen:
                continue
            seen.add(doc)
            if rank < skip_top or doc in rel:
                continue
            neg = get_text(doc)
            if neg.strip() in positive_set or not neg.strip():
                continue
            candidates.append(neg)
            if len(candidates) >= depth:
                break
        chosen = (
            candidates[:per_query] if sampling == "top" else rng.sample(candidates, min(per_query, len(candidates)))
        )
        if not chosen:
            unmined += 1
            pairs.extend(TrainingPair(text, pos) for pos in positives)
            continue
        pairs.extend(TrainingPair(text, pos, neg) for pos in positives for neg in chosen)
    notes: list[str] = [
        f"mined hard negatives for {len(groups) - unmined} of {len(groups)} queries "
        f"(skip_top={skip_top}, per_query={per_query}, depth={depth}, sampling={sampling})"
    ]
    if unmined:
        notes.append(f"{unmined} queries got no hard negative (every result was relevant or skipped)")
    _warn_if_few(len(pairs), notes)
    return TrainingData(tuple(pairs), tuple(notes), source="mined")


def _text_getter(doc_text: Callable[[str], str] | Mapping[str, str] | None) -> Callable[[str], str] | None:
    if doc_text is None:
        return None
    if isinstance(doc_text, Mapping):
        mapping = doc_text

        def lookup(doc: str) -> str:
            try:
                return mapping[doc]
            except KeyError:
                raise InvalidInputError(f"search returned document {doc!r}, which `doc_text` does not know") from None

        return lookup
    return doc_text


# ------------------------------------------------------------------------------------------- exact search


def exact_cosine_run(
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    qids: Sequence[str],
    doc_ids: Sequence[str],
    k: int = 10,
) -> dict[str, list[str]]:
    """Exact top-k by cosine (vectors normalised here), ties broken by doc order; ``{qid: ranked doc ids}``."""
    q = np.asarray(query_vectors, dtype=np.float32)
    d = np.asarray(doc_vectors, dtype=np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    k = min(k, d.shape[0])
    run: dict[str, list[str]] = {}
    for start in range(0, q.shape[0], 256):  # bounded memory for large corpora
        scores = q[start : start + 256] @ d.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for row, cand in enumerate(top):
            order = cand[np.lexsort((cand, -scores[row, cand]))]
            run[qids[start + row]] = [doc_ids[j] for j in order]
    return run


# ---------------------------------------------------------------------------------------------------- training


def _as_validation(
    spec: ValidationSpec | None, train: Sequence[TrainingPair], seed: int
) -> tuple[list[TrainingPair], RetrievalData | None, str | None]:
    """(pairs to train on, validation data, note). A fraction holds out whole queries so none leaks into training."""
    if spec is None:
        return list(train), None, None
    if isinstance(spec, tuple):
        if len(spec) != 3:
            raise InvalidInputError("validation must be (queries, corpus, qrels), a RetrievalData or a fraction")
        queries, corpus, qrels = spec
        spec = RetrievalData(queries, corpus, qrels, name="validation")
    if isinstance(spec, RetrievalData):
        leaked = set(spec.queries.values()) & {p.query for p in train}
        note = (
            f"{len(leaked)} validation queries also appear in the training pairs: validation scores are optimistic"
            if leaked
            else None
        )
        return list(train), spec, note
    fraction = float(spec)
    if not 0.0 < fraction < 1.0:
        raise InvalidInputError(f"validation fraction must be between 0 and 1 (e.g. 0.1), got {spec!r}")
    by_query: dict[str, list[TrainingPair]] = {}
    for p in train:
        by_query.setdefault(p.query, []).append(p)
    if len(by_query) < 2:
        raise InvalidInputError("holding out a validation fraction needs pairs for at least 2 distinct queries")
    names = list(by_query)
    random.Random(seed).shuffle(names)
    n_val = min(len(names) - 1, max(1, round(fraction * len(names))))
    held = set(names[:n_val])
    texts: dict[str, str] = {}  # passage text -> doc id; every passage in the data is a candidate
    for p in train:
        for t in (p.positive, p.negative):
            if t is not None and t not in texts:
                texts[t] = f"d{len(texts)}"
    val_queries = {f"q{i}": q for i, q in enumerate(sorted(held, key=names.index))}
    qrels = {qid: {texts[p.positive]: 1 for p in by_query[q]} for qid, q in val_queries.items()}
    data = RetrievalData(val_queries, {i: t for t, i in texts.items()}, qrels, name="held-out pairs")
    note = (
        f"validation: {n_val} of {len(names)} queries held out ({fraction:.0%}), searched over the "
        f"{len(texts)} passages of the training data"
    )
    return [p for p in train if p.query not in held], data, note


def _batches(
    pairs: Sequence[TrainingPair], batch_size: int, rng: random.Random, no_duplicates: bool
) -> list[list[int]]:
    """One epoch of batches. For in-batch negatives no text may repeat inside a batch (a repeated positive would be
    both the answer and a negative), and pairs with and without a hard negative go in separate batches because the
    loss needs the same columns in every row."""
    pools: dict[bool, list[int]] = {True: [], False: []}
    for i, p in enumerate(pairs):
        pools[p.negative is not None].append(i)
    out: list[list[int]] = []
    for key in (True, False):
        order = pools[key]
        rng.shuffle(order)
        queue = deque(order)
        while queue:
            batch: list[int] = []
            seen: set[str] = set()
            skipped: list[int] = []
            while queue and len(batch) < batch_size:
                i = queue.popleft()
                p = pairs[i]
                texts = {p.query, p.positive} | ({p.negative} if p.negative else set())
                if no_duplicates and texts & seen:
                    skipped.append(i)
                    continue
                batch.append(i)
                seen |= texts
            queue.extendleft(reversed(skipped))
            if len(batch) > 1 or not no_duplicates:
                out.append(batch)
            elif len(batch) == 1 and pairs[batch[0]].negative is not None:
                out.append(batch)  # a lone triplet still teaches something; a lone pair has no negative at all
    rng.shuffle(out)
    return out


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _load_model(base_model: str | Path, device: str) -> tuple[SentenceTransformer, str]:
    """Load offline: the default all-MiniLM-L6-v2 comes from its PyPI package, a path from disk."""
    from pgretrieval.embed import resolve_model_path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    target, model_id = resolve_model_path(str(base_model))
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError("fine-tuning needs sentence-transformers: pip install 'pgretrieval[models]'") from exc
    try:
        return SentenceTransformer(target, device=device), model_id
    except Exception as exc:
        raise ModelError(
            f"cannot load base model {str(base_model)!r} (from {target!r}): {exc}. Give a local sentence-transformers "
            "folder or a model already in the Hugging Face cache (downloads are off: HF_HUB_OFFLINE=1)."
        ) from exc


def _set_window(model: SentenceTransformer, length: int | None) -> bool:
    """Set the truncation length; False for modules with a fixed window (e.g. StaticEmbedding)."""
    if length is None or model.max_seq_length == length:
        return True
    try:
        model.max_seq_length = length
    except AttributeError:
        return False
    return True


class _Validator:
    """Validation nDCG@10 by exact cosine search over the validation corpus, with the model's current weights."""

    def __init__(self, data: RetrievalData, query_prompt: str, passage_prompt: str, batch_size: int) -> None:
        self.data = data
        self.qids = list(data.queries)
        self.doc_ids = list(data.corpus)
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt
        self.batch_size = batch_size

    def __call__(self, model: SentenceTransformer) -> float:
        kw: dict[str, Any] = {"batch_size": self.batch_size, "convert_to_numpy": True, "show_progress_bar": False}
        q = model.encode([self.data.queries[i] for i in self.qids], prompt=self.query_prompt or None, **kw)
        d = model.encode([self.data.corpus[i] for i in self.doc_ids], prompt=self.passage_prompt or None, **kw)
        run = exact_cosine_run(q, d, self.qids, self.doc_ids, k=10)
        model.train()
        return evaluate_run(run, self.data.qrels, ks=(10,)).mean("ndcg@10")


def _prepare_output(output_dir: str | Path, overwrite: bool) -> Path:
    out = Path(output_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InvalidInputError(f"{out} already exists and is not empty; choose another output_dir or overwrite=True")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _commit(tmp: Path, out: Path) -> None:
    """Put the finished model in place with renames, so ``out`` is either the old content or the complete model."""
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def finetune(
    base_model: str | Path,
    train: Sequence[TrainingPair],
    *,
    output_dir: str | Path,
    validation: ValidationSpec | None = 0.1,
    loss: LossName = "mnrl",
    epochs: int = 1,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    warmup: float = 0.1,
    weight_decay: float = 0.01,
    max_seq_length: int | None = 256,
    max_steps: int | None = None,
    eval_steps: int | None = None,
    patience: int | None = 3,
    min_delta: float = 0.0,
    eval_base: bool = True,
    seed: int = 42,
    device: str = "auto",
    eval_batch_size: int = 64,
    query_prompt: str | None = None,
    passage_prompt: str | None = None,
    overwrite: bool = False,
    on_eval: Callable[[HistoryPoint], None] | None = None,
) -> FinetuneResult:
    """Fine-tune a sentence-transformers model and save the checkpoint with the best validation nDCG@10.

    - ``loss="mnrl"``: MultipleNegativesRankingLoss (in-batch negatives plus the pair's hard negative);
      ``"cosine"``: the guide's CosineSimilarityLoss on (query, positive, 1.0) and (query, negative, 0.0).
    - ``validation``: ``RetrievalData`` / ``(queries, corpus, qrels)``, or a fraction of the training queries to
      hold out (their passages stay in the search corpus), or None (no early stopping; the last step is kept).
    - Every ``eval_steps`` (default: about 10 points per run) validation nDCG@10 is computed by exact cosine search;
      after ``patience`` points without an improvement above ``min_delta`` training stops. With ``eval_base`` the
      base model is point 0, so a run that never beats it saves the base weights (and says so in the notes).
    - ``warmup``: a fraction of the steps (< 1) or a number of steps. ``max_seq_length`` truncates during training
      and validation only; the saved model keeps the base model's window.
    - Reproducible: the same seed, data and device give the same weights and metrics. Global RNG state is restored.

    The model is written to a temporary folder beside ``output_dir`` and renamed into place at the end, so a crash
    or Ctrl-C leaves ``output_dir`` untouched.
    """
    if loss not in ("mnrl", "cosine"):
        raise InvalidInputError(f"loss must be 'mnrl' or 'cosine', got {loss!r}")
    if epochs < 1 or batch_size < 1 or (max_steps is not None and max_steps < 1):
        raise InvalidInputError("epochs, batch_size and max_steps must be positive")
    if eval_steps is not None and eval_steps < 1:
        raise InvalidInputError(f"eval_steps must be positive, got {eval_steps}")
    if not train:
        raise InvalidInputError("no training pairs given")
    if loss == "cosine" and not any(p.negative for p in train):
        raise InvalidInputError(
            "loss='cosine' needs negatives (label 0.0); with positives only every pair is pulled together. "
            "Mine hard negatives first or use loss='mnrl'."
        )
    out = _prepare_output(output_dir, overwrite)
    started = time.perf_counter()
    # Notes from building the data travel along; the size advice is redone for the pairs actually trained on.
    notes = [n for n in getattr(train, "notes", ()) if _FEW_MARKER not in n]
    train_pairs, val_data, val_note = _as_validation(validation, train, seed)
    if val_note:
        notes.append(val_note)
    _warn_if_few(len(train_pairs), notes)

    import torch

    dev = _resolve_device(device)
    cuda_devices = list(range(torch.cuda.device_count())) if dev.startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            result = _train(
                base_model, train_pairs, val_data, out, tmp, notes, started,
                loss=loss, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, warmup=warmup,
                weight_decay=weight_decay, max_seq_length=max_seq_length, max_steps=max_steps,
                eval_steps=eval_steps, patience=patience, min_delta=min_delta, eval_base=eval_base, seed=seed,
                device=dev, eval_batch_size=eval_batch_size, query_prompt=query_prompt,
                passage_prompt=passage_prompt, on_eval=on_eval,
            )  # fmt: skip
            _commit(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return result


def _train(
    base_model: str | Path,
    pairs: list[TrainingPair],
    val_data: RetrievalData | None,
    out: Path,
    tmp: Path,
    notes: list[str],
    started: float,
    *,
    loss: LossName,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    warmup: float,
    weight_decay: float,
    max_seq_length: int | None,
    max_steps: int | None,
    eval_steps: int | None,
    patience: int | None,
    min_delta: float,
    eval_base: bool,
    seed: int,
    device: str,
    eval_batch_size: int,
    query_prompt: str | None,
    passage_prompt: str | None,
    on_eval: Callable[[HistoryPoint], None] | None,
) -> FinetuneResult:
    import torch
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss, MultipleNegativesRankingLoss
    from sentence_transformers.util import batch_to_device

    from pgretrieval.embed import model_prompts

    model, model_id = _load_model(base_model, device)
    q_prompt, p_prompt = model_prompts(model_id, dict(getattr(model, "prompts", None) or {}))
    q_prompt = q_prompt if query_prompt is None else query_prompt
    p_prompt = p_prompt if passage_prompt is None else passage_prompt
    base_window = model.max_seq_length
    if (
        max_seq_length is not None
        and base_window is not None
        and not _set_window(model, min(max_seq_length, base_window))
    ):
        notes.append(f"{model_id}: the model's input window cannot be changed; max_seq_length ignored")

    rng = random.Random(seed)
    if loss == "mnrl":
        epoch_batches = [_batches(pairs, batch_size, rng, no_duplicates=True) for _ in range(epochs)]
        criterion: torch.nn.Module = MultipleNegativesRankingLoss(model)
    else:
        examples = [(p.query, p.positive, 1.0) for p in pairs] + [
            (p.query, p.negative, 0.0) for p in pairs if p.negative
        ]
        epoch_batches = []
        for _ in range(epochs):
            order = list(range(len(examples)))
            rng.shuffle(order)
            epoch_batches.append([order[i : i + batch_size] for i in range(0, len(order), batch_size)])
        criterion = CosineSimilarityLoss(model)
    schedule = [b for epoch in epoch_batches for b in epoch]
    if not schedule:
        raise InvalidInputError("no usable training batch: every pair repeats the same query and passage")
    if max_steps is not None:
        schedule = schedule[:max_steps]
    total = len(schedule)
    every = eval_steps or max(1, math.ceil(total / 10))
    warmup_steps = int(warmup) if warmup >= 1 else int(round(warmup * total))

    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm", "norm.weight")
    params = [(n, p) for n, p in criterion.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not any(nd in n for nd in no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=learning_rate)

    def lr_lambda(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total - step) / max(1, total - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    validate = _Validator(val_data, q_prompt, p_prompt, eval_batch_size) if val_data is not None else None

    history: list[HistoryPoint] = []
    best_score: float | None = None
    best_step = 0
    best_state: dict[str, Any] | None = None
    bad_points = 0
    stopped_early = False
    losses: list[float] = []

    def record(step: int) -> bool:
        """Validate, keep the best weights; True when patience has run out."""
        nonlocal best_score, best_step, best_state, bad_points
        mean_loss = float(np.mean(losses)) if losses else None
        losses.clear()
        score = validate(model) if validate is not None else None
        point = HistoryPoint(step, score, mean_loss)
        history.append(point)
        logger.info("step %d/%d: val nDCG@10 %s, train loss %s", step, total, score, mean_loss)
        if on_eval is not None:
            on_eval(point)
        if score is None:
            return False
        if best_score is None or score > best_score + min_delta:
            best_score, best_step, bad_points = score, step, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        bad_points += 1
        return patience is not None and bad_points >= patience

    model.train()
    if validate is not None and eval_base:
        record(0)
    step = 0
    for step, batch in enumerate(schedule, start=1):
        if loss == "mnrl":
            rows = [pairs[i] for i in batch]
            columns: list[list[str]] = [[p.query for p in rows], [p.positive for p in rows]]
            if rows[0].negative is not None:
                columns.append([p.negative or "" for p in rows])
            labels = torch.zeros(len(rows), device=device)
        else:
            ex = [examples[i] for i in batch]
            columns = [[e[0] for e in ex], [str(e[1]) for e in ex]]
            labels = torch.tensor([e[2] for e in ex], dtype=torch.float32, device=device)
        prompts = [q_prompt] + [p_prompt] * (len(columns) - 1)
        features = [
            batch_to_device(model.preprocess(col, prompt=pr or None), torch.device(device))
            for col, pr in zip(columns, prompts, strict=True)
        ]
        value = criterion(features, labels)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(float(value.detach()))
        if (step % every == 0 or step == total) and record(step):
            stopped_early = step < total
            break
    if validate is None:
        best_step = step
    elif best_state is not None:
        model.load_state_dict(best_state)
    if validate is not None and best_step == 0:
        notes.append("no training step beat the base model on validation: the saved model is the base model")
    if stopped_early:
        notes.append(f"early stopping at step {step} (patience {patience}); best step {best_step}")
    _set_window(model, base_window)
    model.save(str(tmp))
    seconds = time.perf_counter() - started
    config: dict[str, Any] = {
        "base_model": model_id, "loss": loss, "epochs": epochs, "batch_size": batch_size,
        "learning_rate": learning_rate, "warmup_steps": warmup_steps, "weight_decay": weight_decay,
        "max_seq_length": max_seq_length, "max_steps": max_steps, "eval_steps": every, "patience": patience,
        "min_delta": min_delta, "seed": seed, "device": device, "query_prompt": q_prompt,
        "passage_prompt": p_prompt, "train_pairs": len(pairs), "total_steps": total,
    }  # fmt: skip
    meta = {
        "config": config,
        "best_step": best_step,
        "best_val_ndcg10": best_score,
        "history": [p._asdict() for p in history],
        "notes": notes,
        "seconds": seconds,
    }
    (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return FinetuneResult(
        model_path=out,
        best_step=best_step,
        best_val_ndcg10=best_score,
        history=tuple(history),
        seconds=seconds,
        notes=tuple(notes),
        steps_run=step,
        stopped_early=stopped_early,
        device=device,
        train_pairs=len(pairs),
        base_model=model_id,
        config=copy.deepcopy(config),
    )
