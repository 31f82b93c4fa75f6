"""Retrieval test sets: BEIR folders and the guide's JSON format, read into one typed :class:`TestSet`.

Why strict: a typo in a qrels file silently lowers every metric, so bad input stops loading with an
:class:`~pgretrieval.errors.InvalidInputError` whose message starts with ``FILE:LINE:``.

**BEIR folder** (``load_beir``)::

    corpus.jsonl          {"_id": "d1", "title": "...", "text": "...", "metadata": {...}?}   one document a line
    queries.jsonl         {"_id": "q1", "text": "..."}                                       one query a line
    queries-<split>.jsonl optional, used instead of queries.jsonl for that split (e.g. queries-train.jsonl)
    qrels/<split>.tsv     query-id<TAB>corpus-id<TAB>score, with or without that header line
    metadata.jsonl        optional {"_id": "d1", ...fields}: merged into each corpus record's metadata

Only queries that have qrels in the split are loaded (as BEIR's own loader does).

**Guide JSON** (``load_json_testset``): a JSON array, or JSON Lines, of objects::

    {"id": "q1",                                  # optional; default "q<item number>"
     "query": "如何重置密码？",
     "relevant_docs": ["doc_123", {"id": "doc_456", "grade": 2}],
     "irrelevant_docs": ["doc_789"]}              # optional

A plain id in ``relevant_docs`` has grade 1; an object may give ``"grade"``: an integer >= 1, by convention
2 = strongly relevant and 1 = moderately relevant (nDCG uses the grade as gain). ``irrelevant_docs`` (plain ids or
``{"id": ...}``) become grade-0 judgements: they count as judged non-relevant. ``//`` and ``/* */`` comments, as in
the guide's example, are allowed.

This module imports nothing from pgretrieval but :mod:`pgretrieval.errors`, so it can load data anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pgretrieval.errors import InvalidInputError

__all__ = [
    "CorpusRecord",
    "TestSet",
    "iter_beir_corpus",
    "load_beir",
    "load_json_testset",
    "load_testset",
    "read_corpus_ids",
    "write_json_testset",
]

_CORE_DOC_FIELDS = frozenset({"_id", "title", "text", "metadata"})


@dataclass(frozen=True)
class CorpusRecord:
    """One corpus document as plain data; ``metadata`` holds every field besides id, title and text."""

    id: str
    title: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TestSet:
    """Queries and graded judgements (``qrels[qid][doc_id] = grade``; grade >= 1 is relevant, 0 judged not)."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str = "testset"
    split: str = "test"
    corpus_path: Path | None = None  # BEIR corpus.jsonl, when the test set came with one
    source: Path | None = None  # the file or folder it was loaded from

    def __post_init__(self) -> None:
        where = f"test set {self.name!r} ({self.source or 'in memory'})"
        if not self.queries:
            raise InvalidInputError(f"{where} is empty: it has no queries")
        for qid in self.qrels:
            if not self.queries.get(qid, "").strip():
                raise InvalidInputError(f"{where}: query {qid!r} has judgements but no query text")
        if not any(g >= 1 for judged in self.qrels.values() for g in judged.values()):
            raise InvalidInputError(f"{where} has no relevant judgement (grade >= 1), so nothing can be evaluated")

    @property
    def num_queries(self) -> int:
        return len(self.queries)

    @property
    def num_judgements(self) -> int:
        return sum(len(j) for j in self.qrels.values())

    def relevant(self, qid: str) -> dict[str, int]:
        """The relevant docs of one query with their grades."""
        return {d: g for d, g in self.qrels.get(qid, {}).items() if g >= 1}

    def doc_ids(self) -> set[str]:
        """Every judged document id (relevant or not)."""
        return {d for judged in self.qrels.values() for d in judged}

    def check_corpus(self, corpus_ids: Collection[str]) -> None:
        """Raise if a judgement names a document outside ``corpus_ids`` (e.g. the documents in the database)."""
        unknown = sorted((q, d) for q, judged in self.qrels.items() for d in judged if d not in corpus_ids)
        if unknown:
            q, d = unknown[0]
            raise InvalidInputError(
                f"test set {self.name!r}: query {q!r} names document {d!r}, which is not in the corpus"
                f"{_more(len(unknown) - 1)}; fix the judgements or load the matching corpus"
            )


# ------------------------------------------------------------------------------------------------- reading


