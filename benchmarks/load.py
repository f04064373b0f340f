"""Load generation against any server speaking TF Serving's gRPC or REST API or KServe v2 gRPC (ours, TF
Serving, Triton, MLServer): closed loop and open loop.

Requests are serialized once up front and sent as raw bytes, so the client spends its CPU on sending, not on
protobuf or JSON encoding: on a 2-core machine the client shares the CPU with the server it measures.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Sequence

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2
from tritonclient.grpc import service_pb2 as kserve_pb2
from tritonclient.utils import np_to_triton_dtype

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
MODEL_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
# --protocol: TF Serving's gRPC API, its REST API, or KServe v2 (Open Inference Protocol) over gRPC, over HTTP
# with binary tensors (as tritonclient.http sends with binary_data=True) or over HTTP with JSON tensors.
PROTOCOLS = ("tfs-grpc", "tfs-rest", "kserve-grpc", "kserve-http", "kserve-http-json")
HTTP_PROTOCOLS = ("tfs-rest", "kserve-http", "kserve-http-json")
INFER_HEADER_LENGTH = "Inference-Header-Content-Length"
_MESSAGE_LIMIT = 64 * 1024 * 1024
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", _MESSAGE_LIMIT), ("grpc.max_send_message_length", _MESSAGE_LIMIT)]


@dataclass(frozen=True)
class Workload:
    """Pre-serialized Predict requests, cycled through in order."""

    name: str
    requests: tuple[bytes, ...]
    images_per_request: int = 1
    protocol: str = "tfs-grpc"
    path: str = PREDICT_METHOD  # the gRPC method, or the REST URL path
    # Per request, the length of its JSON header when binary tensors follow it (KServe v2 over HTTP); else empty.
    header_lengths: tuple[int, ...] = ()

    @classmethod
    def encoded_images(
        cls, model: str, images: Sequence[bytes], signature: str = "predict_images", protocol: str = "tfs-grpc"
    ) -> "Workload":
        """One encoded image per request: the classic Inception client's request (input `images`)."""
        if protocol != "tfs-grpc":
            arrays = [np.array([image], dtype=object) for image in images]
            return cls.tensors(model, "images", arrays, signature=signature, protocol=protocol, name="jpeg")
        serialized = []
        for image in images:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.model_spec.signature_name = signature
            tensor = request.inputs["images"]
            tensor.dtype = types_pb2.DT_STRING
            tensor.tensor_shape.dim.add(size=1)
            tensor.string_val.append(image)
            serialized.append(request.SerializeToString())
        return cls(name="jpeg", requests=tuple(serialized))

    @classmethod
    def pixels(
        cls, model: str, height: int, width: int, count: int = 16, seed: int = 0, protocol: str = "tfs-grpc"
    ) -> "Workload":
        """Already-preprocessed float pixels (`classify_pixels`): no decode, so only serving cost remains."""
        rng = np.random.default_rng(seed)
        if protocol != "tfs-grpc":
            arrays = [rng.random((1, height, width, 3), dtype=np.float32) for _ in range(count)]
            return cls.tensors(model, "pixels", arrays, signature="classify_pixels", protocol=protocol, name="pixels")
        serialized = []
        for _ in range(count):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.model_spec.signature_name = "classify_pixels"
            pixels = rng.random((1, height, width, 3), dtype=np.float32)
            request.inputs["pixels"].CopyFrom(
                tensor_pb2.TensorProto(
                    dtype=types_pb2.DT_FLOAT,
                    tensor_shape=tensor_shape_pb2.TensorShapeProto(
                        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in pixels.shape]
                    ),
                    tensor_content=pixels.tobytes(),
                )
            )
            serialized.append(request.SerializeToString())
        return cls(name="pixels", requests=tuple(serialized))


    @classmethod
    def tensors(
        cls, model: str, input_name: str, arrays: Sequence[np.ndarray], *, signature: str = "",
        protocol: str = "tfs-grpc", name: str = "tensor",
    ) -> "Workload":
        """One request per array, under `input_name`, in the protocol's own encoding: a TensorProto in a
        PredictRequest, TF Serving's REST JSON (`instances`; strings as {"b64": ...}), or a KServe v2
        ModelInferRequest with `raw_input_contents` (as tritonclient sends). `signature` is the TF Serving
        signature (KServe v2 has none: the server's default is used)."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        encoded = [_encode(protocol, model, input_name, array, signature) for array in arrays]
        requests = tuple(body for body, _ in encoded)
        header_lengths = tuple(length for _, length in encoded) if protocol == "kserve-http" else ()
        path = {"tfs-grpc": PREDICT_METHOD, "kserve-grpc": MODEL_INFER_METHOD,
                "tfs-rest": f"/v1/models/{model}:predict", "kserve-http": f"/v2/models/{model}/infer",
                "kserve-http-json": f"/v2/models/{model}/infer"}[protocol]
        rows = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
        return cls(name=name, requests=requests, images_per_request=rows, protocol=protocol, path=path,
                   header_lengths=header_lengths)


def _encode(protocol: str, model: str, input_name: str, array: np.ndarray, signature: str) -> tuple[bytes, int]:
    """The request's bytes, and the length of its JSON header when binary tensors follow it (else 0)."""
    if protocol in ("kserve-http", "kserve-http-json"):
        tensor: dict[str, object] = {"name": input_name, "datatype": np_to_triton_dtype(array.dtype),
                                     "shape": list(array.shape)}
        if protocol == "kserve-http-json":  # as tritonclient.http sends with binary_data=False
            if array.dtype == object:
                raise ValueError("kserve-http-json carries BYTES as text, not encoded images: use kserve-http")
            tensor["data"] = array.reshape(-1).tolist()
            return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode(), 0
        raw = _raw_tensor(array)
        tensor["parameters"] = {"binary_data_size": len(raw)}
        header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}},
                            separators=(",", ":")).encode()
        return header + raw, len(header)
    return _encode_other(protocol, model, input_name, array, signature), 0


