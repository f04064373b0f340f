"""The protocol-neutral data plane: "run signature S of model M version V on these named tensors", with the
image path ("classify these images") as a fast path for models with the image contract.

Protocol adapters (TF Serving gRPC and REST, KServe v2 gRPC) turn their messages into named numpy arrays (or
image bytes) with the shared codec (service/tensors) and call this; it checks them against the signature,
feeds the right batcher one item per row (or per image, decoded off the event loop) and maps batching
failures onto serving errors. A request holds a lease on the version it picked, so a version being replaced
by a newer one unloads only after the requests already routed to it have their answers.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from opentelemetry import trace

from batching import BatcherClosedError, BatchTimeoutError, DeadlineExceededError as BatchDeadlineExceeded
from batching import Batcher, ItemError, QueueFullError, Reservation, UnmeetableDeadlineError

from service.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidInputError,
    ModelExecutionError,
    ResourceExhaustedError,
    UnavailableError,
)
from service.process import self_warmup
from service.dataplane.image_limits import ImageTooLargeError, check_pixel_count
from service.models.model_manager import ModelManager, ServedVersion
from service.runtime.model_runtime import EncodedImage, ImageDecodeError, Prediction
from service.models.signature_batching import (
    WHOLE_REQUEST,
    BatchInputError,
    RequestTensors,
    Row,
    SignatureRunner,
    gather,
)
from service.tensors.dtypes import BY_NUMPY
from service.tensors.spec import CLASSIFY_METHOD, REGRESS_METHOD, SignatureSpec
from service.observability.tracing import ATTR_IMAGES, ATTR_MODEL_NAME, ATTR_MODEL_VERSION, current_span_context


@dataclass(slots=True)
class Classification:
    """The answer to one request: which version computed it, and one Prediction per image, in order."""

    model_name: str
    model_version: int
    predictions: list[Prediction]


@dataclass(slots=True)
class TensorResult:
    """The answer to a Predict: which version and signature computed it, and the named outputs."""

    model_name: str
    model_version: int
    signature_name: str
    outputs: dict[str, np.ndarray]


@dataclass(slots=True)
class ClassifyResult:
    """A Classify's answer: `classes` (bytes, [N, k]) and/or `scores` (float32, [N, k]), as the signature has."""

    model_name: str
    model_version: int
    signature_name: str
    classes: np.ndarray | None
    scores: np.ndarray | None

    @property
    def rows(self) -> list[list[tuple[bytes | None, float | None]]]:
        """Per example, its (label, score) pairs; a part the signature lacks is None."""
        table = self.classes if self.classes is not None else self.scores
        assert table is not None
        return [
            [
                (None if self.classes is None else self.classes[row, column],
                 None if self.scores is None else float(self.scores[row, column]))
                for column in range(table.shape[1])
            ]
            for row in range(table.shape[0])
        ]


@dataclass(slots=True)
class RegressResult:
    model_name: str
    model_version: int
    signature_name: str
    values: np.ndarray  # float32 [N]


CLASSIFY_INPUT, REGRESS_INPUT, REGRESS_OUTPUT = "inputs", "inputs", "outputs"


