"""Cold start without a query log or labels: synthetic queries and LLM-as-judge relevance labels.

Both talk to any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM)
through :class:`ChatClient`, and both cache every answer on disk (:class:`ChatCache`, JSON Lines keyed by the
sha256 of model, messages and temperature), so an interrupted run resumes where it stopped and a repeated run costs
nothing. No database access: plain data in, plain data out (a :class:`~pgretrieval.testsets.TestSet`, qrels).

Policy on failures: a transport failure (HTTP error after retries, unreachable server) raises :class:`ModelError`
at once; the answers received so far are already cached, so running again resumes. An answer that arrives but cannot
be used (no questions in it, no grade, a grade outside the scale) is *recorded* as a failure, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pgretrieval.embed import post_json
from pgretrieval.errors import ConfigurationError, InvalidInputError, ModelError
from pgretrieval.testsets import TestSet, load_testset, write_json_testset
from pgretrieval.types import embed_text

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "DEFAULT_PROMPT",
    "ChatCache",
    "ChatClient",
    "JudgeFailure",
    "Judgements",
    "SynthFailure",
    "judge_relevance",
    "parse_grade",
    "parse_questions",
    "read_run",
    "run_judge",
    "run_synth_queries",
    "synthesize_queries",
    "write_judgements",
]

CACHE_FILE = "chat_cache.jsonl"

# Placeholders are filled by plain replacement (not str.format), so a prompt may contain JSON braces.
DEFAULT_PROMPT = """You write search queries for testing a retrieval system.
Read the passage below and write {n} different questions that a user might type into a search box and that this
passage answers. Each question must make sense on its own, without seeing the passage (no "this passage",
"the text", "the author"). Vary the wording; do not copy whole sentences from the passage. {language}
Answer with a JSON array of {n} strings and nothing else.

Title: {title}
Passage:
{text}"""

DEFAULT_JUDGE_PROMPT = """You are a search quality rater. Judge how well the document answers the query.

Grades:
0 = irrelevant: the document does not help answer the query.
1 = related: on the topic, answers part of the query or gives useful background.
2 = highly relevant: answers the query, possibly with extra or missing detail.
3 = perfectly relevant: dedicated to the query and answers it completely.
Use only the grades from {min} to {max}.

Query: {query}

Document:
{document}

Answer with only the grade, a single integer from {min} to {max}."""


def _fill(template: str, **values: Any) -> str:
    """Replace ``{name}`` for the given names only, so other braces in a user's prompt survive."""
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in values))
    return pattern.sub(lambda m: str(values[m.group(0)[1:-1]]), template)


# ------------------------------------------------------------------------------------------------- the client


