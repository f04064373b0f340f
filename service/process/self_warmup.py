"""One real request through the whole serving stack before the server reports SERVING.

Loading and warming the model (model_manager) leaves the first client request still paying for the
stack's own first call: gRPC's first stream, the first lookup and wrapping of the method's handler, the first proto parse and
serialisation, the batcher's dispatcher and thread start-up (about 8 ms on our 2-core machine, against a
3 ms median). So the server sends itself one Predict per model on loopback. The request carries a
metadata marker (service/observability/warmup_marker.py, which holds the marker without any gRPC): the RPC
observer leaves it out of the request metrics, traces and access log, and the data plane marks its batch item
so the batch listeners leave it out of the batch metrics. This module is only the loopback gRPC client.
"""

from __future__ import annotations

import grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service.observability.warmup_marker import METADATA_KEY
from service.runtime.signatures import ENCODED_IMAGES_SIGNATURE, INPUT_KEY_BY_SIGNATURE


def loopback_address(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "localhost"):
        return f"127.0.0.1:{port}"
    if host in ("::", "[::]"):
        return f"[::1]:{port}"
    return f"{host}:{port}"


async def warm_up_through_grpc(address: str, model_images: dict[str, bytes], timeout: float = 120) -> None:
    """One `predict_images` request per model, with a small image of its own making."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for model, image in model_images.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.model_spec.signature_name = ENCODED_IMAGES_SIGNATURE
            tensor = request.inputs[INPUT_KEY_BY_SIGNATURE[ENCODED_IMAGES_SIGNATURE]]
            tensor.dtype = types_pb2.DT_STRING
            tensor.tensor_shape.dim.add(size=1)
            tensor.string_val.append(image)
            await stub.Predict(request, timeout=timeout, metadata=((METADATA_KEY, "1"),))
