"""Deadline-aware admission: predict when a request would finish, from batch times measured as the model runs.

Under overload a bounded queue alone lets the server spend its time on batches whose callers have already
given up (goodput collapses to a fraction of capacity). Refusing at once what cannot finish in time, and
never starting an item that cannot, keeps the hardware on answers that count (the idea of Clockwork, OSDI
2020). Everything here is pure arithmetic on numbers the batcher hands in, so it is tested without a model.
"""

from __future__ import annotations

import bisect
import heapq
import statistics
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["BatchTimeEstimator", "DeadlinePolicy", "predicted_finish"]


@dataclass(frozen=True)
class DeadlinePolicy:
    """How the batcher judges requests that carry a deadline (requests without one are never judged).

    - ``enabled``: refuse on arrival what is predicted to finish after its deadline, and drop at batch
      formation an item with less time left than the slowest recent batch of that size (with headroom).
    - ``headroom``: the prediction is stretched by this fraction before it is compared with the deadline,
      so batch-time jitter and the answer's own trip back do not turn accepted requests into late ones.
    - ``window``: batch times remembered per batch size; the estimate is their median, or the latest
      batch's time if that was slower: a model that slows down (a neighbour taking the CPU, a request storm)
      is followed from the next batch on, one that speeds up within ``window // 2 + 1`` batches.
    """

    enabled: bool = True
    headroom: float = 0.1
    window: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise TypeError(f"enabled must be a bool, got {type(self.enabled).__name__}")
        if not self.headroom >= 0:  # also refuses nan
            raise ValueError(f"headroom must be >= 0, got {self.headroom}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be an int >= 1, got {self.window!r}")

    def stretched(self, seconds: float) -> float:
        return seconds * (1.0 + self.headroom)


class BatchTimeEstimator:
    """Seconds a batch of a given (padded) size takes, learned from the batches that ran.

    Per size it keeps the last ``window`` durations. ``estimate`` is their median, or the latest duration
    when that is longer: erring slow keeps accepted requests on time when the model slows, at the price of
    one batch's caution after a lone slow batch. ``slowest`` is the longest of them: how long a batch may
    take as the machine jitters now. The first batch of each size is not kept: it carries one-time costs
    (graph set-up, allocation) that later batches do not. A size never measured is interpolated linearly
    between its measured neighbours, or scaled in proportion to the nearest measured size outside them.
    With nothing measured yet both answer None: the caller then accepts.
    """

    def __init__(self, window: int = 5) -> None:
        self._window = window
        self._times: dict[int, deque[float]] = {}
        self._seen: set[int] = set()
        self._sizes: list[int] = []  # measured sizes, sorted
        self._typical: dict[int, float] = {}
        self._slowest: dict[int, float] = {}

    def record(self, size: int, seconds: float) -> None:
        if size not in self._seen:
            self._seen.add(size)  # the first batch of a size warms it up; it is not representative
            return
        times = self._times.get(size)
        if times is None:
            times = self._times[size] = deque(maxlen=self._window)
            bisect.insort(self._sizes, size)
        times.append(seconds)
        self._typical[size] = max(statistics.median(times), seconds)
        self._slowest[size] = max(times)

    @property
    def measured(self) -> bool:
        return bool(self._sizes)

    def estimate(self, size: int) -> float | None:
        """Expected seconds for a batch of ``size``; None while nothing has been measured."""
        return self._lookup(self._typical, size)

    def slowest(self, size: int) -> float | None:
        """The longest of the recent batches of ``size`` (interpolated like ``estimate``)."""
        return self._lookup(self._slowest, size)

    def _lookup(self, by_size: dict[int, float], size: int) -> float | None:
        sizes = self._sizes
        if not sizes:
            return None
        known = by_size.get(size)
        if known is not None:
            return known
        right = bisect.bisect_left(sizes, size)
        if right == 0:
            nearest = sizes[0]
        elif right == len(sizes):
            nearest = sizes[-1]
        else:
            low, high = sizes[right - 1], sizes[right]
            fraction = (size - low) / (high - low)
            return by_size[low] + fraction * (by_size[high] - by_size[low])
        return by_size[nearest] * size / nearest


def predicted_finish(
    now: float,
    estimator: BatchTimeEstimator,
    *,
    ahead: int,
    count: int,
    max_batch_size: int,
    threads: int,
    running: Iterable[tuple[float, int]],
    typical_batch_size: float,
    padded_size: Callable[[int], int] = int,
    partial_batch_wait: float = 0.0,
) -> float | None:
    """When the last of ``count`` new items would finish, behind ``ahead`` items already queued; None when
    there is no measurement to predict from.

    Batches form FIFO, ``max_batch_size`` at a time, on ``threads`` threads; ``running`` holds (start time,
    padded size) of the batches in progress. The batch holding the request's last item is taken as large as
    batches have lately been (``typical_batch_size``) unless it would start at once with only what is
    queued: while the model is busy, items arriving behind this request join that batch and lengthen it.
    In strict batching a partial batch also waits ``partial_batch_wait`` for its timeout.
    """
    if not estimator.measured:
        return None
    free_at = [max(now, started + (estimator.estimate(size) or 0.0)) for started, size in running]
    free_at.extend([now] * max(threads - len(free_at), 0))
    heapq.heapify(free_at)
    full, rest = divmod(ahead + count, max_batch_size)
    sizes = [max_batch_size] * full
    if rest:
        starts_now = full == 0 and free_at[0] <= now
        if not starts_now:
            rest = max(rest, min(max_batch_size, round(typical_batch_size)))
        sizes.append(rest)
    finish = now
    for size in sizes:
        seconds = estimator.estimate(padded_size(size)) or 0.0
        if size < max_batch_size:
            seconds += partial_batch_wait
        finish = heapq.heappop(free_at) + seconds
        heapq.heappush(free_at, finish)
    return finish