class ChatCache:
    """Answers keyed by sha256(model, messages, temperature), appended to ``<folder>/chat_cache.jsonl``.

    Why JSON Lines: appends survive a crash (a torn last line is skipped on load) and the file is readable.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self.path = self.folder / CACHE_FILE
        self._answers: dict[str, str] = {}
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                        self._answers[str(record["key"])] = str(record["answer"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a line torn by an interrupted run

    @staticmethod
    def key(model: str, messages: Sequence[Mapping[str, str]], temperature: float) -> str:
        blob = json.dumps(
            {"model": model, "messages": [dict(m) for m in messages], "temperature": temperature},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        return self._answers.get(key)

    def put(self, key: str, answer: str, model: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "model": model, "answer": answer}, ensure_ascii=False) + "\n")
        self._answers[key] = answer

    def __len__(self) -> int:
        return len(self._answers)


class ChatClient:
    """A minimal OpenAI-compatible chat client (urllib, via :func:`pgretrieval.embed.post_json`).

    ``base_url`` includes the version, as for the embedder: ``http://localhost:8000/v1``. Arguments win over the
    environment: PGRETRIEVAL_LLM_BASE_URL, PGRETRIEVAL_LLM_MODEL, PGRETRIEVAL_LLM_API_KEY (or OPENAI_API_KEY).
    ``requests`` and ``cache_hits`` count what this client did, for progress lines and tests.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        model = model or os.environ.get("PGRETRIEVAL_LLM_MODEL")
        if not model:
            raise ConfigurationError("no chat model given: pass --model or set PGRETRIEVAL_LLM_MODEL.")
        self.model = model
        base = base_url or os.environ.get("PGRETRIEVAL_LLM_BASE_URL") or "https://api.openai.com/v1"
        self.base_url = base.rstrip("/")
        self._api_key = api_key or os.environ.get("PGRETRIEVAL_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = retries
        self.requests = 0
        self.cache_hits = 0

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def complete(self, messages: Sequence[Mapping[str, str]], *, cache: ChatCache | None = None) -> str:
        """The assistant's answer to ``messages``; from ``cache`` when it holds one, else one HTTP request."""
        key = ChatCache.key(self.model, messages, self.temperature) if cache is not None else ""
        if cache is not None:
            hit = cache.get(key)
            if hit is not None:
                self.cache_hits += 1
                return hit
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "temperature": self.temperature,
        }
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        try:
            answer = post_json(self.url, payload, api_key=self._api_key, timeout=self.timeout, retries=self.retries)
        except ModelError as exc:  # new exception, no chain: nothing that saw the request headers travels on
            raise ModelError(f"chat model {self.model!r}: {self._scrub(str(exc))}") from None
        self.requests += 1
        text = _answer_text(answer)
        if text is None:
            shape = self._scrub(json.dumps(answer)[:200])
            raise ModelError(f"{self.url} answered in an unexpected shape (no choices[0].message.content): {shape}")
        if cache is not None:
            cache.put(key, text, self.model)
        return text

    def __repr__(self) -> str:  # never shows the key
        return f"ChatClient(model={self.model!r}, base_url={self.base_url!r})"


def _answer_text(answer: Any) -> str | None:
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(content, list):  # some servers send content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


# ------------------------------------------------------------------------------------------- synthetic queries


@dataclass(frozen=True)
class SynthFailure:
    """A chunk that produced no usable question (the model's answer is kept for inspection)."""

    doc_id: str
    chunk_id: str | None
    reason: str
    answer: str = ""


_FENCE_RE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.S)
_MARKER_RE = re.compile(
    r"^\s*\**\s*(?:[-*•+](?=\s)|\(?\d{1,3}\s*[.)、:：]|[QqＱ]\s*\d{0,3}\s*[.):：]|(?:question|query)\s*\d{0,3}\s*[.):：])"
    r"\s*\**\s*",
    re.I,
)
_QUESTION_KEYS = ("question", "query", "text")


def _json_strings(text: str) -> list[str] | None:
    """Strings from a JSON array (of strings or {"question": ...}) or {"questions": [...]} inside ``text``."""
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    for blob in candidates:
        for opener, closer in (("[", "]"), ("{", "}")):
            start, end = blob.find(opener), blob.rfind(closer)
            if start < 0 or end <= start:
                continue
            try:
                value = json.loads(blob[start : end + 1])
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                value = next((v for v in value.values() if isinstance(v, list)), None)
            if isinstance(value, list):
                out = []
                for item in value:
                    if isinstance(item, dict):
                        item = next((item[k] for k in _QUESTION_KEYS if isinstance(item.get(k), str)), None)
                    if isinstance(item, str):
                        out.append(item)
                return out
    return None


def _clean(question: str) -> str:
    q = question.strip().strip("*_`").strip()
    if len(q) >= 2 and q[0] == q[-1] and q[0] in "\"'“”「」":
        q = q[1:-1]
    q = q.strip("\"'“”「」").strip()
    return " ".join(q.split())


def _norm(question: str) -> str:
    return re.sub(r"[\W_]+", " ", question.casefold()).strip()


