"""Handing a request's items to a batcher, and batching's failures as the serving errors a client acts on."""

from __future__ import annotations

from typing import Any, Sequence

from batching import BatcherClosedError, BatchTimeoutError, DeadlineExceededError as BatchDeadlineExceeded
from batching import Batcher, ItemError, QueueFullError, Reservation, UnmeetableDeadlineError

from service.errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelExecutionError,
    ResourceExhaustedError,
    UnavailableError,
)
from service.dataplane.image_limits import ImageTooLargeError
from service.models.served_version import ServedVersion
from service.runtime.errors import BatchInputError
from service.runtime.model_runtime import ImageDecodeError


def reserve(served: ServedVersion, batcher: Batcher[Any, Any], count: int, deadline: float | None) -> Reservation:
    """Queue room for `count` items still being decoded, or a refusal now."""
    try:
        return batcher.reserve(count, deadline=deadline)
    except QueueFullError:
        raise ResourceExhaustedError(_queue_full_message(served, batcher)) from None
    except UnmeetableDeadlineError as error:
        raise ResourceExhaustedError(_unmeetable_deadline_message(served, error)) from None
    except BatcherClosedError:
        raise UnavailableError(f"model '{served.name}' version {served.version} is shutting down") from None


async def submit(
    served: ServedVersion,
    batcher: Batcher[Any, Any],
    items: Sequence[Any],
    input_name: str,
    deadline: float | None,
    context: object,
    reservation: Reservation | None = None,
) -> list[Any]:
    """Submit a request's items to `batcher`; batching failures as serving errors naming `input_name`."""
    try:
        return await batcher.submit(items, deadline=deadline, context=context, reservation=reservation)
    except QueueFullError:
        raise ResourceExhaustedError(_queue_full_message(served, batcher)) from None
    except UnmeetableDeadlineError as error:
        raise ResourceExhaustedError(_unmeetable_deadline_message(served, error)) from None
    except BatchDeadlineExceeded:
        raise DeadlineExceededError(f"deadline passed while {input_name} waited for the model") from None
    except BatcherClosedError:
        raise UnavailableError(f"model '{served.name}' version {served.version} is shutting down") from None
    except ItemError as error:
        if isinstance(error.cause, ImageDecodeError):  # decoded in the batch (the idle fast path)
            raise invalid_image(input_name, error.index, error.cause) from None
        if isinstance(error.cause, BatchInputError):  # TensorFlow refused the request's own inputs
            raise InvalidInputError(str(error.cause)) from None
        if isinstance(error.cause, BatchDeadlineExceeded):
            raise DeadlineExceededError(
                f"deadline passed while {input_name}[{error.index}] waited for the model"
            ) from None
        if isinstance(error.cause, BatchTimeoutError):
            raise UnavailableError(
                f"model '{served.name}' is stuck: {error.cause}; {input_name}[{error.index}] was not computed"
            ) from None
        raise ModelExecutionError(
            f"model '{served.name}' failed on {input_name}[{error.index}]: {error.cause}"
        ) from error


def invalid_image(input_name: str, index: int, error: ImageTooLargeError | ImageDecodeError) -> InvalidInputError:
    """One wording for a bad image, wherever it was found: the decode pool, the loop or the batch."""
    if isinstance(error, ImageDecodeError):
        return InvalidInputError(f"{input_name}[{index}] is not a decodable image: {error}")
    return InvalidInputError(f"{input_name}[{index}] {error}")


def _queue_full_message(served: ServedVersion, batcher: Batcher[Any, Any]) -> str:
    return (
        f"model '{served.name}' queue is full ({batcher.queue_depth} items queued, "
        f"{batcher.reserved} decoding): retry later"
    )


def _unmeetable_deadline_message(served: ServedVersion, error: UnmeetableDeadlineError) -> str:
    """RESOURCE_EXHAUSTED, not DEADLINE_EXCEEDED: the deadline has not passed, and the client can act on
    the refusal now (retry on another replica, back off, or allow more time)."""
    return (
        f"model '{served.name}' cannot answer before the request's deadline ({error}); it was not run: "
        "retry later, elsewhere or with a longer deadline"
    )