def _more(extra: int) -> str:
    return f" (and {extra} more unknown document{'s' if extra != 1 else ''})" if extra else ""


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read ({exc.strerror})") from None


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with 1-based numbers, streamed (corpora can be large)."""
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    yield lineno, line.rstrip("\r\n")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _iter_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{lineno}: malformed JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise InvalidInputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _get_id(obj: Mapping[str, Any], key: str, path: Path, lineno: int, what: str) -> str:
    if key not in obj:
        raise InvalidInputError(f"{path}:{lineno}: {what} has no {key!r} field")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInputError(f"{path}:{lineno}: {what} {key!r} must be a string, got {value!r}")
    text = str(value)
    if not text.strip():
        raise InvalidInputError(f"{path}:{lineno}: {what} {key!r} is empty")
    return text


def _get_str(obj: Mapping[str, Any], key: str, path: Path, lineno: int, *, required: bool) -> str:
    if key not in obj or obj[key] is None:
        if required:
            raise InvalidInputError(f"{path}:{lineno}: missing field {key!r}")
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidInputError(f"{path}:{lineno}: field {key!r} must be a string, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------------- corpus


def _corpus_file(path: str | Path) -> Path:
    p = Path(path)
    return p / "corpus.jsonl" if p.is_dir() else p


def _sidecar_metadata(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / "metadata.jsonl"
    if not path.is_file():
        return {}
    out: dict[str, dict[str, Any]] = {}
    for lineno, obj in _iter_jsonl(path):
        doc = _get_id(obj, "_id", path, lineno, "metadata record")
        out[doc] = {k: v for k, v in obj.items() if k != "_id"}
    return out


def iter_beir_corpus(path: str | Path, *, sidecar_metadata: bool = True) -> Iterator[CorpusRecord]:
    """Stream the documents of a BEIR ``corpus.jsonl`` (``path`` is the file or its folder).

    ``metadata`` is the record's ``metadata`` object plus any other extra fields, plus the folder's
    ``metadata.jsonl`` entry for the doc when present and ``sidecar_metadata`` is true. Duplicate ids are an error.
    """
    file = _corpus_file(path)
    extra = _sidecar_metadata(file.parent) if sidecar_metadata else {}
    seen: dict[str, int] = {}
    for lineno, obj in _iter_jsonl(file):
        doc = _get_id(obj, "_id", file, lineno, "document")
        if doc in seen:
            raise InvalidInputError(f"{file}:{lineno}: document id {doc!r} repeats line {seen[doc]}")
        seen[doc] = lineno
        title = _get_str(obj, "title", file, lineno, required=False)
        text = _get_str(obj, "text", file, lineno, required=True)
        meta: dict[str, Any] = {}
        nested = obj.get("metadata")
        if isinstance(nested, dict):
            meta.update(nested)
        elif nested is not None:
            raise InvalidInputError(f"{file}:{lineno}: field 'metadata' must be an object, got {nested!r}")
        meta.update({k: v for k, v in obj.items() if k not in _CORE_DOC_FIELDS})
        meta.update(extra.get(doc, {}))
        yield CorpusRecord(doc, title, text, meta)


def read_corpus_ids(path: str | Path) -> set[str]:
    """The document ids of a BEIR corpus (file or folder), to check judgements against."""
    file = _corpus_file(path)
    return {_get_id(obj, "_id", file, lineno, "document") for lineno, obj in _iter_jsonl(file)}


# ------------------------------------------------------------------------------------------------------ BEIR


def _parse_grade(raw: str, path: Path, lineno: int) -> int:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError(f"{path}:{lineno}: score {raw!r} is not an integer relevance grade") from None
    if not value.is_integer():
        raise InvalidInputError(f"{path}:{lineno}: score {raw!r} is not an integer relevance grade")
    return int(value)


def _read_qrels_tsv(path: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """``{qid: {doc: (grade, line)}}`` from a BEIR qrels TSV (header optional; TREC 4-column lines accepted)."""
    qrels: dict[str, dict[str, tuple[int, int]]] = {}
    first = True
    for lineno, line in _iter_lines(path):
        cols = line.split("\t") if "\t" in line else line.split()
        cols = [c.strip() for c in cols]
        if len(cols) == 4:  # TREC qrels: qid iteration docid grade
            cols = [cols[0], cols[2], cols[3]]
        if len(cols) != 3:
            raise InvalidInputError(
                f"{path}:{lineno}: expected 3 tab-separated columns query-id, corpus-id, score; got {len(cols)}"
            )
        qid, doc, raw = cols
        if first:
            first = False
            if not _looks_numeric(raw):
                continue  # header line, e.g. "query-id  corpus-id  score"
        if not qid or not doc:
            raise InvalidInputError(f"{path}:{lineno}: empty query-id or corpus-id")
        grade = _parse_grade(raw, path, lineno)
        judged = qrels.setdefault(qid, {})
        if doc in judged and judged[doc][0] != grade:
            raise InvalidInputError(
                f"{path}:{lineno}: query {qid!r}, document {doc!r} is judged {grade} here but "
                f"{judged[doc][0]} on line {judged[doc][1]}"
            )
        judged.setdefault(doc, (grade, lineno))
    return qrels


def _looks_numeric(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return False
    return True


def _queries_file(folder: Path, split: str) -> Path:
    specific = folder / f"queries-{split}.jsonl"
    return specific if specific.is_file() else folder / "queries.jsonl"


def load_beir(
    folder: str | Path,
    split: str = "test",
    *,
    check_corpus: bool = True,
    corpus_ids: Collection[str] | None = None,
    name: str | None = None,
) -> TestSet:
    """Load one split of a BEIR dataset folder.

    With ``check_corpus`` (default) every judged document must be in the folder's ``corpus.jsonl`` (or in
    ``corpus_ids`` when given); the error names the qrels line.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a BEIR dataset folder (expected corpus.jsonl, queries.jsonl, qrels/)")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise InvalidInputError(f"{qrels_path}: no qrels for split {split!r}; available splits: {available or 'none'}")
    raw_qrels = _read_qrels_tsv(qrels_path)
    if not raw_qrels:
        raise InvalidInputError(f"{qrels_path}: empty test set: the qrels file has no judgements")

    queries_path = _queries_file(root, split)
    texts: dict[str, str] = {}
    for lineno, obj in _iter_jsonl(queries_path):
        qid = _get_id(obj, "_id", queries_path, lineno, "query")
        if qid in texts:
            raise InvalidInputError(f"{queries_path}:{lineno}: query id {qid!r} appears twice")
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"{queries_path}:{lineno}: query {qid!r} has no text (field 'text')")
        texts[qid] = text
    for qid, judged in raw_qrels.items():
        if qid not in texts:
            line = min(line for _, line in judged.values())
            raise InvalidInputError(f"{qrels_path}:{line}: query {qid!r} has no text in {queries_path.name}")

    corpus_file = root / "corpus.jsonl"
    if check_corpus:
        known = corpus_ids if corpus_ids is not None else read_corpus_ids(corpus_file)
        _check_docs(((q, d, line) for q, j in raw_qrels.items() for d, (_, line) in j.items()), known, qrels_path)

    order = [q for q in texts if q in raw_qrels]
    return TestSet(
        queries={q: texts[q] for q in order},
        qrels={q: {d: g for d, (g, _) in raw_qrels[q].items()} for q in order},
        name=name or root.name,
        split=split,
        corpus_path=corpus_file if corpus_file.is_file() else None,
        source=root,
    )