class DataPlane:
    """`max_inflight_requests` (0: unbounded) caps requests being decoded, queued or computed at once;
    `max_image_pixels` (0: unbounded) refuses images whose header declares more pixels, before decoding;
    `signature_method_name_check` makes Classify and Regress require the signature's method_name too."""

    def __init__(
        self,
        models: ModelManager,
        decode_executor: Executor,
        *,
        max_images_per_request: int,
        max_inflight_requests: int = 0,
        max_image_pixels: int = 0,
        signature_method_name_check: bool = False,
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
        self._method_name_check = signature_method_name_check
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
            _require_image_contract(served)
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
            _require_image_contract(served)
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
            raise ResourceExhaustedError(_queue_full_message(served, served.batcher)) from None
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
        predictions = await self._submit(
            served, served.batcher, items, input_name, deadline, reservation  # type: ignore[arg-type]
        )
        return Classification(model_name=served.name, model_version=served.version, predictions=predictions)

    async def _submit(
        self,
        served: ServedVersion,
        batcher: Batcher[Any, Any],
        items: Sequence[Any],
        input_name: str,
        deadline: float | None,
        reservation: Reservation | None = None,
    ) -> list[Any]:
        """Submit a request's items to `batcher`; batching failures as serving errors naming `input_name`."""
        try:
            return await batcher.submit(
                items,
                deadline=deadline,
                context=self._item_context(),
                reservation=reservation,
            )
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
                raise _invalid_image(input_name, error.index, error.cause) from None
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

    # -- any signature -----------------------------------------------------------------------

    @staticmethod
    def signature(served: ServedVersion, name: str) -> SignatureSpec:
        """The signature a request names; TF Serving's FAILED_PRECONDITION wording when the model lacks it."""
        runtime = served.runtime
        spec = runtime.signatures.get(name)  # type: ignore[union-attr]
        if spec is None:
            why = runtime.unusable_signatures.get(name)  # type: ignore[union-attr]
            if why is not None:
                raise InvalidInputError(why)
            raise FailedPreconditionError(f'Serving signature key "{name}" not found.')
        return spec

    async def predict(
        self,
        served: ServedVersion,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        *,
        output_filter: Sequence[str] = (),
        deadline: float | None = None,
    ) -> TensorResult:
        """Run any signature on named inputs; rows of concurrent requests share batches (TF Serving's rule,
        service/signature_batching.py). `output_filter` names the outputs wanted (default: all)."""
        with served.lease(), self._admitted():
            spec = self.signature(served, signature_name)
            wanted = _wanted_outputs(spec, output_filter)
            outputs = await self._run_signature(served, spec, inputs, deadline)
            return TensorResult(served.name, served.version, spec.name, {name: outputs[name] for name in wanted})

    async def classify_examples(
        self, served: ServedVersion, signature_name: str, examples: Sequence[bytes], *, deadline: float | None = None,
    ) -> ClassifyResult:
        """Classify serialized tf.Examples with a classify signature, checked and answered as TF Serving does."""
        with served.lease(), self._admitted():
            spec = self.signature(served, signature_name)
            _check_classify_signature(spec, self._method_name_check)
            outputs = await self._run_signature(served, spec, {CLASSIFY_INPUT: _examples_array(examples)}, deadline)
            classes, scores = outputs.get("classes"), outputs.get("scores")
            _check_classify_outputs(classes, scores, len(examples))
            return ClassifyResult(served.name, served.version, spec.name, classes, scores)

    async def regress_examples(
        self, served: ServedVersion, signature_name: str, examples: Sequence[bytes], *, deadline: float | None = None,
    ) -> RegressResult:
        """Regress serialized tf.Examples with a regress signature, checked and answered as TF Serving does."""
        with served.lease(), self._admitted():
            spec = self.signature(served, signature_name)
            _check_regress_signature(spec, self._method_name_check)
            outputs = await self._run_signature(served, spec, {REGRESS_INPUT: _examples_array(examples)}, deadline)
            values = outputs[REGRESS_OUTPUT]
            if values.dtype != np.float32:
                raise ModelExecutionError(f"Expected output Tensor of DT_FLOAT. Got: {values.dtype}")
            if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)) or values.shape[0] != len(examples):
                raise ModelExecutionError(
                    f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {list(values.shape)}"
                )
            return RegressResult(served.name, served.version, spec.name, values.reshape(-1))

    async def _run_signature(
        self, served: ServedVersion, spec: SignatureSpec, inputs: Mapping[str, np.ndarray], deadline: float | None,
    ) -> dict[str, np.ndarray]:
        arrays = _checked_inputs(spec, inputs)
        request = RequestTensors(arrays)
        if spec.batchable:
            rows = _row_count(spec, arrays, self._max_images)
            shapes = tuple(array.shape[1:] for array in arrays)
            key: tuple[Any, ...] = (spec.name, shapes)
            items = [Row(request, index) for index in range(rows)]
            label = f"{spec.name}{''.join(str(list(shape)) for shape in shapes)}"
        else:
            key, items, label = (spec.name,), [Row(request, WHOLE_REQUEST)], spec.name
        if self._tracing:
            _describe_request(served, len(items))
        runtime = served.runtime
        batcher = served.signature_batchers.get(  # type: ignore[union-attr]
            key, label,
            lambda: SignatureRunner(partial(runtime.run_signature, spec.name),  # type: ignore[union-attr]
                                    tuple(spec.inputs), tuple(spec.outputs), batched=spec.batchable),
            batched=spec.batchable,
        )
        if batcher is None:
            raise ResourceExhaustedError(
                f"model '{served.name}' is batching too many different input shapes at once: retry later"
            )
        results = await self._submit(served, batcher, items, f"signature '{spec.name}' input row", deadline)
        return dict(zip(spec.outputs, gather(results, len(spec.outputs))))


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


