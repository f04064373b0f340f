"""Deadline-aware admission: the batch-time estimate, the finish prediction, and the batcher's two refusals
(on arrival, at batch formation), against fake models. Goodput under overload is measured with an open loop
in the event loop itself; its bounds are loose on purpose (a loaded CI machine adds jitter)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from batching import (
    BatchInfo,
    BatchListener,
    Batcher,
    BatchingParameters,
    BatchTimeEstimator,
    DeadlineExceededError,
    DeadlinePolicy,
    UnmeetableDeadlineError,
)
from batching.deadlines import predicted_finish

# -- the estimate ------------------------------------------------------------------------------------------


def test_nothing_measured_means_no_estimate_and_the_first_batch_of_a_size_is_not_kept() -> None:
    estimator = BatchTimeEstimator(window=5)
    assert estimator.estimate(4) is None
    estimator.record(4, 3.0)  # first call: graph set-up, not representative
    assert estimator.estimate(4) is None and not estimator.measured
    estimator.record(4, 0.2)
    assert estimator.estimate(4) == pytest.approx(0.2)


def test_a_slower_batch_is_followed_at_once_a_faster_regime_within_three_batches() -> None:
    estimator = BatchTimeEstimator(window=5)
    for seconds in (9.9, 0.1, 0.1, 0.1, 0.1, 0.1):
        estimator.record(8, seconds)
    estimator.record(8, 2.0)  # a pause: the next prediction errs slow ...
    assert estimator.estimate(8) == pytest.approx(2.0)
    estimator.record(8, 0.1)  # ... and only until the next batch
    assert estimator.estimate(8) == pytest.approx(0.1)
    steady = BatchTimeEstimator(window=5)
    for seconds in (9.9, 0.3, 0.3, 0.3, 0.3, 0.3):
        steady.record(8, seconds)
    for expected in (0.3, 0.3, 0.05):
        steady.record(8, 0.05)  # faster: followed once most of the window agrees
        assert steady.estimate(8) == pytest.approx(expected)


def test_unmeasured_sizes_are_interpolated_between_neighbours_and_scaled_outside_them() -> None:
    estimator = BatchTimeEstimator(window=5)
    for size, seconds in ((4, 0.4), (12, 1.2)):
        estimator.record(size, seconds)
        estimator.record(size, seconds)
    assert estimator.estimate(8) == pytest.approx(0.8)
    assert estimator.estimate(2) == pytest.approx(0.2)
    assert estimator.estimate(16) == pytest.approx(1.6)


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="headroom"):
        DeadlinePolicy(headroom=-0.1)
    with pytest.raises(ValueError, match="window"):
        DeadlinePolicy(window=0)
    with pytest.raises(TypeError, match="enabled"):
        DeadlinePolicy(enabled="yes")  # type: ignore[arg-type]


# -- the prediction ----------------------------------------------------------------------------------------


def _measured(**seconds_by_size: float) -> BatchTimeEstimator:
    estimator = BatchTimeEstimator(window=5)
    for size, seconds in seconds_by_size.items():
        estimator.record(int(size[1:]), seconds)
        estimator.record(int(size[1:]), seconds)
    return estimator


def test_no_measurement_predicts_nothing_so_the_caller_accepts() -> None:
    finish = predicted_finish(
        0.0, BatchTimeEstimator(), ahead=100, count=1, max_batch_size=4, threads=1, running=(), typical_batch_size=4
    )
    assert finish is None


def test_one_thread_waits_for_the_running_batch_then_every_full_batch_ahead() -> None:
    estimator = _measured(s4=1.0)
    # Running since t=9.25 (0.25 s left); 8 queued ahead: two full batches, then the request's own.
    finish = predicted_finish(
        10.0, estimator, ahead=8, count=1, max_batch_size=4, threads=1, running=[(9.25, 4)], typical_batch_size=4
    )
    assert finish == pytest.approx(10.0 + 0.25 + 3 * 1.0)


def test_two_threads_share_the_batches_ahead() -> None:
    estimator = _measured(s4=1.0)
    finish = predicted_finish(
        0.0, estimator, ahead=12, count=4, max_batch_size=4, threads=2, running=(), typical_batch_size=4
    )
    assert finish == pytest.approx(2.0)  # four batches, two at a time


def test_the_last_batch_is_as_large_as_batches_lately_unless_it_starts_at_once() -> None:
    estimator = _measured(s1=0.1, s4=0.4)
    idle = predicted_finish(0.0, estimator, ahead=0, count=1, max_batch_size=4, threads=1, running=(), typical_batch_size=4)
    assert idle == pytest.approx(0.1)  # a free thread: it runs alone, now
    busy = dict(ahead=0, count=1, max_batch_size=4, threads=1, running=[(0.0, 1)])
    assert predicted_finish(0.0, estimator, **busy, typical_batch_size=4) == pytest.approx(0.1 + 0.4)
    assert predicted_finish(0.0, estimator, **busy, typical_batch_size=1) == pytest.approx(0.1 + 0.1)


def test_strict_batching_adds_the_timeout_to_a_partial_batch() -> None:
    estimator = _measured(s2=0.2)
    finish = predicted_finish(
        0.0, estimator, ahead=1, count=1, max_batch_size=4, threads=1, running=(), typical_batch_size=1,
        partial_batch_wait=0.05,
    )
    assert finish == pytest.approx(0.25)


# -- the batcher -------------------------------------------------------------------------------------------


class TimedModel:
    """``item * 10`` after ``seconds`` per batch (changeable while running); optionally gated."""

    def __init__(self, seconds: float, gate: threading.Event | None = None) -> None:
        self.seconds = seconds
        self.gate = gate
        self.computed: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[int], padded_size: int) -> list[int]:
        if self.gate is not None:
            assert self.gate.wait(timeout=10), "test never opened the gate"
        time.sleep(self.seconds)
        with self._lock:
            self.computed.extend(items)
        return [item * 10 for item in items]


class Refusals(BatchListener):
    def __init__(self) -> None:
        self.rejected: dict[str, int] = {}
        self.late = 0
        self.late_by_batch: dict[int, int] = {}
        self.batches: list[tuple[int, int]] = []  # (batch id, size)
        self.started_at: list[float] = []  # loop.time() at each batch's start

    def on_rejected(self, count: int, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + count

    def on_batch_started(self, batch: BatchInfo) -> None:
        self.batches.append((batch.batch_id, batch.size))
        self.started_at.append(asyncio.get_running_loop().time())

    def on_finished_late(self, batch: BatchInfo, count: int) -> None:
        self.late += count
        self.late_by_batch[batch.batch_id] = count


@pytest.fixture
def gate():
    event = threading.Event()
    yield event
    event.set()


async def _warm(batcher: Batcher[int, int], size: int = 1, batches: int = 2) -> None:
    """Run ``batches`` batches of ``size`` so the estimator has a measurement (the first is not kept)."""
    for _ in range(batches):
        await batcher.submit(list(range(size)))


async def test_a_request_that_cannot_meet_its_deadline_is_refused_at_once_and_never_queued(gate) -> None:
    model = TimedModel(0.1)
    refusals = Refusals()
    async with Batcher(model, BatchingParameters(max_batch_size=2), listener=refusals) as batcher:
        await _warm(batcher, size=2)
        model.gate = gate
        gate.clear()
        loop = asyncio.get_running_loop()
        running = asyncio.create_task(batcher.submit([1, 2]))
        await asyncio.sleep(0.01)
        queued = asyncio.create_task(batcher.submit([3, 4]))  # behind the running batch: about 0.2 s to finish
        await asyncio.sleep(0.01)
        # Refused at once: the call raises before it ever suspends (nothing waited for, nothing queued).
        refused = batcher.submit([5], deadline=loop.time() + 0.15)
        with pytest.raises(UnmeetableDeadlineError, match="deadline is in"):
            refused.send(None)
        assert batcher.queue_depth == 2 and refusals.rejected == {"deadline_unmeetable": 1}
        # Time enough: accepted.
        late_enough = asyncio.create_task(batcher.submit([6], deadline=loop.time() + 5.0))
        gate.set()
        assert await running == [10, 20] and await queued == [30, 40] and await late_enough == [60]
    assert 5 not in model.computed


async def test_a_request_without_a_deadline_is_never_judged(gate) -> None:
    model = TimedModel(0.05)
    refusals = Refusals()
    async with Batcher(model, BatchingParameters(max_batch_size=1), listener=refusals) as batcher:
        await _warm(batcher)
        model.gate = gate
        gate.clear()
        waiting = [asyncio.create_task(batcher.submit([i])) for i in range(10)]
        await asyncio.sleep(0.01)
        gate.set()
        assert [result for task in waiting for result in await task] == [i * 10 for i in range(10)]
    assert refusals.rejected == {}


async def test_with_no_measurement_yet_every_request_is_accepted(gate) -> None:
    model = TimedModel(0.05, gate)
    gate.clear()
    async with Batcher(model, BatchingParameters(max_batch_size=1)) as batcher:
        loop = asyncio.get_running_loop()
        first = asyncio.create_task(batcher.submit([1]))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(batcher.submit([2], deadline=loop.time() + 0.001 + 5.0))
        await asyncio.sleep(0.01)
        assert batcher.queue_depth == 1  # accepted, though a batch is running and nothing is known of its time
        gate.set()
        assert await first == [10] and await second == [20]


async def test_disabled_policy_accepts_what_cannot_make_it_as_before() -> None:
    model = TimedModel(0.2)
    refusals = Refusals()
    parameters = BatchingParameters(max_batch_size=1)
    async with Batcher(model, parameters, listener=refusals, deadline_policy=DeadlinePolicy(enabled=False)) as batcher:
        await _warm(batcher)
        loop = asyncio.get_running_loop()
        deadline_for_test = loop.time() + 10.0
        with pytest.raises(DeadlineExceededError):
            await batcher.submit([7], deadline=loop.time() + 0.05)  # idle: runs at once, answered at the deadline
        while refusals.late == 0 and loop.time() < deadline_for_test:  # the batch still runs for nobody
            await asyncio.sleep(0.01)
    assert 7 in model.computed  # computed for nobody ...
    assert refusals.late == 1  # ... and counted as such
    assert "deadline_unmeetable" not in refusals.rejected


class PermitModel(TimedModel):
    """A ``TimedModel`` whose every batch waits for a permit of its own (``permits.release()``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.permits: threading.Semaphore | None = None

    def __call__(self, items: Sequence[int], padded_size: int) -> list[int]:
        if self.permits is not None:
            assert self.permits.acquire(timeout=10), "test never released a permit"
        return super().__call__(items, padded_size)


async def test_an_item_with_less_time_left_than_its_batch_takes_is_dropped_when_the_batch_forms() -> None:
    model = PermitModel(0.2)
    refusals = Refusals()
    async with Batcher(model, BatchingParameters(max_batch_size=1), listener=refusals) as batcher:
        await _warm(batcher)  # measured: 0.2 s a batch
        model.permits = threading.Semaphore(0)
        model.seconds = 0.0  # once released, a batch returns at once: only the wait below overruns
        loop = asyncio.get_running_loop()
        running = asyncio.create_task(batcher.submit([1]))
        await asyncio.sleep(0.01)
        # Predicted: the running batch's ~0.19 s left, then 0.2 s: accepted with a 0.8 s deadline.
        accepted = asyncio.create_task(batcher.submit([2], deadline=loop.time() + 0.8))
        behind = asyncio.create_task(batcher.submit([3]))
        await asyncio.sleep(0.01)
        assert batcher.queue_depth == 2
        # The running batch overruns to ~0.46 s (so measured: the slowest batch of 1 now): when it ends, item 2
        # has ~0.35 s left, less than its batch takes, and time to spare before its deadline on a loaded machine.
        await asyncio.sleep(0.45)
        model.permits.release()  # the running batch only: the next one is held until item 2 is answered
        assert await running == [10]
        with pytest.raises(UnmeetableDeadlineError, match="left before the deadline"):
            await accepted  # dropped when its batch formed (at its deadline it would be DeadlineExceededError) ...
        assert not behind.done()  # ... while the batch that formed is still held: answered at formation
        model.permits.release()
        assert await behind == [30]  # the batch went to the item that had the time
    assert 2 not in model.computed
    assert refusals.rejected.get("deadline_unmeetable_at_batch") == 1


async def test_an_estimate_inflated_by_one_slow_batch_does_not_lock_requests_out() -> None:
    """Were every request refused, no batch would run to correct the estimate: an idle model runs what comes."""
    model = TimedModel(0.02)
    refusals = Refusals()
    async with Batcher(model, BatchingParameters(max_batch_size=1), listener=refusals) as batcher:
        await _warm(batcher)
        batcher.batch_times.record(1, 5.0)  # one stall: the estimate now says 5 s
        loop = asyncio.get_running_loop()
        for item in range(6):  # one at a time, each with 1 s: the model is idle at every arrival
            assert await batcher.submit([item], deadline=loop.time() + 1.0) == [item * 10]
        assert batcher.batch_times.estimate(1) < 0.5 and batcher.batch_times.slowest(1) < 0.5
    assert refusals.rejected == {}


async def test_a_batch_stays_full_by_dropping_the_item_whose_time_it_lacks_and_refilling(gate) -> None:
    model = TimedModel(0.02, gate)
    refusals = Refusals()
    async with Batcher(model, BatchingParameters(max_batch_size=4), listener=refusals) as batcher:
        for size in range(1, 5):  # batch times as measured: 0.2 s per item
            for _ in range(2):
                batcher.batch_times.record(size, 0.2 * size)
        gate.clear()
        loop = asyncio.get_running_loop()
        running = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0.01)
        tight = asyncio.create_task(batcher.submit([1], deadline=loop.time() + 1.0))
        others = [asyncio.create_task(batcher.submit([item])) for item in (2, 3, 4, 5)]
        await asyncio.sleep(0.01)
        assert batcher.queue_depth == 5
        await asyncio.sleep(0.5)
        gate.set()  # the next batch forms with ~0.45 s left for item 1: enough alone, not in a batch of 3 or 4
        with pytest.raises(UnmeetableDeadlineError, match="left before the deadline"):
            await tight
        assert await running == [0] and [await task for task in others] == [[20], [30], [40], [50]]
    assert 1 not in model.computed
    assert [size for _, size in refusals.batches] == [1, 4]
    assert refusals.rejected == {"deadline_unmeetable_at_batch": 1}


