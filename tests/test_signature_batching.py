"""Batching any signature (service/models/signature_batching.py), with a numpy function standing in for the model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from batching import Batcher, BatchingParameters, ItemError
from service.models.signature_batching import (
    WHOLE_REQUEST,
    BatchInputError,
    MisbatchedOutputError,
    RequestTensors,
    Row,
    SignatureBatchers,
    SignatureRunner,
    gather,
)


class RecordingModel:
    """y = 2x + offset, total = row sums; records every call's batch; refuses rows holding a negative value."""

    def __init__(self) -> None:
        self.calls: list[dict[str, np.ndarray]] = []

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append({name: value.copy() for name, value in inputs.items()})
        if (inputs["x"] < 0).any():
            raise BatchInputError("x must not be negative")
        return {"y": inputs["x"] * 2 + inputs["offset"][:, None], "total": inputs["x"].sum(axis=1)}


def rows_of(request: RequestTensors) -> list[Row]:
    return [Row(request, index) for index in range(len(request.arrays[0]))]


def request(x: list[list[float]], offset: list[float]) -> RequestTensors:
    return RequestTensors((np.array(x, np.float32), np.array(offset, np.float32)))


def runner(model: RecordingModel) -> SignatureRunner:
    return SignatureRunner(model, ("x", "offset"), ("y", "total"), batched=True)


def test_rows_of_several_requests_run_as_one_call_and_come_back_to_their_requests():
    model = RecordingModel()
    first, second = request([[1, 2], [3, 4]], [0, 10]), request([[5, 6]], [100])
    results = runner(model).run_batch(rows_of(first) + rows_of(second), 3)
    assert len(model.calls) == 1 and model.calls[0]["x"].shape == (3, 2)
    y, total = gather(results[:2], 2)
    np.testing.assert_array_equal(y, [[2, 4], [16, 18]])
    np.testing.assert_array_equal(total, [3, 7])
    np.testing.assert_array_equal(gather(results[2:], 2)[0], [[110, 112]])


def test_a_lone_request_is_passed_without_copying():
    model = RecordingModel()
    lone = request([[1, 2], [3, 4]], [0, 0])
    seen = []
    SignatureRunner(lambda inputs: seen.append(inputs) or model(inputs), ("x", "offset"), ("y", "total"),
                    batched=True).run_batch(rows_of(lone), 2)
    assert np.shares_memory(seen[0]["x"], lone.arrays[0])


def test_padding_repeats_the_first_row():
    model = RecordingModel()
    results = runner(model).run_batch(rows_of(request([[1, 2]], [5])), 4)
    np.testing.assert_array_equal(model.calls[0]["x"], [[1, 2]] * 4)
    assert len(results) == 1
    np.testing.assert_array_equal(gather(results, 2)[0], [[7, 9]])


def test_a_request_the_model_refuses_fails_alone():
    model = RecordingModel()
    good, bad, other = request([[1, 1]], [0]), request([[-1, 1]], [0]), request([[2, 2], [3, 3]], [0, 0])
    results = runner(model).run_batch(rows_of(good) + rows_of(bad) + rows_of(other), 4)
    assert isinstance(results[1], BatchInputError)
    np.testing.assert_array_equal(gather(results[:1], 2)[0], [[2, 2]])
    np.testing.assert_array_equal(gather(results[2:], 2)[0], [[4, 4], [6, 6]])
    assert len(model.calls) == 1 + 3  # the whole batch, then each request alone


def test_a_refused_lone_request_fails_its_batch():
    with pytest.raises(BatchInputError):
        runner(RecordingModel()).run_batch(rows_of(request([[-1, 1]], [0])), 1)


def test_outputs_without_the_batch_dimension_are_a_model_fault():
    lying = SignatureRunner(lambda inputs: {"y": np.zeros(1)}, ("x",), ("y",), batched=True)
    with pytest.raises(MisbatchedOutputError, match="output 'y' has shape \\[1\\] for a batch of 2"):
        lying.run_batch(rows_of(RequestTensors((np.zeros((2, 3)),))), 2)


def test_an_unbatched_signature_gets_the_whole_request():
    model = RecordingModel()
    whole = SignatureRunner(model, ("x", "offset"), ("y", "total"), batched=False)
    results = whole.run_batch([Row(request([[1, 2], [3, 4]], [0, 1]), WHOLE_REQUEST)], 1)
    assert results[0].row == WHOLE_REQUEST
    np.testing.assert_array_equal(gather(results, 2)[1], [3, 7])


async def test_a_request_larger_than_a_batch_is_split_and_joined_again():
    model = RecordingModel()
    async with Batcher(runner(model).run_batch, BatchingParameters(max_batch_size=3, allowed_batch_sizes=(2, 3))) as batcher:
        big = request([[row, row] for row in range(7)], [0] * 7)
        results = await batcher.submit(rows_of(big))
    assert sorted(len(call["x"]) for call in model.calls) == [2, 3, 3]  # 7 rows: 3 + 3 + 1 padded to 2
    y, total = gather(results, 2)
    np.testing.assert_array_equal(y, [[2 * row, 2 * row] for row in range(7)])
    np.testing.assert_array_equal(total, [2 * row for row in range(7)])


async def test_concurrent_requests_share_batches_through_the_batcher():
    model = RecordingModel()
    parameters = BatchingParameters(max_batch_size=8, batch_timeout_micros=50_000, dispatch_when_idle=False)
    async with Batcher(runner(model).run_batch, parameters) as batcher:
        requests = [request([[index, index]], [0]) for index in range(4)]
        answers = await asyncio.gather(*(batcher.submit(rows_of(r)) for r in requests))
    assert len(model.calls) == 1
    for index, results in enumerate(answers):
        np.testing.assert_array_equal(gather(results, 2)[0], [[2 * index, 2 * index]])


async def test_the_bad_request_in_a_shared_batch_gets_an_item_error():
    model = RecordingModel()
    parameters = BatchingParameters(max_batch_size=8, batch_timeout_micros=50_000, dispatch_when_idle=False)
    async with Batcher(runner(model).run_batch, parameters) as batcher:
        outcomes = await asyncio.gather(
            batcher.submit(rows_of(request([[1, 1]], [0]))),
            batcher.submit(rows_of(request([[-1, 1]], [0]))),
            return_exceptions=True,
        )
    assert isinstance(outcomes[1], ItemError) and isinstance(outcomes[1].cause, BatchInputError)
    np.testing.assert_array_equal(gather(outcomes[0], 2)[0], [[2, 2]])


async def test_batchers_are_made_per_shape_and_bounded():
    made: list[str] = []

    def factory(label, run_batch, parameters):
        made.append(label)
        return Batcher(run_batch, parameters, name=label)

    batchers = SignatureBatchers(factory, BatchingParameters(max_batch_size=4), max_batchers=2)
    make_runner = lambda: runner(RecordingModel())  # noqa: E731
    first = batchers.get(("sig", (2,)), "a", make_runner, batched=True)
    assert batchers.get(("sig", (2,)), "a", make_runner, batched=True) is first
    unbatched = batchers.get(("other",), "b", make_runner, batched=False)
    assert unbatched.parameters.max_batch_size == 1
    # At the limit, an idle batcher is retired to make room for a new shape.
    third = batchers.get(("sig", (3,)), "c", make_runner, batched=True)
    assert third is not None and made == ["a", "b", "c"]
    await batchers.close()
