"""The image path: images decoded in a pool off the event loop, one batch item per image, and the idle fast path.

Taken for a model with the image contract when a request names one of its request-level image signatures
(service/dataplane/routing.py). The input's values become encoded images (or, for `classify_pixels`, pixels
already preprocessed); the answer is `classes` and `scores`, as `classify_pixels` returns them.

**Idle fast path.** A lone image on an idle model goes to the batch thread still encoded, and the model decodes
it in the same graph call as the network, as the in-process `predict_images` does: with nothing else to
overlap, a separate decode would only add a thread hop, a graph call and two pixel copies (about 1 ms).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Callable, Mapping, Sequence

import numpy as np
from opentelemetry import trace

from service.errors import InvalidInputError
from service.dataplane.image_limits import ImageTooLargeError, check_pixel_count
from service.dataplane.predict import check_dtype, check_input_names
from service.dataplane.routing import Route
from service.dataplane.submission import invalid_image, reserve, submit
from service.models.served_version import ServedVersion
from service.observability.tracing import ATTR_IMAGES
from service.runtime.model_runtime import EncodedImage, ImageDecodeError, Prediction
from service.runtime.signatures import OUTPUT_KEYS, image_items
from service.tensors.image_inputs import image_bytes_from_serialized_examples


class ImagePath:
    """`max_images` caps images per request; `max_pixels` (0: unbounded) refuses images whose header
    declares more pixels, before decoding."""

    def __init__(
        self, decode_executor: Executor, *, max_images: int, max_pixels: int, tracer: trace.Tracer | None,
    ) -> None:
        self._decode_executor = decode_executor
        self._max_images = max_images
        self._max_pixels = max_pixels
        self._tracer = tracer

    def items(self, served: ServedVersion, route: Route, inputs: Mapping[str, np.ndarray]) -> list[bytes] | np.ndarray:
        """The request's encoded images (a list) or pixels `[N, H, W, 3]` (an array), checked."""
        spec, name = route.spec, route.image_input
        assert name is not None
        check_input_names(spec, inputs)
        array = inputs[name]
        check_dtype(spec, spec.inputs[name], array)
        if array.dtype == object and array.ndim:  # encoded images: counted before any tf.Example is parsed
            self._check_count(array.shape[0], name)
        items = image_items(spec.name, array, served.runtime.input_shape)  # type: ignore[union-attr]
        if isinstance(items, np.ndarray):  # pixels: counted once their shape is known to be [N, H, W, 3]
            self._check_count(len(items), name)
        return items

    def examples_images(self, examples: Sequence[bytes], input_name: str) -> list[bytes]:
        """The images of a Classify's serialized tf.Examples."""
        self._check_count(len(examples), input_name)
        return image_bytes_from_serialized_examples(examples, input_name)

    async def classify(
        self, served: ServedVersion, items: list[bytes] | np.ndarray, input_name: str, deadline: float | None,
        context: object,
    ) -> list[Prediction]:
        """Encoded images: decoded in the pool, then batched (a lone one on an idle model: decoded in the
        batch); pixels: straight to the batcher. Errors name `input_name[index]`."""
        batcher = served.batcher
        assert batcher is not None
        if isinstance(items, np.ndarray):
            return await submit(served, batcher, list(items), input_name, deadline, context)
        if len(items) == 1 and batcher.idle:
            if self._max_pixels:  # a few bytes of header, on the loop: the server is idle by definition
                try:
                    check_pixel_count(items[0], self._max_pixels)
                except ImageTooLargeError as error:
                    raise invalid_image(input_name, 0, error) from None
            return await submit(served, batcher, [EncodedImage(bytes(items[0]))], input_name, deadline, context)
        # Queue room is taken before decoding: under overload the request is refused now, not after waiting
        # behind every other admitted image for a decode thread.
        with reserve(served, batcher, len(items), deadline) as reservation:
            if self._tracer is not None:
                with self._tracer.start_as_current_span("decode", attributes={ATTR_IMAGES: len(items)}):
                    pixels = await self._decode_all(served, items, input_name)
            else:
                pixels = await self._decode_all(served, items, input_name)
            return await submit(served, batcher, pixels, input_name, deadline, context, reservation)

    @staticmethod
    def outputs(predictions: Sequence[Prediction]) -> dict[str, np.ndarray]:
        """The answers as `classify_pixels` returns them: `classes` (bytes) and `scores` (float32), [N, k]."""
        if len(predictions) == 1:  # the common request: its scores are a row of the batch's, viewed not copied
            classes = np.empty((1, len(predictions[0].classes)), dtype=object)
            classes[0] = predictions[0].classes
            return dict(zip(OUTPUT_KEYS, (classes, np.asarray(predictions[0].scores, dtype=np.float32).reshape(1, -1))))
        classes = np.empty((len(predictions), len(predictions[0].classes) if predictions else 0), dtype=object)
        for row, prediction in enumerate(predictions):
            classes[row] = prediction.classes
        scores = np.asarray([p.scores for p in predictions], dtype=np.float32).reshape(classes.shape)
        return dict(zip(OUTPUT_KEYS, (classes, scores)))

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
                raise invalid_image(input_name, index, outcome)
            if isinstance(outcome, BaseException):
                raise outcome
        return decoded  # type: ignore[return-value]


def _checked_decode(preprocess: Callable[[bytes], np.ndarray], max_pixels: int, image: bytes) -> np.ndarray:
    """In the decode pool: refuse from the header first, so a decompression bomb is never decoded."""
    if max_pixels:
        check_pixel_count(image, max_pixels)
    return preprocess(image)
