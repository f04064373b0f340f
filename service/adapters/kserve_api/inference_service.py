"""KServe v2 / Open Inference Protocol: `inference.GRPCInferenceService` over the protocol-neutral data plane.

The messages and service stubs come from tritonclient (`tritonclient.grpc.service_pb2[_grpc]`), the maintained
package Triton's own clients use, so `tritonclient.grpc` works against this server unchanged.

Any model: ModelInfer runs its `serving_default` signature (another one when the request's parameter
`signature_name` names it, as Triton's TensorFlow backend has no such notion), its inputs and outputs named
as in the signature, every v2 datatype mapped both ways (v2_tensors.py), outputs in
`raw_output_contents` as Triton answers. A model with the image contract instead takes exactly one input,
`images` (BYTES `[N]` or `[N, 1]`: encoded JPEG/PNG/GIF/BMP) or `pixels` (FP32 `[N, H, W, 3]`), and answers
`classes` (BYTES `[N, k]`) and `scores` (FP32 `[N, k]`), through the image fast path.
"""

from __future__ import annotations

import contextlib
from importlib import metadata
from typing import Iterator, Sequence

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from service.dataplane.dataplane import Classification, DataPlane
from service.errors import InvalidInputError, ModelNotFoundError, ServingError
from service.adapters.grpc_status import deadline_of, maps_errors_to_status
from service.models.model_manager import ServedVersion, VersionState
from service.runtime.signatures import DEFAULT_SIGNATURE, OUTPUT_KEYS, PIXELS_SIGNATURE
from service.adapters.kserve_api import v2_tensors as v2
from service.tensors.spec import TensorSpec

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
IMAGES_INPUT = "images"
PIXELS_INPUT = "pixels"
PLATFORM = "tensorflow_savedmodel"
SERVER_NAME = "batchserve"


def _server_version() -> str:
    try:
        return metadata.version(SERVER_NAME)
    except metadata.PackageNotFoundError:
        return "0"


def parse_version(text: str) -> int | None:
    """KServe versions are strings; "" means the server's choice (the highest available)."""
    if not text:
        return None
    # ASCII digits only ("²" and "١" are digits to str.isdigit), within int64 as versions are
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > 2**63 - 1:
        raise InvalidInputError(f"model_version must be a version number or empty, got '{text[:40]}'")
    return int(text)


@contextlib.contextmanager
def _worded_for_triton() -> Iterator[None]:
    """An unknown model or version in Triton's words, which tritonclient users match on."""
    try:
        yield
    except ModelNotFoundError as error:
        version = f" version {error.version}" if error.version is not None else ""
        raise ModelNotFoundError(
            f"Request for unknown model: '{error.model_name}'{version} is not found",
            model_name=error.model_name, version=error.version,
        ) from None


def _pixels_shape(served: ServedVersion) -> list[int]:
    return [-1, *served.runtime.input_shape]  # type: ignore[union-attr]


