"""Goodput under overload when clients set deadlines: answers that arrive within their deadline, per second.

Two servers with the same model and batching flags run side by side, one refusing requests that cannot meet
their deadlines (the default), one not (`--refuse_unmeetable_deadlines=false`: a bounded queue and expiry
only, as TF Serving and Triton do). Capacity is measured first with 32 clients in a closed loop; then each
case (an open loop at a multiple of capacity, every request with a deadline of a few batch times) runs on
both servers, in ABBA order across cases, so drift falls on both alike.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import uvloop

from batching import Batcher, BatchingParameters, DeadlinePolicy, QueueFullError, UnmeetableDeadlineError

from benchmarks.interleave import server_block
from benchmarks.launcher import our_server
from benchmarks.load import LevelResult, Workload, deadline_open_loop
from benchmarks.server_stats import ServerSnapshot, scrape

REFUSED = "RESOURCE_EXHAUSTED"  # how the server answers a request it will not run
CAPACITY_CLIENTS = 32


@dataclass(frozen=True)
class Case:
    load: float  # offered rate as a multiple of capacity
    deadline_batches: float  # each request's deadline, in batch times at capacity

    @property
    def name(self) -> str:
        return f"{self.load:g}x_capacity_deadline_{self.deadline_batches:g}_batches"


CASES = (Case(2, 2), Case(2, 5), Case(10, 2), Case(10, 5))


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def figures(
    level: LevelResult, deadline_s: float, capacity: float, before: ServerSnapshot, after: ServerSnapshot
) -> dict[str, Any]:
    """Goodput, how fast refusals came back, and whether the requests the server took on made it in time.

    A request counts as accepted unless the server refused it (RESOURCE_EXHAUSTED); an accepted request
    that missed its deadline comes back DEADLINE_EXCEEDED at the deadline (the client's timeout).
    """
    deadline_ms = deadline_s * 1000
    in_time = [ms for ms in level.ok_latencies_ms if ms <= deadline_ms]
    refused = level.error_latencies_by_code_ms.get(REFUSED, [])
    not_answered = level.error_latencies_ms  # every request that got no result, whatever the reason
    accepted = level.ok_latencies_ms + [
        ms for code, latencies in level.error_latencies_by_code_ms.items() if code != REFUSED for ms in latencies
    ]
    goodput = len(in_time) / level.duration_s
    return {
        "rate": round(level.rate or 0.0, 2),
        "deadline_ms": round(deadline_ms, 1),
        "goodput_per_s": round(goodput, 2),
        "goodput_over_capacity": round(goodput / capacity, 3),
        "answered_in_time": len(in_time),
        "refused_early": len(refused),
        "accepted_but_late": len(accepted) - len(in_time),
        "errors": dict(level.errors),
        "refused_median_ms": _round(statistics.median(not_answered) if not_answered else None),
        "accepted_p99_ms": _round(_percentile(accepted, 99)),
        "accepted_p99_within_deadline": bool(accepted) and _percentile(accepted, 99) <= deadline_ms,
        # Where the goodput went: batches smaller than at capacity, or each batch slower (the CPU that
        # receiving and refusing the excess takes from the model, on a machine shared with the load client).
        "computed": int(after.batch_size_sum - before.batch_size_sum),
        "server_mean_batch_size": _round(after.mean_batch_size_since(before)),
        "server_mean_batch_seconds": _round(after.mean_batch_seconds_since(before)),
    }


def run_goodput(
    version_dir: Path,
    model: str,
    workload: Workload,
    batching_flags: Sequence[str],
    *,
    duration_s: float,
    warmup_s: float,
    cases: Sequence[Case] = CASES,
) -> dict[str, Any]:
    """Every case on the server without and with deadline-aware admission; the report's `cases` section."""
    with our_server(version_dir.parent, model, *batching_flags, "--refuse_unmeetable_deadlines=false") as before, \
            our_server(version_dir.parent, model, *batching_flags) as after:
        _log(f"goodput: capacity at c={CAPACITY_CLIENTS}")
        snapshot = scrape(after.metrics_url)
        level = server_block(after.target, workload, CAPACITY_CLIENTS, duration_s, max(warmup_s, 5))
        capacity = level.requests_per_s
        at_capacity = scrape(after.metrics_url)
        batch_size = at_capacity.mean_batch_size_since(snapshot) or 1.0
        batch_s = batch_size / level.images_per_s
        _log(f"goodput: capacity {capacity:.2f} requests/s, batches of {batch_size:.1f} every {batch_s:.3f} s")
        report: dict[str, Any] = {
            "capacity_requests_per_s": round(capacity, 3),
            "capacity_c32": level.summary(),
            "batch_seconds": round(batch_s, 4),
            "server_mean_batch_size": _round(batch_size),
            "server_mean_batch_seconds": _round(at_capacity.mean_batch_seconds_since(snapshot)),
            "window_s": duration_s,
            "load_before_window": "the same rate, unmeasured, for one deadline",
            "load_after_window": "the same rate, unmeasured, for one deadline",
            "cases": {},
        }
        servers = {"before": before, "after": after}
        for index, case in enumerate(cases):
            deadline_s = case.deadline_batches * batch_s
            rate = case.load * capacity
            order = ("before", "after") if index % 2 == 0 else ("after", "before")
            results = {}
            for side in order:
                _log(f"goodput {case.name} ({rate:.1f}/s, {deadline_s:.2f} s deadlines): {side}")
                start = scrape(servers[side].metrics_url)
                level = uvloop.run(deadline_open_loop(servers[side].target, workload, rate, duration_s, deadline_s))
                results[side] = figures(level, deadline_s, capacity, start, scrape(servers[side].metrics_url))
                time.sleep(batch_s)  # the last accepted batch finishes before the other side starts
            report["cases"][case.name] = {"before": results["before"], "after": results["after"]}
        return report


def print_cases(report: dict[str, Any]) -> None:
    print(
        f"capacity {report['capacity_requests_per_s']:.2f} requests/s at c={CAPACITY_CLIENTS}, "
        f"batch time {report['batch_seconds']:.3f} s (server: batches of {_text(report['server_mean_batch_size'])}, "
        f"{_text(report['server_mean_batch_seconds'], 3)} s each)"
    )
    _print_sides(report, (
        ("goodput/s", lambda f: f"{f['goodput_per_s']:.2f}"),
        ("÷ cap", lambda f: f"{f['goodput_over_capacity']:.3f}"),
        ("refused", lambda f: str(f["refused_early"])),
        ("late", lambda f: str(f["accepted_but_late"])),
        ("refused p50 ms", lambda f: _text(f["refused_median_ms"])),
        ("accepted p99 ms", lambda f: _text(f["accepted_p99_ms"])),
        ("deadline ms", lambda f: f"{f['deadline_ms']:.1f}"),
        ("batch", lambda f: _text(f["server_mean_batch_size"])),
        ("batch s", lambda f: _text(f["server_mean_batch_seconds"], 3)),
    ))


def _print_sides(report: dict[str, Any], columns: Sequence[tuple[str, Any]]) -> None:
    """One line per case and side (before, after), a right-aligned column per (header, formatter)."""
    widths = [max(len(header), 7) for header, _ in columns]
    print(f"{'case':38s} {'side':6s} " + " ".join(f"{h:>{w}s}" for (h, _), w in zip(columns, widths)))
    for name, sides in report["cases"].items():
        for side in ("before", "after"):
            cells = (fmt(sides[side]) for _, fmt in columns)
            print(f"{name:38s} {side:6s} " + " ".join(f"{c:>{w}s}" for c, w in zip(cells, widths)))


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _text(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# The batch-time curve of Inception-v3 on a 2-core CPU (seconds for a batch of n: about 70 ms alone, 0.49 s
# for 16), for the in-process run below.
INCEPTION_CPU_BATCH_SECONDS = (0.042, 0.028)


def simulate(
    cases: Sequence[Case] = CASES,
    *,
    max_batch_size: int = 16,
    batch_seconds: tuple[float, float] = INCEPTION_CPU_BATCH_SECONDS,
    duration_s: float = 8.0,
    warmup_s: float = 1.0,
) -> dict[str, Any]:
    """The same cases against the batcher alone, in this process, with a model that sleeps for the batch
    times of ``batch_seconds`` (fixed + per image): the policy's own goodput, with no CPU taken from the
    model by receiving and refusing requests. Needs neither TensorFlow nor a server."""
    fixed, per_item = batch_seconds
    batch_s = fixed + per_item * max_batch_size
    capacity = max_batch_size / batch_s
    report: dict[str, Any] = {
        "model": f"sleeps {fixed:g} s + {per_item:g} s per image",
        "max_batch_size": max_batch_size,
        "capacity_requests_per_s": round(capacity, 3),
        "batch_seconds": round(batch_s, 4),
        "cases": {},
    }
    for case in cases:
        sides = {}
        for side, policy in (("before", DeadlinePolicy(enabled=False)), ("after", DeadlinePolicy())):
            outcomes = asyncio.run(
                _batcher_open_loop(
                    policy, max_batch_size, fixed, per_item, case.load * capacity,
                    case.deadline_batches * batch_s, duration_s, warmup_s,
                )
            )
            sides[side] = _simulated_figures(outcomes, case.deadline_batches * batch_s, capacity, duration_s)
        report["cases"][case.name] = sides
    return report


async def _batcher_open_loop(
    policy: DeadlinePolicy, max_batch_size: int, fixed: float, per_item: float, rate: float, deadline_s: float,
    duration_s: float, warmup_s: float,
) -> list[tuple[bool, float, str]]:
    """(measured, seconds to answer, "in_time", "refused" or "late") per request."""

    def model(items: Sequence[int], padded_size: int) -> list[int]:
        time.sleep(fixed + per_item * len(items))
        return list(items)

    parameters = BatchingParameters(max_batch_size=max_batch_size, max_enqueued_batches=64)
    outcomes: list[tuple[bool, float, str]] = []
    async with Batcher(model, parameters, deadline_policy=policy) as batcher:
        for _ in range(3):  # every batch size measured once the load starts, as a warmed-up server would be
            await batcher.submit(list(range(max_batch_size)))
        loop = asyncio.get_running_loop()

        async def one(index: int, measured: bool) -> None:
            sent = loop.time()
            try:
                await batcher.submit([index], deadline=sent + deadline_s)
                outcome = "in_time" if loop.time() <= sent + deadline_s else "late"
            except (UnmeetableDeadlineError, QueueFullError):
                outcome = "refused"
            except Exception:  # the deadline passed while it was queued or running
                outcome = "late"
            outcomes.append((measured, loop.time() - sent, outcome))

        start = loop.time()
        tasks = []
        for index in range(int(rate * (warmup_s + duration_s))):
            scheduled = start + index / rate
            if scheduled > loop.time():
                await asyncio.sleep(scheduled - loop.time())
            tasks.append(asyncio.ensure_future(one(index, scheduled >= start + warmup_s)))
        await asyncio.gather(*tasks)
    return outcomes


def _simulated_figures(
    outcomes: list[tuple[bool, float, str]], deadline_s: float, capacity: float, duration_s: float
) -> dict[str, Any]:
    measured = [(seconds, outcome) for kept, seconds, outcome in outcomes if kept]
    good = sum(1 for _, outcome in measured if outcome == "in_time")
    not_answered = [seconds * 1000 for seconds, outcome in measured if outcome != "in_time"]
    return {
        "deadline_ms": round(deadline_s * 1000, 1),
        "goodput_per_s": round(good / duration_s, 2),
        "goodput_over_capacity": round(good / duration_s / capacity, 3),
        "refused_early": sum(1 for _, outcome in measured if outcome == "refused"),
        "accepted_but_late": sum(1 for _, outcome in measured if outcome == "late"),
        "refused_median_ms": _round(statistics.median(not_answered) if not_answered else None),
    }


def print_simulated(report: dict[str, Any]) -> None:
    print(
        f"batcher alone, model {report['model']}: capacity {report['capacity_requests_per_s']:.2f}/s, "
        f"batch time {report['batch_seconds']:.3f} s"
    )
    _print_sides(report, (
        ("÷ cap", lambda f: f"{f['goodput_over_capacity']:.3f}"),
        ("refused", lambda f: str(f["refused_early"])),
        ("late", lambda f: str(f["accepted_but_late"])),
        ("refused p50 ms", lambda f: _text(f["refused_median_ms"])),
    ))
