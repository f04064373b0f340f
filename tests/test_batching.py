"""The Batcher contract, one behaviour per test, against fake models.

Fake models are plain functions run in the batcher's threads. To hold the model busy a test
closes a threading.Event "gate" that the model waits on; the `gate` fixture opens it on
teardown so a failing test cannot leave a thread blocked. Timing asserts are loose on purpose
(CI machines are small and loaded): they separate "waited for the timeout" from "did not".
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest

from batching import (
    BatchInfo,
    BatchListener,
    Batcher,
    BatcherClosedError,
    BatchingParameters,
    DeadlineExceededError,
    ItemError,
    ListenerGroup,
    QueueFullError,
)

SLACK = 0.15  # seconds a loaded CI machine may add to any wait


class ModelCrashed(Exception):
    """What a fake model raises to fail a whole batch."""


class FakeModel:
    """A batch function that records every batch and returns ``item * 10``.

    It can wait on ``gate`` (to hold a batch thread busy), sleep, return an Exception for the
    items in ``bad_items``, raise for a batch containing ``crash_on``, or return the wrong
    number of results.
    """

    def __init__(
        self,
        *,
        gate: threading.Event | None = None,
        delay: Callable[[Sequence[int]], float] | float = 0.0,
        bad_items: Sequence[int] = (),
        crash_on: int | None = None,
        drop_last_result: bool = False,
    ) -> None:
        self.gate = gate
        self.delay = delay
        self.bad_items = set(bad_items)
        self.crash_on = crash_on
        self.drop_last_result = drop_last_result
        self.batches: list[list[int]] = []
        self.padded_sizes: list[int] = []
        self.max_concurrent_calls = 0
        self._concurrent_calls = 0
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[int], padded_size: int) -> list[int | Exception]:
        with self._lock:
            self.batches.append(list(items))
            self.padded_sizes.append(padded_size)
            self._concurrent_calls += 1
            self.max_concurrent_calls = max(self.max_concurrent_calls, self._concurrent_calls)
        try:
            if self.gate is not None:
                assert self.gate.wait(timeout=10), "test never opened the gate"
            delay = self.delay(items) if callable(self.delay) else self.delay
            if delay:
                time.sleep(delay)
            if self.crash_on is not None and self.crash_on in items:
                raise ModelCrashed(f"crashed on {self.crash_on}")
            results: list[int | Exception] = [
                ValueError(f"bad item {item}") if item in self.bad_items else item * 10 for item in items
            ]
            return results[:-1] if self.drop_last_result else results
        finally:
            with self._lock:
                self._concurrent_calls -= 1

    @property
    def batch_sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]

    @property
    def computed(self) -> list[int]:
        return [item for batch in self.batches for item in batch]


class RecordingListener(BatchListener):
    def __init__(self) -> None:
        self.enqueued: list[tuple[int, int]] = []
        self.rejected: list[tuple[int, str]] = []
        self.started: list[BatchInfo] = []
        self.finished: list[tuple[BatchInfo, float, BaseException | None]] = []

    def on_enqueued(self, count: int, queue_depth: int) -> None:
        self.enqueued.append((count, queue_depth))

    def on_rejected(self, count: int, reason: str) -> None:
        self.rejected.append((count, reason))

    def on_batch_started(self, batch: BatchInfo) -> None:
        self.started.append(batch)

    def on_batch_finished(self, batch: BatchInfo, seconds: float, error: BaseException | None) -> None:
        self.finished.append((batch, seconds, error))


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def make_batcher(model: FakeModel, listener: BatchListener | None = None, **parameters: Any) -> Batcher[int, int]:
    return Batcher(model, BatchingParameters(**parameters), name="test", listener=listener)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition another thread or task makes true (test helper only)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def hold_model_busy(batcher: Batcher[int, int], item: int = 0) -> asyncio.Task[list[int]]:
    """Submit one item that occupies a batch thread until the gate opens."""
    busy = asyncio.create_task(batcher.submit([item]))
    await eventually(lambda: batcher.running_batches == 1)
    return busy


def submit_all(batcher: Batcher[int, int], requests: Sequence[Sequence[int]]) -> list[asyncio.Task[list[int]]]:
    return [asyncio.create_task(batcher.submit(request)) for request in requests]


async def elapsed(awaitable: Awaitable[Any]) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await awaitable
    return loop.time() - start


# -- when a batch is dispatched -------------------------------------------------------------


async def test_strict_mode_lone_request_waits_for_the_timeout() -> None:
    model = FakeModel()
    async with make_batcher(model, batch_timeout_micros=100_000, dispatch_when_idle=False) as batcher:
        waited = await elapsed(batcher.submit([1]))
    assert 0.1 - 0.01 <= waited <= 0.1 + SLACK
    assert model.batches == [[1]]


async def test_adaptive_mode_lone_request_does_not_wait_for_the_timeout() -> None:
    model = FakeModel()
    async with make_batcher(model, batch_timeout_micros=2_000_000) as batcher:
        waited = await elapsed(batcher.submit([1]))
    assert waited < 0.5
    assert model.batches == [[1]]


async def test_strict_mode_full_batch_dispatches_before_the_timeout() -> None:
    model = FakeModel()
    async with make_batcher(
        model, max_batch_size=4, batch_timeout_micros=2_000_000, dispatch_when_idle=False
    ) as batcher:
        waited = await elapsed(asyncio.gather(*submit_all(batcher, [[1], [2], [3], [4]])))
    assert waited < 1.0
    assert model.batches == [[1, 2, 3, 4]]


async def test_busy_model_lets_batches_grow_up_to_max_batch_size(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    async with make_batcher(model, max_batch_size=4, batch_timeout_micros=2_000_000) as batcher:
        busy = await hold_model_busy(batcher)
        waiting = submit_all(batcher, [[item] for item in range(1, 11)])
        await eventually(lambda: batcher.queue_depth == 10)
        gate.set()
        waited = await elapsed(asyncio.gather(busy, *waiting))
    assert model.batch_sizes == [1, 4, 4, 2]
    assert waited < 1.0, "adaptive batches must not wait for the 2 s timeout"


@pytest.mark.parametrize(
    ("dispatch_when_idle", "expected_batches"),
    [(False, [[0], [1], [2]]), (True, [[0], [1, 2]])],
    ids=["strict", "adaptive"],
)
async def test_strict_mode_closes_a_batch_at_its_timeout_even_while_the_model_is_busy(
    gate: threading.Event, dispatch_when_idle: bool, expected_batches: list[list[int]]
) -> None:
    model = FakeModel(gate=gate)
    async with make_batcher(
        model, max_batch_size=8, batch_timeout_micros=50_000, dispatch_when_idle=dispatch_when_idle
    ) as batcher:
        busy = await hold_model_busy(batcher, 0)
        first = asyncio.create_task(batcher.submit([1]))
        await asyncio.sleep(0.05 + 0.1)  # item 1's batch has timed out: item 2 needs a new one
        second = asyncio.create_task(batcher.submit([2]))
        await eventually(lambda: batcher.queue_depth == 2)
        gate.set()
        await asyncio.gather(busy, first, second)
    assert model.batches == expected_batches


async def test_at_most_num_batch_threads_batches_run_at_once() -> None:
    model = FakeModel(delay=0.02)
    listener = RecordingListener()
    async with make_batcher(model, listener, max_batch_size=1, num_batch_threads=2) as batcher:
        running_seen: list[int] = []
        listener.on_batch_started = lambda batch: running_seen.append(batcher.running_batches)  # type: ignore[method-assign]
        await asyncio.gather(*submit_all(batcher, [[item] for item in range(12)]))
    assert model.max_concurrent_calls == 2
    assert max(running_seen) == 2
    assert sorted(model.computed) == list(range(12))


async def test_unbatched_parameters_run_every_item_alone(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    async with Batcher(model, BatchingParameters.unbatched()) as batcher:
        busy = await hold_model_busy(batcher)
        waiting = submit_all(batcher, [[1], [2, 3], [4]])
        await eventually(lambda: batcher.queue_depth == 4)
        gate.set()
        await asyncio.gather(busy, *waiting)
    assert model.batch_sizes == [1, 1, 1, 1, 1]


async def test_padded_size_from_allowed_batch_sizes_is_passed_to_run_batch(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    async with make_batcher(model, max_batch_size=8, allowed_batch_sizes=(2, 4, 8)) as batcher:
        busy = await hold_model_busy(batcher)
        waiting = submit_all(batcher, [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11]])
        await eventually(lambda: batcher.queue_depth == 11)
        gate.set()
        await asyncio.gather(busy, *waiting)
    assert model.batch_sizes == [1, 8, 3]
    assert model.padded_sizes == [2, 8, 4]


# -- results --------------------------------------------------------------------------------


async def test_each_request_gets_its_own_results_in_item_order() -> None:
    model = FakeModel(delay=0.002)
    requests = [[100 * request + index for index in range(1 + request % 5)] for request in range(30)]
    async with make_batcher(model, max_batch_size=4, num_batch_threads=2) as batcher:
        results = await asyncio.gather(*submit_all(batcher, requests))
    assert results == [[item * 10 for item in request] for request in requests]
    assert max(model.batch_sizes) <= 4


async def test_request_larger_than_max_batch_size_spans_several_batches() -> None:
    model = FakeModel()
    async with make_batcher(model, max_batch_size=4) as batcher:
        results = await batcher.submit(list(range(10)))
    assert results == [item * 10 for item in range(10)]
    assert model.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_a_failing_item_fails_only_its_own_request(gate: threading.Event) -> None:
    model = FakeModel(gate=gate, bad_items=[4])
    async with make_batcher(model, max_batch_size=8) as batcher:
        busy = await hold_model_busy(batcher)
        before, failing, after = submit_all(batcher, [[1, 2], [3, 4], [5]])
        await eventually(lambda: batcher.queue_depth == 5)
        gate.set()
        with pytest.raises(ItemError, match="^item 1: bad item 4$") as caught:
            await failing
        assert await before == [10, 20]
        assert await after == [50]
        await busy
    assert model.batches[1] == [1, 2, 3, 4, 5], "the three requests shared one batch"
    assert caught.value.index == 1
    assert isinstance(caught.value.cause, ValueError)
    assert caught.value.__cause__ is caught.value.cause


async def test_a_failing_item_cancels_its_siblings_still_in_the_queue() -> None:
    model = FakeModel(bad_items=[10])
    async with make_batcher(model, max_batch_size=2) as batcher:
        with pytest.raises(ItemError) as caught:
            await batcher.submit([10, 11, 12, 13, 14, 15])
        assert batcher.queue_depth == 0
    assert caught.value.index == 0
    assert model.computed == [10, 11], "items 2..5 were never computed"


async def test_the_lowest_failing_index_is_reported_even_if_a_later_batch_fails_first() -> None:
    # Two threads: batch [0..3] is slow and fails item 2; batch [4..7] fails item 5 first.
    model = FakeModel(bad_items=[2, 5], delay=lambda items: 0.2 if 0 in items else 0.0)
    async with make_batcher(model, max_batch_size=4, num_batch_threads=2) as batcher:
        with pytest.raises(ItemError) as caught:
            await batcher.submit(list(range(8)))
    assert caught.value.index == 2


async def test_run_batch_raising_fails_that_batch_only(gate: threading.Event) -> None:
    model = FakeModel(gate=gate, crash_on=666)
    async with make_batcher(model, max_batch_size=8) as batcher:
        busy = await hold_model_busy(batcher)
        crash, mate = submit_all(batcher, [[666], [1]])
        await eventually(lambda: batcher.queue_depth == 2)
        gate.set()
        for request in (crash, mate):
            with pytest.raises(ItemError, match="crashed on 666") as caught:
                await request
            assert isinstance(caught.value.cause, ModelCrashed)
        assert await batcher.submit([2, 3]) == [20, 30], "the next batch succeeds"
        await busy


async def test_wrong_number_of_results_fails_the_batch_with_both_lengths() -> None:
    model = FakeModel(drop_last_result=True)
    async with make_batcher(model) as batcher:
        with pytest.raises(ItemError, match="returned 1 results for a batch of 2 items") as caught:
            await batcher.submit([1, 2])
        assert isinstance(caught.value.cause, RuntimeError)
        model.drop_last_result = False
        assert await batcher.submit([3]) == [30]


async def test_run_batch_returning_a_non_sequence_fails_the_batch() -> None:
    async with Batcher(lambda items, padded_size: None, BatchingParameters()) as batcher:
        with pytest.raises(ItemError, match="must return a sequence of 1 results, got NoneType"):
            await batcher.submit([1])


# -- overload, deadlines, cancellation ------------------------------------------------------


async def test_full_queue_refuses_at_once_and_enqueues_nothing(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    listener = RecordingListener()
    async with make_batcher(model, listener, max_batch_size=2, max_enqueued_batches=2) as batcher:
        busy = await hold_model_busy(batcher)
        queued = submit_all(batcher, [[1, 2, 3]])
        await eventually(lambda: batcher.queue_depth == 3)
        async with asyncio.timeout(1):
            with pytest.raises(QueueFullError, match="3 of 4 queued items, no room for 2 more"):
                await batcher.submit([4, 5])
        assert batcher.queue_depth == 3
        assert listener.rejected == [(2, "queue_full")]
        queued += submit_all(batcher, [[6]])  # exactly fills the queue
        await eventually(lambda: batcher.queue_depth == 4)
        gate.set()
        await asyncio.gather(busy, *queued)
        assert await batcher.submit([7, 8]) == [70, 80], "the batcher keeps working"
    assert 4 not in model.computed and 5 not in model.computed


async def test_reserved_room_counts_against_the_queue_bound_until_submitted_or_released(
    gate: threading.Event,
) -> None:
    """Admission before decoding: room reserved for items not yet submitted is refused to others."""
    model = FakeModel(gate=gate)
    listener = RecordingListener()
    async with make_batcher(model, listener, max_batch_size=2, max_enqueued_batches=2) as batcher:
        busy = await hold_model_busy(batcher)
        with batcher.reserve(3) as reservation:
            assert batcher.reserved == 3 and batcher.queue_depth == 0
            with pytest.raises(QueueFullError, match="0 of 4 queued items \\(\\+3 reserved\\)"):
                await batcher.submit([4, 5])
            queued = asyncio.ensure_future(batcher.submit([1, 2, 3], reservation=reservation))
            await eventually(lambda: batcher.queue_depth == 3)
            assert batcher.reserved == 0, "submitting consumes the reservation"
        with batcher.reserve(1):
            pass  # prepared nothing: leaving the block gives the room back
        assert batcher.reserved == 0
        with pytest.raises(ValueError, match="does not cover"):
            with batcher.reserve(1) as reservation:
                await batcher.submit([6, 7], reservation=reservation)
        assert batcher.reserved == 0
        gate.set()
        assert await queued == [10, 20, 30]
        await busy
    assert listener.rejected == [(2, "queue_full")]
    assert 4 not in model.computed and 6 not in model.computed


async def test_queue_depth_counts_exactly_the_live_queued_items(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    async with make_batcher(model, max_batch_size=4) as batcher:
        assert batcher.queue_depth == 0
        busy = await hold_model_busy(batcher)
        assert batcher.queue_depth == 0, "a running item is not queued"
        one, two, three = submit_all(batcher, [[1], [2, 3], [4, 5, 6]])
        await eventually(lambda: batcher.queue_depth == 6)
        two.cancel()
        with pytest.raises(asyncio.CancelledError):
            await two
        assert batcher.queue_depth == 4
        gate.set()
        await asyncio.gather(busy, one, three)
        assert batcher.queue_depth == 0


async def test_item_past_its_deadline_while_queued_is_never_computed(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    listener = RecordingListener()
    async with make_batcher(model, listener) as batcher:
        busy = await hold_model_busy(batcher)
        loop = asyncio.get_running_loop()
        with pytest.raises(DeadlineExceededError):
            # The model is still held: the request fails at its deadline, not when a thread frees.
            async with asyncio.timeout(0.05 + SLACK + 1.0):
                await batcher.submit([1, 2], deadline=loop.time() + 0.05)
        assert batcher.queue_depth == 0
        assert listener.rejected == [(2, "deadline")]
        gate.set()
        await busy
        assert await batcher.submit([3], deadline=loop.time() + 5) == [30]
    assert model.computed == [0, 3]


async def test_deadline_also_bounds_a_request_whose_batch_is_already_running(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    async with make_batcher(model) as batcher:
        loop = asyncio.get_running_loop()
        with pytest.raises(DeadlineExceededError):
            async with asyncio.timeout(0.05 + SLACK + 1.0):
                await batcher.submit([1], deadline=loop.time() + 0.05)
        assert batcher.running_batches == 1, "the caller got its answer; the thread is still busy"
        gate.set()
    assert model.computed == [1]


async def test_requests_dropped_while_the_model_is_stuck_do_not_pile_up(gate: threading.Event) -> None:
    # Internal invariant (memory): dropped items are compacted out of the queue.
    async with make_batcher(FakeModel(gate=gate), max_batch_size=2, max_enqueued_batches=2) as batcher:
        busy = await hold_model_busy(batcher)
        for _ in range(50):
            client = asyncio.create_task(batcher.submit([1, 2]))
            await eventually(lambda: batcher.queue_depth == 2)
            client.cancel()
            with pytest.raises(asyncio.CancelledError):
                await client
            assert len(batcher._queue) <= 2 * batcher.parameters.max_enqueued_items + 2
        assert batcher.queue_depth == 0
        gate.set()
        await busy


async def test_deadline_already_past_at_submit_is_refused_at_once() -> None:
    model = FakeModel()
    async with make_batcher(model) as batcher:
        loop = asyncio.get_running_loop()
        with pytest.raises(DeadlineExceededError):
            await batcher.submit([1], deadline=loop.time() - 1)
        assert batcher.queue_depth == 0
    assert model.batches == []


async def test_cancelled_caller_items_are_skipped_never_computed(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    listener = RecordingListener()
    async with make_batcher(model, listener) as batcher:
        busy = await hold_model_busy(batcher)
        gone = asyncio.create_task(batcher.submit([7, 8]))
        stays = asyncio.create_task(batcher.submit([9]))
        await eventually(lambda: batcher.queue_depth == 3)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert batcher.queue_depth == 1
        gate.set()
        assert await stays == [90]
        await busy
    assert model.computed == [0, 9]
    assert (2, "cancelled") in listener.rejected


# -- closing --------------------------------------------------------------------------------


async def test_close_with_drain_finishes_queued_work_without_waiting_for_the_timeout() -> None:
    model = FakeModel(delay=0.01)
    batcher = make_batcher(model, max_batch_size=4, batch_timeout_micros=10_000_000, dispatch_when_idle=False)
    requests = submit_all(batcher, [[1], [2, 3]])
    await eventually(lambda: batcher.queue_depth == 3)
    waited = await elapsed(batcher.close())
    assert waited < 1.0
    assert [request.result() for request in requests] == [[10], [20, 30]]
    assert batcher.running_batches == 0


async def test_close_without_drain_fails_queued_items_and_lets_running_ones_finish(
    gate: threading.Event,
) -> None:
    model = FakeModel(gate=gate)
    listener = RecordingListener()
    batcher = make_batcher(model, listener)
    busy = await hold_model_busy(batcher)
    queued = asyncio.create_task(batcher.submit([1, 2]))
    await eventually(lambda: batcher.queue_depth == 2)
    closing = asyncio.create_task(batcher.close(drain=False))
    with pytest.raises(BatcherClosedError):
        await queued
    assert batcher.queue_depth == 0
    gate.set()
    await closing
    assert await busy == [0]
    assert model.computed == [0]
    assert listener.rejected == [(2, "closed")]


async def test_submit_after_close_is_refused() -> None:
    batcher = make_batcher(FakeModel())
    await batcher.close()
    with pytest.raises(BatcherClosedError):
        await batcher.submit([1])
    with pytest.raises(BatcherClosedError):
        batcher.start()
    await batcher.close()  # idempotent


async def test_empty_request_is_a_value_error() -> None:
    async with make_batcher(FakeModel()) as batcher:
        with pytest.raises(ValueError, match="at least one item"):
            await batcher.submit([])


async def test_explicit_start_then_submit() -> None:
    batcher = make_batcher(FakeModel())
    batcher.start()
    assert await batcher.submit([4]) == [40]
    await batcher.close()


# -- listener -------------------------------------------------------------------------------


async def test_listener_sees_enqueues_batch_sizes_padding_and_errors(gate: threading.Event) -> None:
    model = FakeModel(gate=gate, crash_on=99)
    listener = RecordingListener()
    async with make_batcher(model, listener, max_batch_size=8, allowed_batch_sizes=(2, 4, 8)) as batcher:
        busy = await hold_model_busy(batcher)
        waiting = submit_all(batcher, [[1, 2], [3, 4, 5]])
        await eventually(lambda: batcher.queue_depth == 5)
        gate.set()
        await asyncio.gather(busy, *waiting)
        with pytest.raises(ItemError):
            await batcher.submit([99])

    assert listener.enqueued == [(1, 1), (2, 2), (3, 5), (1, 1)]
    assert [(info.batch_id, info.size, info.padded_size) for info in listener.started] == [
        (1, 1, 2),
        (2, 5, 8),
        (3, 1, 2),
    ]
    assert [len(info.queue_waits) for info in listener.started] == [1, 5, 1]
    assert all(wait >= 0 for info in listener.started for wait in info.queue_waits)
    assert [info for info, _, _ in listener.finished] == listener.started
    assert all(seconds >= 0 for _, seconds, _ in listener.finished)
    assert [error for _, _, error in listener.finished][:2] == [None, None]
    assert isinstance(listener.finished[2][2], ModelCrashed)


async def test_listener_gets_each_items_request_context_in_batch_order(gate: threading.Event) -> None:
    listener = RecordingListener()
    async with make_batcher(FakeModel(gate=gate), listener, max_batch_size=8) as batcher:
        busy = await hold_model_busy(batcher)  # submitted without a context
        first = asyncio.create_task(batcher.submit([1, 2], context="request-a"))
        second = asyncio.create_task(batcher.submit([3], context=("request", "b")))
        await eventually(lambda: batcher.queue_depth == 3)
        gate.set()
        assert await asyncio.gather(busy, first, second) == [[0], [10, 20], [30]]

    assert [info.contexts for info in listener.started] == [(None,), ("request-a", "request-a", ("request", "b"))]


async def test_listener_group_reaches_every_member_even_past_a_broken_one(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(BatchListener):
        def on_batch_started(self, batch: BatchInfo) -> None:
            raise RuntimeError("tracing backend down")

    first, second = RecordingListener(), RecordingListener()
    with caplog.at_level(logging.ERROR, logger="batching"):
        async with make_batcher(FakeModel(), ListenerGroup(first, Broken(), second)) as batcher:
            assert await batcher.submit([1, 2]) == [10, 20]
    for listener in (first, second):
        assert listener.enqueued == [(2, 2)]
        assert [info.size for info in listener.started] == [2]
        assert [info.size for info, _, _ in listener.finished] == [2]
    assert "listener Broken.on_batch_started failed" in caplog.text


async def test_a_raising_listener_never_breaks_batching(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenListener(BatchListener):
        def _explode(self, *args: object) -> None:
            raise RuntimeError("metrics backend down")

        on_enqueued = on_rejected = on_batch_started = on_batch_finished = _explode

    model = FakeModel()
    with caplog.at_level(logging.ERROR, logger="batching"):
        async with make_batcher(model, BrokenListener(), max_enqueued_batches=1, max_batch_size=2) as batcher:
            assert await batcher.submit([1, 2]) == [10, 20]
            with pytest.raises(QueueFullError):
                await batcher.submit([1, 2, 3])
            assert await batcher.submit([3]) == [30]
    assert "listener BrokenListener.on_batch_started failed" in caplog.text
    assert "metrics backend down" in caplog.text


def test_hooks_left_as_no_ops_are_not_listened_to() -> None:
    class OnlyFinished(BatchListener):
        def on_batch_finished(self, batch: BatchInfo, seconds: float, error: BaseException | None) -> None:
            pass

    only_finished = OnlyFinished()
    assert only_finished.listens_to("on_batch_finished")
    assert not only_finished.listens_to("on_enqueued")
    assert not ListenerGroup(only_finished).listens_to("on_enqueued")
    assert ListenerGroup(only_finished, RecordingListener()).listens_to("on_enqueued")
    patched = BatchListener()
    patched.on_rejected = lambda count, reason: None  # type: ignore[method-assign]
    assert patched.listens_to("on_rejected")


# -- idle: when a submitted item would run at once, alone --------------------------------------


async def test_idle_only_while_nothing_is_queued_reserved_or_running(gate: threading.Event) -> None:
    model = FakeModel(gate=gate)
    async with make_batcher(model, max_batch_size=4, num_batch_threads=1) as batcher:
        assert batcher.idle
        with batcher.reserve(1):
            assert not batcher.idle  # a reserved item will join the next batch
        assert batcher.idle
        busy = await hold_model_busy(batcher)
        assert not batcher.idle  # the only batch thread is taken
        queued = asyncio.create_task(batcher.submit([2]))
        await eventually(lambda: batcher.queue_depth == 1)
        gate.set()
        assert await busy == [0] and await queued == [20]
        await eventually(lambda: batcher.running_batches == 0)
        assert batcher.idle
    assert not batcher.idle  # closed


async def test_never_idle_in_strict_mode() -> None:
    """Under TF Serving's full-or-timeout rule a lone item waits for the timeout: it never runs at once."""
    async with make_batcher(FakeModel(), batch_timeout_micros=1000, dispatch_when_idle=False) as batcher:
        assert not batcher.idle
