"""The dynamic batcher: a bounded item queue in front of a batch function run on a thread pool."""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from .deadlines import BatchTimeEstimator, DeadlinePolicy, predicted_finish
from .errors import (
    BatcherClosedError,
    BatchTimeoutError,
    DeadlineExceededError,
    ItemError,
    QueueFullError,
    UnmeetableDeadlineError,
)
from .listener import HOOKS, BatchInfo, BatchListener
from .parameters import BatchingParameters

__all__ = ["Batcher", "Reservation"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# asyncio may run a call_at() timer up to one clock tick early; treat such a wake-up as on time
# instead of re-arming the timer for a deadline that is, for practical purposes, now.
_CLOCK_TOLERANCE = time.get_clock_info("monotonic").resolution
# A server framework may enforce the same deadline by cancelling the caller a moment before our own
# timer fires (gRPC does); a cancellation this close to the deadline is counted as the deadline's.
_DEADLINE_CANCEL_SLACK = 0.05
# How fast the typical batch size (what deadline admission expects a busy model's next batch to hold)
# follows the sizes formed lately: the weight of the newest batch.
_TYPICAL_SIZE_WEIGHT = 0.2


class _ItemState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DROPPED = "dropped"  # cancelled, expired or failed before it ran: never given to run_batch


class _Request(Generic[R]):
    """One submit() call: its caller waits on ``future`` for all items to settle."""

    __slots__ = ("future", "items", "results", "unsettled", "failure", "deadline", "context", "judged")

    def __init__(
        self, future: asyncio.Future[list[R]], size: int, deadline: float | None, context: object, judged: bool
    ) -> None:
        self.future = future
        self.items: list[_Item] = []
        self.results: list[Any] = [None] * size
        self.unsettled = size  # items still queued or running
        self.failure: ItemError | None = None  # lowest failing index seen so far
        self.deadline = deadline
        self.context = context  # opaque to the batcher; handed to the listener with each item
        # Whether its deadline is weighed against batch times when its batch forms: never for a request
        # without a deadline or one accepted on an idle model (see Batcher._check_deadline).
        self.judged = judged


class _Item:
    # enqueued_at is loop time (schedules timeouts); enqueued_perf is perf_counter (measures waits:
    # uvloop's clock only moves in whole milliseconds, too coarse for queue-wait histograms).
    __slots__ = ("value", "request", "index", "enqueued_at", "enqueued_perf", "state")

    def __init__(
        self, value: Any, request: _Request[Any], index: int, enqueued_at: float, enqueued_perf: float
    ) -> None:
        self.value = value
        self.request = request
        self.index = index
        self.enqueued_at = enqueued_at
        self.enqueued_perf = enqueued_perf
        self.state = _ItemState.QUEUED


class Batcher(Generic[T, R]):
    """Groups items from concurrent requests into batches for ``run_batch``.

    Contract:

    - ``submit(items)`` enqueues all of a request's items at once or refuses the request at
      once (``QueueFullError``) when the queue would exceed
      ``parameters.max_enqueued_items``: overload is answered fast instead of queued.
    - Items leave the queue FIFO. A batch holds 1 to ``max_batch_size`` items, never 0, and a
      request's items may span several batches. At most ``num_batch_threads`` batches run at
      once; each runs as ``run_batch(items, padded_size)`` in this batcher's thread pool, off
      the event loop.
    - When a batch is dispatched (a batch thread must be free in every case):

      * strict mode (``dispatch_when_idle=False``, TF Serving's rule): when it is full, or
        when its oldest item has waited ``batch_timeout_micros``; items enqueued after that
        moment go to the next batch.
      * adaptive mode (``dispatch_when_idle=True``): as soon as a thread is free, with up to
        ``max_batch_size`` of the items waiting then. An idle model never waits for a batch
        that is not coming; batches grow only while the model is busy, so the timeout does
        not delay anything in this mode.
      * after ``close()``: at once, since no more items can arrive.

    - ``run_batch`` must return a sequence with one entry per item, in order: a result, or an
      ``Exception`` instance that fails that item alone. If it raises, every item of that
      batch fails with the exception; if it returns the wrong number of entries, every item
      fails with a ``RuntimeError``. Other batches are unaffected either way.
    - With ``execution_timeout`` (seconds), a batch whose ``run_batch`` has not returned by
      then fails its items with ``BatchTimeoutError`` at once, so their callers are answered.
      A thread cannot be interrupted, so the call keeps its batch thread (and counts in
      ``running_batches``) until it returns; its late result is discarded.
    - A request succeeds with one result per item, in item order, or fails as a whole:
      ``ItemError(index, cause)`` for its lowest failing index (its items still queued are
      dropped, never computed), ``DeadlineExceededError`` when ``deadline`` passes first
      (queued items are dropped), or ``BatcherClosedError``. If the caller is cancelled, its
      queued items are dropped.
    - Deadlines (``deadline_policy``, on by default): a request with a deadline that is predicted
      to finish after it (the work queued and running ahead, batch times measured on this
      batcher) is refused on arrival with ``UnmeetableDeadlineError``, nothing enqueued; when a
      batch forms, an item with less time left than the slowest recent batch of that size (plus
      headroom) is dropped with the same error instead of computed, and the batch is refilled
      from the queue. With no batch time measured yet, and for a request that starts at once on
      an idle model, nothing is refused. Requests without a deadline are never judged.

    All state lives on one event loop (the one running at the first ``submit``/``start``);
    the batcher is not thread-safe and must only be used from that loop.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[T], int], Sequence[R | BaseException]],
        parameters: BatchingParameters,
        *,
        name: str = "default",
        listener: BatchListener | None = None,
        execution_timeout: float | None = None,
        deadline_policy: DeadlinePolicy | None = None,
    ) -> None:
        if not callable(run_batch):
            raise TypeError("run_batch must be callable")
        if execution_timeout is not None and not execution_timeout > 0:
            raise ValueError(f"execution_timeout must be > 0 seconds or None, got {execution_timeout}")
        self._execution_timeout = execution_timeout
        if not isinstance(parameters, BatchingParameters):
            raise TypeError(f"parameters must be BatchingParameters, got {type(parameters).__name__}")
        self._run_batch = run_batch
        self._parameters = parameters
        self._name = name
        self._listener = listener if listener is not None else BatchListener()
        self._active_hooks = frozenset(hook for hook in HOOKS if self._listener.listens_to(hook))
        self._executor = ThreadPoolExecutor(
            max_workers=parameters.num_batch_threads, thread_name_prefix=f"batch-{name}"
        )
        # Dropped items stay in the deque until they reach its head or the deque is compacted
        # (removal from the middle is O(n)); _queue_depth counts only live ones.
        self._queue: deque[_Item] = deque()
        self._queue_depth = 0
        self._reserved = 0  # room held by reservations: items reserved, not yet submitted (see reserve())
        self._dropped_in_queue = 0
        self._running_batches = 0
        self._batch_ids = itertools.count(1)
        self._deadline_policy = deadline_policy if deadline_policy is not None else DeadlinePolicy()
        self._batch_times = BatchTimeEstimator(self._deadline_policy.window)
        self._running: dict[int, tuple[float, int]] = {}  # batch id -> (loop time started, padded size)
        self._running_items: dict[int, int] = {}  # batch id -> items whose callers still wait for it
        self._typical_batch_size = 1.0
        self._timed_out: set[int] = set()  # ids of running batches failed by the execution timeout
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        # Set on every change the dispatcher may act on: items enqueued, a thread freed, close.
        self._wakeup = asyncio.Event()

    # -- public API ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def parameters(self) -> BatchingParameters:
        return self._parameters

    @property
    def batch_times(self) -> BatchTimeEstimator:
        """Batch durations measured on this batcher, by padded size: what deadline admission predicts from."""
        return self._batch_times

    @property
    def queue_depth(self) -> int:
        """Live items waiting for a batch (cancelled and expired items are not counted)."""
        return self._queue_depth

    @property
    def reserved(self) -> int:
        """Items reserved: room held by reserve() for items not yet submitted. The service's data plane
        reserves room for a request's images before decoding them, so it reports this count as the backlog
        stage ``decoding``; the batcher names the mechanism, not what the caller does meanwhile."""
        return self._reserved

    def reserve(self, count: int, *, deadline: float | None = None) -> "Reservation":
        """Hold queue room for ``count`` items the caller has yet to make (the data plane decodes images
        meanwhile); they count as ``reserved`` until submitted or released.

        Admission then happens before the caller's work on the items (decoding, say), not after it:
        under overload a request is refused at once instead of after waiting for its turn at that
        work, and the work admitted is bounded by the same ``max_enqueued_items``. Use as a
        context manager and pass it to ``submit(reservation=...)``; leaving the block unused gives
        the room back. Raises ``QueueFullError``, ``UnmeetableDeadlineError`` (items reserved by
        others count as ahead of these) or ``BatcherClosedError`` like ``submit``.
        """
        if count <= 0:
            raise ValueError("reserve() needs at least one item")
        if self._closed:
            self._notify("on_rejected", count, "closed")
            raise BatcherClosedError(f"batcher {self._name!r} is closed")
        self._check_room(count)
        if deadline is not None:
            self._check_deadline(count, self._queue_depth + self._reserved, deadline)
        self._reserved += count
        return Reservation(self, count)

    def _check_room(self, count: int) -> None:
        limit = self._parameters.max_enqueued_items
        if self._queue_depth + self._reserved + count > limit:
            self._notify("on_rejected", count, "queue_full")
            reserved = f" (+{self._reserved} reserved)" if self._reserved else ""
            raise QueueFullError(
                f"batcher {self._name!r}: {self._queue_depth} of {limit} queued items{reserved}, "
                f"no room for {count} more"
            )

    def _check_deadline(self, count: int, ahead: int, deadline: float) -> bool:
        """Refuse now a request predicted to finish after ``deadline``, rather than compute it for nobody;
        return whether it is to be judged again when its batch forms.

        A request that would start at once on an idle model is never refused, then or later: refusing it
        would save no work, and running it measures the model again (an estimate inflated by one slow batch
        would otherwise refuse every request, and so never be corrected).
        """
        if not self._deadline_policy.enabled:
            return False
        parameters = self._parameters
        if ahead == 0 and len(self._running) < parameters.num_batch_threads:
            return False
        longest = self._batch_times.estimate(parameters.padded_size(parameters.max_batch_size))
        if longest is None:
            return True
        now = asyncio.get_running_loop().time()
        # Most requests have time to spare: if even the running batches, then every batch ahead and its
        # own, one after another at the largest batch's time, would finish in time, skip the prediction.
        batches = len(self._running) + -(-(ahead + count) // parameters.max_batch_size)
        partial_wait = 0.0 if parameters.dispatch_when_idle else parameters.batch_timeout_seconds
        if now + self._deadline_policy.stretched(batches * (longest + partial_wait)) <= deadline:
            return True
        finish = predicted_finish(
            now,
            self._batch_times,
            ahead=ahead,
            count=count,
            max_batch_size=parameters.max_batch_size,
            threads=parameters.num_batch_threads,
            running=self._running.values(),
            typical_batch_size=self._typical_batch_size,
            padded_size=parameters.padded_size,
            partial_batch_wait=partial_wait,
        )
        if finish is None or now + self._deadline_policy.stretched(finish - now) <= deadline:
            return True
        self._notify("on_rejected", count, "deadline_unmeetable")
        raise UnmeetableDeadlineError(
            f"batcher {self._name!r}: {count} item(s) behind {ahead} queued would take about "
            f"{finish - now:.3f} s; the deadline is in {max(deadline - now, 0.0):.3f} s"
        )

    @property
    def running_items(self) -> int:
        """Items in batches being computed whose callers still wait for them (a timed-out batch's are answered)."""
        return sum(self._running_items.values())

    @property
    def running_batches(self) -> int:
        """Batches handed to a batch thread and not yet finished."""
        return self._running_batches

    @property
    def idle(self) -> bool:
        """An item submitted now would start a batch at once, alone: nothing is queued or reserved, a
        batch thread is free and ``dispatch_when_idle`` is on. Callers use it to skip work on the
        items (decoding, say) that would otherwise overlap with a running batch (see service.dataplane)."""
        return (
            self._queue_depth == 0
            and self._reserved == 0
            and self._running_batches < self._parameters.num_batch_threads
            and self._parameters.dispatch_when_idle
            and not self._closed
        )

    def start(self) -> None:
        """Start the dispatcher on the running loop; ``submit`` does this on first use."""
        loop = asyncio.get_running_loop()
        if self._dispatcher is not None:
            if loop is not self._loop:
                raise RuntimeError(f"batcher {self._name!r} is bound to another event loop")
            return
        if self._closed:
            raise BatcherClosedError(f"batcher {self._name!r} is closed")
        self._loop = loop
        self._dispatcher = loop.create_task(self._dispatch_forever(), name=f"batcher-{self._name}")
        self._dispatcher.add_done_callback(self._on_dispatcher_exit)

    async def submit(
        self,
        items: Sequence[T],
        *,
        deadline: float | None = None,
        context: object = None,
        reservation: "Reservation | None" = None,
    ) -> list[R]:
        """Run ``items`` through the model and return their results, in order.

        ``deadline`` is an absolute ``loop.time()``. ``context`` is opaque to the batcher: it
        reaches the listener as ``BatchInfo.contexts`` for each of these items (e.g. a trace
        context, so a batch can be linked to the requests it served). Raises ``QueueFullError`` (nothing
        enqueued), ``DeadlineExceededError``, ``ItemError`` or ``BatcherClosedError``; see the
        class docstring. A request larger than ``max_enqueued_items`` can never be accepted.
        With a ``reservation`` from ``reserve(len(items))`` the room is already held.
        """
        count = len(items)
        if count == 0:
            raise ValueError("submit() needs at least one item")
        if reservation is not None:
            reservation.consume(self, count)
        if self._closed:
            self._notify("on_rejected", count, "closed")
            raise BatcherClosedError(f"batcher {self._name!r} is closed")
        self.start()
        loop = asyncio.get_running_loop()
        if reservation is None:
            self._check_room(count)
        now = loop.time()
        judged = False
        if deadline is not None:
            if deadline <= now:
                self._notify("on_rejected", count, "deadline")
                raise DeadlineExceededError("deadline passed before the request was enqueued")
            # Checked again after a reservation: making the items (decoding) took time, and the queue moved.
            ahead = self._queue_depth + (0 if reservation else self._reserved)
            judged = self._check_deadline(count, ahead, deadline)

        request: _Request[R] = _Request(loop.create_future(), count, deadline, context, judged)
        enqueued_perf = time.perf_counter()
        for index, value in enumerate(items):
            item = _Item(value, request, index, now, enqueued_perf)
            request.items.append(item)
            self._queue.append(item)
        self._queue_depth += count
        # Expire at the deadline itself, not at the next batch formation: the caller gets its
        # answer on time even while every batch thread is busy, and queue_depth stays exact.
        deadline_timer = loop.call_at(deadline, self._expire, request) if deadline is not None else None
        self._notify("on_enqueued", count, self._queue_depth)
        self._wakeup.set()
        try:
            return await request.future
        except asyncio.CancelledError:
            expired = deadline is not None and loop.time() >= deadline - _DEADLINE_CANCEL_SLACK
            self._drop_queued(request, "deadline" if expired else "cancelled")
            raise
        finally:
            if deadline_timer is not None:
                deadline_timer.cancel()

    async def close(self, *, drain: bool = True) -> None:
        """Stop accepting requests, finish (``drain``) or fail the queued ones, stop the threads.

        Batches already running always complete: a thread cannot be interrupted. Idempotent.
        """
        self._closed = True
        if not drain:
            self._fail_queued("batcher closed before the item ran")
        self._wakeup.set()
        if self._dispatcher is not None:
            # asyncio.wait, unlike awaiting the task, neither raises its exception nor cancels
            # it when our caller is cancelled.
            await asyncio.wait([self._dispatcher])
        # shutdown(wait=True) joins threads: do it off the loop.
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def __aenter__(self) -> Batcher[T, R]:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- dispatcher ----------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        """Start batches whenever a thread is free and a batch may close; sleep otherwise."""
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            wake_at: float | None = None
            if self._running_batches < self._parameters.num_batch_threads:
                now = loop.time()
                head = self._live_head(now)
                if head is not None:
                    close_at = self._batch_close_time(head)
                    if close_at <= now + _CLOCK_TOLERANCE:
                        self._start_batch(loop, head, now)
                        continue
                    wake_at = close_at
            if self._closed and self._queue_depth == 0 and self._running_batches == 0:
                return
            await self._sleep_until_woken(loop, wake_at)

    async def _sleep_until_woken(self, loop: asyncio.AbstractEventLoop, wake_at: float | None) -> None:
        timer = loop.call_at(wake_at, self._wakeup.set) if wake_at is not None else None
        try:
            await self._wakeup.wait()
        finally:
            if timer is not None:
                timer.cancel()

    def _batch_close_time(self, head: _Item) -> float:
        """When the batch starting at ``head`` may be dispatched (given a free thread)."""
        if self._parameters.dispatch_when_idle or self._closed:
            return -math.inf
        if self._queue_depth >= self._parameters.max_batch_size:
            return -math.inf
        return head.enqueued_at + self._parameters.batch_timeout_seconds

    def _live_head(self, now: float) -> _Item | None:
        """The oldest item that may still run, discarding dropped ones in front of it."""
        while self._queue:
            item = self._queue[0]
            if item.state is not _ItemState.QUEUED:
                self._queue.popleft()
                self._dropped_in_queue -= 1
                continue
            request = item.request
            if request.future.done():
                # The caller was cancelled but its except-clause has not run yet.
                self._drop_queued(request, "cancelled")
            elif request.deadline is not None and request.deadline <= now:
                # The deadline timer is due in this same loop iteration; do its work now.
                self._expire(request)
            else:
                return item
        return None

    def _start_batch(self, loop: asyncio.AbstractEventLoop, head: _Item, now: float) -> None:
        """Take the batch that starts at the live item ``head`` and hand it to a thread."""
        strict = not (self._parameters.dispatch_when_idle or self._closed)
        # Strict mode: the batch closed when its oldest item timed out; later items go to the
        # next batch even if this one is dispatched late because every thread was busy.
        window_end = head.enqueued_at + self._parameters.batch_timeout_seconds if strict else math.inf
        batch = self._take(now, window_end, self._parameters.max_batch_size)
        if self._deadline_policy.enabled and self._batch_times.measured:
            batch = self._fit_to_deadlines(batch, now, window_end)
        if not batch:  # every candidate was too late: nothing to run
            return

        started_perf = time.perf_counter()
        info = BatchInfo(
            batch_id=next(self._batch_ids),
            size=len(batch),
            padded_size=self._parameters.padded_size(len(batch)),
            queue_waits=tuple(started_perf - item.enqueued_perf for item in batch),
            contexts=tuple(item.request.context for item in batch),
        )
        self._running_batches += 1
        self._running[info.batch_id] = (now, info.padded_size)
        self._running_items[info.batch_id] = info.size
        weight = _TYPICAL_SIZE_WEIGHT
        self._typical_batch_size = (1 - weight) * self._typical_batch_size + weight * len(batch)
        self._notify("on_batch_started", info)
        started = time.perf_counter()
        values = [item.value for item in batch]
        try:
            future = loop.run_in_executor(self._executor, self._run_batch, values, info.padded_size)
        except Exception as exc:  # executor refused the work; fail the batch, keep dispatching
            future = loop.create_future()
            future.set_exception(exc)
        timer = None
        if self._execution_timeout is not None:
            timer = loop.call_later(self._execution_timeout, self._time_out_batch, batch, info)
        future.add_done_callback(functools.partial(self._finish_batch, batch, info, started, timer))

    def _take(self, now: float, window_end: float, count: int) -> list[_Item]:
        """Up to ``count`` live items from the head of the queue, marked running."""
        taken: list[_Item] = []
        while len(taken) < count:
            item = self._live_head(now)
            if item is None or item.enqueued_at > window_end:
                break
            self._queue.popleft()
            item.state = _ItemState.RUNNING
            taken.append(item)
        self._queue_depth -= len(taken)
        return taken

    def _fit_to_deadlines(self, batch: list[_Item], now: float, window_end: float) -> list[_Item]:
        """The largest batch whose items all have the time it takes; the items without it are dropped.

        Dropping the few with the least time left keeps batches large, and so the model's throughput: the
        alternative, shrinking the batch to what its tightest item allows, would slow every later batch and
        leave the next items tighter still. A dropped item could not make a later batch either (one thread:
        that batch starts after this one). Items beyond the chosen size go back to the head of the queue, and
        the room the dropped ones leave is refilled from the queue. Items without a deadline, and those
        accepted on an idle model (see ``_check_deadline``), always fit.
        """
        limit = self._parameters.max_batch_size
        while True:
            lefts = [item.request.deadline - now if item.request.judged else math.inf for item in batch]
            ordered = sorted(lefts, reverse=True)
            size = next((n for n in range(len(ordered), 0, -1) if ordered[n - 1] >= self._time_needed(n)), 0)
            needed = self._time_needed(max(size, 1))
            kept: list[_Item] = []
            extra: list[_Item] = []
            late = 0
            for item, left in zip(batch, lefts):
                if size and left >= needed:
                    (kept if len(kept) < size else extra).append(item)
                else:
                    late += 1
                    self._refuse_taken(item, left, needed)
            for item in reversed(extra):
                item.state = _ItemState.QUEUED
                self._queue.appendleft(item)
            self._queue_depth += len(extra)
            batch = kept
            if not late or extra or len(batch) == limit:
                return batch
            more = self._take(now, window_end, limit - len(batch))
            if not more:
                return batch
            batch += more

    def _refuse_taken(self, item: _Item, left: float, needed: float) -> None:
        """Drop an item taken from the queue for a batch it cannot finish in, with the rest of its request."""
        item.state = _ItemState.DROPPED
        item.value = None
        request = item.request
        request.unsettled -= 1
        self._notify("on_rejected", 1, "deadline_unmeetable_at_batch")
        self._drop_queued(request, "deadline_unmeetable_at_batch")
        if not request.future.done():
            request.future.set_exception(
                UnmeetableDeadlineError(
                    f"batcher {self._name!r}: {max(left, 0.0):.3f} s left before the deadline, "
                    f"the batch takes about {needed:.3f} s"
                )
            )

    def _time_needed(self, size: int) -> float:
        """Seconds an item must have left to be worth starting in a batch of ``size`` (once measured): the
        slowest recent batch of that size, with the policy's headroom. The last gate before the model errs
        slow, so that accepted requests finish in time at the tail (p99), not only on average."""
        slowest = self._batch_times.slowest(self._parameters.padded_size(size)) or 0.0
        return self._deadline_policy.stretched(slowest)

    def _time_out_batch(self, batch: list[_Item], info: BatchInfo) -> None:
        """The model call is stuck: answer its callers now; its thread stays busy until it returns."""
        logger.error(
            "batcher %r: batch %d (%d items) still running after %g s: failing its items; "
            "the model call keeps its batch thread until it returns",
            self._name, info.batch_id, info.size, self._execution_timeout,
        )
        self._timed_out.add(info.batch_id)
        self._running_items.pop(info.batch_id, None)  # its callers are answered now
        self._notify("on_batch_timed_out", info, self._execution_timeout)
        error = BatchTimeoutError(f"the model call did not return within {self._execution_timeout:g} s")
        for item in batch:
            self._settle(item, error)

    def _finish_batch(
        self,
        batch: list[_Item],
        info: BatchInfo,
        started: float,
        timer: asyncio.TimerHandle | None,
        future: asyncio.Future[Any],
    ) -> None:
        """Resolve each item of a returned batch with its own outcome; runs on the loop."""
        if timer is not None:
            timer.cancel()
        seconds = time.perf_counter() - started
        self._running_batches -= 1
        self._running.pop(info.batch_id, None)
        self._running_items.pop(info.batch_id, None)
        self._wakeup.set()
        error: BaseException | None
        if future.cancelled():
            error = BatcherClosedError("the batch was cancelled before it returned")
        else:
            error = future.exception()
        outcomes: Sequence[Any] = ()
        if error is None:
            try:
                outcomes = _checked_outputs(future.result(), len(batch))
            except RuntimeError as exc:
                error = exc
        timed_out = info.batch_id in self._timed_out
        self._timed_out.discard(info.batch_id)
        if error is not None:
            outcomes = [error] * len(batch)
        elif not timed_out:  # a batch that raised or hung says nothing of how long the model takes
            self._batch_times.record(info.padded_size, seconds)
        self._notify("on_batch_finished", info, seconds, error)
        if "on_finished_late" in self._active_hooks:
            now = asyncio.get_running_loop().time()
            late = sum(1 for item in batch if item.request.deadline is not None and item.request.deadline < now)
            if late:
                self._notify("on_finished_late", info, late)
        for item, outcome in zip(batch, outcomes):
            self._settle(item, outcome)

    def _on_dispatcher_exit(self, task: asyncio.Task[None]) -> None:
        """Never leave callers hanging: if the dispatcher stops early, fail what is queued."""
        if task.cancelled():
            message = "the batcher's dispatcher was cancelled"
        elif task.exception() is not None:
            logger.error("batcher %r: dispatcher failed", self._name, exc_info=task.exception())
            message = "the batcher's dispatcher failed"
        else:
            return  # normal exit after close(): nothing is queued
        self._closed = True
        self._fail_queued(message)

    # -- request bookkeeping -------------------------------------------------------------

    def _settle(self, item: _Item, outcome: Any) -> None:
        if item.state is _ItemState.DONE:  # already failed by the execution timeout
            return
        item.state = _ItemState.DONE
        request = item.request
        if request.future.done():  # cancelled, expired or closed meanwhile: result unwanted
            return
        request.unsettled -= 1
        if isinstance(outcome, BaseException):
            if request.failure is None or item.index < request.failure.index:
                request.failure = ItemError(item.index, outcome)
            # The request is lost: don't compute its remaining items. Items already running
            # are waited for, so the lowest failing index is reported, not the first to fail.
            self._drop_queued(request, "cancelled")
        else:
            request.results[item.index] = outcome
        if request.unsettled == 0:
            if request.failure is not None:
                request.future.set_exception(request.failure)
            else:
                request.future.set_result(request.results)

    def _drop_queued(self, request: _Request[Any], reason: str) -> int:
        """Take a request's still-queued items out of the queue count; they will never run."""
        dropped = 0
        for item in request.items:
            if item.state is _ItemState.QUEUED:
                item.state = _ItemState.DROPPED
                item.value = None  # an input (e.g. decoded pixels) must not outlive its request
                dropped += 1
        if dropped:
            self._queue_depth -= dropped
            self._dropped_in_queue += dropped
            request.unsettled -= dropped
            self._notify("on_rejected", dropped, reason)
            if self._dropped_in_queue > self._parameters.max_enqueued_items:
                # Clients that time out while the model is stuck must not grow the deque
                # without bound: rebuild it, amortised O(1) per dropped item.
                self._queue = deque(item for item in self._queue if item.state is _ItemState.QUEUED)
                self._dropped_in_queue = 0
        return dropped

    def _expire(self, request: _Request[Any]) -> None:
        if request.future.done():
            return
        self._drop_queued(request, "deadline")
        request.future.set_exception(DeadlineExceededError("deadline passed before all items ran"))

    def _fail_queued(self, message: str) -> None:
        waiting = {id(item.request): item.request for item in self._queue if item.state is _ItemState.QUEUED}
        for request in waiting.values():
            self._drop_queued(request, "closed")
            if not request.future.done():
                request.future.set_exception(BatcherClosedError(message))
        self._queue.clear()
        self._dropped_in_queue = 0

    def _notify(self, hook: str, *args: Any) -> None:
        """Call a listener hook; a broken listener is logged, never allowed to break batching."""
        if hook not in self._active_hooks:  # a no-op hook (see BatchListener.listens_to)
            return
        try:
            getattr(self._listener, hook)(*args)
        except Exception:
            logger.exception(
                "batcher %r: listener %s.%s failed", self._name, type(self._listener).__name__, hook
            )


def _checked_outputs(outputs: Any, expected: int) -> Sequence[Any]:
    """``outputs`` if it has one entry per item; a RuntimeError naming both lengths otherwise."""
    try:
        actual = len(outputs)
    except TypeError:
        raise RuntimeError(
            f"run_batch must return a sequence of {expected} results, got {type(outputs).__name__}"
        ) from None
    if actual != expected:
        raise RuntimeError(f"run_batch returned {actual} results for a batch of {expected} items")
    return outputs


class Reservation:
    """Queue room held by ``Batcher.reserve``; consumed by ``submit`` or given back on exit."""

    __slots__ = ("_batcher", "count", "_held")

    def __init__(self, batcher: Batcher[Any, Any], count: int) -> None:
        self._batcher = batcher
        self.count = count
        self._held = True

    def consume(self, batcher: Batcher[Any, Any], count: int) -> None:
        if batcher is not self._batcher or count != self.count or not self._held:
            raise ValueError(f"reservation for {self.count} items does not cover this submit of {count}")
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._batcher._reserved -= self.count

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