def _raw_tensor(array: np.ndarray) -> bytes:
    """KServe v2's raw layout: little-endian numbers; BYTES each after a 4-byte length."""
    if array.dtype == object:
        return b"".join(struct.pack("<I", len(item)) + item for item in array.reshape(-1).tolist())
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def _encode_other(protocol: str, model: str, input_name: str, array: np.ndarray, signature: str) -> bytes:
    if protocol == "tfs-grpc":
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        tensor = request.inputs[input_name]
        if array.dtype == object:
            tensor.dtype = types_pb2.DT_STRING
            tensor.string_val.extend(array.reshape(-1).tolist())
        else:
            tensor.dtype = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.float64): types_pb2.DT_DOUBLE,
                            np.dtype(np.int32): types_pb2.DT_INT32, np.dtype(np.int64): types_pb2.DT_INT64}[array.dtype]
            tensor.tensor_content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        for size in array.shape:
            tensor.tensor_shape.dim.add(size=size)
        return request.SerializeToString()
    if protocol == "kserve-grpc":
        request = kserve_pb2.ModelInferRequest(model_name=model)
        request.inputs.add(name=input_name, datatype=np_to_triton_dtype(array.dtype), shape=list(array.shape))
        request.raw_input_contents.append(_raw_tensor(array))
        return request.SerializeToString()
    if array.dtype == object:
        rows = [[{"b64": base64.b64encode(item).decode()} for item in row] if isinstance(row, np.ndarray)
                else {"b64": base64.b64encode(row).decode()} for row in array]
    else:
        rows = array.tolist()
    body: dict[str, object] = {"instances": [{input_name: row} for row in rows]}
    if signature:
        body["signature_name"] = signature
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class LevelResult:
    """What one load level measured; latencies in milliseconds."""

    mode: str
    concurrency: int | None
    rate: float | None
    duration_s: float
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    ok_latencies_ms: list[float] = field(default_factory=list)
    error_latencies_ms: list[float] = field(default_factory=list)
    error_latencies_by_code_ms: dict[str, list[float]] = field(default_factory=dict)
    images_per_request: int = 1
    mean_batch_size: float | None = None
    server_rss_bytes: float | None = None

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    @property
    def images_per_s(self) -> float:
        return self.requests_per_s * self.images_per_request

    def percentile(self, q: float, errors: bool = False) -> float | None:
        values = self.error_latencies_ms if errors else self.ok_latencies_ms
        return float(np.percentile(values, q)) if values else None

    def summary(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "duration_s": round(self.duration_s, 3),
            "ok": self.ok,
            "errors": dict(self.errors),
            "requests_per_s": round(self.requests_per_s, 2),
            "images_per_s": round(self.images_per_s, 2),
            "p50_ms": _round(self.percentile(50)),
            "p90_ms": _round(self.percentile(90)),
            "p99_ms": _round(self.percentile(99)),
            "error_p99_ms": _round(self.percentile(99, errors=True)),
            "mean_batch_size": _round(self.mean_batch_size),
            "server_rss_mb": _round(self.server_rss_bytes / 2**20 if self.server_rss_bytes else None),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class _Recorder:
    def __init__(self) -> None:
        self.recording = False
        self.ok_latencies: list[float] = []
        self.error_latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.error_latencies_by_code: dict[str, list[float]] = {}
        # closed loop: (client, sent at, answered at, code)
        self.answers: list[tuple[int, float, float, grpc.StatusCode | str | None]] = []

    def record(self, started: float, code: grpc.StatusCode | None, measured: bool | None = None) -> None:
        """`measured` decides for this request; by default, whether the level is recording now."""
        if not (self.recording if measured is None else measured):
            return
        self._add((time.perf_counter() - started) * 1000.0, code)

    def _add(self, latency_ms: float, code: grpc.StatusCode | str | None) -> None:
        if code is None:
            self.ok_latencies.append(latency_ms)
        else:
            name = code if isinstance(code, str) else code.name  # REST answers: "HTTP_429", ...
            self.error_latencies.append(latency_ms)
            self.errors[name] += 1
            self.error_latencies_by_code.setdefault(name, []).append(latency_ms)

    def record_answer(self, client: int, started: float, code: grpc.StatusCode | None) -> None:
        """Closed loop: keep every answer with its client and times; `keep_window` picks the measured ones."""
        self.answers.append((client, started, time.perf_counter(), code))

    def keep_window(self, measure_from: float, measure_until: float, clients: int) -> float:
        """Record the answers that arrived in the window; return the seconds they took: the sum of their
        cycles (a request's send to its client's next send) ÷ the clients.

        In a closed loop throughput is clients ÷ mean cycle (the response time law), whatever the order
        of answers. Counting answers from one answer to another instead depends on which batches the ends
        fall on: at 32 clients and a bound of 32 a server settles into alternating unequal batches (31 and
        1, or 25 and 7), and a window that opens on the large batch and closes on the small one counts the
        large one without the time it ran (one such 10 s block read 15.9 images/s that way, 13.7 by cycles).
        """
        by_client: dict[int, list[tuple[int, float, float, grpc.StatusCode | str | None]]] = {}
        for answer in self.answers:
            by_client.setdefault(answer[0], []).append(answer)
        client_seconds = 0.0
        for answers in by_client.values():
            for index, (_, sent, answered, code) in enumerate(answers):
                if not measure_from <= answered < measure_until:
                    continue
                self._add((answered - sent) * 1000.0, code)
                # a client's last answer (the load stopped after it) has no next send: its latency is its cycle
                next_sent = answers[index + 1][1] if index + 1 < len(answers) else answered
                client_seconds += next_sent - sent
        if not client_seconds or not clients:
            return measure_until - measure_from
        return client_seconds / clients

    def result(
        self, mode: str, concurrency: int | None, rate: float | None, duration_s: float, images_per_request: int
    ) -> LevelResult:
        return LevelResult(
            mode=mode, concurrency=concurrency, rate=rate, duration_s=duration_s, ok=len(self.ok_latencies),
            errors=dict(self.errors), ok_latencies_ms=self.ok_latencies,
            error_latencies_ms=self.error_latencies, error_latencies_by_code_ms=self.error_latencies_by_code,
            images_per_request=images_per_request,
        )


async def _send(call: grpc.aio.UnaryUnaryMultiCallable, request: bytes, timeout: float) -> grpc.StatusCode | None:
    try:
        await call(request, timeout=timeout)
        return None
    except grpc.aio.AioRpcError as error:
        return error.code()


def _channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)


