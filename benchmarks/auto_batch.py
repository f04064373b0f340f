"""`--max_batch_size=auto` judged by what the server delivers under load, not by its own timing.

The timed curve of a network on a CPU is often flat over several sizes, so the choice must hold where it
matters: closed-loop clients against the same model served with fixed sizes. The auto server is started
several times (each start times the model again and may choose differently), and each start runs in
alternating blocks against servers with fixed sizes, in ABBA order, so drift falls on every side alike.

Every start starts all its servers afresh, in an order rotated from start to start, and gives each an
unmeasured block first: a new server runs slower over its first blocks, and a fixed server kept from start
to start would have an edge no configuration gives. Which fixed size is better is judged once, over all
rounds of all starts: picking each start's better one from its few rounds would pick whichever had the
luckier blocks, and hold auto to a bar no size reaches on average.

A second server with the first fixed size runs in every round as well: what two servers of one
configuration differ by, measured in the same rounds, is the spread within which auto and a fixed size
cannot be told apart.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.interleave import server_block
from benchmarks.launcher import our_server
from benchmarks.load import Workload
from benchmarks.server_stats import batch_size_choice

COMMON_FLAGS = ("--enable_batching=true", "--num_batch_threads=1", "--batch_timeout_micros=1000")
CONTROL = "control"  # a second server with the first fixed size


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
    """Images/s of each side per round; per start, auto ÷ each fixed size and ÷ the run's best fixed size,
    and a second server of the first fixed size ÷ the first (the same-configuration spread)."""
    report: dict[str, Any] = {
        "concurrency": concurrency, "rounds_per_start": rounds, "block_s": block_s, "warmup_s": warmup_s,
        "unmeasured_rounds_per_start": 1, "flags": list(COMMON_FLAGS), "fixed_sizes": list(fixed_sizes),
        "same_size_control": fixed_sizes[0], "starts": [],
    }
    bounds = {**{f"fixed_{size}": str(size) for size in fixed_sizes}, "auto": "auto", CONTROL: str(fixed_sizes[0])}
    order = list(bounds)  # the order blocks run in; the launch order rotates from start to start
    for start in range(starts):
        _log(f"auto batch size: start {start + 1} of {starts}")
        started = launch_order(order, start)
        with contextlib.ExitStack() as servers:
            sides = {name: servers.enter_context(
                our_server(version_dir.parent, model, *COMMON_FLAGS, f"--max_batch_size={bounds[name]}"))
                for name in started}
            chosen, curve = batch_size_choice(sides["auto"].metrics_url)
            for name in order:  # a fresh server runs slower for its first blocks, so every side gets one
                server_block(sides[name].target, workload, concurrency, block_s, warmup_s)
            measured: dict[str, list[float]] = {name: [] for name in order}
            for index in range(rounds):
                for name in order if index % 2 == 0 else reversed(order):
                    level = server_block(sides[name].target, workload, concurrency, block_s, warmup_s)
                    measured[name].append(round(level.images_per_s, 3))
        summary = _start_summary(chosen, curve, measured, fixed_sizes)
        summary["launch_order"] = started
        report["starts"].append(summary)
        ratios = {size: ratio["median_ratio"] for size, ratio in summary["auto_over_fixed"].items()}
        _log(f"auto chose {chosen}; auto ÷ fixed: {ratios}; same size ÷ same size: "
             f"{summary['control_over_same_size']['median_ratio']}")
    _judge_against_best_fixed(report, fixed_sizes)
    return report


def launch_order(sides: Sequence[str], start: int) -> list[str]:
    """The order start `start` launches its servers in: rotated one place per start, so that over as many
    starts as sides each side is launched first once. Two servers of one configuration can differ by about 2%
    for as long as they live, and launching the auto server first in every start put whatever the launch
    position does on auto alone."""
    shift = start % len(sides)
    return [*sides[shift:], *sides[:shift]]


def _judge_against_best_fixed(report: dict[str, Any], fixed_sizes: Sequence[int]) -> None:
    """The best fixed size over the whole run (the one auto does least well against, median of every
    round's ratio), then auto ÷ that size per start and over all rounds."""
    pooled = {size: [ratio for start in report["starts"] for ratio in start["auto_over_fixed"][str(size)]["ratios"]]
              for size in fixed_sizes}
    best = min(fixed_sizes, key=lambda size: statistics.median(pooled[size]))
    for start in report["starts"]:
        start["auto_over_best_fixed"] = start["auto_over_fixed"][str(best)]["median_ratio"]
    report["best_fixed"] = best
    report["auto_over_best_fixed_all_rounds"] = _over_all_rounds(pooled[best])
    report["auto_over_best_fixed_by_start"] = [start["auto_over_best_fixed"] for start in report["starts"]]
    control = [ratio for start in report["starts"] if "control_over_same_size" in start
               for ratio in start["control_over_same_size"]["ratios"]]
    if control:
        report["control_over_same_size_all_rounds"] = _over_all_rounds(control)
    report["chosen_by_start"] = [start["chosen"] for start in report["starts"]]


def _start_summary(
    chosen: int | None, curve: dict[int, float], measured: dict[str, list[float]], fixed_sizes: Sequence[int]
) -> dict[str, Any]:
    """One start: the choice, its timed curve, every block, and the median per-round ratios."""
    summary: dict[str, Any] = {
        "chosen": chosen,
        "curve_items_per_s": {str(size): value for size, value in curve.items()},
        "images_per_s": measured,
        "auto_over_fixed": {str(size): _per_round(measured["auto"], measured[f"fixed_{size}"]) for size in fixed_sizes},
    }
    if CONTROL in measured:
        summary["control_over_same_size"] = _per_round(measured[CONTROL], measured[f"fixed_{fixed_sizes[0]}"])
    return summary


def _over_all_rounds(ratios: Sequence[float]) -> dict[str, Any]:
    return {"rounds": len(ratios), "median_ratio": round(statistics.median(ratios), 3),
            "min": round(min(ratios), 3), "max": round(max(ratios), 3)}


def _per_round(side: Sequence[float], against: Sequence[float]) -> dict[str, Any]:
    ratios = [a / b for a, b in zip(side, against) if b]
    return {"ratios": [round(r, 3) for r in ratios], "median_ratio": round(statistics.median(ratios), 3)}
