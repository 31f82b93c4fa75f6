"""Input formats: JSONL, BEIR folders, CSV/TSV, folders of .txt/.md; bad records name file:line and field."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pgretrieval.errors import InvalidInputError
from pgretrieval.readers import detect_format, parse_datetime, read_documents
from pgretrieval.types import IngestErrorRecord


def _write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def test_jsonl_fields_and_extra_keys_go_to_metadata(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "docs.jsonl",
        [
            {"id": "a", "title": "T", "text": "body", "metadata": {"k": 1}, "created_at": "2024-05-01T12:00:00Z"},
            {"id": 7, "text": "中文", "lang": "zh"},
        ],
    )
    docs = list(read_documents(path))
    assert [d.id for d in docs] == ["a", "7"]
    assert docs[0].metadata == {"k": 1} and docs[0].created_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert docs[1].metadata == {"lang": "zh"} and docs[1].text == "中文" and docs[1].created_at is None


def test_beir_folder(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "title": "x", "text": "y", "metadata": {}}])
    assert detect_format(tmp_path) == "beir"
    (doc,) = read_documents(tmp_path)
    assert (doc.id, doc.title, doc.text) == ("d1", "x", "y")


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ('{"id": "x", "text": "t", "metadata": [1]}', "metadata", "JSON object"),
        ('{"id": "x", "text": "t", "created_at": "yesterday"}', "created_at", "cannot parse"),
        ('{"text": "t"}', "id", "missing"),
        ('{"id": "x", "text": 5}', "text", "must be a string"),
        ('{"id": "x", "text": "t"', "(line)", "invalid JSON"),
        ("[1, 2]", "(line)", "JSON object"),
    ],
)
def test_bad_jsonl_record_names_file_line_and_field(tmp_path: Path, line: str, field: str, fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError) as info:
        list(read_documents(path))
    assert f"bad.jsonl:2: field {field!r}" in str(info.value) and fragment in str(info.value)


def test_invalid_utf8_line_and_collected_errors_go_on(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"id": "a", "text": "caf\xe9"}\n{"id": "b", "text": "ok"}\n{"id": "c"}\n')
    with pytest.raises(InvalidInputError, match=r"mixed.jsonl:1: .*invalid UTF-8"):
        list(read_documents(path))
    errors: list[IngestErrorRecord] = []
    docs = list(read_documents(path, errors=errors))
    assert [d.id for d in docs] == ["b"]
    assert [(e.document_id, e.field) for e in errors] == [(f"{path}:1", "(line)"), ("c", "text")]


def test_csv_with_metadata_columns_and_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "docs.csv"
    path.write_text(
        'id,title,text,created_at,category\n1,First,"line one\nline two",2023-01-02,faq\n2,,plain,,\n',
        encoding="utf-8",
    )
    docs = list(read_documents(path))
    assert docs[0].text == "line one\nline two" and docs[0].metadata == {"category": "faq"}
    assert docs[0].created_at == datetime(2023, 1, 2, tzinfo=timezone.utc)
    assert docs[1].metadata == {} and docs[1].created_at is None


def test_csv_bad_date_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,text,created_at\n1,a,2023-01-02\n2,b,not-a-date\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad.csv:3: field 'created_at'"):
        list(read_documents(path))
    (tmp_path / "nohead.csv").write_text("name,body\nx,y\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="needs columns id and text"):
        list(read_documents(tmp_path / "nohead.csv"))


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "docs.tsv"
    path.write_text("id\ttext\nq1\thello, world\n", encoding="utf-8")
    assert [d.text for d in read_documents(path)] == ["hello, world"]


def test_text_folder_ids_titles_and_mtime(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("plain text", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("intro\n\n## The Heading ##\n\nbody", encoding="utf-8")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    os.utime(tmp_path / "a.txt", (1_700_000_000, 1_700_000_000))
    docs = {d.id: d for d in read_documents(tmp_path)}
    assert set(docs) == {"a.txt", "sub/b.md"}
    assert docs["a.txt"].title == "a" and docs["sub/b.md"].title == "The Heading"
    assert docs["a.txt"].created_at == datetime.fromtimestamp(1_700_000_000, tz=timezone.utc)


def test_text_folder_with_bad_encoding(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"ok\nbroken \xff here")
    with pytest.raises(InvalidInputError, match=r"bad.txt:2: .*invalid UTF-8"):
        list(read_documents(tmp_path))


def test_unknown_format_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        read_documents(tmp_path / "x.pdf")
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_documents(tmp_path / "nope.jsonl")


def test_parse_datetime_forms() -> None:
    utc = timezone.utc
    assert parse_datetime("2024-01-02") == datetime(2024, 1, 2, tzinfo=utc)
    assert parse_datetime(0) == datetime(1970, 1, 1, tzinfo=utc)
    assert parse_datetime("2024-01-02T03:04:05+02:00").utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert parse_datetime(None) is None
    with pytest.raises(ValueError):
        parse_datetime([2024])
