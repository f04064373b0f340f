"""The floor: the least a Python gRPC server can do for a Predict — grpc.aio on uvloop, a minimal asyncio
batcher and a numpy model, nothing else (no validation, metrics, decode pool or threads).

Our server, serving the trivial model on the same requests, is measured against it in the same run, so the
ratio shows what our serving machinery costs.
"""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

LABELS = [f"class_{i}".encode() for i in range(10)]


class NumpyModel:
    """The trivial model's shape (32x32x3 → 32 → 10), in numpy."""

    def __init__(self, size: int = 32, hidden: int = 32, classes: int = 10, top_k: int = 5) -> None:
        rng = np.random.default_rng(0)
        self.w1 = rng.normal(0, 0.05, (size * size * 3, hidden)).astype(np.float32)
        self.w2 = rng.normal(0, 0.05, (hidden, classes)).astype(np.float32)
        self.top_k = top_k

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = np.maximum(pixels.reshape(len(pixels), -1) @ self.w1, 0)
        logits = hidden @ self.w2
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        indices = np.argsort(-probabilities, axis=1)[:, : self.top_k]
        return indices, np.take_along_axis(probabilities, indices, axis=1)


class FloorBatcher:
    """Whatever is queued runs as one batch as soon as the previous one is done."""

    def __init__(self, model: NumpyModel, max_batch_size: int = 64) -> None:
        self._model = model
        self._max = max_batch_size
        self._queue: list[tuple[np.ndarray, asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((pixels, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                indices, scores = self._model(np.concatenate([pixels for pixels, _ in batch]))
                for row, (_, future) in enumerate(batch):
                    if not future.done():
                        future.set_result((indices[row], scores[row]))
                await asyncio.sleep(0)


def _shape(*dims: int) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])


class FloorPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self) -> None:
        self._batcher: FloorBatcher | None = None

    async def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        if self._batcher is None:
            self._batcher = FloorBatcher(NumpyModel())
        tensor = request.inputs["pixels"]
        pixels = np.frombuffer(tensor.tensor_content, dtype=np.float32).reshape([d.size for d in tensor.tensor_shape.dim])
        indices, scores = await self._batcher.submit(pixels)
        response = predict_pb2.PredictResponse()
        response.outputs["classes"].CopyFrom(
            tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=_shape(1, len(indices)),
                                   string_val=[LABELS[i] for i in indices])
        )
        response.outputs["scores"].CopyFrom(
            tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=_shape(1, len(scores)),
                                   tensor_content=scores.astype(np.float32).tobytes())
        )
        return response


async def serve_floor(host: str, port: int) -> None:
    server = grpc.aio.server()
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(FloorPredictionService(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"ready: floor server grpc={host}:{bound}", flush=True)
    await server.wait_for_termination()
