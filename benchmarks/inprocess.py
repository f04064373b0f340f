"""The in-process limit: the exported model's own `predict_images` signature (decode, resize, network) run
directly in this process, no server, at several batch sizes. Every server figure is reported against it."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class InProcessLevel:
    batch_size: int
    images_per_s: float
    p50_batch_ms: float


@dataclass(frozen=True)
class InProcessResult:
    levels: tuple[InProcessLevel, ...]

    @property
    def best(self) -> InProcessLevel:
        return max(self.levels, key=lambda level: level.images_per_s)

    def at(self, batch_size: int) -> InProcessLevel | None:
        return next((level for level in self.levels if level.batch_size == batch_size), None)

    def summary(self) -> dict[str, object]:
        return {
            "levels": [
                {"batch_size": l.batch_size, "images_per_s": round(l.images_per_s, 2), "p50_batch_ms": round(l.p50_batch_ms, 2)}
                for l in self.levels
            ],
            "best_batch_size": self.best.batch_size,
            "best_images_per_s": round(self.best.images_per_s, 2),
        }


class InProcessModel:
    """The exported model loaded once in this process, measurable again and again (see benchmarks/interleave.py)."""

    def __init__(self, version_dir: Path, images: Sequence[bytes]) -> None:
        import tensorflow as tf

        self._tf = tf
        self._predict = tf.saved_model.load(str(version_dir)).signatures["predict_images"]
        self._images = list(images)
        self._warm: set[int] = set()
        self._singles: dict[int, object] = {}

    def measure(
        self, batch_size: int, seconds: float, on_tick: Callable[[float], None] | None = None
    ) -> InProcessLevel:
        """Back-to-back `predict_images` calls of `batch_size` images for `seconds` (at least 3 calls)."""
        images = self._images
        batches = itertools.cycle(
            [self._tf.constant([images[(start + i) % len(images)] for i in range(batch_size)])
             for start in range(0, len(images), batch_size)]
        )
        self._warm_up(batch_size, batches)
        durations = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds or len(durations) < 3:
            durations.append(self._timed_call(next(batches)))
            if on_tick:
                on_tick(durations[-1])
        return InProcessLevel(
            batch_size=batch_size,
            images_per_s=batch_size * len(durations) / sum(durations),
            p50_batch_ms=float(np.median(durations) * 1000),
        )

    def time_one(self, index: int) -> float:
        """Milliseconds of one batch-1 `predict_images` call on image `index` (the corpus cycled): one half
        of a pair in `interleave.paired`, the server answering the same image being the other."""
        index %= len(self._images)
        single = self._singles.get(index)
        if single is None:
            single = self._singles[index] = self._tf.constant([self._images[index]])
        self._warm_up(1, itertools.repeat(single))
        return self._timed_call(single) * 1000.0

    def _warm_up(self, batch_size: int, batches: Iterator[Any]) -> None:
        """The first calls at a batch size set up kernels for its shape: make them once, untimed."""
        if batch_size not in self._warm:
            for _ in range(2):
                self._timed_call(next(batches))
            self._warm.add(batch_size)

    def _timed_call(self, batch: Any) -> float:
        """Seconds of one `predict_images` call, its outputs fetched."""
        started = time.perf_counter()
        self._predict(images=batch)["scores"].numpy()
        return time.perf_counter() - started

    def table(
        self, batch_sizes: Sequence[int], seconds_per_size: float, on_tick: Callable[[float], None] | None = None
    ) -> InProcessResult:
        """One `measure` per batch size: the in-process table every report prints."""
        return InProcessResult(levels=tuple(self.measure(size, seconds_per_size, on_tick) for size in batch_sizes))


def measure_in_process(
    version_dir: Path,
    images: Sequence[bytes],
    batch_sizes: Sequence[int] = (1, 8, 16, 32),
    seconds_per_size: float = 6.0,
    on_tick: Callable[[float], None] | None = None,
) -> InProcessResult:
    return InProcessModel(version_dir, images).table(batch_sizes, seconds_per_size, on_tick)