def parse_questions(answer: str, limit: int | None = None) -> list[str]:
    """Questions from a chatty model answer: a JSON array, else list items, else question lines.

    Preambles ("Here are 3 questions:") and sign-offs are dropped when the answer has list items or question
    marks; empties and duplicates (ignoring case and punctuation) are dropped; at most ``limit`` are kept.
    """
    items = _json_strings(answer)
    if items is None:
        body = "\n".join(m.group(1) for m in _FENCE_RE.finditer(answer)) or answer
        lines = [ln for ln in body.splitlines() if ln.strip()]
        marked = [_MARKER_RE.sub("", ln, count=1) for ln in lines if _MARKER_RE.match(ln)]
        if marked:
            items = marked
        else:
            asked = [ln for ln in lines if ln.rstrip().rstrip("*").endswith(("?", "？"))]
            items = asked or [ln for ln in lines if not ln.rstrip().endswith((":", "："))]
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        q = _clean(item)
        key = _norm(q)
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(q)
    return out[:limit] if limit is not None else out


def synthesize_queries(
    chunks: Iterable[Sequence[Any]],
    client: ChatClient,
    *,
    per_chunk: int = 1,
    prompt: str = DEFAULT_PROMPT,
    language: str | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    failures: list[SynthFailure] | None = None,
    name: str = "synthetic",
) -> TestSet:
    """A test set of ``per_chunk`` generated questions per chunk, each with its source document as grade 1.

    ``chunks`` yields ``(doc_id, chunk_id or None, title, text)``. Query ids are ``doc_id#q1`` (or
    ``doc_id#chunk_id#q1``), stable across runs. A question already asked for an earlier chunk is dropped (it would
    be ambiguous). ``language`` (e.g. "Chinese") fixes the question language; default: the passage's. Chunks with no
    usable question go to ``failures`` when given, else raise :class:`ModelError`. ``progress(done, queries)``.
    """
    if per_chunk < 1:
        raise InvalidInputError(f"per_chunk must be at least 1, got {per_chunk}")
    cache = ChatCache(cache_dir) if cache_dir is not None else None
    hint = f"Write the questions in {language}." if language else "Write the questions in the language of the passage."
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    seen: set[str] = set()
    done = 0
    for item in chunks:
        doc_id, chunk_id, title, text = (str(item[0]), item[1], str(item[2] or ""), str(item[3] or ""))
        chunk_id = None if chunk_id is None else str(chunk_id)
        if not text.strip():
            continue
        messages = [{"role": "user", "content": _fill(prompt, n=per_chunk, title=title, text=text, language=hint)}]
        try:
            answer = client.complete(messages, cache=cache)
        except ModelError as exc:
            raise ModelError(f"{exc} (at document {doc_id!r}; {_resume_hint(cache)})") from None
        questions = [q for q in parse_questions(answer) if _norm(q) not in seen][:per_chunk]
        if not questions:
            failure = SynthFailure(doc_id, chunk_id, "no new question in the model's answer", answer[:500])
            if failures is None:
                raise ModelError(f"document {doc_id!r}: {failure.reason}: {answer[:200]!r}")
            failures.append(failure)
        prefix = doc_id if chunk_id is None else f"{doc_id}#{chunk_id}"
        for i, question in enumerate(questions, start=1):
            qid = f"{prefix}#q{i}"
            if qid in queries:
                raise InvalidInputError(f"chunk {prefix!r} appears twice in the input; chunk ids must be unique")
            seen.add(_norm(question))
            queries[qid] = question
            qrels[qid] = {doc_id: 1}
        done += 1
        if progress is not None:
            progress(done, len(queries))
    if not queries:
        raise InvalidInputError(f"no query was generated from {done} chunk(s); check the model and the prompt")
    return TestSet(queries, qrels, name=name)


def _resume_hint(cache: ChatCache | None) -> str:
    if cache is None:
        return "no cache_dir was given, so a re-run starts over"
    return f"answers so far are cached in {cache.folder}; run again to resume"


# -------------------------------------------------------------------------------------------- LLM-as-judge


@dataclass(frozen=True)
class JudgeFailure:
    """A (query, document) pair whose answer held no usable grade; recorded instead of guessed."""

    qid: str
    doc_id: str
    reason: str
    answer: str = ""


