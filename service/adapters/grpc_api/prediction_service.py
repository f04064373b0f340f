"""TF Serving's `tensorflow.serving.PredictionService` over the data plane: each RPC's protos become one data
plane call, and its result the response protos."""

from __future__ import annotations

from typing import Collection, Mapping

import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from service.adapters.grpc_api import converters
from service.adapters.grpc_status import deadline_of, maps_errors_to_status
from service.adapters.tf_serving_messages import model_metadata_response, response_spec
from service.dataplane import (
    DEFAULT_SIGNATURE,
    DataPlane,
    ExamplesRequest,
    InferenceTask,
    MultiInferenceRequest,
    PredictRequest,
    RegressResult,
)
from service.errors import InvalidInputError

from service.tensors import tensor_proto
from service.tensors.spec import CLASSIFY_METHOD, SignatureSpec


def requested_version(model_spec: model_pb2.ModelSpec) -> int | str | None:
    """`model_spec.version` (a number), `model_spec.version_label` (a label, resolved by the model manager),
    or None: the latest."""
    if model_spec.HasField("version"):
        return model_spec.version.value
    return model_spec.version_label or None


class _TensorProtoInputs:
    """A PredictRequest's inputs, decoded when the data plane asks (TensorProtos carry their own types)."""

    __slots__ = ("_tensors",)

    def __init__(self, tensors: Mapping[str, object]) -> None:
        self._tensors = tensors

    @property
    def names(self) -> Collection[str]:
        return self._tensors.keys()

    def decode(self, signature: SignatureSpec) -> dict[str, np.ndarray]:
        return {name: tensor_proto.to_array(tensor, name) for name, tensor in self._tensors.items()}  # type: ignore[arg-type]


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, dataplane: DataPlane, *, tensor_content: bool = False) -> None:
        self._dataplane = dataplane
        self._tensor_content = tensor_content  # numbers packed, not in the typed *_val fields TF Serving uses

    @maps_errors_to_status
    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        result = await self._dataplane.predict(PredictRequest(
            spec.name, requested_version(spec), spec.signature_name or DEFAULT_SIGNATURE,
            _TensorProtoInputs(request.inputs), request.output_filter, deadline_of(context),
        ))
        response = predict_pb2.PredictResponse()
        answered = response.model_spec  # filled in place: no ModelSpec built and copied per response
        answered.name = result.model_name
        answered.signature_name = result.signature_name
        answered.version.value = result.model_version
        for name, array in result.outputs.items():
            tensor_proto.fill_proto(response.outputs[name], array, as_content=self._tensor_content)
        return response

    @maps_errors_to_status
    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.aio.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        classified = await self._dataplane.classify(self._examples_request(request, context))
        return classification_pb2.ClassificationResponse(
            model_spec=response_spec(classified.model_name, classified.model_version, classified.signature_name),
            result=converters.classification_result_of(classified.rows),
        )

    @maps_errors_to_status
    async def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        result = await self._dataplane.regress(self._examples_request(request, context))
        return regression_pb2.RegressionResponse(
            model_spec=response_spec(result.model_name, result.model_version, result.signature_name),
            result=_regression_result(result),
        )

    @maps_errors_to_status
    async def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        tasks = [
            InferenceTask(task.model_spec.name, task.model_spec.signature_name or DEFAULT_SIGNATURE, task.method_name)
            for task in request.tasks
        ]
        version = requested_version(request.tasks[0].model_spec) if request.tasks else None
        results = await self._dataplane.multi_inference(MultiInferenceRequest(
            tasks, version, lambda: converters.serialized_examples(request.input), deadline_of(context),
        ))
        response = inference_pb2.MultiInferenceResponse()
        for task, answered in zip(tasks, results):
            result = response.results.add()
            result.model_spec.CopyFrom(
                response_spec(answered.model_name, answered.model_version, answered.signature_name))
            if task.method_name == CLASSIFY_METHOD:
                result.classification_result.CopyFrom(converters.classification_result_of(answered.rows))  # type: ignore[union-attr]
            else:
                result.regression_result.CopyFrom(_regression_result(answered))  # type: ignore[arg-type]
        return response

    @maps_errors_to_status
    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        spec = request.model_spec
        model = self._dataplane.describe_model(spec.name, requested_version(spec))
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise InvalidInputError(
                f"metadata_field must be ['signature_def'] (the only metadata TF Serving defines), got {fields}"
            )
        return model_metadata_response(model)

    @staticmethod
    def _examples_request(
        request: classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest,
        context: grpc.aio.ServicerContext,
    ) -> ExamplesRequest:
        spec = request.model_spec
        return ExamplesRequest(
            spec.name, requested_version(spec), spec.signature_name or DEFAULT_SIGNATURE,
            lambda: converters.serialized_examples(request.input), deadline_of(context),
        )


def _regression_result(result: RegressResult) -> regression_pb2.RegressionResult:
    return regression_pb2.RegressionResult(
        regressions=[regression_pb2.Regression(value=float(value)) for value in result.values]
    )
