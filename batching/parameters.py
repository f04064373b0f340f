"""Batching knobs, named and checked as in TensorFlow Serving's batching config."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchingParameters"]


def _require_int(field_name: str, value: Any, *, minimum: int) -> None:
    # bool is an int subclass; `max_batch_size=True` is a bug, not a batch size of 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field_name} must be an int, got {type(value).__name__}")
    if value < minimum:
        bound = "> 0" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{field_name} must be {bound}, got {value}")


@dataclass(frozen=True)
class BatchingParameters:
    """How a :class:`~batching.Batcher` groups items into batches.

    Field names match TF Serving's ``BatchingParameters`` so its tuning guide applies:

    - ``max_batch_size``: most items in one call of the model.
    - ``batch_timeout_micros``: in strict mode, how long the oldest queued item may wait for
      the batch to fill before it is closed anyway.
    - ``max_enqueued_batches``: queue bound in batches; beyond ``max_enqueued_items`` items
      requests are refused at once instead of queueing unbounded latency.
    - ``num_batch_threads``: how many batches may run at the same time.
    - ``allowed_batch_sizes``: sizes the model is compiled for; the model is told to pad each
      batch to the smallest allowed size that fits. Empty means any size.
    - ``dispatch_when_idle`` (our extension): when a batch thread is free, run whatever is
      queued now instead of waiting for the timeout, so an idle model adds no latency.
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 64
    num_batch_threads: int = 1
    allowed_batch_sizes: tuple[int, ...] = ()
    dispatch_when_idle: bool = True

    def __post_init__(self) -> None:
        _require_int("max_batch_size", self.max_batch_size, minimum=1)
        _require_int("batch_timeout_micros", self.batch_timeout_micros, minimum=0)
        _require_int("max_enqueued_batches", self.max_enqueued_batches, minimum=1)
        _require_int("num_batch_threads", self.num_batch_threads, minimum=1)
        if not isinstance(self.dispatch_when_idle, bool):
            raise TypeError(
                f"dispatch_when_idle must be a bool, got {type(self.dispatch_when_idle).__name__}"
            )
        if isinstance(self.allowed_batch_sizes, (str, bytes)):
            raise TypeError("allowed_batch_sizes must be a sequence of ints")
        sizes = tuple(self.allowed_batch_sizes)
        # Frozen dataclass: normalising a list to a tuple keeps instances hashable.
        object.__setattr__(self, "allowed_batch_sizes", sizes)
        for size in sizes:
            _require_int("allowed_batch_sizes element", size, minimum=1)
        if any(later <= earlier for earlier, later in zip(sizes, sizes[1:])):
            raise ValueError(f"allowed_batch_sizes must be strictly increasing, got {list(sizes)}")
        if sizes and sizes[-1] != self.max_batch_size:
            raise ValueError(
                f"allowed_batch_sizes must end with max_batch_size ({self.max_batch_size}), "
                f"got {list(sizes)}"
            )

    @property
    def batch_timeout_seconds(self) -> float:
        """``batch_timeout_micros`` in the unit of ``loop.time()``."""
        return self.batch_timeout_micros / 1_000_000

    @property
    def max_enqueued_items(self) -> int:
        """Queue bound in items: TF Serving bounds batches, our queue holds items."""
        return self.max_enqueued_batches * self.max_batch_size

    def padded_size(self, n: int) -> int:
        """Size the model should pad a batch of ``n`` items to (``n`` if any size is allowed)."""
        if n < 1 or n > self.max_batch_size:
            raise ValueError(f"batch size must be in 1..{self.max_batch_size}, got {n}")
        if not self.allowed_batch_sizes:
            return n
        return self.allowed_batch_sizes[bisect.bisect_left(self.allowed_batch_sizes, n)]

    @classmethod
    def unbatched(cls, *, num_batch_threads: int = 1, max_enqueued_batches: int = 64) -> BatchingParameters:
        """Parameters for batching disabled: every item runs alone, at once."""
        return cls(
            max_batch_size=1,
            batch_timeout_micros=0,
            max_enqueued_batches=max_enqueued_batches,
            num_batch_threads=num_batch_threads,
            allowed_batch_sizes=(),
        )
