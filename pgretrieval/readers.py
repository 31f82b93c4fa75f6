"""Read documents from files: JSONL, BEIR corpus folders, CSV/TSV, and folders of ``.txt``/``.md`` files.

Readers check structure (valid UTF-8, JSON, field types, dates) and report problems as ``file:line`` plus
the field. Content rules (empty text, NUL bytes, size, duplicate ids) are checked by ingest, for all sources.
Pass ``errors=[]`` to collect bad records and go on (``--skip-errors``); otherwise the first one raises.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from pgretrieval.errors import InvalidInputError
from pgretrieval.types import Document, IngestErrorRecord

FORMATS = ("jsonl", "beir", "csv", "tsv", "text")
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
_ID_KEYS = ("id", "_id", "doc_id", "docid")
_TEXT_KEYS = ("text", "content", "body")
_KNOWN_KEYS = {*_ID_KEYS, *_TEXT_KEYS, "title", "metadata", "created_at"}
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


class RecordError(InvalidInputError):
    """A bad input record; carries where it was and which field, for ``--skip-errors`` reports."""

    def __init__(self, location: str, field: str, message: str, document_id: str | None = None) -> None:
        super().__init__(f"{location}: field {field!r}: {message}")
        self.location = location
        self.field = field
        self.reason = message
        self.document_id = document_id

    def record(self) -> IngestErrorRecord:
        return IngestErrorRecord(self.document_id or self.location, self.field, f"{self.location}: {self.reason}")


def parse_datetime(value: Any, *, field: str = "created_at") -> datetime | None:
    """ISO 8601 text (``Z`` allowed, date-only allowed), epoch seconds, or a datetime; naive times are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a valid epoch timestamp") from exc
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError as exc:
            raise ValueError(f"cannot parse {value!r} as a date/time; use ISO 8601, e.g. 2024-05-01T12:00:00Z") from exc
    else:
        raise ValueError(f"expected an ISO 8601 string or epoch seconds, got {type(value).__name__}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def document_from_record(record: Mapping[str, Any], location: str) -> Document:
    """A Document from one JSON/CSV record; unknown top-level keys are kept in ``metadata``."""
    doc_id = next((record[k] for k in _ID_KEYS if k in record and record[k] not in (None, "")), None)
    if doc_id is None:
        raise RecordError(location, "id", "missing; every document needs an id (keys: id or _id)")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        raise RecordError(location, "id", f"must be a string or integer, got {type(doc_id).__name__}")
    doc_id = str(doc_id)
    text_key = next((k for k in _TEXT_KEYS if k in record), None)
    if text_key is None:
        raise RecordError(location, "text", "missing", doc_id)
    text = record[text_key]
    if not isinstance(text, str):
        raise RecordError(location, "text", f"must be a string, got {type(text).__name__}", doc_id)
    title = record.get("title") or ""
    if not isinstance(title, str):
        raise RecordError(location, "title", f"must be a string, got {type(title).__name__}", doc_id)
    metadata = record.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise RecordError(location, "metadata", f"must be a JSON object, got {type(metadata).__name__}", doc_id)
    extra = {k: v for k, v in record.items() if k not in _KNOWN_KEYS and v not in (None, "")}
    merged = {**extra, **metadata}
    try:
        created_at = parse_datetime(record.get("created_at"))
    except ValueError as exc:
        raise RecordError(location, "created_at", str(exc), doc_id) from exc
    return Document(id=doc_id, text=text, title=title, metadata=merged, created_at=created_at)


def _guard(items: Iterator[Document | RecordError], errors: list[IngestErrorRecord] | None) -> Iterator[Document]:
    """Yield documents; a bad record either raises or, when collecting, is recorded and skipped.

    Inner readers *yield* their RecordErrors (a generator that raises is finished, and we want to go on).
    """
    for item in items:
        if isinstance(item, RecordError):
            if errors is None:
                raise item
            errors.append(item.record())
            continue
        yield item


def _parse(record: Mapping[str, Any], location: str) -> Document | RecordError:
    try:
        return document_from_record(record, location)
    except RecordError as exc:
        return exc


def _read_jsonl(path: Path) -> Iterator[Document | RecordError]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            location = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RecordError(location, "(line)", f"invalid UTF-8 at byte {exc.start}")
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RecordError(location, "(line)", f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(record, dict):
                yield RecordError(location, "(line)", f"expected a JSON object, got {type(record).__name__}")
                continue
            yield _parse(record, location)


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecordError(f"{path}:{line}", "(file)", f"invalid UTF-8 at byte {exc.start}") from exc


def _read_csv(path: Path, delimiter: str | None = None) -> Iterator[Document | RecordError]:
    text = _decode(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # documents can be large
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    if not any(h in header for h in _ID_KEYS) or not any(h in header for h in _TEXT_KEYS):
        raise RecordError(
            f"{path}:1", "(header)", f"needs columns id and text (optionally title, created_at); got {header}"
        )
    for row in reader:
        location = f"{path}:{reader.line_num}"
        if None in row:
            yield RecordError(location, "(row)", "more values than header columns")
            continue
        yield _parse({k: v for k, v in row.items() if k}, location)


def _title_of(text: str, path: Path) -> str:
    if path.suffix.lower() in (".md", ".markdown"):
        match = _HEADING_RE.search(text)
        if match:
            return match.group(1).strip()
    return path.stem


def _read_text_dir(root: Path) -> Iterator[Document | RecordError]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES)
    base = root.parent if root.is_file() else root
    for path in files:
        if not path.is_file():
            continue
        rel = path.relative_to(base).as_posix()
        try:
            text = _decode(path)
        except RecordError as exc:
            exc.document_id = rel
            yield exc
            continue
        created = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        yield Document(id=rel, text=text, title=_title_of(text, path), created_at=created)


def detect_format(path: Path) -> str:
    """jsonl, beir, csv, tsv or text, from the path's shape and suffix."""
    if path.is_dir():
        return "beir" if (path / "corpus.jsonl").is_file() else "text"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    if suffix in TEXT_SUFFIXES:
        return "text"
    raise InvalidInputError(
        f"cannot tell the format of {path}; pass format= one of {', '.join(FORMATS)} "
        "(JSONL, a BEIR folder with corpus.jsonl, CSV/TSV, or .txt/.md files)."
    )


def read_documents(
    path: Path | str,
    format: str | None = None,
    *,
    errors: list[IngestErrorRecord] | None = None,
) -> Iterator[Document]:
    """Documents from ``path``; format auto-detected when None. Lazy: large files are streamed.

    With ``errors`` given, bad records are appended to it and skipped instead of raising.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist.")
    fmt = (format or detect_format(path)).lower()
    items: Iterator[Document | RecordError]
    if fmt == "beir":
        corpus = path / "corpus.jsonl" if path.is_dir() else path
        if not corpus.is_file():
            raise InvalidInputError(f"{path} is not a BEIR folder: corpus.jsonl is missing.")
        items = _read_jsonl(corpus)
    elif fmt in ("jsonl", "json"):
        if path.is_dir():
            raise InvalidInputError(f"{path} is a folder; pass a .jsonl file or use format='beir'/'text'.")
        items = _read_jsonl(path)
    elif fmt in ("csv", "tsv"):
        items = _read_csv(path, "\t" if fmt == "tsv" else None)
    elif fmt in ("text", "txt", "md", "dir"):
        items = _read_text_dir(path)
    else:
        raise InvalidInputError(f"unknown input format {format!r}; use one of {', '.join(FORMATS)}.")
    return _guard(items, errors)