# -- goodput under overload --------------------------------------------------------------------------------


@dataclass
class Outcome:
    sent: float
    answered: float
    deadline: float
    ok: bool


async def _open_loop(batcher: Batcher[int, int], rate: float, seconds: float, deadline_s: float) -> list[Outcome]:
    loop = asyncio.get_running_loop()
    outcomes: list[Outcome] = []

    async def one(index: int) -> None:
        sent = loop.time()
        deadline = sent + deadline_s
        try:
            await asyncio.wait_for(batcher.submit([index], deadline=deadline), deadline_s + 1)
            ok = True
        except Exception:
            ok = False
        outcomes.append(Outcome(sent, loop.time(), deadline, ok))

    tasks = []
    start = loop.time()
    for index in range(int(rate * seconds)):
        delay = start + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return outcomes


def _goodput(outcomes: list[Outcome], since: float, until: float) -> float:
    good = sum(1 for o in outcomes if o.ok and o.answered <= o.deadline and since <= o.answered < until)
    return good / (until - since)


def _capacity_used(refusals: Refusals, since: float, until: float, batch_size: int = 4) -> float:
    """Items per second the batches that started in the window could have answered, had each been full: what
    the model was given time to do, which a loaded machine (the event loop descheduled) makes less than nominal."""
    started = sum(1 for at in refusals.started_at if since <= at < until)
    return started * batch_size / (until - since)


