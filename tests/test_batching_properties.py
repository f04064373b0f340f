"""Property tests: whatever the arrival pattern, every request gets its own outcome.

For random parameters, request sizes, arrival gaps and failing items, each request must end
in exactly one of: its own results in item order; ``ItemError`` for its lowest bad item;
``QueueFullError`` with none of its items computed. Needs hypothesis (test extra).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from batching import Batcher, BatchingParameters, ItemError, QueueFullError  # noqa: E402


@dataclass(frozen=True)
class RequestPlan:
    gap_before_ms: int  # sleep before submitting, to vary arrival patterns
    size: int
    bad_positions: frozenset[int]


parameters_strategy = st.builds(
    BatchingParameters,
    max_batch_size=st.integers(1, 5),
    batch_timeout_micros=st.sampled_from([0, 500, 2000]),
    max_enqueued_batches=st.integers(1, 6),
    num_batch_threads=st.integers(1, 3),
    dispatch_when_idle=st.booleans(),
)


@st.composite
def request_plans(draw: st.DrawFn) -> RequestPlan:
    size = draw(st.integers(1, 7))
    bad = draw(st.frozensets(st.integers(0, size - 1), max_size=2) | st.just(frozenset()))
    return RequestPlan(gap_before_ms=draw(st.sampled_from([0, 0, 0, 1, 2])), size=size, bad_positions=bad)


def item_value(request_number: int, position: int) -> int:
    return request_number * 100 + position


class RecordingModel:
    """Returns item * 10, or a ValueError for bad items; sleeps a little to reorder batches."""

    def __init__(self, bad_items: set[int]) -> None:
        self.bad_items = bad_items
        self.batches: list[tuple[list[int], int]] = []
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[int], padded_size: int) -> list[int | Exception]:
        with self._lock:
            self.batches.append((list(items), padded_size))
        time.sleep((sum(items) % 3) * 0.0005)
        return [ValueError(item) if item in self.bad_items else item * 10 for item in items]


async def run_plan(parameters: BatchingParameters, plans: list[RequestPlan]) -> None:
    bad_items = {item_value(n, p) for n, plan in enumerate(plans) for p in plan.bad_positions}
    model = RecordingModel(bad_items)
    batcher: Batcher[int, int] = Batcher(model, parameters, name="property")
    tasks = []
    for number, plan in enumerate(plans):
        if plan.gap_before_ms:
            await asyncio.sleep(plan.gap_before_ms / 1000)
        items = [item_value(number, position) for position in range(plan.size)]
        tasks.append(asyncio.create_task(batcher.submit(items)))
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await batcher.close()

    computed = [item for items, _ in model.batches for item in items]
    assert len(computed) == len(set(computed)), "no item is computed twice"
    for items, padded_size in model.batches:
        assert 1 <= len(items) <= parameters.max_batch_size
        assert padded_size == parameters.padded_size(len(items))

    for number, (plan, outcome) in enumerate(zip(plans, outcomes)):
        event(f"outcome: {type(outcome).__name__}")
        items = [item_value(number, position) for position in range(plan.size)]
        if isinstance(outcome, QueueFullError):
            assert not set(items) & set(computed), "a refused request enqueued nothing"
        elif plan.bad_positions:
            assert isinstance(outcome, ItemError), f"request {number}: {outcome!r}"
            assert outcome.index == min(plan.bad_positions)
            assert outcome.cause.args == (items[outcome.index],), "the error is this request's own"
        else:
            assert outcome == [item * 10 for item in items], f"request {number}"

    assert batcher.queue_depth == 0
    assert batcher.running_batches == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parameters=parameters_strategy, plans=st.lists(request_plans(), min_size=1, max_size=12))
def test_every_request_gets_exactly_its_own_outcome(
    parameters: BatchingParameters, plans: list[RequestPlan]
) -> None:
    asyncio.run(run_plan(parameters, plans))
