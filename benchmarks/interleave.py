"""Goal figures that survive a drifting machine: both sides of a comparison measured in alternating blocks.

This VM's speed drifts by several percent within minutes (±5 ms at 80 ms per Inception call), as much as
some goals' margins. Measuring one side, then the other minutes later, puts that drift into the ratio. So
each comparison alternates short blocks of its two sides for a few rounds and reports every round and the
median of the per-round ratios (or differences).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable, Literal

import uvloop

from .load import LevelResult, Workload, closed_loop


@dataclass(frozen=True)
class Comparison:
    """`candidate` against `baseline`, one value of each per round."""

    baseline: list[float]
    candidate: list[float]
    kind: Literal["ratio", "difference"]

    @property
    def per_round(self) -> list[float]:
        if self.kind == "ratio":
            return [c / b if b else float("nan") for b, c in zip(self.baseline, self.candidate)]
        return [c - b for b, c in zip(self.baseline, self.candidate)]

    @property
    def median(self) -> float:
        return float(statistics.median(self.per_round))

    def summary(self) -> dict[str, object]:
        return {
            "rounds": len(self.baseline),
            "baseline": [round(v, 3) for v in self.baseline],
            "candidate": [round(v, 3) for v in self.candidate],
            self.kind: [round(v, 3) for v in self.per_round],
            f"median_{self.kind}": round(self.median, 3),
        }


def alternate(
    baseline: Callable[[], float], candidate: Callable[[], float], rounds: int, kind: Literal["ratio", "difference"]
) -> Comparison:
    """Run both sides `rounds` times, in ABBA order (baseline first in even rounds, candidate first in odd
    ones), so a steady drift or a side that always runs second does not bias the comparison; each returns
    the figure of one block."""
    baseline_values: list[float] = []
    candidate_values: list[float] = []
    for round_index in range(rounds):
        if round_index % 2:
            candidate_values.append(candidate())
            baseline_values.append(baseline())
        else:
            baseline_values.append(baseline())
            candidate_values.append(candidate())
    return Comparison(baseline_values, candidate_values, kind)


def server_block(target: str, workload: Workload, concurrency: int, seconds: float, warmup: float) -> LevelResult:
    """One closed-loop block against a server (its own event loop: callable from synchronous code)."""
    return uvloop.run(closed_loop(target, workload, concurrency, seconds, warmup))