def _check_docs(refs: Iterator[tuple[str, str, int]], known: Collection[str], path: Path) -> None:
    unknown = sorted(((line, q, d) for q, d, line in refs if d not in known))
    if unknown:
        line, q, d = unknown[0]
        raise InvalidInputError(
            f"{path}:{line}: query {q!r} names document {d!r}, which is not in the corpus{_more(len(unknown) - 1)}"
        )


# ----------------------------------------------------------------------------------------------- guide JSON


def _strip_comments(text: str) -> str:
    """Blank out ``//`` and ``/* */`` comments outside strings, keeping newlines so line numbers hold."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:end]))
            i = end
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _json_items(text: str, path: Path) -> list[tuple[int, Any]]:
    """Parse a JSON array, or a stream of JSON values (JSON Lines), into ``(line, value)`` pairs."""
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def decode(i: int) -> tuple[Any, int]:
        try:
            return decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno})") from None

    def line_of(i: int) -> int:
        return text.count("\n", 0, i) + 1

    i = skip_ws(0)
    if i < n and text[i] == "[":
        i = skip_ws(i + 1)
        if i < n and text[i] == "]":
            i = skip_ws(i + 1)
        else:
            while True:
                value, end = decode(i)
                items.append((line_of(i), value))
                i = skip_ws(end)
                if i < n and text[i] == ",":
                    i = skip_ws(i + 1)
                    continue
                if i < n and text[i] == "]":
                    i = skip_ws(i + 1)
                    break
                raise InvalidInputError(f"{path}:{line_of(min(i, n))}: malformed JSON: expected ',' or ']'")
        if i < n:
            raise InvalidInputError(f"{path}:{line_of(i)}: malformed JSON: extra data after the top-level array")
        return items
    while i < n:
        value, end = decode(i)
        items.append((line_of(i), value))
        i = skip_ws(end)
    return items


def _doc_ref(ref: Any, path: Path, line: int, field_name: str) -> tuple[str, int | None]:
    """A doc reference: a plain id, or ``{"id": ..., "grade": ...}``; returns (id, grade or None)."""
    if isinstance(ref, dict):
        key = next((k for k in ("id", "doc_id", "_id") if k in ref), None)
        if key is None:
            raise InvalidInputError(f"{path}:{line}: an entry of {field_name!r} has no 'id' field: {ref!r}")
        doc = _get_id(ref, key, path, line, f"an entry of {field_name!r}")
        grade = ref.get("grade")
        if grade is not None and (isinstance(grade, bool) or not isinstance(grade, int)):
            raise InvalidInputError(f"{path}:{line}: grade of document {doc!r} must be an integer, got {grade!r}")
        return doc, grade
    if isinstance(ref, bool) or not isinstance(ref, str | int) or not str(ref).strip():
        raise InvalidInputError(f"{path}:{line}: {field_name!r} entries must be doc ids or objects, got {ref!r}")
    return str(ref), None


def load_json_testset(
    path: str | Path,
    *,
    corpus_ids: Collection[str] | None = None,
    name: str | None = None,
    split: str = "test",
) -> TestSet:
    """Load the guide's JSON / JSON Lines test set; see the module docstring for the format.

    When ``corpus_ids`` is given, every referenced document must be in it (the error names the line).
    """
    file = Path(path)
    items = _json_items(_strip_comments(_read_text(file)), file)
    if not items:
        raise InvalidInputError(f"{file}: empty test set: no queries found")
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    lines: dict[str, int] = {}
    refs: list[tuple[str, str, int]] = []
    for number, (line, item) in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise InvalidInputError(f"{file}:{line}: each test case must be a JSON object, got {item!r:.60}")
        key = next((k for k in ("id", "query_id", "_id") if k in item), None)
        qid = _get_id(item, key, file, line, "test case") if key else f"q{number}"
        if qid in lines:
            raise InvalidInputError(f"{file}:{line}: query id {qid!r} repeats the one on line {lines[qid]}")
        lines[qid] = line
        text = item.get("query")
        if "query" not in item:
            raise InvalidInputError(f"{file}:{line}: missing field 'query' (the query text)")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"{file}:{line}: query {qid!r} has no text (field 'query')")
        if "relevant_docs" not in item:
            raise InvalidInputError(f"{file}:{line}: missing field 'relevant_docs' (a list of doc ids)")
        judged: dict[str, int] = {}
        for field_name in ("relevant_docs", "irrelevant_docs"):
            refs_raw = item.get(field_name, [])
            if not isinstance(refs_raw, list):
                raise InvalidInputError(f"{file}:{line}: field {field_name!r} must be a list of doc ids")
            for ref in refs_raw:
                doc, grade = _doc_ref(ref, file, line, field_name)
                if field_name == "relevant_docs":
                    grade = 1 if grade is None else grade
                    if grade < 1:
                        raise InvalidInputError(
                            f"{file}:{line}: relevant document {doc!r} has grade {grade}; relevant grades are >= 1 "
                            "(2 = strongly, 1 = moderately relevant); list non-relevant docs in 'irrelevant_docs'"
                        )
                elif grade is not None and grade > 0:
                    raise InvalidInputError(
                        f"{file}:{line}: irrelevant document {doc!r} has grade {grade}; move it to 'relevant_docs'"
                    )
                if doc in judged:
                    raise InvalidInputError(f"{file}:{line}: query {qid!r} lists document {doc!r} twice")
                judged[doc] = grade or 0
                refs.append((qid, doc, line))
        queries[qid] = text
        qrels[qid] = judged
    if not any(g >= 1 for judged in qrels.values() for g in judged.values()):
        raise InvalidInputError(f"{file}: no test case has a relevant document, so nothing can be evaluated")
    if corpus_ids is not None:
        _check_docs(iter(refs), corpus_ids, file)
    return TestSet(queries, qrels, name=name or file.stem, split=split, source=file)


def write_json_testset(testset: TestSet, path: str | Path) -> Path:
    """Write a test set in the guide's format as JSON Lines (grades other than 1 are written as objects)."""
    file = Path(path)
    with file.open("w", encoding="utf-8") as fh:
        for qid, text in testset.queries.items():
            judged = testset.qrels.get(qid, {})
            relevant: list[Any] = [d if g == 1 else {"id": d, "grade": g} for d, g in judged.items() if g >= 1]
            irrelevant = [d for d, g in judged.items() if g < 1]
            record = {"id": qid, "query": text, "relevant_docs": relevant, "irrelevant_docs": irrelevant}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return file


def load_testset(
    path: str | Path, split: str = "test", *, corpus_ids: Collection[str] | None = None, check_corpus: bool = True
) -> TestSet:
    """A BEIR folder or a guide-format JSON/JSONL file, whichever ``path`` is."""
    p = Path(path)
    if p.is_dir():
        return load_beir(p, split, check_corpus=check_corpus, corpus_ids=corpus_ids)
    if p.is_file():
        return load_json_testset(p, corpus_ids=corpus_ids, split=split)
    raise InvalidInputError(f"{p}: no such test set (give a BEIR folder or a .json/.jsonl file)")
