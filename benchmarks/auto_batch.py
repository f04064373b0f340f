"""`--max_batch_size=auto` judged by what the server delivers under load, not by its own timing.

The timed curve of a network on a CPU is often flat over several sizes, so the choice must hold where it
matters: closed-loop clients against the same model served with fixed sizes. The auto server is started
several times (each start times the model again and may choose differently), and each start runs in
alternating blocks against servers with fixed sizes, in ABBA order, so drift falls on every side alike.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.interleave import server_block
from benchmarks.launcher import LaunchedServer, our_server
from benchmarks.load import Workload
from benchmarks.server_stats import batch_size_choice

COMMON_FLAGS = ("--enable_batching=true", "--num_batch_threads=1", "--batch_timeout_micros=1000")


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_auto_versus_fixed(
    version_dir: Path,
    model: str,
    workload: Workload,
    *,
    fixed_sizes: Sequence[int] = (16, 32),
    starts: int = 3,
    rounds: int = 4,
    concurrency: int = 32,
    block_s: float = 6.0,
    warmup_s: float = 5.0,
) -> dict[str, Any]:
    """Images/s of each side per round; per start, auto ÷ each fixed size and ÷ the better fixed size."""
    report: dict[str, Any] = {
        "concurrency": concurrency, "rounds_per_start": rounds, "block_s": block_s, "warmup_s": warmup_s,
        "flags": list(COMMON_FLAGS), "fixed_sizes": list(fixed_sizes), "starts": [],
    }
    fixed: dict[str, LaunchedServer] = {}
    try:
        for size in fixed_sizes:
            fixed[f"fixed_{size}"] = our_server(version_dir.parent, model, *COMMON_FLAGS, f"--max_batch_size={size}")
        for start in range(starts):
            _log(f"auto batch size: start {start + 1} of {starts}")
            with our_server(version_dir.parent, model, *COMMON_FLAGS, "--max_batch_size=auto") as auto:
                chosen, curve = batch_size_choice(auto.metrics_url)
                sides = {**fixed, "auto": auto}
                order = list(sides)
                measured: dict[str, list[float]] = {name: [] for name in sides}
                for index in range(rounds):
                    for name in order if index % 2 == 0 else reversed(order):
                        level = server_block(sides[name].target, workload, concurrency, block_s, warmup_s)
                        measured[name].append(round(level.images_per_s, 3))
                report["starts"].append(_start_summary(chosen, curve, measured, fixed_sizes))
                _log(f"auto chose {chosen}; auto ÷ better fixed: {report['starts'][-1]['auto_over_best_fixed']}")
    finally:
        for server in fixed.values():
            server.stop()
    ratios = [start["auto_over_best_fixed"] for start in report["starts"]]
    report["auto_over_best_fixed_by_start"] = ratios
    report["chosen_by_start"] = [start["chosen"] for start in report["starts"]]
    return report


def _start_summary(
    chosen: int | None, curve: dict[int, float], measured: dict[str, list[float]], fixed_sizes: Sequence[int]
) -> dict[str, Any]:
    """One start: the choice, its timed curve, every block, and the median per-round ratios."""
    auto = measured["auto"]
    over_fixed = {}
    for size in fixed_sizes:
        ratios = [a / f for a, f in zip(auto, measured[f"fixed_{size}"]) if f]
        over_fixed[str(size)] = {"ratios": [round(r, 3) for r in ratios],
                                 "median_ratio": round(statistics.median(ratios), 3)}
    best = max(fixed_sizes, key=lambda size: statistics.median(measured[f"fixed_{size}"]))
    return {
        "chosen": chosen,
        "curve_items_per_s": {str(size): value for size, value in curve.items()},
        "images_per_s": measured,
        "auto_over_fixed": over_fixed,
        "best_fixed": best,
        "auto_over_best_fixed": over_fixed[str(best)]["median_ratio"],
    }