async def _overload_with_slowdown(policy: DeadlinePolicy) -> tuple[list[Outcome], Refusals, float, float]:
    """Batches of 4 at 0.1 s (capacity 40/s), then 0.2 s (20/s) from 1.5 s on; 80 requests/s, 0.5 s deadlines."""
    model = TimedModel(0.1)
    refusals = Refusals()
    parameters = BatchingParameters(max_batch_size=4, max_enqueued_batches=1000)
    async with Batcher(model, parameters, listener=refusals, deadline_policy=policy) as batcher:
        await _warm(batcher, size=4, batches=3)
        loop = asyncio.get_running_loop()
        start = loop.time()
        slowdown_at = start + 1.5

        def slow_down() -> None:
            model.seconds = 0.2

        loop.call_at(slowdown_at, slow_down)
        outcomes = await _open_loop(batcher, rate=80, seconds=4.0, deadline_s=0.5)
    return outcomes, refusals, start, slowdown_at


async def test_goodput_holds_under_overload_and_recovers_within_a_few_batches_after_the_model_slows() -> None:
    outcomes, refusals, start, slowdown_at = await _overload_with_slowdown(DeadlinePolicy())
    windows = {"before": (start + 0.5, slowdown_at, 40), "after": (slowdown_at + 1.2, start + 4.0, 20)}
    for name, (since, until, capacity) in windows.items():
        goodput, used = _goodput(outcomes, since, until), _capacity_used(refusals, since, until)
        # The model was kept busy (batches back to back, give or take a loaded machine's pauses) ...
        assert used >= 0.5 * capacity, f"{name}: batches for {used:.1f} items/s, capacity {capacity}/s"
        # ... and most of its batches went to items answered in time: full, and not late (without the policy,
        # next test, goodput collapses to a small fraction of this).
        assert goodput >= 0.6 * used, f"goodput {goodput:.1f}/s {name} the slowdown, batches for {used:.1f}/s"
    # Refused early, not at their deadlines: most refusals are made on arrival (before the request is queued,
    # see the first batcher test), not at batch formation nor by the deadline passing in the queue.
    assert not all(o.ok for o in outcomes)
    on_arrival = refusals.rejected.get("deadline_unmeetable", 0)
    later = refusals.rejected.get("deadline_unmeetable_at_batch", 0) + refusals.rejected.get("deadline", 0)
    assert on_arrival > 0 and on_arrival > later, refusals.rejected
    # The slowdown costs late items in a few batches only, then none: the estimate caught up.
    slow_batches = sorted(batch for batch, _ in refusals.batches)[-8:]  # the last ~1.6 s
    assert sum(refusals.late_by_batch.get(batch, 0) for batch in slow_batches) <= 1, refusals.late_by_batch


async def test_without_the_policy_the_same_overload_collapses() -> None:
    outcomes, refusals, start, slowdown_at = await _overload_with_slowdown(DeadlinePolicy(enabled=False))
    after = _goodput(outcomes, slowdown_at + 1.2, start + 4.0)
    assert after < 0.5 * 20, f"goodput {after:.1f}/s: expected the collapse the policy prevents"
    assert refusals.late > 0