@dataclass(frozen=True)
class Judgements:
    """Graded labels (``qrels[qid][doc_id] = grade``), the failures, and what produced them."""

    qrels: dict[str, dict[str, int]]
    failures: list[JudgeFailure]
    model: str
    scale: tuple[int, ...]
    prompt: str
    queries: dict[str, str] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return sum(len(j) for j in self.qrels.values())


_GRADE_JSON_RE = re.compile(r'"(?:grade|score|relevance|rating)"\s*:\s*"?(-?\d+(?:\.\d+)?)', re.I)
_GRADE_WORD_RE = re.compile(
    r"(?:grade|score|relevance|rating|评分|分数|等级)\s*(?:is|of|=|:|：)?\s*\**\s*(-?\d+(?:\.\d+)?)", re.I
)
_NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_EITHER_RE = re.compile(r"(?<![\w.])(\d+)\s*(?:or|to|-|–|或)\s*(\d+)(?![\w.])", re.I)
_OUT_OF_RE = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)\s*(?:/|out of|of)\s*\d+(?![\w.])", re.I)


def parse_grade(answer: str, scale: Sequence[int] = (0, 1, 2, 3)) -> tuple[int | None, str]:
    """(grade, "") or (None, reason). Looks for ``{"grade": N}``, "grade: N", "N/3", then a lone number.

    Anything ambiguous (two different numbers), fractional or outside ``scale`` is rejected with a reason.
    """
    text = answer.strip()
    if not text:
        return None, "empty answer"
    for either in _EITHER_RE.finditer(text):
        low, high = either.groups()
        if low != high:  # "2 or 3", "1-2": the model hedged
            return None, f"ambiguous: {either.group(0)!r}"
    found: list[str] = []
    for pattern in (_GRADE_JSON_RE, _GRADE_WORD_RE, _OUT_OF_RE):
        found = [m.group(1) for m in pattern.finditer(text)]
        if found:
            break
    if not found:
        found = _NUMBER_RE.findall(text)
    distinct = sorted(set(found), key=found.index)
    if not distinct:
        return None, "no grade in the answer"
    if len(distinct) > 1:
        return None, f"ambiguous: several grades ({', '.join(distinct[:5])})"
    raw = distinct[0]
    value = float(raw)
    if not value.is_integer():
        return None, f"grade {raw} is not an integer"
    grade = int(value)
    if grade not in scale:
        return None, f"grade {grade} is outside the scale {min(scale)}..{max(scale)}"
    return grade, ""


def judge_relevance(
    pairs: Iterable[Sequence[Any]],
    client: ChatClient,
    *,
    scale: Sequence[int] = (0, 1, 2, 3),
    prompt: str = DEFAULT_JUDGE_PROMPT,
    cache_dir: str | Path | None = None,
    max_chars: int = 4000,
    progress: Callable[[int, int], None] | None = None,
) -> Judgements:
    """Grade each ``(qid, query, doc_id, text)`` pair on ``scale`` with the model; one request per pair.

    A repeated (qid, doc_id) pair is judged once. Documents are cut to ``max_chars`` characters (cost). Unusable
    answers become :class:`JudgeFailure` records; transport failures raise (re-run to resume from the cache).
    ``progress(done, failed)``.
    """
    scale = tuple(sorted({int(g) for g in scale}))
    if len(scale) < 2 or scale[0] < 0:
        raise InvalidInputError(f"a judging scale needs at least two grades >= 0, got {scale}")
    cache = ChatCache(cache_dir) if cache_dir is not None else None
    qrels: dict[str, dict[str, int]] = {}
    queries: dict[str, str] = {}
    failures: list[JudgeFailure] = []
    judged: set[tuple[str, str]] = set()
    done = 0
    for item in pairs:
        qid, query, doc_id, text = (str(item[0]), str(item[1]), str(item[2]), str(item[3] or ""))
        if (qid, doc_id) in judged:
            continue
        judged.add((qid, doc_id))
        queries[qid] = query
        content = _fill(prompt, query=query, document=text[:max_chars], min=scale[0], max=scale[-1])
        try:
            answer = client.complete([{"role": "user", "content": content}], cache=cache)
        except ModelError as exc:
            raise ModelError(f"{exc} (at query {qid!r}, document {doc_id!r}; {_resume_hint(cache)})") from None
        grade, reason = parse_grade(answer, scale)
        if grade is None:
            failures.append(JudgeFailure(qid, doc_id, reason, answer[:500]))
        else:
            qrels.setdefault(qid, {})[doc_id] = grade
        done += 1
        if progress is not None:
            progress(done, len(failures))
    return Judgements(qrels, failures, client.model, scale, prompt, queries)


