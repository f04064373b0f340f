"""Load levels against one server in turn, each with the server's own batch-size and memory record around it."""

from __future__ import annotations

import asyncio
from typing import Sequence

from benchmarks.load import LevelResult, Workload, closed_loop, open_loop
from benchmarks.server_stats import scrape


async def run_levels(
    target: str,
    workload: Workload,
    concurrencies: Sequence[int],
    rate: float | None,
    duration: float,
    warmup: float,
    metrics_url: str | None,
) -> list[LevelResult]:
    """Each level in turn, with the server's own batch-size and memory record around it."""
    from rich.progress import Progress

    plans: list[tuple[str, float | int]] = [("closed", c) for c in concurrencies]
    if rate:
        plans.append(("open", rate))
    levels = []
    with Progress(transient=True) as progress:
        for mode, value in plans:
            task = progress.add_task(f"{mode} {'c=' if mode == 'closed' else ''}{value:g}", total=duration + warmup)

            def tick(seconds: float, task=task) -> None:
                progress.advance(task, seconds)

            before = await asyncio.to_thread(scrape, metrics_url)
            if mode == "closed":
                level = await closed_loop(target, workload, int(value), duration, warmup, on_tick=tick)
            else:
                level = await open_loop(target, workload, float(value), duration, min(warmup, 1.0), on_tick=tick)
            after = await asyncio.to_thread(scrape, metrics_url)
            level.mean_batch_size = after.mean_batch_size_since(before)
            level.server_rss_bytes = after.rss_bytes
            levels.append(level)
    return levels