def _queue_full_message(served: ServedVersion, batcher: Batcher[Any, Any]) -> str:
    return (
        f"model '{served.name}' queue is full ({batcher.queue_depth} items waiting, "
        f"{batcher.reserved} being prepared): retry later"
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


def _require_image_contract(served: ServedVersion) -> None:
    if served.batcher is None:
        raise InvalidInputError(
            f"model '{served.name}' takes named tensors, not images: call a signature of it "
            f"({', '.join(sorted(served.runtime.signatures))})"  # type: ignore[union-attr]
        )


def _wanted_outputs(spec: SignatureSpec, output_filter: Sequence[str]) -> list[str]:
    """TF Serving's output_filter rules and wording (predict_util.cc)."""
    if not output_filter:
        return list(spec.outputs)
    seen: set[str] = set()
    for name in output_filter:
        if name not in spec.outputs:
            raise InvalidInputError(
                f"output tensor alias not found in signature: {name} Outputs expected to be in the set "
                f"{{{','.join(sorted(spec.outputs))}}}."
            )
        if name in seen:
            raise InvalidInputError(f"duplicate output tensor alias: {name}")
        seen.add(name)
    return list(output_filter)


def _checked_inputs(spec: SignatureSpec, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The inputs in the signature's order, each of the signature's type and, where the model enforces them, its
    shape (TF Serving's wording for names; ours, naming the input, for types and shapes, which TF would only
    report from inside the graph)."""
    if len(inputs) != len(spec.inputs) or any(name not in spec.inputs for name in inputs):
        for name in inputs:
            if name not in spec.inputs:
                raise InvalidInputError(
                    f"input tensor alias not found in signature: {name}. Inputs expected to be in the set "
                    f"{{{','.join(sorted(spec.inputs))}}}."
                )
        missing = sorted(set(spec.inputs) - set(inputs))
        raise InvalidInputError(
            f"input size does not match signature: {len(inputs)}!={len(spec.inputs)} "
            f"len({{{','.join(sorted(inputs))}}}) != len({{{','.join(sorted(spec.inputs))}}}). "
            f"Sent extra: {{}}. Missing but required: {{{','.join(missing)}}}."
        )
    arrays = []
    for name, tensor in spec.inputs.items():
        array = inputs[name]
        if array.dtype != tensor.dtype.numpy:
            known = BY_NUMPY.get(array.dtype)
            got = known.tf_name if known is not None else str(array.dtype)
            raise InvalidInputError(
                f"input '{name}' is {got}; signature '{spec.name}' takes {tensor.dtype.tf_name}"
            )
        if spec.shapes_enforced and tensor.shape is not None and (
            array.ndim != len(tensor.shape)
            or any(want >= 0 and want != got for want, got in zip(tensor.shape, array.shape))
        ):
            raise InvalidInputError(
                f"input '{name}' has shape {list(array.shape)}; signature '{spec.name}' takes {list(tensor.shape)} "
                "(-1: any size)"
            )
        arrays.append(array)
    return tuple(arrays)


def _row_count(spec: SignatureSpec, arrays: Sequence[np.ndarray], max_rows: int) -> int:
    """The batch size every input agrees on (dimension 0), within the per-request limit."""
    for name, array in zip(spec.inputs, arrays):
        if array.ndim == 0:  # TF Serving's batching session wording
            raise InvalidInputError(
                f"Batching session Run() input tensors must have at least one dimension: input '{name}' is a scalar"
            )
    sizes = {name: array.shape[0] for name, array in zip(spec.inputs, arrays)}
    rows = next(iter(sizes.values()))
    if any(size != rows for size in sizes.values()):
        raise InvalidInputError(
            f"inputs of signature '{spec.name}' must agree in dimension 0 (the batch), got sizes {sizes}"
        )
    if rows == 0:
        raise InvalidInputError(f"inputs of signature '{spec.name}' hold 0 rows: send at least one")
    if rows > max_rows:
        raise InvalidInputError(
            f"the request holds {rows} rows; this server accepts at most {max_rows} per request "
            "(--max_images_per_request)"
        )
    return rows


def _examples_array(examples: Sequence[bytes]) -> np.ndarray:
    if not examples:
        raise InvalidInputError("Invalid argument: Input is empty.")
    array = np.empty(len(examples), dtype=object)
    array[:] = list(examples)
    return array


def _check_classify_signature(spec: SignatureSpec, method_name_check: bool) -> None:
    """TF Serving's PreProcessClassification checks and wording: the method name only when asked to
    (--enable_signature_method_name_check), since `tf.saved_model.save` names every signature predict."""
    if method_name_check and spec.method_name != CLASSIFY_METHOD:
        raise InvalidInputError(
            f"Expected classification signature method_name to be {CLASSIFY_METHOD}. Was: {spec.method_name}"
        )
    if len(spec.inputs) != 1:
        raise InvalidInputError("Expected one input Tensor.")
    if len(spec.outputs) not in (1, 2):
        raise InvalidInputError(f"Expected one or two output Tensors, found {len(spec.outputs)}")
    if CLASSIFY_INPUT not in spec.inputs:
        raise InvalidInputError(f"No classification inputs found in SignatureDef '{spec.name}'")
    if "classes" not in spec.outputs and "scores" not in spec.outputs:
        raise InvalidInputError(
            'Expected classification signature outputs to contain at least one of "classes" or "scores". '
            f"Signature was: '{spec.name}'"
        )


def _check_classify_outputs(classes: np.ndarray | None, scores: np.ndarray | None, examples: int) -> None:
    """TF Serving's PostProcessClassificationResult checks: what the model returned must be a classification."""
    for name, table in (("classes", classes), ("scores", scores)):
        if table is None:
            continue
        if table.ndim != 2:
            raise ModelExecutionError(f"Expected Tensor shape: [batch_size num_classes] but got {list(table.shape)}")
        if name == "classes" and table.dtype != object:
            raise ModelExecutionError(f"Expected classes Tensor of DT_STRING. Got: {table.dtype}")
        if name == "scores" and table.dtype != np.float32:
            raise ModelExecutionError(f"Expected scores Tensor of DT_FLOAT. Got: {table.dtype}")
        if table.shape[0] != examples:
            raise ModelExecutionError(f"Expected {name} output batch size of {examples}. Got: {table.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise ModelExecutionError(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}"
        )


def _check_regress_signature(spec: SignatureSpec, method_name_check: bool) -> None:
    """TF Serving's PreProcessRegression checks and wording (the method name as for classification)."""
    if method_name_check and spec.method_name != REGRESS_METHOD:
        raise InvalidInputError(
            f"Expected regression signature method_name to be {REGRESS_METHOD}. Was: {spec.method_name}"
        )
    if len(spec.inputs) != 1:
        raise InvalidInputError("Expected one input Tensor.")
    if len(spec.outputs) != 1:
        raise InvalidInputError("Expected one output Tensor.")
    if REGRESS_INPUT not in spec.inputs:
        raise InvalidInputError(f"No regression inputs found in SignatureDef '{spec.name}'")
    if REGRESS_OUTPUT not in spec.outputs:
        raise InvalidInputError(f"No regression outputs found in SignatureDef '{spec.name}'")
