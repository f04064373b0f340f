"""`--max_batch_size=auto`: the batch size chosen by timing the model, not by guessing.

A network's throughput against batch size is not monotonic on a CPU (cache sizes, thread pools): Inception-v3
runs faster per image at 32 than at 16 on one machine and slower on another, and a user has no way to know.
So during warm-up the server times the model at a ladder of batch sizes and keeps the one with the best
throughput whose batch time fits the latency budget. TensorFlow-free: the model call is a function given in.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

LADDER = (1, 2, 4, 8, 16, 32, 64, 128)
# Throughputs within this fraction of the best count as equal, and the smallest of them wins: it delivers the
# same items per second (a 3% difference is timing noise on a shared CPU) in a shorter batch, so a request
# under load waits less for its batch, and a backlog larger than the bound is served in full batches of one
# shape while the next one fills. A bound larger than the backlog lets batches take whatever sizes the
# arrivals give (31 and 1, 25 and 7): on a 2-core CPU serving Inception-v3 to 32 clients, tied choices of 64
# and 128 delivered 1-4% less than a fixed 16, while choices of 8 to 32 matched the best fixed size.
TIE = 0.03


@dataclass(frozen=True)
class BatchSizePoint:
    batch_size: int
    seconds_per_batch: float  # median of the timed runs

    @property
    def items_per_second(self) -> float:
        return self.batch_size / self.seconds_per_batch


@dataclass(frozen=True)
class BatchSizeChoice:
    batch_size: int
    curve: tuple[BatchSizePoint, ...]
    reason: str

    def describe(self) -> str:
        points = ", ".join(f"{p.batch_size}: {p.items_per_second:.1f}/s ({p.seconds_per_batch * 1e3:.0f} ms)"
                           for p in self.curve)
        return f"max_batch_size {self.batch_size} ({self.reason}); measured {points}"


def choose_batch_size(
    run_batch: Callable[[int], None],
    *,
    ladder: Sequence[int] = LADDER,
    latency_budget_seconds: float = 0.0,
    runs_per_size: int = 3,
    min_seconds_per_size: float = 0.2,
    clock: Callable[[], float] = time.perf_counter,
) -> BatchSizeChoice:
    """Time `run_batch(size)` up the ladder (one untimed run per size, then at least `runs_per_size` runs and
    `min_seconds_per_size`); stop climbing once a size's batch time exceeds the budget, or throughput has
    fallen for two sizes in a row. Returns the smallest size within TIE of the best throughput."""
    curve: list[BatchSizePoint] = []
    falling = 0
    for size in ladder:
        run_batch(size)  # the first run of a size pays for allocation and tracing
        times: list[float] = []
        started = clock()
        while len(times) < runs_per_size or clock() - started < min_seconds_per_size:
            begin = clock()
            run_batch(size)
            times.append(clock() - begin)
        point = BatchSizePoint(size, statistics.median(times))
        if latency_budget_seconds and point.seconds_per_batch > latency_budget_seconds:
            if not curve:  # even one item is over budget: serve one at a time
                curve.append(point)
            break
        if curve and point.items_per_second < max(p.items_per_second for p in curve):
            falling += 1
        else:
            falling = 0
        curve.append(point)
        if falling == 2:
            break
    best = max(p.items_per_second for p in curve)
    chosen = min(p.batch_size for p in curve if p.items_per_second >= best * (1 - TIE))
    budget = f"within {latency_budget_seconds * 1e3:g} ms per batch" if latency_budget_seconds else "no latency budget"
    return BatchSizeChoice(chosen, tuple(curve), f"best throughput, {budget}")
