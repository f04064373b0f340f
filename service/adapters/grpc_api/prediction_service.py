"""TF Serving's `tensorflow.serving.PredictionService` over the data plane.

Any signature of any model is served through the data plane's named-tensor path; a model with the image
contract takes its image signatures through the image fast path (decode pool, idle fast path).
"""

from __future__ import annotations

from typing import Sequence

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from service.dataplane.dataplane import Classification, DataPlane, RegressResult
from service.errors import InvalidInputError
from service.adapters.grpc_status import deadline_of, maps_errors_to_status
from service.adapters.tf_serving_messages import model_metadata_response, response_spec
from service.models.model_manager import ServedVersion
from service.tensors import tensor_proto
from service.tensors.spec import CLASSIFY_METHOD, REGRESS_METHOD
from service.tensors import image_inputs
from service.adapters.grpc_api import converters

from service.runtime.signatures import (  # re-exported: tests import them from here
    DEFAULT_SIGNATURE,
    ENCODED_IMAGES_SIGNATURE,
    INPUT_KEY_BY_SIGNATURE,
    OUTPUT_KEYS,
    PIXELS_SIGNATURE,
    SERIALIZED_EXAMPLES_SIGNATURE,
)


def requested_version(model_spec: model_pb2.ModelSpec) -> int | str | None:
    """`model_spec.version` (a number), `model_spec.version_label` (a label, resolved by the model manager),
    or None: the latest."""
    if model_spec.HasField("version"):
        return model_spec.version.value
    return model_spec.version_label or None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, dataplane: DataPlane, *, tensor_content: bool = False) -> None:
        self._dataplane = dataplane
        self._tensor_content = tensor_content  # numbers packed, not in the typed *_val fields TF Serving uses

    @maps_errors_to_status
    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        served = self._dataplane.model(spec.name, requested_version(spec))
        signature = spec.signature_name or DEFAULT_SIGNATURE
        input_key = INPUT_KEY_BY_SIGNATURE.get(signature)
        if input_key is None or not served.runtime.image_contract:  # type: ignore[union-attr]
            return await self._predict_tensors(served, signature, request, context)
        inputs = request.inputs
        if len(inputs) != 1 or input_key not in inputs:  # the common case costs two checks
            unexpected = sorted(set(inputs) - {input_key})
            if unexpected:
                raise InvalidInputError(
                    f"signature '{signature}' takes only input '{input_key}'; unexpected inputs {unexpected}"
                )
            raise InvalidInputError(f"input '{input_key}' missing: signature '{signature}' needs it")
        wanted_outputs: Sequence[str] = OUTPUT_KEYS
        if request.output_filter:
            wanted_outputs = list(request.output_filter)
            unknown_outputs = sorted(set(wanted_outputs) - set(OUTPUT_KEYS))
            if unknown_outputs:
                raise InvalidInputError(
                    f"output_filter names unknown outputs {unknown_outputs}; outputs: {list(OUTPUT_KEYS)}"
                )

        tensor = inputs[input_key]
        deadline = deadline_of(context)
        if signature == PIXELS_SIGNATURE:
            pixels = image_inputs.float_array(tensor, input_key)
            result = await self._dataplane.classify_pixels(served, pixels, input_name=input_key, deadline=deadline)
        else:
            values = image_inputs.string_vector(tensor, input_key)
            if signature == SERIALIZED_EXAMPLES_SIGNATURE:
                values = image_inputs.image_bytes_from_serialized_examples(values, input_key)
            result = await self._dataplane.classify_images(served, values, input_name=input_key, deadline=deadline)
        return self._predict_response(result, signature, wanted_outputs, self._tensor_content)

    async def _predict_tensors(
        self, served: ServedVersion, signature: str, request: predict_pb2.PredictRequest,
        context: grpc.aio.ServicerContext,
    ) -> predict_pb2.PredictResponse:
        """Any signature: the request's TensorProtos as named arrays, the outputs back as TensorProtos."""
        self._dataplane.signature(served, signature)  # FAILED_PRECONDITION before any input is judged
        inputs = {name: tensor_proto.to_array(tensor, name) for name, tensor in request.inputs.items()}
        result = await self._dataplane.predict(
            served, signature, inputs, output_filter=list(request.output_filter), deadline=deadline_of(context)
        )
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(response_spec(result.model_name, result.model_version, result.signature_name))
        for name, array in result.outputs.items():
            tensor_proto.fill_proto(response.outputs[name], array, as_content=self._tensor_content)
        return response

    @staticmethod
    def _predict_response(
        result: Classification, signature: str, outputs: Sequence[str], tensor_content: bool
    ) -> predict_pb2.PredictResponse:
        response = predict_pb2.PredictResponse()
        spec = response.model_spec  # filled in place: no ModelSpec built and copied per response
        spec.name = result.model_name
        spec.signature_name = signature
        spec.version.value = result.model_version
        if "classes" in outputs:
            converters.fill_classes(response.outputs["classes"], result.predictions)
        if "scores" in outputs:
            converters.fill_scores(response.outputs["scores"], result.predictions, as_content=tensor_content)
        return response

    @maps_errors_to_status
    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.aio.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        spec = request.model_spec
        served = self._dataplane.model(spec.name, requested_version(spec))
        signature = spec.signature_name or DEFAULT_SIGNATURE
        if signature != SERIALIZED_EXAMPLES_SIGNATURE or not served.runtime.image_contract:  # type: ignore[union-attr]
            classified = await self._dataplane.classify_examples(
                served, signature, converters.serialized_examples(request.input), deadline=deadline_of(context)
            )
            return classification_pb2.ClassificationResponse(
                model_spec=response_spec(classified.model_name, classified.model_version, classified.signature_name),
                result=converters.classification_result_of(classified.rows),
            )
        images = image_inputs.image_bytes_from_input(request.input)
        result = await self._dataplane.classify_images(
            served, images, input_name="input.examples", deadline=deadline_of(context)
        )
        return classification_pb2.ClassificationResponse(
            model_spec=response_spec(result.model_name, result.model_version, signature),
            result=converters.classification_result(result.predictions),
        )

    @maps_errors_to_status
    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        spec = request.model_spec
        served = self._dataplane.model(spec.name, requested_version(spec))
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise InvalidInputError(
                f"metadata_field must be ['signature_def'] (the only metadata TF Serving defines), got {fields}"
            )
        return model_metadata_response(served)

    @maps_errors_to_status
    async def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        spec = request.model_spec
        served = self._dataplane.model(spec.name, requested_version(spec))
        result = await self._dataplane.regress_examples(
            served, spec.signature_name or DEFAULT_SIGNATURE, converters.serialized_examples(request.input),
            deadline=deadline_of(context),
        )
        return regression_pb2.RegressionResponse(
            model_spec=response_spec(result.model_name, result.model_version, result.signature_name),
            result=_regression_result(result),
        )

    @maps_errors_to_status
    async def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        """Several classify and regress signatures of one model on the same examples (TF Serving's rules:
        one model, each signature once)."""
        tasks = list(request.tasks)
        if not tasks:
            raise InvalidInputError("Tasks is empty")
        model_name = tasks[0].model_spec.name
        signatures: set[str] = set()
        for task in tasks:
            if task.model_spec.name != model_name:
                raise InvalidInputError("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            signature = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if signature in signatures:
                raise InvalidInputError(f"Duplicate evaluation of signature: {signature}")
            signatures.add(signature)
            if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                raise InvalidInputError(f"Unsupported signature method_name: {task.method_name}")
        served = self._dataplane.model(model_name, requested_version(tasks[0].model_spec))
        examples = converters.serialized_examples(request.input)
        deadline = deadline_of(context)
        response = inference_pb2.MultiInferenceResponse()
        for task in tasks:
            signature = task.model_spec.signature_name or DEFAULT_SIGNATURE
            result = response.results.add()
            if task.method_name == CLASSIFY_METHOD:
                classified = await self._dataplane.classify_examples(served, signature, examples, deadline=deadline)
                result.model_spec.CopyFrom(
                    response_spec(classified.model_name, classified.model_version, classified.signature_name))
                result.classification_result.CopyFrom(converters.classification_result_of(classified.rows))
            else:
                regressed = await self._dataplane.regress_examples(served, signature, examples, deadline=deadline)
                result.model_spec.CopyFrom(
                    response_spec(regressed.model_name, regressed.model_version, regressed.signature_name))
                result.regression_result.CopyFrom(_regression_result(regressed))
        return response


def _regression_result(result: RegressResult) -> regression_pb2.RegressionResult:
    return regression_pb2.RegressionResult(
        regressions=[regression_pb2.Regression(value=float(value)) for value in result.values]
    )
