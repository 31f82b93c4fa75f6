"""Synthetic queries and LLM-as-judge against a real chat server the test starts on 127.0.0.1 (no client mocks)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pgretrieval.errors import ConfigurationError, ModelError
from pgretrieval.synth import (
    DEFAULT_JUDGE_PROMPT,
    ChatClient,
    SynthFailure,
    judge_relevance,
    parse_grade,
    parse_questions,
    run_judge,
    run_synth_queries,
    synthesize_queries,
    write_judgements,
)
from pgretrieval.testsets import load_json_testset

KEY = "sk-test-SECRET-123"
_REPLY_RE = re.compile(r"REPLY<<(.*?)>>", re.S)
_TITLE_RE = re.compile(r"^Title: (.*)$", re.M)


class _Chat(BaseHTTPRequestHandler):
    """Deterministic /v1/chat/completions: judge prompts answer what the document's REPLY<<...>> says; synthesis
    prompts answer a chatty numbered list built from the title."""

    requests: list[dict[str, Any]] = []
    fail_codes: list[int] = []  # answered (one per request) before anything else
    fail_on: str = ""  # a prompt containing this gets HTTP 500 every time

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        cls = type(self)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization") or ""
        cls.requests.append({"path": self.path, "auth": auth, "body": body})
        content = body["messages"][-1]["content"]
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "no such route"})
        if auth != f"Bearer {KEY}":
            return self._send(401, {"error": f"bad key in header {auth!r}"})  # echoes the key, as some servers do
        if cls.fail_codes:
            return self._send(cls.fail_codes.pop(0), {"error": f"overloaded; you sent {auth}"})
        if cls.fail_on and cls.fail_on in content:
            return self._send(500, {"error": "internal error"})
        reply, title_line = _REPLY_RE.search(content), _TITLE_RE.search(content)
        if reply:
            text = reply.group(1)
        elif title_line is None:
            text = "Hard to say, it depends."
        else:
            title = title_line.group(1)
            text = (
                f"Sure! Here are some questions:\n1. What is {title}?\n2) How does {title} work?\n3. What is {title}?"
            )
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    _Chat.requests, _Chat.fail_codes, _Chat.fail_on = [], [], ""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _client(base_url: str, **kw: Any) -> ChatClient:
    return ChatClient("tiny-chat", base_url=base_url, api_key=KEY, **kw)


CHUNKS = [
    ("d1", None, "BM25", "BM25 ranks documents by term frequency."),
    ("d2", "p1", "HNSW", "HNSW is a graph index for vectors."),
    ("d3", None, "BM25", "Another page about BM25."),  # same title: same questions, which are dropped
    ("d4", None, "Empty", "   "),  # nothing to ask about: skipped without a request
]


def test_synthesis_builds_a_test_set_from_chatty_answers(base_url: str, tmp_path: Path) -> None:
    failures: list[SynthFailure] = []
    seen: list[tuple[int, int]] = []
    client = _client(base_url)
    ts = synthesize_queries(
        CHUNKS, client, per_chunk=2, failures=failures, progress=lambda d, q: seen.append((d, q)), language="English"
    )
    assert ts.queries == {
        "d1#q1": "What is BM25?",
        "d1#q2": "How does BM25 work?",
        "d2#p1#q1": "What is HNSW?",
        "d2#p1#q2": "How does HNSW work?",
    }
    assert ts.qrels["d2#p1#q1"] == {"d2": 1} and ts.qrels["d1#q2"] == {"d1": 1}
    assert [(f.doc_id, f.reason) for f in failures] == [("d3", "no new question in the model's answer")]
    assert seen[-1] == (3, 4) and len(_Chat.requests) == 3
    first = _Chat.requests[0]
    assert first["auth"] == f"Bearer {KEY}" and first["body"]["model"] == "tiny-chat"
    assert first["body"]["temperature"] == 0.0
    assert "write 2 different questions" in first["body"]["messages"][0]["content"]
    assert "in English" in first["body"]["messages"][0]["content"]
    back = load_json_testset(write_json_testset_path(ts, tmp_path))
    assert back.queries == ts.queries and back.qrels == ts.qrels


def write_json_testset_path(ts: Any, tmp_path: Path) -> Path:
    from pgretrieval.testsets import write_json_testset

    return write_json_testset(ts, tmp_path / "synthetic.jsonl")


def test_second_run_is_served_from_the_cache(base_url: str, tmp_path: Path) -> None:
    first = synthesize_queries(CHUNKS[:2], _client(base_url), cache_dir=tmp_path / "cache")
    calls = len(_Chat.requests)
    again = _client(base_url)
    second = synthesize_queries(CHUNKS[:2], again, cache_dir=tmp_path / "cache")
    assert calls == 2 and len(_Chat.requests) == calls  # zero HTTP calls the second time
    assert again.cache_hits == 2 and again.requests == 0 and second.queries == first.queries
    # another model is another cache key
    synthesize_queries(CHUNKS[:1], ChatClient("other", base_url=base_url, api_key=KEY), cache_dir=tmp_path / "cache")
    assert len(_Chat.requests) == calls + 1


def test_a_500_is_retried(base_url: str) -> None:
    _Chat.fail_codes = [500]
    ts = synthesize_queries(CHUNKS[:1], _client(base_url, retries=2))
    assert len(ts.queries) == 1 and len(_Chat.requests) == 2


def test_failure_midway_then_resume(base_url: str, tmp_path: Path) -> None:
    _Chat.fail_on = "HNSW"
    with pytest.raises(ModelError) as err:
        synthesize_queries(CHUNKS[:3], _client(base_url, retries=0), cache_dir=tmp_path)
    message = str(err.value)
    assert "/v1/chat/completions" in message and "500" in message and "'d2'" in message and "resume" in message
    assert len(_Chat.requests) == 2
    _Chat.fail_on = ""
    resumed = _client(base_url, retries=0)
    failures: list[SynthFailure] = []
    ts = synthesize_queries(CHUNKS[:3], resumed, cache_dir=tmp_path, failures=failures)
    assert resumed.cache_hits == 1 and resumed.requests == 2  # d1 from the cache; d2 and d3 asked
    assert ts.queries == {"d1#q1": "What is BM25?", "d2#p1#q1": "What is HNSW?", "d3#q1": "How does BM25 work?"}
    assert failures == []


def test_key_never_appears_in_errors(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = ChatClient("tiny-chat", base_url=base_url, api_key="sk-WRONG-KEY-999", retries=0)
    with pytest.raises(ModelError) as err:
        wrong.complete([{"role": "user", "content": "hi"}])
    assert "401" in str(err.value) and "sk-WRONG-KEY-999" not in str(err.value) and "***" in str(err.value)
    assert err.value.__cause__ is None and "sk-WRONG" not in repr(wrong)
    _Chat.fail_codes = [503]  # the error body echoes the (right) key
    with pytest.raises(ModelError) as err:
        _client(base_url, retries=0).complete([{"role": "user", "content": "hi"}])
    assert "503" in str(err.value) and KEY not in str(err.value)
    monkeypatch.delenv("PGRETRIEVAL_LLM_MODEL", raising=False)
    with pytest.raises(ConfigurationError, match="PGRETRIEVAL_LLM_MODEL"):
        ChatClient(base_url=base_url)


def test_judge_parses_grades_and_records_garbage(base_url: str, tmp_path: Path) -> None:
    answers = {"a": "2", "b": "Grade: **3**", "c": '```json\n{"grade": 0}\n```', "d": "It seems relevant.", "e": "7"}
    pairs = [("q1", "what is bm25", doc, f"text REPLY<<{answer}>>") for doc, answer in answers.items()]
    pairs.append(("q2", "graph index", "a", "REPLY<<1 or 2>>"))
    pairs.append(pairs[0])  # a repeated pair is judged once
    judged = judge_relevance(pairs, _client(base_url), cache_dir=tmp_path / "cache")
    assert judged.qrels == {"q1": {"a": 2, "b": 3, "c": 0}}
    reasons = {(f.qid, f.doc_id): f.reason for f in judged.failures}
    assert reasons == {
        ("q1", "d"): "no grade in the answer",
        ("q1", "e"): "grade 7 is outside the scale 0..3",
        ("q2", "a"): "ambiguous: '1 or 2'",
    }
    assert len(_Chat.requests) == 6
    sent = _Chat.requests[0]["body"]["messages"][0]["content"]
    assert "Query: what is bm25" in sent and "from 0 to 3" in sent

    files = write_judgements(judged, tmp_path / "labels", base_url=base_url)
    names = sorted(p.name for p in files)
    assert names == ["judge_meta.json", "judge_prompt.txt", "qrels.tsv", "testset.jsonl"]
    out = tmp_path / "labels"
    assert (out / "judge_prompt.txt").read_text(encoding="utf-8") == DEFAULT_JUDGE_PROMPT
    meta = json.loads((out / "judge_meta.json").read_text(encoding="utf-8"))
    assert meta["model"] == "tiny-chat" and meta["scale"] == [0, 1, 2, 3] and meta["date"] and meta["labels"] == 3
    assert len(meta["failures"]) == 3
    assert (out / "qrels.tsv").read_text().splitlines() == [
        "query-id\tcorpus-id\tscore",
        "q1\ta\t2",
        "q1\tb\t3",
        "q1\tc\t0",
    ]
    assert load_json_testset(out / "testset.jsonl").qrels == {"q1": {"a": 2, "b": 3, "c": 0}}


def test_cli_entry_points_end_to_end(base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGRETRIEVAL_LLM_BASE_URL", base_url)
    monkeypatch.setenv("PGRETRIEVAL_LLM_MODEL", "tiny-chat")
    monkeypatch.setenv("PGRETRIEVAL_LLM_API_KEY", KEY)
    corpus = tmp_path / "corpus.jsonl"
    docs = [
        ("x1", "Alpha", "Alpha text. REPLY<<Q: what is alpha?>>"),
        ("x2", "Beta", "Beta text"),
        ("x3", "Gamma", "G"),
    ]
    corpus.write_text("".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    out = run_synth_queries(corpus, tmp_path / "synth" / "queries.jsonl", limit=2)
    ts = load_json_testset(out)
    assert ts.queries == {"x1#q1": "what is alpha?", "x2#q1": "What is Beta?"}
    assert json.loads(out.with_name("queries.jsonl.meta.json").read_text())["requests"] == 2
    run_synth_queries(corpus, out, limit=2)
    assert len(_Chat.requests) == 2  # resumed from the default cache beside the output

    run = tmp_path / "run.trec"
    run.write_text("x1#q1 Q0 x1 1 9.5 bm25\nx1#q1 Q0 x3 2 3.0 bm25\nx2#q1 Q0 x2 1 1.0 bm25\nzz Q0 x1 1 1 bm25\n")
    judged = run_judge(out, run, tmp_path / "judged", corpus_path=corpus, scale=(0, 1, 2))
    # x1's text holds a question, not a grade: a recorded failure; "G" and "Beta text" hold no grade either
    assert judged.qrels == {} and len(judged.failures) == 3 and len(_Chat.requests) == 5
    assert (tmp_path / "judged" / "judge_prompt.txt").is_file() and (tmp_path / "judged" / "qrels.tsv").is_file()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('["a?", "", "a?", "b?"]', ["a?", "b?"]),
        ('{"questions": [{"question": "q1"}, "q2"]}', ["q1", "q2"]),
        ("Here you go:\n- first?\n* second?\nHope this helps!", ["first?", "second?"]),
        (
            "**Question 1:** 如何重置密码？\n**Question 2:** 密码重置需要多久？",
            ["如何重置密码？", "密码重置需要多久？"],
        ),
        ("Sure.\nWhy is the sky blue?", ["Why is the sky blue?"]),
        ("", []),
    ],
)
def test_parse_questions(answer: str, expected: list[str]) -> None:
    assert parse_questions(answer) == expected


@pytest.mark.parametrize(
    ("answer", "grade"),
    [("3", 3), ("Relevance: 1", 1), ("I'd say 2/3.", 2), ("grade 2 (out of 3)", 2), ("2.5", None), ("-1", None)],
)
def test_parse_grade(answer: str, grade: int | None) -> None:
    assert parse_grade(answer)[0] == grade
