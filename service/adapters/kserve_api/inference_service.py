"""KServe v2 / Open Inference Protocol: `inference.GRPCInferenceService` over the protocol-neutral data plane.

The messages and service stubs come from tritonclient (`tritonclient.grpc.service_pb2[_grpc]`), the maintained
package Triton's own clients use, so `tritonclient.grpc` works against this server unchanged.

Any model: ModelInfer runs the signature the request's parameter `signature_name` names (Triton's TensorFlow
backend has no such notion), else the model's default: `serving_default`, or for a model with the image
contract `images` (BYTES `[N]` or `[N, 1]`: encoded JPEG/PNG/GIF/BMP) or `pixels` (FP32 `[N, H, W, 3]`),
answered with `classes` (BYTES `[N, k]`) and `scores` (FP32 `[N, k]`); the data plane chooses. Inputs and
outputs are named as in the signature, every v2 datatype mapped both ways (v2_tensors.py), outputs in
`raw_output_contents` as Triton answers.
"""

from __future__ import annotations


import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from service.adapters.grpc_status import deadline_of, maps_errors_to_status
from service.adapters.kserve_api import v2_tensors as v2
from service.adapters.kserve_api.protocol import PLATFORM, SERVER_NAME, parse_version, server_version, worded_for_triton
from service.dataplane import DataPlane, PredictRequest
from service.errors import InvalidInputError
from service.tensors.spec import SignatureSpec, TensorSpec

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
class _V2Inputs:
    """A ModelInferRequest's tensors (typed, or raw bytes in `raw_input_contents`), decoded when the data plane
    asks."""

    __slots__ = ("_request",)

    def __init__(self, request: service_pb2.ModelInferRequest) -> None:
        self._request = request

    @property
    def names(self) -> list[str]:
        return [tensor.name for tensor in self._request.inputs]

    def decode(self, signature: SignatureSpec) -> dict[str, np.ndarray]:
        request = self._request
        if request.raw_input_contents and len(request.raw_input_contents) != len(request.inputs):
            raise InvalidInputError(
                f"raw_input_contents holds {len(request.raw_input_contents)} entries for {len(request.inputs)} input(s)"
            )
        inputs = {}
        for index, tensor in enumerate(request.inputs):
            if tensor.name in inputs:
                raise InvalidInputError(f"input '{tensor.name}' is given twice")
            raw = request.raw_input_contents[index] if request.raw_input_contents else None
            inputs[tensor.name] = v2.input_array(tensor, raw)
        return inputs


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Liveness, readiness, metadata and ModelInfer; the rest of the v2 service answers UNIMPLEMENTED."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    async def ServerLive(self, request, context):  # type: ignore[no-untyped-def]
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):  # type: ignore[no-untyped-def]
        return service_pb2.ServerReadyResponse(ready=self._dataplane.server_ready())

    async def ModelReady(self, request, context):  # type: ignore[no-untyped-def]
        try:
            version = parse_version(request.version)
        except InvalidInputError:
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=self._dataplane.model_ready(request.name, version))

    async def ServerMetadata(self, request, context):  # type: ignore[no-untyped-def]
        return service_pb2.ServerMetadataResponse(name=SERVER_NAME, version=server_version(), extensions=[])

    @maps_errors_to_status
    async def ModelMetadata(
        self, request: service_pb2.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelMetadataResponse:
        """The inputs and outputs of a request that names no signature: an image model's `images` or
        `pixels` and its `classes` and `scores`, any other model's serving_default."""
        with worded_for_triton():
            model = self._dataplane.describe_model(request.name, parse_version(request.version))
        return service_pb2.ModelMetadataResponse(
            name=model.name, versions=[str(v) for v in model.available_versions], platform=PLATFORM,
            inputs=[_tensor_metadata(t) for t in model.default_inputs],
            outputs=[_tensor_metadata(t) for t in model.default_outputs],
        )

    @maps_errors_to_status
    async def ModelInfer(
        self, request: service_pb2.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelInferResponse:
        """Any model: the request's signature parameter, or the model's default for its inputs."""
        name, version = request.model_name, parse_version(request.model_version)
        with worded_for_triton():
            self._dataplane.check_model(name, version)  # NOT_FOUND before a fault in the parameters
            signature = _signature_parameter(request)
            result = await self._dataplane.predict(PredictRequest(
                name, version, signature, _V2Inputs(request), [output.name for output in request.outputs],
                deadline_of(context),
            ))
        response = service_pb2.ModelInferResponse(
            model_name=result.model_name, model_version=str(result.model_version), id=request.id
        )
        for output_name, array in result.outputs.items():
            v2.fill_output(response, output_name, array)
        return response


def _signature_parameter(request: service_pb2.ModelInferRequest) -> str | None:
    """The request parameter `signature_name` (a string); None (the model's default) without one."""
    if "signature_name" not in request.parameters:
        return None
    parameter = request.parameters["signature_name"]
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise InvalidInputError("parameter 'signature_name' must be a string")
    return parameter.string_param or None


def _tensor_metadata(spec: TensorSpec) -> service_pb2.ModelMetadataResponse.TensorMetadata:
    """A signature tensor in v2 terms; -1 for an unknown dimension, [-1] for an unknown rank."""
    try:
        datatype = v2.datatype_of(spec.dtype)
    except InvalidInputError:
        datatype = spec.dtype.tf_name  # complex: no v2 name; say what it is rather than hide it
    shape = list(spec.shape) if spec.shape is not None else [-1]
    return service_pb2.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=datatype, shape=shape)