Send = Callable[[bytes, float], Awaitable["grpc.StatusCode | str | None"]]


@contextlib.asynccontextmanager
async def _sender(target: str, workload: Workload) -> AsyncIterator[Send]:
    """send(request, timeout) -> None when answered OK, else the failure's code (a gRPC status, or HTTP_<n>)."""
    if workload.protocol not in HTTP_PROTOCOLS:
        async with _channel(target) as channel:
            call = channel.unary_unary(workload.path)
            yield lambda request, timeout: _send(call, request, timeout)
        return
    import aiohttp

    url = f"http://{target}{workload.path}"
    plain = {"Content-Type": "application/json"}
    # Binary tensors after a JSON header (KServe v2 over HTTP): each request says where its header ends.
    headers_of = {
        id(request): {"Content-Type": "application/octet-stream", INFER_HEADER_LENGTH: str(length)}
        for request, length in zip(workload.requests, workload.header_lengths)
    }
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def post(request: bytes, timeout: float) -> str | None:
            try:
                async with session.post(url, data=request, headers=headers_of.get(id(request), plain),
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                    await response.read()
                    return None if response.status == 200 else f"HTTP_{response.status}"
            except asyncio.TimeoutError:
                return "TIMEOUT"
            except aiohttp.ClientError as error:
                return type(error).__name__

        yield post


class SingleRequests:
    """Lone requests, one at a time, on a channel kept open: the server side of `interleave.paired`.

    Request `index` of the workload carries the same image as `InProcessModel.time_one(index)`. A failed
    request raises its grpc.RpcError: a lone request has no business failing.
    """

    def __init__(self, target: str, workload: Workload, timeout_s: float = 60.0) -> None:
        self._channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self._call = self._channel.unary_unary(PREDICT_METHOD)
        self._requests = workload.requests
        self._timeout_s = timeout_s

    def latency_ms(self, index: int) -> float:
        request = self._requests[index % len(self._requests)]
        started = time.perf_counter()
        self._call(request, timeout=self._timeout_s)
        return (time.perf_counter() - started) * 1000.0

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "SingleRequests":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def closed_loop(
    target: str,
    workload: Workload,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 2.0,
    timeout_s: float = 60.0,
    on_tick: Callable[[float], None] | None = None,
) -> LevelResult:
    """`concurrency` clients, each sending its next request as soon as the last one is answered."""
    recorder = _Recorder()
    requests = itertools.cycle(workload.requests)
    async with _sender(target, workload) as send:
        stop_at = time.perf_counter() + warmup_s + duration_s

        async def client(number: int) -> None:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                recorder.record_answer(number, started, await send(next(requests), timeout_s))

        tasks = [asyncio.create_task(client(number)) for number in range(concurrency)]
        await _tick(warmup_s, on_tick)
        measured_from = time.perf_counter()
        await _tick(duration_s, on_tick)
        measured_until = time.perf_counter()
        await asyncio.gather(*tasks)  # the requests in flight at the end give the window's answers their cycles
        measured = recorder.keep_window(measured_from, measured_until, concurrency)
    return recorder.result("closed", concurrency, None, measured, workload.images_per_request)


async def open_loop(
    target: str,
    workload: Workload,
    rate: float,
    duration_s: float,
    warmup_s: float = 1.0,
    timeout_s: float = 60.0,
    max_outstanding: int = 20000,
    on_tick: Callable[[float], None] | None = None,
    cooldown_s: float = 0.0,
) -> LevelResult:
    """Requests at a fixed rate whatever the answers: latency counts from the scheduled send time,
    so a slow server cannot hide its queueing (no coordinated omission). Unmeasured requests go on for
    `cooldown_s` after the window, so the window's last requests compete with later ones as the others did
    (otherwise a server could answer them in time only because the load stopped)."""
    recorder = _Recorder()
    requests = itertools.cycle(workload.requests)
    interval = 1.0 / rate
    outstanding: set[asyncio.Task[None]] = set()
    dropped = 0
    async with _sender(target, workload) as send:

        async def one(scheduled: float, request: bytes, measured: bool) -> None:
            recorder.record(scheduled, await send(request, timeout_s), measured)

        start = time.perf_counter()
        measure_from, measure_until = start + warmup_s, start + warmup_s + duration_s
        stop_at = measure_until + cooldown_s
        sent = 0
        last_tick = start
        while True:
            scheduled = start + sent * interval
            if scheduled >= stop_at:
                break
            now = time.perf_counter()
            if scheduled > now:
                await asyncio.sleep(scheduled - now)
            # Whether a request counts is decided when it is scheduled, not when its answer arrives.
            measured = measure_from <= scheduled < measure_until
            if len(outstanding) >= max_outstanding:
                dropped += measured
            else:
                task = asyncio.create_task(one(scheduled, next(requests), measured))
                outstanding.add(task)
                task.add_done_callback(outstanding.discard)
            sent += 1
            if on_tick and now - last_tick >= 0.25:
                on_tick(now - last_tick)
                last_tick = now
        if outstanding:
            await asyncio.gather(*outstanding)
    result = recorder.result("open", None, rate, duration_s, workload.images_per_request)
    if dropped:
        result.errors["CLIENT_BACKLOG_FULL"] = dropped
    return result


async def deadline_open_loop(
    target: str, workload: Workload, rate: float, duration_s: float, deadline_s: float
) -> LevelResult:
    """An open loop whose every request has a deadline of `deadline_s`, for goodput. The load also runs,
    unmeasured, for one deadline before the window and one after: the queue a deadline-bound server keeps is
    about a deadline deep, so the window opens and closes on a queue at that depth, not on an empty one
    that lets early requests through faster than the server can keep up, or one the late requests drain."""
    return await open_loop(target, workload, rate, duration_s, deadline_s, timeout_s=deadline_s, cooldown_s=deadline_s)


async def _tick(seconds: float, on_tick: Callable[[float], None] | None) -> None:
    """Sleep `seconds`, reporting progress every quarter second."""
    end = time.perf_counter() + seconds
    while (remaining := end - time.perf_counter()) > 0:
        step = min(0.25, remaining)
        await asyncio.sleep(step)
        if on_tick:
            on_tick(step)
