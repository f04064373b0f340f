"""BatchingParameters and the batching errors: validation, padding, messages."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from batching import (
    BatcherClosedError,
    BatchingError,
    BatchingParameters,
    DeadlineExceededError,
    ItemError,
    QueueFullError,
)


def test_defaults_match_the_documented_values() -> None:
    parameters = BatchingParameters()
    assert parameters.max_batch_size == 32
    assert parameters.batch_timeout_micros == 1000
    assert parameters.max_enqueued_batches == 64
    assert parameters.num_batch_threads == 1
    assert parameters.allowed_batch_sizes == ()
    assert parameters.dispatch_when_idle is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_batch_size", 0, "max_batch_size must be > 0, got 0"),
        ("max_batch_size", -3, "max_batch_size must be > 0, got -3"),
        ("batch_timeout_micros", -1, "batch_timeout_micros must be >= 0, got -1"),
        ("max_enqueued_batches", 0, "max_enqueued_batches must be > 0, got 0"),
        ("num_batch_threads", 0, "num_batch_threads must be > 0, got 0"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_field(field: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        BatchingParameters(**{field: value})


@pytest.mark.parametrize(
    "field", ["max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"]
)
@pytest.mark.parametrize("value", [1.5, "8", True, None])
def test_non_int_values_are_a_type_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"^{field} must be an int"):
        BatchingParameters(**{field: value})


def test_dispatch_when_idle_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="dispatch_when_idle"):
        BatchingParameters(dispatch_when_idle=1)  # type: ignore[arg-type]


def test_zero_timeout_is_allowed() -> None:
    assert BatchingParameters(batch_timeout_micros=0).batch_timeout_seconds == 0


def test_allowed_batch_sizes_list_is_normalised_to_a_tuple() -> None:
    parameters = BatchingParameters(max_batch_size=8, allowed_batch_sizes=[2, 4, 8])  # type: ignore[arg-type]
    assert parameters.allowed_batch_sizes == (2, 4, 8)
    hash(parameters)  # still hashable, like any frozen dataclass


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ((2, 2, 8), "allowed_batch_sizes must be strictly increasing"),
        ((4, 2, 8), "allowed_batch_sizes must be strictly increasing"),
        ((0, 8), "allowed_batch_sizes element must be > 0"),
        ((-2, 8), "allowed_batch_sizes element must be > 0"),
        ((2, 4), r"allowed_batch_sizes must end with max_batch_size \(8\)"),
        ((2, 4, 16), r"allowed_batch_sizes must end with max_batch_size \(8\)"),
    ],
)
def test_allowed_batch_sizes_follow_tf_serving_rules(sizes: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchingParameters(max_batch_size=8, allowed_batch_sizes=sizes)


def test_allowed_batch_sizes_must_hold_ints() -> None:
    with pytest.raises(TypeError, match="allowed_batch_sizes"):
        BatchingParameters(max_batch_size=8, allowed_batch_sizes=(2.0, 8))  # type: ignore[arg-type]


def test_parameters_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BatchingParameters().max_batch_size = 4  # type: ignore[misc]


def test_padded_size_is_n_when_every_size_is_allowed() -> None:
    parameters = BatchingParameters(max_batch_size=8)
    assert [parameters.padded_size(n) for n in range(1, 9)] == list(range(1, 9))


def test_padded_size_is_the_smallest_allowed_size_that_fits() -> None:
    parameters = BatchingParameters(max_batch_size=8, allowed_batch_sizes=(1, 2, 4, 8))
    assert [parameters.padded_size(n) for n in range(1, 9)] == [1, 2, 4, 4, 8, 8, 8, 8]


@pytest.mark.parametrize("n", [0, 9])
def test_padded_size_refuses_impossible_batch_sizes(n: int) -> None:
    with pytest.raises(ValueError, match=r"batch size must be in 1\.\.8"):
        BatchingParameters(max_batch_size=8, allowed_batch_sizes=(4, 8)).padded_size(n)


def test_max_enqueued_items_is_batches_times_batch_size() -> None:
    assert BatchingParameters(max_batch_size=8, max_enqueued_batches=5).max_enqueued_items == 40


def test_unbatched_makes_every_batch_size_one() -> None:
    parameters = BatchingParameters.unbatched()
    assert parameters.max_batch_size == 1
    assert parameters.batch_timeout_micros == 0
    assert parameters.allowed_batch_sizes == ()
    assert parameters.padded_size(1) == 1
    assert BatchingParameters.unbatched(num_batch_threads=4).num_batch_threads == 4


def test_errors_share_one_base_class() -> None:
    for error in (QueueFullError, BatcherClosedError, DeadlineExceededError, ItemError):
        assert issubclass(error, BatchingError)


def test_item_error_names_the_index_and_chains_the_cause() -> None:
    cause = ValueError("cannot decode image")
    error = ItemError(1, cause)
    assert str(error) == "item 1: cannot decode image"
    assert error.index == 1
    assert error.cause is cause
    assert error.__cause__ is cause


def test_item_error_message_falls_back_to_the_cause_type() -> None:
    assert str(ItemError(3, TimeoutError())) == "item 3: TimeoutError"


def test_item_error_survives_pickling() -> None:
    copy = pickle.loads(pickle.dumps(ItemError(2, ValueError("bad"))))
    assert (copy.index, str(copy)) == (2, "item 2: bad")
