"""Batcher under faults: a hung batch function, cancellations at the deadline."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from batching import Batcher, BatchingParameters, BatchListener, BatchTimeoutError, ItemError


class Recorder(BatchListener):
    def __init__(self) -> None:
        self.timed_out: list[int] = []
        self.finished: list[tuple[int, BaseException | None]] = []
        self.rejected: list[tuple[int, str]] = []

    def on_batch_timed_out(self, batch, seconds):
        self.timed_out.append(batch.batch_id)

    def on_batch_finished(self, batch, seconds, error):
        self.finished.append((batch.batch_id, error))

    def on_rejected(self, count, reason):
        self.rejected.append((count, reason))


async def test_hung_batch_fails_its_items_at_the_timeout_and_later_batches_run():
    release = threading.Event()

    def run_batch(items, padded_size):
        if "hang" in items:
            release.wait(5)
        return [item.upper() for item in items]

    listener = Recorder()
    batcher = Batcher(run_batch, BatchingParameters(max_batch_size=2), listener=listener, execution_timeout=0.2)
    started = time.monotonic()
    hung = asyncio.ensure_future(batcher.submit(["hang", "x"]))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(batcher.submit(["y"]))
    with pytest.raises(ItemError) as caught:
        await hung
    assert isinstance(caught.value.cause, BatchTimeoutError)
    assert time.monotonic() - started < 2
    assert listener.timed_out == [1]
    assert batcher.running_batches == 1 and not waiting.done()  # the stuck call still holds the only thread
    release.set()
    assert await waiting == ["Y"]  # the late result of batch 1 was discarded, batch 2 ran normally
    assert [batch_id for batch_id, _ in listener.finished] == [1, 2]
    await batcher.close()


async def test_cancellation_at_the_deadline_counts_as_deadline_and_earlier_as_cancelled():
    gate = threading.Event()
    listener = Recorder()
    batcher = Batcher(lambda items, n: (gate.wait(5), items)[1], BatchingParameters(max_batch_size=1), listener=listener)
    loop = asyncio.get_running_loop()
    blocker = asyncio.ensure_future(batcher.submit(["first"]))
    await asyncio.sleep(0.01)
    at_deadline = asyncio.ensure_future(batcher.submit(["a"], deadline=loop.time() + 0.3))
    early = asyncio.ensure_future(batcher.submit(["b"], deadline=loop.time() + 30))
    await asyncio.sleep(0.29)  # a server framework cancels its handler just before our own timer would fire
    at_deadline.cancel()
    early.cancel()
    await asyncio.gather(at_deadline, early, return_exceptions=True)
    gate.set()
    assert await blocker == ["first"]
    assert sorted(listener.rejected) == [(1, "cancelled"), (1, "deadline")]
    await batcher.close()


def test_execution_timeout_must_be_positive():
    with pytest.raises(ValueError):
        Batcher(lambda items, n: items, BatchingParameters(), execution_timeout=0)
