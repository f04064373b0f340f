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

from .errors import BatcherClosedError, DeadlineExceededError, ItemError, QueueFullError
from .listener import BatchInfo, BatchListener
from .parameters import BatchingParameters

__all__ = ["Batcher"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# asyncio may run a call_at() timer up to one clock tick early; treat such a wake-up as on time
# instead of re-arming the timer for a deadline that is, for practical purposes, now.
_CLOCK_TOLERANCE = time.get_clock_info("monotonic").resolution


class _ItemState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DROPPED = "dropped"  # cancelled, expired or failed before it ran: never given to run_batch


class _Request(Generic[R]):
    """One submit() call: its caller waits on ``future`` for all items to settle."""

    __slots__ = ("future", "items", "results", "unsettled", "failure", "deadline", "context")

    def __init__(
        self, future: asyncio.Future[list[R]], size: int, deadline: float | None, context: object
    ) -> None:
        self.future = future
        self.items: list[_Item] = []
        self.results: list[Any] = [None] * size
        self.unsettled = size  # items still queued or running
        self.failure: ItemError | None = None  # lowest failing index seen so far
        self.deadline = deadline
        self.context = context  # opaque to the batcher; handed to the listener with each item


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
    - A request succeeds with one result per item, in item order, or fails as a whole:
      ``ItemError(index, cause)`` for its lowest failing index (its items still queued are
      dropped, never computed), ``DeadlineExceededError`` when ``deadline`` passes first
      (queued items are dropped), or ``BatcherClosedError``. If the caller is cancelled, its
      queued items are dropped.

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
    ) -> None:
        if not callable(run_batch):
            raise TypeError("run_batch must be callable")
        if not isinstance(parameters, BatchingParameters):
            raise TypeError(f"parameters must be BatchingParameters, got {type(parameters).__name__}")
        self._run_batch = run_batch
        self._parameters = parameters
        self._name = name
        self._listener = listener if listener is not None else BatchListener()
        self._executor = ThreadPoolExecutor(
            max_workers=parameters.num_batch_threads, thread_name_prefix=f"batch-{name}"
        )
        # Dropped items stay in the deque until they reach its head or the deque is compacted
        # (removal from the middle is O(n)); _queue_depth counts only live ones.
        self._queue: deque[_Item] = deque()
        self._queue_depth = 0
        self._dropped_in_queue = 0
        self._running_batches = 0
        self._batch_ids = itertools.count(1)
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
    def queue_depth(self) -> int:
        """Live items waiting for a batch (cancelled and expired items are not counted)."""
        return self._queue_depth

    @property
    def running_batches(self) -> int:
        """Batches handed to a batch thread and not yet finished."""
        return self._running_batches

    @property
    def closed(self) -> bool:
        return self._closed

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
        self, items: Sequence[T], *, deadline: float | None = None, context: object = None
    ) -> list[R]:
        """Run ``items`` through the model and return their results, in order.

        ``deadline`` is an absolute ``loop.time()``. ``context`` is opaque to the batcher: it
        reaches the listener as ``BatchInfo.contexts`` for each of these items (e.g. a trace
        context, so a batch can be linked to the requests it served). Raises ``QueueFullError`` (nothing
        enqueued), ``DeadlineExceededError``, ``ItemError`` or ``BatcherClosedError``; see the
        class docstring. A request larger than ``max_enqueued_items`` can never be accepted.
        """
        count = len(items)
        if count == 0:
            raise ValueError("submit() needs at least one item")
        if self._closed:
            self._notify("on_rejected", count, "closed")
            raise BatcherClosedError(f"batcher {self._name!r} is closed")
        self.start()
        loop = asyncio.get_running_loop()
        limit = self._parameters.max_enqueued_items
        if self._queue_depth + count > limit:
            self._notify("on_rejected", count, "queue_full")
            raise QueueFullError(
                f"batcher {self._name!r}: {self._queue_depth} of {limit} queued items, "
                f"no room for {count} more"
            )
        now = loop.time()
        if deadline is not None and deadline <= now:
            self._notify("on_rejected", count, "deadline")
            raise DeadlineExceededError("deadline passed before the request was enqueued")

        request: _Request[R] = _Request(loop.create_future(), count, deadline, context)
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
            self._drop_queued(request, "cancelled")
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
        batch: list[_Item] = []
        while len(batch) < self._parameters.max_batch_size:
            item = self._live_head(now)
            if item is None or item.enqueued_at > window_end:
                break
            self._queue.popleft()
            item.state = _ItemState.RUNNING
            batch.append(item)
        self._queue_depth -= len(batch)
        if not batch:  # cannot happen: head is live at `now`; never run an empty batch anyway
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
        self._notify("on_batch_started", info)
        started = time.perf_counter()
        values = [item.value for item in batch]
        try:
            future = loop.run_in_executor(self._executor, self._run_batch, values, info.padded_size)
        except Exception as exc:  # executor refused the work; fail the batch, keep dispatching
            future = loop.create_future()
            future.set_exception(exc)
        future.add_done_callback(functools.partial(self._finish_batch, batch, info, started))

    def _finish_batch(
        self, batch: list[_Item], info: BatchInfo, started: float, future: asyncio.Future[Any]
    ) -> None:
        """Resolve each item of a returned batch with its own outcome; runs on the loop."""
        seconds = time.perf_counter() - started
        self._running_batches -= 1
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
        if error is not None:
            outcomes = [error] * len(batch)
        self._notify("on_batch_finished", info, seconds, error)
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
