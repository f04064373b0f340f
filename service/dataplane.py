"""The protocol-neutral data plane: "classify these images with model M version V".

Protocol adapters (TF Serving gRPC and REST, KServe v2 gRPC) turn their messages into plain bytes or pixel arrays and call
this; it decodes off the event loop, feeds the model's batcher one item per image and maps batching
failures onto serving errors. A request holds a lease on the version it picked, so a version being replaced
by a newer one unloads only after the requests already routed to it have their answers.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from opentelemetry import trace

from batching import BatcherClosedError, BatchTimeoutError, DeadlineExceededError as BatchDeadlineExceeded
from batching import ItemError, QueueFullError, Reservation, UnmeetableDeadlineError

from .errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelExecutionError,
    ResourceExhaustedError,
    UnavailableError,
)
from . import self_warmup
from .image_limits import ImageTooLargeError, check_pixel_count
from .model_manager import ModelManager, ServedVersion
from .runtime import EncodedImage, ImageDecodeError, Prediction
from .tracing import ATTR_IMAGES, ATTR_MODEL_NAME, ATTR_MODEL_VERSION, current_span_context


@dataclass(slots=True)
class Classification:
    """The answer to one request: which version computed it, and one Prediction per image, in order."""

    model_name: str
    model_version: int
    predictions: list[Prediction]


class DataPlane:
    """`max_inflight_requests` (0: unbounded) caps requests being decoded, queued or computed at once;
    `max_image_pixels` (0: unbounded) refuses images whose header declares more pixels, before decoding."""

    def __init__(
        self,
        models: ModelManager,
        decode_executor: Executor,
        *,
        max_images_per_request: int,
        max_inflight_requests: int = 0,
        max_image_pixels: int = 0,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._models = models
        self._decode_executor = decode_executor
        self._max_images = max_images_per_request
        self._tracer = tracer or trace.NoOpTracer()
        # Off, per-request span work (context look-ups, attributes) is skipped, not done on no-op spans.
        self._tracing = not isinstance(self._tracer, trace.NoOpTracer)
        self._max_inflight = max_inflight_requests
        self._max_pixels = max_image_pixels
        self._inflight = 0

    @property
    def inflight_requests(self) -> int:
        return self._inflight

    def _admitted(self) -> _InflightSlot:
        """Count the request in flight, or refuse it at once when the server already holds its limit."""
        if self._max_inflight and self._inflight >= self._max_inflight:
            raise ResourceExhaustedError(
                f"server is at its limit of {self._max_inflight} requests in flight "
                "(--max_inflight_requests): retry later"
            )
        return _InflightSlot(self)

    @property
    def models(self) -> ModelManager:
        return self._models

    def model(self, model_name: str, version: int | str | None) -> ServedVersion:
        """Resolve the model first, so an unknown model is NOT_FOUND before any input is judged.

        Call classify_* with the result without awaiting anything in between: they take the version's lease
        at once, and a version replaced by a newer one unloads only after its leases are returned.
        """
        return self._models.get(model_name, version)

    async def classify_images(
        self,
        served: ServedVersion,
        images: Sequence[bytes],
        *,
        input_name: str,
        deadline: float | None = None,
    ) -> Classification:
        """Decode each image in the decode pool, then batch them; errors name `input_name[index]`.

        A lone image on an idle model skips the pool: the model decodes it in the batch (`_run_encoded`).
        """
        # The lease keeps the version from unloading under this request.
        with served.lease(), self._admitted():
            self._check_count(len(images), input_name)
            if self._tracing:
                _describe_request(served, len(images))
            if len(images) == 1 and served.batcher.idle:  # type: ignore[union-attr]
                return await self._run_encoded(served, images[0], input_name, deadline)
            # Queue room is taken before decoding: under overload the request is refused now, not
            # after waiting behind every other admitted image for a decode thread.
            with self._reserve(served, len(images), deadline) as reservation:
                if self._tracing:
                    with self._tracer.start_as_current_span("decode", attributes={ATTR_IMAGES: len(images)}):
                        pixels = await self._decode_all(served, images, input_name)
                else:
                    pixels = await self._decode_all(served, images, input_name)
                return await self._run(served, pixels, input_name, deadline, reservation)

    async def _run_encoded(
        self, served: ServedVersion, image: bytes, input_name: str, deadline: float | None
    ) -> Classification:
        """The idle fast path: a lone image goes to the batch thread still encoded, and the model decodes
        it in the same graph call as the network, as the in-process `predict_images` does.

        With nothing else to overlap, a separate decode would only add a thread hop, a graph call and two
        pixel copies (about 1 ms, docs/benchmarks). The header check runs here, on the loop: it reads a
        few bytes (a few microseconds for JPEG and PNG, see image_limits) and the server is idle by definition.
        """
        if self._max_pixels:
            try:
                check_pixel_count(image, self._max_pixels)
            except ImageTooLargeError as error:
                raise _invalid_image(input_name, 0, error) from None
        return await self._run(served, [EncodedImage(bytes(image))], input_name, deadline)

    async def classify_pixels(
        self,
        served: ServedVersion,
        pixels: np.ndarray,
        *,
        input_name: str,
        deadline: float | None = None,
    ) -> Classification:
        """Already-preprocessed images `[N, H, W, 3]` straight to the batcher."""
        with served.lease(), self._admitted():
            if self._tracing:
                _describe_request(served, len(pixels))
            expected = served.runtime.input_shape  # type: ignore[union-attr]
            if pixels.ndim != 4 or tuple(pixels.shape[1:]) != tuple(expected):
                raise InvalidInputError(
                    f"input '{input_name}' must have shape [N, {', '.join(map(str, expected))}], "
                    f"got {list(pixels.shape)}"
                )
            self._check_count(len(pixels), input_name)
            return await self._run(served, list(pixels), input_name, deadline)

    def _check_count(self, count: int, input_name: str) -> None:
        if count == 0:
            raise InvalidInputError(f"input '{input_name}' is empty: send at least one image")
        if count > self._max_images:
            raise InvalidInputError(
                f"input '{input_name}' holds {count} images; this server accepts at most {self._max_images} "
                "per request (--max_images_per_request)"
            )

    async def _decode_all(self, served: ServedVersion, images: Sequence[bytes], input_name: str) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        preprocess = served.runtime.preprocess  # type: ignore[union-attr]
        decoded = await asyncio.gather(
            *(
                loop.run_in_executor(self._decode_executor, _checked_decode, preprocess, self._max_pixels, image)
                for image in images
            ),
            return_exceptions=True,
        )
        for index, outcome in enumerate(decoded):
            if isinstance(outcome, (ImageTooLargeError, ImageDecodeError)):
                raise _invalid_image(input_name, index, outcome)
            if isinstance(outcome, BaseException):
                raise outcome
        return decoded  # type: ignore[return-value]

    def _item_context(self) -> object:
        """What the batch listeners learn of the request behind an item (see batching.BatchInfo.contexts)."""
        if self_warmup.in_warmup():
            return self_warmup.BATCH_ITEM_CONTEXT
        return current_span_context() if self._tracing else None

    @staticmethod
    def _reserve(served: ServedVersion, count: int, deadline: float | None) -> Reservation:
        try:
            return served.batcher.reserve(count, deadline=deadline)  # type: ignore[union-attr]
        except QueueFullError:
            raise ResourceExhaustedError(_queue_full_message(served)) from None
        except UnmeetableDeadlineError as error:
            raise ResourceExhaustedError(_unmeetable_deadline_message(served, error)) from None
        except BatcherClosedError:
            raise UnavailableError(f"model '{served.name}' version {served.version} is shutting down") from None

    async def _run(
        self,
        served: ServedVersion,
        items: list[np.ndarray] | list[EncodedImage],
        input_name: str,
        deadline: float | None,
        reservation: Reservation | None = None,
    ) -> Classification:
        try:
            predictions = await served.batcher.submit(  # type: ignore[union-attr]
                items,
                deadline=deadline,
                context=self._item_context(),
                reservation=reservation,
            )
        except QueueFullError:
            raise ResourceExhaustedError(_queue_full_message(served)) from None
        except UnmeetableDeadlineError as error:
            raise ResourceExhaustedError(_unmeetable_deadline_message(served, error)) from None
        except BatchDeadlineExceeded:
            raise DeadlineExceededError(f"deadline passed while {input_name} waited for the model") from None
        except BatcherClosedError:
            raise UnavailableError(f"model '{served.name}' version {served.version} is shutting down") from None
        except ItemError as error:
            if isinstance(error.cause, ImageDecodeError):  # decoded in the batch (the idle fast path)
                raise _invalid_image(input_name, error.index, error.cause) from None
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
        return Classification(model_name=served.name, model_version=served.version, predictions=predictions)


class _InflightSlot:
    """A class, not a generator context manager: one is taken per request."""

    __slots__ = ("_dataplane",)

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    def __enter__(self) -> None:
        self._dataplane._inflight += 1

    def __exit__(self, *exc_info: object) -> None:
        self._dataplane._inflight -= 1


def _invalid_image(input_name: str, index: int, error: ImageTooLargeError | ImageDecodeError) -> InvalidInputError:
    """One wording for a bad image, wherever it was found: the decode pool, the loop or the batch."""
    if isinstance(error, ImageDecodeError):
        return InvalidInputError(f"{input_name}[{index}] is not a decodable image: {error}")
    return InvalidInputError(f"{input_name}[{index}] {error}")


def _queue_full_message(served: ServedVersion) -> str:
    batcher = served.batcher
    return (
        f"model '{served.name}' queue is full ({batcher.queue_depth} images waiting, "  # type: ignore[union-attr]
        f"{batcher.reserved} being decoded): retry later"  # type: ignore[union-attr]
    )


def _unmeetable_deadline_message(served: ServedVersion, error: UnmeetableDeadlineError) -> str:
    """RESOURCE_EXHAUSTED, not DEADLINE_EXCEEDED: the deadline has not passed, and the client can act on
    the refusal now (retry on another replica, back off, or allow more time)."""
    return (
        f"model '{served.name}' cannot answer before the request's deadline ({error}); it was not run: "
        "retry later, elsewhere or with a longer deadline"
    )


def _describe_request(served: ServedVersion, images: int) -> None:
    """Name the model version and image count on the request's span (a no-op when not traced)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({ATTR_MODEL_NAME: served.name, ATTR_MODEL_VERSION: served.version, ATTR_IMAGES: images})


def _checked_decode(preprocess: Callable[[bytes], np.ndarray], max_pixels: int, image: bytes) -> np.ndarray:
    """In the decode pool: refuse from the header first, so a decompression bomb is never decoded."""
    if max_pixels:
        check_pixel_count(image, max_pixels)
    return preprocess(image)