def write_judgements(judgements: Judgements, out_dir: str | Path, *, base_url: str = "") -> list[Path]:
    """Write the labels with the prompt beside them, so a label can always be traced to how it was asked.

    ``qrels.tsv`` (BEIR: query-id, corpus-id, score, with header), ``judge_prompt.txt`` (the template as sent),
    ``judge_meta.json`` (model, scale, date, prompt sha256, counts, failures) and, when some label is relevant,
    ``testset.jsonl`` in the guide's format (needs the query texts).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "qrels.tsv", out / "judge_prompt.txt", out / "judge_meta.json"]
    with written[0].open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in judgements.qrels.items():
            for doc_id, grade in judged.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    written[1].write_text(judgements.prompt, encoding="utf-8")
    meta = {
        "model": judgements.model,
        "base_url": base_url,
        "scale": list(judgements.scale),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "prompt_file": written[1].name,
        "prompt_sha256": hashlib.sha256(judgements.prompt.encode("utf-8")).hexdigest(),
        "labels": judgements.num_labels,
        "failures": [asdict(f) for f in judgements.failures],
    }
    written[2].write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    labelled = {q: t for q, t in judgements.queries.items() if q in judgements.qrels}
    if labelled and any(g >= 1 for j in judgements.qrels.values() for g in j.values()):
        testset = TestSet(labelled, {q: judgements.qrels[q] for q in labelled}, name="judged")
        written.append(write_json_testset(testset, out / "testset.jsonl"))
    return written


# ------------------------------------------------------------------------------------ CLI-facing entry points


def _paragraphs(text: str, min_chars: int) -> list[str]:
    parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return [p for p in parts if len(p) >= min_chars] or ([text.strip()] if text.strip() else [])


def _spread(items: list[Any], limit: int | None) -> list[Any]:
    """``limit`` items evenly spaced over ``items`` (deterministic, and not just the corpus's first pages)."""
    if limit is None or limit >= len(items):
        return items
    if limit <= 0:
        return []
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def run_synth_queries(
    corpus_path: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    per_chunk: int = 1,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    language: str | None = None,
    paragraphs: bool = False,
    max_chars: int = 4000,
    input_format: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    failures: list[SynthFailure] | None = None,
) -> Path:
    """``pgretrieval synth-queries``: read a corpus, generate questions, write the guide's JSON Lines test set.

    One chunk per document (cut to ``max_chars``), or with ``paragraphs`` one per blank-line paragraph.
    ``limit`` picks that many chunks evenly spread over the corpus. ``cache_dir`` defaults to ``<out>.cache/``
    beside the output, so re-running the same command resumes. Also writes ``<out>.meta.json`` (model, prompt,
    date, failures). Returns the test set's path.
    """
    from pgretrieval.readers import read_documents

    out = Path(out)
    chunks: list[tuple[str, str | None, str, str]] = []
    for doc in read_documents(corpus_path, input_format):
        if paragraphs:
            parts = _paragraphs(doc.text, min_chars=80)
            chunks.extend((doc.id, f"p{i}", doc.title, p[:max_chars]) for i, p in enumerate(parts, start=1))
        else:
            chunks.append((doc.id, None, doc.title, doc.text[:max_chars]))
    if not chunks:
        raise InvalidInputError(f"{corpus_path}: no documents to generate queries from")
    client = ChatClient(model, base_url=base_url, api_key=api_key)
    cache = Path(cache_dir) if cache_dir is not None else out.with_name(out.name + ".cache")
    failed: list[SynthFailure] = [] if failures is None else failures
    testset = synthesize_queries(
        _spread(chunks, limit),
        client,
        per_chunk=per_chunk,
        language=language,
        cache_dir=cache,
        progress=progress,
        failures=failed,
        name=out.stem,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_testset(testset, out)
    meta = {
        "model": client.model,
        "base_url": client.base_url,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": str(corpus_path),
        "per_chunk": per_chunk,
        "language": language,
        "prompt": DEFAULT_PROMPT,
        "queries": testset.num_queries,
        "requests": client.requests,
        "cache_hits": client.cache_hits,
        "failures": [asdict(f) for f in failed],
    }
    out.with_name(out.name + ".meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return out


def read_run(path: str | Path, depth: int | None = None) -> dict[str, list[str]]:
    """Ranked doc ids per query from a TREC run (``qid Q0 doc rank score tag``) or JSON.

    JSON may be ``{qid: [doc, ...]}`` (in rank order) or ``{qid: {doc: score}}`` (higher is better).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInputError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    ranked: dict[str, list[str]] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{file}:{exc.lineno}: malformed JSON: {exc.msg}") from None
        for qid, docs in data.items():
            if isinstance(docs, dict):
                ranked[str(qid)] = [str(d) for d, _ in sorted(docs.items(), key=lambda kv: -float(kv[1]))]
            elif isinstance(docs, list):
                ranked[str(qid)] = [str(d) for d in docs]
            else:
                raise InvalidInputError(f"{file}: query {qid!r}: expected a list of doc ids or {{doc: score}}")
    else:
        rows: dict[str, list[tuple[float, int, str]]] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) != 6:
                raise InvalidInputError(f"{file}:{lineno}: expected a TREC run line 'qid Q0 doc rank score tag'")
            try:
                rows.setdefault(cols[0], []).append((-float(cols[4]), int(cols[3]), cols[2]))
            except ValueError:
                raise InvalidInputError(f"{file}:{lineno}: rank and score must be numbers") from None
        ranked = {q: [d for _, _, d in sorted(r)] for q, r in rows.items()}
    return {q: docs[:depth] if depth else docs for q, docs in ranked.items()}


def run_judge(
    testset_path: str | Path,
    run_path: str | Path,
    out_dir: str | Path,
    *,
    corpus_path: str | Path | None = None,
    depth: int = 10,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    scale: Sequence[int] = (0, 1, 2, 3),
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Judgements:
    """``pgretrieval judge``: grade the top ``depth`` documents of a run for each test-set query; write labels.

    Query texts come from the test set (BEIR folder or guide JSON); document texts from ``corpus_path`` (any format
    :func:`~pgretrieval.readers.read_documents` reads; default: the BEIR folder's corpus.jsonl). Output in
    ``out_dir`` as :func:`write_judgements` describes; ``cache_dir`` defaults to ``out_dir/cache``.
    """
    from pgretrieval.readers import read_documents

    testset = load_testset(testset_path, check_corpus=False)
    corpus = corpus_path or testset.corpus_path
    if corpus is None:
        raise InvalidInputError("no corpus to read document texts from: pass corpus_path (--corpus)")
    run = {q: docs for q, docs in read_run(run_path, depth).items() if q in testset.queries}
    if not run:
        raise InvalidInputError(f"{run_path}: no query of the run is in the test set {testset_path}")
    wanted = {d for docs in run.values() for d in docs}
    texts = {d.id: embed_text(d.title, d.text) for d in read_documents(corpus) if d.id in wanted}
    missing = sorted(wanted - texts.keys())
    if missing:
        raise InvalidInputError(f"{run_path}: document {missing[0]!r} is not in the corpus {corpus}")
    client = ChatClient(model, base_url=base_url, api_key=api_key)
    pairs = ((q, testset.queries[q], d, texts[d]) for q, docs in run.items() for d in docs)
    out = Path(out_dir)
    judgements = judge_relevance(
        pairs, client, scale=scale, cache_dir=cache_dir if cache_dir is not None else out / "cache", progress=progress
    )
    write_judgements(judgements, out, base_url=client.base_url)
    return judgements
