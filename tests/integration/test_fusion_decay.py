"""Fusion (weighted RRF, min-max and z-score score fusion) and time decay, against the formulas."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from search_helpers import scratch_database, search


@pytest.fixture(scope="module")
def mconn(server_dsn: str, template_database: str) -> Iterator[psycopg.Connection[Any]]:
    with scratch_database(server_dsn, template_database) as connection:
        yield connection


def rrf(mconn: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    names = ["dense_ids", "lexical_ids", "metadata_ids"][: len(args)]
    params = dict(zip(names, args, strict=True)) | kwargs
    call = ", ".join(f"{k} => %({k})s" for k in params)
    return search(mconn, f"SELECT * FROM pgretrieval.rrf_fuse({call})", params)


def test_rrf_formula_and_ranks(mconn: psycopg.Connection[Any]) -> None:
    rows = rrf(mconn, [10, 20, 30], [30, 40], [20], dense_weight=0.7, lexical_weight=0.3, metadata_weight=0.5)
    expected = {
        10: 0.7 / 61,
        20: 0.7 / 62 + 0.5 / 61,
        30: 0.7 / 63 + 0.3 / 61,
        40: 0.3 / 62,
    }
    assert {r["chunk_id"]: r["score"] for r in rows} == pytest.approx(expected, abs=1e-12)
    assert [r["chunk_id"] for r in rows] == sorted(expected, key=lambda c: -expected[c])
    by_id = {r["chunk_id"]: r for r in rows}
    assert (by_id[30]["dense_rank"], by_id[30]["lexical_rank"], by_id[30]["metadata_rank"]) == (3, 1, None)
    rows = rrf(mconn, [1, 2], [2, 1], k=0)
    assert [r["score"] for r in rows] == pytest.approx([1.5, 1.5])


def test_rrf_ties_break_by_chunk_id(mconn: psycopg.Connection[Any]) -> None:
    rows = rrf(mconn, [5, 3], [3, 5])  # both 1/61 + 1/62
    assert [r["chunk_id"] for r in rows] == [3, 5]
    rows = rrf(mconn, [9], [7])
    assert [r["chunk_id"] for r in rows] == [7, 9]
    rows = rrf(mconn, [9, 8, 7], [])
    assert [r["chunk_id"] for r in rows] == [9, 8, 7]


def test_rrf_empty_null_and_duplicate_lists(mconn: psycopg.Connection[Any]) -> None:
    assert rrf(mconn, [], []) == []
    assert rrf(mconn, None, None) == []
    rows = rrf(mconn, None, [4, 5])
    assert [(r["chunk_id"], r["lexical_rank"], r["dense_rank"]) for r in rows] == [(4, 1, None), (5, 2, None)]
    rows = rrf(mconn, [1, 1, 2], [None, 2])  # a repeated id keeps its best position; NULL ids are ignored
    assert {r["chunk_id"]: (r["dense_rank"], r["lexical_rank"]) for r in rows} == {1: (1, None), 2: (3, 2)}


def score_fuse(mconn: psycopg.Connection[Any], **params: Any) -> list[dict[str, Any]]:
    call = ", ".join(f"{k} => %({k})s" for k in params)
    return search(mconn, f"SELECT * FROM pgretrieval.score_fuse({call})", params)


def test_minmax_fusion(mconn: psycopg.Connection[Any]) -> None:
    rows = score_fuse(
        mconn,
        dense_ids=[1, 2, 3],
        dense_scores=[0.9, 0.5, 0.1],
        lexical_ids=[3, 4],
        lexical_scores=[12.0, 2.0],
        dense_weight=0.6,
        lexical_weight=0.4,
    )
    expected = {1: 0.6 * 1.0, 2: 0.6 * 0.5, 3: 0.6 * 0.0 + 0.4 * 1.0, 4: 0.0}
    assert {r["chunk_id"]: r["score"] for r in rows} == pytest.approx(expected)
    assert [r["chunk_id"] for r in rows] == [1, 3, 2, 4]
    # equal scores normalise to 1; an empty list contributes nothing and takes no weight
    rows = score_fuse(mconn, dense_ids=[7, 6], dense_scores=[0.3, 0.3], lexical_ids=[], lexical_scores=[])
    assert [(r["chunk_id"], r["score"]) for r in rows] == [(6, 1.0), (7, 1.0)]
    assert score_fuse(mconn, dense_ids=[], dense_scores=[], lexical_ids=None, lexical_scores=None) == []


def test_zscore_fusion(mconn: psycopg.Connection[Any]) -> None:
    scores = [3.0, 2.0, 1.0]
    mu = sum(scores) / 3
    sigma = math.sqrt(sum((s - mu) ** 2 for s in scores) / 3)
    rows = score_fuse(
        mconn,
        dense_ids=[1, 2, 3],
        dense_scores=scores,
        lexical_ids=[9],
        lexical_scores=[5.0],
        normalization="zscore",
    )
    expected = {i + 1: ((s - mu) / sigma + 3) / 6 / 2 for i, s in enumerate(scores)} | {9: 0.5 / 2}
    assert {r["chunk_id"]: r["score"] for r in rows} == pytest.approx(expected)


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT * FROM pgretrieval.rrf_fuse('{1}', '{2}', dense_weight => -1)", "invalid fusion weight"),
        ("SELECT * FROM pgretrieval.rrf_fuse('{1}', '{2}', k => -1)", "invalid rrf_k"),
        ("SELECT * FROM pgretrieval.score_fuse('{1,2}', '{1}', '{}', '{}')", "as many scores as ids"),
        ("SELECT * FROM pgretrieval.score_fuse('{1}', '{1}', '{}', '{}', normalization => 'l2')", "normalization"),
    ],
)
def test_fusion_bad_input(mconn: psycopg.Connection[Any], sql: str, fragment: str) -> None:
    with pytest.raises(psycopg.Error) as info:
        mconn.execute(sql)
    assert info.value.sqlstate == "PR002"
    assert fragment in str(info.value)


@pytest.mark.parametrize("func", ["exp", "gauss", "linear"])
@pytest.mark.parametrize("offset", [0.0, 5.0])
def test_decay_values_at_zero_offset_and_scale(mconn: psycopg.Connection[Any], func: str, offset: float) -> None:
    def f(distance: float, decay: float = 0.5) -> float:
        row = mconn.execute(
            "SELECT pgretrieval.decay_factor(%s, %s, 10.0, %s, %s)", (func, distance, offset, decay)
        ).fetchone()
        return float(row[0])

    assert f(0.0) == pytest.approx(1.0)
    assert f(offset) == pytest.approx(1.0)
    assert f(offset / 2) == pytest.approx(1.0)
    assert f(offset + 10.0) == pytest.approx(0.5)
    assert f(-(offset + 10.0)) == pytest.approx(0.5)  # symmetric: the future decays like the past
    assert f(offset + 10.0, decay=0.2) == pytest.approx(0.2)
    twice = {"exp": 0.25, "gauss": 0.5**4, "linear": 0.0}[func]
    assert f(offset + 20.0) == pytest.approx(twice)
    assert f(offset + 5.0) > 0.5


def test_time_decay_on_created_at_and_metadata(mconn: psycopg.Connection[Any]) -> None:
    origin = datetime(2024, 6, 1, tzinfo=timezone.utc)
    cfg = {"function": "exp", "scale": "10 days", "offset": "1 day", "origin": origin.isoformat()}

    def td(created: datetime | None, metadata: dict[str, Any], config: dict[str, Any]) -> float:
        row = mconn.execute(
            "SELECT pgretrieval.time_decay(%s, %s, %s)", (created, Jsonb(metadata), Jsonb(config))
        ).fetchone()
        return float(row[0])

    assert td(origin - timedelta(days=11), {}, cfg) == pytest.approx(0.5)
    assert td(origin - timedelta(hours=12), {}, cfg) == pytest.approx(1.0)
    meta_cfg = cfg | {"field": "published"}
    assert td(origin, {"published": (origin - timedelta(days=21)).isoformat()}, meta_cfg) == pytest.approx(0.25)
    epoch = (origin - timedelta(days=11)).timestamp()
    assert td(origin, {"published": epoch}, meta_cfg) == pytest.approx(0.5)
    assert td(origin, {"published": "not a date"}, meta_cfg) == 1.0  # unusable timestamp: no decay
    assert td(origin, {}, meta_cfg) == 1.0


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"function": "cubic", "scale": "1 day"}, "unknown decay function"),
        ({"scale": "0 days"}, "positive scale"),
        ({}, "positive scale"),
        ({"scale": "soon"}, "malformed decay value"),
        ({"scale": "1 day", "decay": 1.5}, "invalid decay parameters"),
        ({"scale": "1 day", "weight": 2}, "invalid decay parameters"),
        ({"scale": "1 day", "half_life": 3}, "unknown decay option"),
    ],
)
def test_decay_bad_config(mconn: psycopg.Connection[Any], config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(psycopg.Error) as info:
        mconn.execute("SELECT pgretrieval.time_decay(now(), '{}', %s)", (Jsonb(config),))
    assert info.value.sqlstate == "PR002"
    assert fragment in str(info.value)
    assert info.value.diag.message_hint
