"""Figures that survive a drifting machine: both sides of a comparison measured in alternating blocks.

This VM's speed drifts by several percent within minutes (±5 ms at 80 ms per Inception call), as much as
the differences worth knowing. Measuring one side, then the other minutes later, puts that drift into the
ratio. So each comparison alternates short blocks of its two sides for a few rounds and reports every round
and the median of the per-round ratios (or differences).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable, Literal

import uvloop

from benchmarks.load import LevelResult, Workload, closed_loop


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

    @property
    def difference_of_medians(self) -> float:
        """median(candidate) − median(baseline): e.g. a lone request's p50 against the in-process call's."""
        return float(statistics.median(self.candidate) - statistics.median(self.baseline))

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
    return paired(lambda _: baseline(), lambda _: candidate(), rounds, kind=kind)


def paired(
    baseline: Callable[[int], float],
    candidate: Callable[[int], float],
    pairs: int,
    warmup_pairs: int = 0,
    kind: Literal["ratio", "difference"] = "difference",
) -> Comparison:
    """One measurement of each side per pair, both on input `index`, in ABBA order; `warmup_pairs` first,
    not kept. For small differences of latency: blocks of a few seconds each drift by more than the
    difference sought (±5 ms at 80 ms), while the two halves of a pair are a fraction of a second apart and
    see the same input (the corpus' JPEGs differ in size, so in decode time)."""
    baseline_values: list[float] = []
    candidate_values: list[float] = []
    for index in range(-warmup_pairs, pairs):
        if index % 2:
            candidate_value = candidate(index)
            baseline_value = baseline(index)
        else:
            baseline_value = baseline(index)
            candidate_value = candidate(index)
        if index >= 0:
            baseline_values.append(baseline_value)
            candidate_values.append(candidate_value)
    return Comparison(baseline_values, candidate_values, kind)


def server_block(target: str, workload: Workload, concurrency: int, seconds: float, warmup: float) -> LevelResult:
    """One closed-loop block against a server (its own event loop: callable from synchronous code)."""
    return uvloop.run(closed_loop(target, workload, concurrency, seconds, warmup))