def _top_k(served: ServedVersion) -> int:
    scores = served.runtime.signature_defs[PIXELS_SIGNATURE].outputs["scores"]  # type: ignore[union-attr]
    dims = [dim.size for dim in scores.tensor_shape.dim]
    return dims[1] if len(dims) == 2 else -1


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Liveness, readiness, metadata and ModelInfer; the rest of the v2 service answers UNIMPLEMENTED."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    async def ServerLive(self, request, context):  # type: ignore[no-untyped-def]
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):  # type: ignore[no-untyped-def]
        models = self._dataplane.models
        return service_pb2.ServerReadyResponse(ready=models.all_available() and not models.stuck_seconds())

    async def ModelReady(self, request, context):  # type: ignore[no-untyped-def]
        try:
            served = self._dataplane.models.get(request.name, parse_version(request.version))
        except ServingError:
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=served.stuck_since is None)  # a stuck model is not ready

    async def ServerMetadata(self, request, context):  # type: ignore[no-untyped-def]
        return service_pb2.ServerMetadataResponse(name=SERVER_NAME, version=_server_version(), extensions=[])

    @maps_errors_to_status
    async def ModelMetadata(
        self, request: service_pb2.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelMetadataResponse:
        models = self._dataplane.models
        with _worded_for_triton():
            served = models.get(request.name, parse_version(request.version))
        available = [str(v.version) for v in models.versions(request.name) if v.state is VersionState.AVAILABLE]
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        if not served.runtime.image_contract:  # type: ignore[union-attr]
            spec = self._dataplane.signature(served, DEFAULT_SIGNATURE)
            return service_pb2.ModelMetadataResponse(
                name=served.name, versions=available, platform=PLATFORM,
                inputs=[_tensor_metadata(t) for t in spec.inputs.values()],
                outputs=[_tensor_metadata(t) for t in spec.outputs.values()],
            )
        k = _top_k(served)
        return service_pb2.ModelMetadataResponse(
            name=served.name,
            versions=available,
            platform=PLATFORM,
            inputs=[  # exactly one of the two per request
                tensor(name=IMAGES_INPUT, datatype="BYTES", shape=[-1]),
                tensor(name=PIXELS_INPUT, datatype="FP32", shape=_pixels_shape(served)),
            ],
            outputs=[
                tensor(name="classes", datatype="BYTES", shape=[-1, k]),
                tensor(name="scores", datatype="FP32", shape=[-1, k]),
            ],
        )

    @maps_errors_to_status
    async def ModelInfer(
        self, request: service_pb2.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelInferResponse:
        name, version = request.model_name, parse_version(request.model_version)
        with _worded_for_triton():
            served = self._dataplane.model(name, version)  # NOT_FOUND before input errors
        signature = _signature_parameter(request)  # checked on every model: a wrong type is an error
        if not served.runtime.image_contract or "signature_name" in request.parameters:  # type: ignore[union-attr]
            return await self._infer_tensors(served, request, context, signature)
        if len(request.inputs) != 1:
            raise InvalidInputError(
                f"ModelInfer takes exactly one input, '{IMAGES_INPUT}' (BYTES [N]) or '{PIXELS_INPUT}' "
                f"(FP32 [N, H, W, 3]); got {[t.name for t in request.inputs]}"
            )
        if request.raw_input_contents and len(request.raw_input_contents) != len(request.inputs):
            raise InvalidInputError(
                f"raw_input_contents holds {len(request.raw_input_contents)} entries for {len(request.inputs)} input(s)"
            )
        wanted = [output.name for output in request.outputs] or list(OUTPUT_KEYS)
        unknown = sorted(set(wanted) - set(OUTPUT_KEYS))
        if unknown:
            raise InvalidInputError(f"unknown outputs {unknown}; outputs: {list(OUTPUT_KEYS)}")
        tensor = request.inputs[0]
        raw = request.raw_input_contents[0] if request.raw_input_contents else None
        deadline = deadline_of(context)
        if tensor.name == IMAGES_INPUT:
            images = self._images(tensor, raw)
            result = await self._dataplane.classify_images(served, images, input_name=IMAGES_INPUT, deadline=deadline)
        elif tensor.name == PIXELS_INPUT:
            pixels = self._pixels(tensor, raw)
            result = await self._dataplane.classify_pixels(served, pixels, input_name=PIXELS_INPUT, deadline=deadline)
        else:
            raise InvalidInputError(f"unknown input '{tensor.name}'; use '{IMAGES_INPUT}' or '{PIXELS_INPUT}'")
        return self._response(request, result, wanted)

    async def _infer_tensors(
        self, served: ServedVersion, request: service_pb2.ModelInferRequest, context: grpc.aio.ServicerContext,
        signature: str,
    ) -> service_pb2.ModelInferResponse:
        """Any model: the v2 tensors as named arrays through a signature, the outputs back as v2 tensors."""
        spec = self._dataplane.signature(served, signature)
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
        wanted = [output.name for output in request.outputs]
        unknown = sorted(set(wanted) - set(spec.outputs))
        if unknown:
            raise InvalidInputError(f"unknown outputs {unknown}; model '{served.name}' outputs: {sorted(spec.outputs)}")
        result = await self._dataplane.predict(
            served, signature, inputs, output_filter=wanted, deadline=deadline_of(context)
        )
        response = service_pb2.ModelInferResponse(
            model_name=result.model_name, model_version=str(result.model_version), id=request.id
        )
        for output_name, array in result.outputs.items():
            v2.fill_output(response, output_name, array)
        return response

    @staticmethod
    def _images(tensor: service_pb2.ModelInferRequest.InferInputTensor, raw: bytes | None) -> list[bytes]:
        if tensor.datatype != "BYTES":
            raise InvalidInputError(f"input '{IMAGES_INPUT}' must be BYTES (encoded images), got {tensor.datatype}")
        shape = list(tensor.shape)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise InvalidInputError(f"input '{IMAGES_INPUT}' must have shape [N] or [N, 1], got {shape}")
        return v2.input_array(tensor, raw).reshape(-1).tolist()  # counts, layout and mixed contents checked there

    @staticmethod
    def _pixels(tensor: service_pb2.ModelInferRequest.InferInputTensor, raw: bytes | None) -> np.ndarray:
        if tensor.datatype != "FP32":
            raise InvalidInputError(f"input '{PIXELS_INPUT}' must be FP32, got {tensor.datatype}")
        return v2.input_array(tensor, raw)  # shape (hostile dimensions included) and byte counts checked there

    @staticmethod
    def _response(
        request: service_pb2.ModelInferRequest, result: Classification, wanted: list[str]
    ) -> service_pb2.ModelInferResponse:
        response = service_pb2.ModelInferResponse(
            model_name=result.model_name, model_version=str(result.model_version), id=request.id
        )
        count = len(result.predictions)
        k = len(result.predictions[0].classes) if count else 0
        for output in wanted:
            response.outputs.add(name=output, datatype="BYTES" if output == "classes" else "FP32", shape=[count, k])
            if output == "classes":
                response.raw_output_contents.append(
                    v2.serialize_bytes([label for p in result.predictions for label in p.classes])
                )
            else:
                scores = np.stack([p.scores for p in result.predictions]).astype("<f4", copy=False)
                response.raw_output_contents.append(scores.tobytes())
        return response


def _signature_parameter(request: service_pb2.ModelInferRequest) -> str:
    """The request parameter `signature_name` (a string), else serving_default."""
    if "signature_name" not in request.parameters:
        return DEFAULT_SIGNATURE
    parameter = request.parameters["signature_name"]
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise InvalidInputError("parameter 'signature_name' must be a string")
    return parameter.string_param or DEFAULT_SIGNATURE


def _tensor_metadata(spec: TensorSpec) -> service_pb2.ModelMetadataResponse.TensorMetadata:
    """A signature tensor in v2 terms; -1 for an unknown dimension, [-1] for an unknown rank."""
    try:
        datatype = v2.datatype_of(spec.dtype)
    except InvalidInputError:
        datatype = spec.dtype.tf_name  # complex: no v2 name; say what it is rather than hide it
    shape = list(spec.shape) if spec.shape is not None else [-1]
    return service_pb2.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=datatype, shape=shape)
