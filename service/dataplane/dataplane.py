"""The protocol-neutral data plane: one call per request kind, from a request's tensors (or tf.Examples) to
its answer, whichever protocol carried it.

Each call resolves the model version and holds a lease on it (a version being replaced unloads only after the
requests routed to it have their answers), admits the request against --max_inflight_requests, finds its
signature and path (service/dataplane/routing.py), decodes and checks its inputs, and runs it through the
image path or the tensor path into the version's batchers. Adapters translate their protocol to these calls
and the results back; they never see a model version, a runtime or a batcher.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Mapping

import numpy as np
from opentelemetry import trace

from service.errors import InvalidInputError, ModelNotFoundError, ResourceExhaustedError, ServingError
from service.dataplane import classifier, regressor, routing
from service.dataplane.image_path import ImagePath
from service.dataplane.multi_inference import check_tasks
from service.dataplane.predict import wanted_outputs
from service.dataplane.signature_path import rows_of, run_rows
from service.dataplane.types import (
    ClassifyResult,
    ExamplesRequest,
    ModelDescription,
    MultiInferenceRequest,
    PredictRequest,
    PredictResult,
    RegressResult,
    Version,
    VersionStatus,
)
from service.models.model_config import sources_from_config
from service.models.model_manager import ModelManager
from service.models.served_version import ServedVersion, VersionState
from service.observability import warmup_marker
from service.observability.tracing import ATTR_IMAGES, ATTR_MODEL_NAME, ATTR_MODEL_VERSION, current_span_context
from service.runtime.model_runtime import ModelLoadError
from service.tensors.spec import CLASSIFY_METHOD, SignatureSpec



class DataPlane:
    """`max_inflight_requests` (0: unbounded) caps inference requests holding a model version at once (being
    decoded, queued or running); `max_image_pixels` (0: unbounded) refuses images whose header declares more
    pixels, before decoding; `signature_method_name_check` makes Classify and Regress require the
    signature's method_name too."""

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
        self._max_rows = max_images_per_request
        self._max_inflight = max_inflight_requests
        self._method_name_check = signature_method_name_check
        tracer = tracer or trace.NoOpTracer()
        # Off, per-request span work (context look-ups, attributes) is skipped, not done on no-op spans.
        self._tracing = not isinstance(tracer, trace.NoOpTracer)
        self._images = ImagePath(
            decode_executor, max_images=max_images_per_request, max_pixels=max_image_pixels,
            tracer=tracer if self._tracing else None,
        )

    # -- inference ---------------------------------------------------------------------------

    async def predict(self, request: PredictRequest) -> PredictResult:
        """Run a signature on named tensors: TF Serving's Predict, KServe's ModelInfer."""
        served = self._models.get(request.model, request.version)
        with self._admitted(served):
            # Input names matter only to a request that names no signature (KServe): read them only then.
            names = request.inputs.names if request.signature is None else ()
            route = routing.route(served, request.signature, names)
            spec = route.spec
            inputs = request.inputs.decode(spec)
            wanted = wanted_outputs(spec, request.output_filter)
            if route.image_input is not None:
                items = self._images.items(served, route, inputs)
                del inputs
                if self._tracing:
                    self._describe(served, len(items))
                predictions = await self._images.classify(
                    served, items, route.image_input, request.deadline, self._item_context()
                )
                outputs = self._images.outputs(predictions)
            else:
                outputs = await self._run_signature(served, spec, inputs, request.deadline)
            if list(outputs) != wanted:
                outputs = {name: outputs[name] for name in wanted}
            return PredictResult(served.name, served.version, spec.name, outputs)

    async def classify(self, request: ExamplesRequest) -> ClassifyResult:
        """Classify serialized tf.Examples: an image model's serving_default through the image path, any
        other classify signature as TF Serving checks and answers it."""
        served = self._models.get(request.model, request.version)
        with self._admitted(served):
            return await self._classify(served, request.signature, request.examples(), request.deadline)

    async def regress(self, request: ExamplesRequest) -> RegressResult:
        served = self._models.get(request.model, request.version)
        with self._admitted(served):
            return await self._regress(served, request.signature, request.examples(), request.deadline)

    async def multi_inference(self, request: MultiInferenceRequest) -> list[ClassifyResult | RegressResult]:
        """Several classify and regress signatures of one model on the same examples, in the tasks' order."""
        model = check_tasks(request.tasks)
        served = self._models.get(model, request.version)
        with self._admitted(served):
            examples = request.examples()
            results: list[ClassifyResult | RegressResult] = []
            for task in request.tasks:
                run = self._classify if task.method_name == CLASSIFY_METHOD else self._regress
                results.append(await run(served, task.signature, examples, request.deadline))
            return results

    async def _classify(
        self, served: ServedVersion, signature: str, examples: Any, deadline: float | None
    ) -> ClassifyResult:
        route = routing.route(served, signature, ())
        if route.image_input == classifier.CLASSIFY_INPUT:  # an image model's serving_default: images in tf.Examples
            images = self._images.examples_images(_non_empty(examples), "examples")
            self._describe(served, len(images))
            predictions = await self._images.classify(served, images, "examples", deadline, self._item_context())
            outputs = self._images.outputs(predictions)
            return ClassifyResult(served.name, served.version, route.spec.name, outputs["classes"], outputs["scores"])
        spec = routing.signature_spec(served, signature)
        classifier.check_classify_signature(spec, self._method_name_check)
        outputs = await self._run_signature(served, spec, {classifier.CLASSIFY_INPUT: _non_empty(examples)}, deadline)
        classes, scores = outputs.get("classes"), outputs.get("scores")
        classifier.check_classify_outputs(classes, scores, len(examples))
        return ClassifyResult(served.name, served.version, spec.name, classes, scores)

    async def _regress(
        self, served: ServedVersion, signature: str, examples: Any, deadline: float | None
    ) -> RegressResult:
        spec = routing.signature_spec(served, signature)
        regressor.check_regress_signature(spec, self._method_name_check)
        outputs = await self._run_signature(served, spec, {regressor.REGRESS_INPUT: _non_empty(examples)}, deadline)
        values = regressor.regression_values(outputs[regressor.REGRESS_OUTPUT], len(examples))
        return RegressResult(served.name, served.version, spec.name, values)

    async def _run_signature(
        self, served: ServedVersion, spec: SignatureSpec, inputs: Mapping[str, np.ndarray], deadline: float | None,
    ) -> dict[str, np.ndarray]:
        key, items, label = rows_of(spec, inputs, self._max_rows)
        self._describe(served, len(items))
        return await run_rows(served, spec, key, items, label, deadline, self._item_context())

    def _admitted(self, served: ServedVersion) -> Any:
        """The version's lease, which counts the request in flight; or a refusal now when the server already
        holds --max_inflight_requests."""
        if self._max_inflight and self._models.in_flight_requests >= self._max_inflight:
            raise ResourceExhaustedError(
                f"server is at its limit of {self._max_inflight} requests in flight "
                "(--max_inflight_requests): retry later"
            )
        return served.lease()

    def _item_context(self) -> object:
        """What the batch listeners learn of the request behind an item (see batching.BatchInfo.contexts)."""
        if _in_warmup():
            return warmup_marker.BATCH_ITEM_CONTEXT
        return current_span_context() if self._tracing else None

    def _describe(self, served: ServedVersion, items: int) -> None:
        """Name the model version and item count on the request's span."""
        if self._tracing:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes(
                    {ATTR_MODEL_NAME: served.name, ATTR_MODEL_VERSION: served.version, ATTR_IMAGES: items}
                )

    # -- models ------------------------------------------------------------------------------

    def check_model(self, model: str, version: Version) -> None:
        """NOT_FOUND (or UNAVAILABLE while starting) now, before a request's body is read or judged."""
        self._models.get(model, version)

    def describe_model(self, model: str, version: Version) -> ModelDescription:
        served = self._models.get(model, version)
        runtime = served.runtime
        assert runtime is not None
        inputs, outputs = routing.default_interface(served)
        return ModelDescription(
            name=served.name,
            version=served.version,
            available_versions=tuple(
                v.version for v in self._models.versions(model) if v.state is VersionState.AVAILABLE
            ),
            signature_defs=dict(runtime.signature_defs),
            export_metadata=dict(runtime.metadata),
            default_inputs=inputs,
            default_outputs=outputs,
        )

    def model_status(self, model: str, version: Version) -> list[VersionStatus]:
        """Every version of `model` the server knows (or just `version`, a number or a label)."""
        versions = self._models.versions(model)
        if isinstance(version, str):
            version = self._models.version_for_label(model, version)
        if version is not None:
            versions = [v for v in versions if v.version == version]
            if not versions:  # TF Serving's wording (get_model_status_impl)
                raise ModelNotFoundError(
                    f"Could not find version {version} of model {model}", model_name=model, version=version
                )
        return [
            VersionStatus(v.version, v.state.value, v.error or None, v.stuck_since is not None) for v in versions
        ]

    def model_ready(self, model: str, version: Version) -> bool:
        """Serving, and not stuck on a model call."""
        try:
            served = self._models.get(model, version)
        except ServingError:  # unknown, or the server is still starting
            return False
        return served.stuck_since is None

    def server_ready(self) -> bool:
        return self._models.all_available() and not self._models.stuck_seconds()

    async def reload_config(self, config: Any) -> None:
        """Serve exactly the models of a ModelServerConfig (HandleReloadConfigRequest)."""
        try:
            await self._models.apply_config(sources_from_config(config))
        except ValueError as error:
            raise InvalidInputError(f"model config not applied: {error}") from None
        except ModelLoadError as error:
            raise InvalidInputError(f"model config not applied, the served models are unchanged: {error}") from None


_in_warmup = warmup_marker.in_warmup


def _non_empty(examples: Any) -> Any:
    """Serialized tf.Examples as the string tensor a signature takes; TF Serving's wording for none."""
    if len(examples) == 0:
        raise InvalidInputError("Invalid argument: Input is empty.")
    if isinstance(examples, np.ndarray):
        return examples
    array = np.empty(len(examples), dtype=object)
    array[:] = list(examples)
    return array


