"""Terminal rendering of search results (rich tables), shared by `search` and `quickstart`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table


def _snippet(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _rank(value: int | None) -> str:
    return "-" if value is None else str(value)


def best_chunk_per_document(hits: Sequence[Any], limit: int) -> list[Any]:
    """Each document once, at the rank of its best chunk (results are chunk-level)."""
    seen: dict[str, Any] = {}
    for hit in hits:
        seen.setdefault(str(hit.external_id), hit)
        if len(seen) >= limit:
            break
    return list(seen.values())


def results_table(results: Sequence[Any], title: str = "") -> Table:
    """One row per hit: rank, fused score, each branch's rank, title and a snippet."""
    table = Table(title=title, show_lines=False, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("dense", justify="right")
    table.add_column("bm25", justify="right")
    table.add_column("doc")
    table.add_column("title / snippet", overflow="fold")
    for position, hit in enumerate(results, start=1):
        score = hit.rerank_score if getattr(hit, "rerank_score", None) is not None else hit.score
        table.add_row(
            str(position),
            f"{score:.4f}",
            _rank(hit.dense_rank),
            _rank(hit.lexical_rank),
            str(hit.external_id),
            f"[bold]{_snippet(hit.title, 80)}[/]\n[dim]{_snippet(hit.content)}[/]",
        )
    return table


def comparison_table(query: str, by_mode: dict[str, Sequence[Any]], relevant: set[str] | None = None) -> Table:
    """Top results of several modes side by side for one query; known-relevant documents are marked ✓."""
    table = Table(title=f"query: {query!r}", title_justify="left", show_lines=True)
    table.add_column("#", justify="right")
    for mode in by_mode:
        table.add_column(mode, overflow="fold", ratio=1)
    depth = max((len(hits) for hits in by_mode.values()), default=0)
    for i in range(depth):
        cells = []
        for hits in by_mode.values():
            if i >= len(hits):
                cells.append("")
                continue
            hit = hits[i]
            mark = " [green]✓[/]" if relevant and str(hit.external_id) in relevant else ""
            cells.append(f"{_snippet(hit.title, 60)}{mark}\n[dim]doc {hit.external_id} · score {hit.score:.4f}[/]")
        table.add_row(str(i + 1), *cells)
    return table
