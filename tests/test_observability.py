"""Observability: Prometheus metrics, OpenTelemetry traces (to a real OTLP receiver), JSON logs.

Two servers: an in-process ModelServer whose model the test can hold (ModelRuntime.run_batch is
wrapped in a gate, test-side only) so queue depth and batch composition are deterministic; and the real
`python -m service` process with tracing, JSON logs and the access log on, for everything seen from outside.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import prediction_service_pb2_grpc

from batching import BatchingParameters
from imaging import jpeg
from otlp_receiver import INTERNAL, SERVER, OtlpTraceReceiver, ReceivedSpan
from server_process import ServerProcess, free_port
from service.runtime.model_runtime import ModelRuntime
from service.server import ModelServer
from service.process.settings import ServerSettings
from tf_serving_client import predict_request

MODEL = "tiny"
NATIVE_TF_LOG = re.compile(r"[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::")
PREDICT_SPAN = "tensorflow.serving.PredictionService/Predict"

OBSERVABILITY_DOC = Path(__file__).parent.parent / "docs" / "observability.md"


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """docs/observability.md's metrics reference table, name → (type, labels): the one place metrics are
    documented."""
    page = OBSERVABILITY_DOC.read_text()
    section = page.split("\n## Metrics reference\n", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for row in section.splitlines():
        match = re.match(r"\| `(inference_\w+)` \| (\w+) \| ([^|]*) \|", row)
        if match:
            name, kind, labels = match.groups()
            name = name.removesuffix("_total") if kind == "counter" else name  # the parser's family name
            documented[name] = (kind, set(re.findall(r"`(\w+)`", labels)))
    return documented


DOCUMENTED_METRICS = {
    **documented_metrics(),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_cpu_seconds": ("counter", set()),
}


def traceparent() -> tuple[str, str, str]:
    """A client's W3C trace context: (header, trace id, span id), sampled."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by (sample name, label set)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, frozenset(labels.items()))]


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


# -- in-process server with a model the test can hold ---------------------------------------------


@pytest.fixture
async def held_server(tiny_model_base: Path, monkeypatch: pytest.MonkeyPatch):
    """(server, gate, receiver): batches wait while `gate` is clear; traces go to `receiver`."""
    gate = threading.Event()
    gate.set()  # warm-up runs freely
    run_batch = ModelRuntime.run_batch

    def gated_run_batch(self: ModelRuntime, pixels, padded_size):  # type: ignore[no-untyped-def]
        assert gate.wait(timeout=60), "the test never released the model"
        return run_batch(self, pixels, padded_size)

    monkeypatch.setattr(ModelRuntime, "run_batch", gated_run_batch)
    with OtlpTraceReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        settings = ServerSettings(
            host="127.0.0.1", port=0, rest_api_port=free_port(), model_name=MODEL,
            model_base_path=tiny_model_base, enable_batching=True,
            batching=BatchingParameters(max_batch_size=8, num_batch_threads=1),
        )
        server = ModelServer(settings)
        await server.start()
        try:
            yield server, gate, receiver
        finally:
            gate.set()
            await server.stop()


async def hold_then_queue(server: ModelServer, gate: threading.Event, stub, queued: int, metadata=()):  # type: ignore[no-untyped-def]
    """One request occupies the only batch thread; `queued` more (one image each) wait behind it.

    Returns (all RPC futures, the per-request traceparent metadata used for the queued ones).
    """
    batcher = server.models.get(MODEL).batcher
    gate.clear()
    first = asyncio.ensure_future(stub.Predict(predict_request(MODEL, [jpeg(100)]), timeout=60))
    await eventually(lambda: batcher.running_batches == 1)
    queued_calls = [
        asyncio.ensure_future(
            stub.Predict(predict_request(MODEL, [jpeg(i)]), timeout=60, metadata=metadata[i] if metadata else None)
        )
        for i in range(queued)
    ]
    await eventually(lambda: batcher.queue_depth == queued)
    return first, queued_calls


async def test_queue_depth_is_exact_at_scrape_time_and_histograms_count_every_request(held_server) -> None:
    server, gate, _ = held_server
    queued = 5
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        first, rest = await hold_then_queue(server, gate, stub, queued)

        held = await asyncio.to_thread(scrape, server.metrics_port)
        assert value(held, "inference_queue_depth", model=MODEL) == queued
        # The whole backlog by stage: the held batch's image running, the others queued, none decoding.
        assert value(held, "inference_backlog", model=MODEL, stage="running") == 1
        assert value(held, "inference_backlog", model=MODEL, stage="queued") == queued
        assert value(held, "inference_backlog", model=MODEL, stage="decoding") == 0
        assert value(held, "inference_inflight_requests", model=MODEL) == queued + 1
        assert value(held, "inference_batch_size_count", model=MODEL) == 1  # the held batch has started
        assert value(held, "inference_compute_seconds_count", model=MODEL) == 0  # ... and not finished

        gate.set()
        await asyncio.gather(first, *rest)

    after = await asyncio.to_thread(scrape, server.metrics_port)
    requests = queued + 1
    assert value(after, "inference_queue_depth", model=MODEL) == 0
    assert sum(value(after, "inference_backlog", model=MODEL, stage=stage)
               for stage in ("decoding", "queued", "running")) == 0
    assert value(after, "inference_inflight_requests", model=MODEL) == 0
    assert value(after, "inference_requests_total", model=MODEL, method="Predict", code="OK") == requests
    assert value(after, "inference_request_seconds_count", model=MODEL, method="Predict") == requests
    assert value(after, "inference_request_seconds_bucket", model=MODEL, method="Predict", le="+Inf") == requests
    # The held batch (1 image), then one batch of everything that queued behind it.
    assert value(after, "inference_batch_size_count", model=MODEL) == 2
    assert value(after, "inference_batch_size_sum", model=MODEL) == requests
    assert value(after, "inference_batch_size_bucket", model=MODEL, le="1.0") == 1
    assert value(after, "inference_queue_wait_seconds_count", model=MODEL) == requests
    assert value(after, "inference_compute_seconds_count", model=MODEL) == 2
    assert value(after, "inference_model_ready", model=MODEL) == 1
    assert value(after, "inference_model_loaded_version", model=MODEL) == 1


async def test_backlog_counts_images_still_being_decoded(held_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Images admitted but stuck in the decode pool are part of the backlog the autoscaler sees."""
    server, gate, _ = held_server
    decode_gate = threading.Event()
    preprocess = ModelRuntime.preprocess

    def gated_preprocess(self: ModelRuntime, image: bytes):  # type: ignore[no-untyped-def]
        assert decode_gate.wait(timeout=60), "the test never released the decoder"
        return preprocess(self, image)

    monkeypatch.setattr(ModelRuntime, "preprocess", gated_preprocess)
    batcher = server.models.get(MODEL).batcher
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        gate.clear()
        first = asyncio.ensure_future(stub.Predict(predict_request(MODEL, [jpeg(100)]), timeout=60))
        await eventually(lambda: batcher.running_batches == 1)  # the idle fast path: decoded in its batch
        decoding = asyncio.ensure_future(stub.Predict(predict_request(MODEL, [jpeg(1), jpeg(2), jpeg(3)]), timeout=60))
        await eventually(lambda: batcher.reserved == 3)
        held = await asyncio.to_thread(scrape, server.metrics_port)
        assert value(held, "inference_backlog", model=MODEL, stage="decoding") == 3
        assert value(held, "inference_backlog", model=MODEL, stage="running") == 1
        assert value(held, "inference_queue_depth", model=MODEL) == 0  # what the queue gauge alone would show
        decode_gate.set()
        gate.set()
        await asyncio.gather(first, decoding)


async def test_inflight_requests_are_the_inference_requests_holding_a_version(held_server) -> None:
    """One in-flight count: the model manager's leases, what --max_inflight_requests limits. Status and health
    calls answered meanwhile hold no version and are not in it; inference_queue_depth is the queued stage."""
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    server, gate, _ = held_server
    queued = 3
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        first, rest = await hold_then_queue(server, gate, stub, queued)
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = MODEL
        await model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, timeout=10)
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)

        held = await asyncio.to_thread(scrape, server.metrics_port)
        assert server.models.in_flight_requests == server.models.in_flight_requests_of(MODEL) == queued + 1
        assert value(held, "inference_inflight_requests", model=MODEL) == queued + 1
        assert [labels for (name, labels) in samples(held) if name == "inference_inflight_requests"] == [
            frozenset({("model", MODEL)})
        ], "one series per served model; calls naming no model hold no version"
        assert value(held, "inference_queue_depth", model=MODEL) == value(
            held, "inference_backlog", model=MODEL, stage="queued") == queued
        gate.set()
        await asyncio.gather(first, *rest)
    assert server.models.in_flight_requests == 0


async def test_batch_span_links_every_request_span_it_served(held_server) -> None:
    server, gate, receiver = held_server
    clients = [traceparent() for _ in range(3)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        first, rest = await hold_then_queue(
            server, gate, stub, len(clients), metadata=[(("traceparent", header),) for header, _, _ in clients]
        )
        gate.set()
        await asyncio.gather(first, *rest)

    client_traces = {trace_id for _, trace_id, _ in clients}

    def complete(spans: list[ReceivedSpan]) -> bool:
        requests = [s for s in spans if s.name == PREDICT_SPAN and s.trace_id in client_traces]
        batches = [s for s in spans if s.name == f"batch {MODEL}" and len(s.links) == len(clients)]
        waits = [s for s in spans if s.name == "queue wait" and s.trace_id in client_traces]
        return len(requests) == len(clients) and len(batches) == 1 and len(waits) == len(clients)

    spans = await asyncio.to_thread(receiver.wait_for, complete)
    requests = {s.trace_id: s for s in spans if s.name == PREDICT_SPAN and s.trace_id in client_traces}
    (batch,) = [s for s in spans if s.name == f"batch {MODEL}" and len(s.links) == len(clients)]

    for _, trace_id, client_span_id in clients:  # each client's trace continues on the server
        assert requests[trace_id].parent_span_id == client_span_id
        assert requests[trace_id].kind == SERVER
    assert {(link.trace_id, link.span_id) for link in batch.links} == {
        (span.trace_id, span.span_id) for span in requests.values()
    }
    assert all(link.attributes["inference.batch.items"] == 1 for link in batch.links)
    assert batch.kind == INTERNAL
    assert batch.attributes["inference.batch.size"] == len(clients)
    assert batch.attributes["inference.batch.padded_size"] == len(clients)
    assert batch.attributes["inference.model.version"] == 1
    assert batch.attributes["inference.batch.requests"] == len(clients)
    # The batch lives in the trace of the first request it served, as that request span's child.
    assert (batch.trace_id, batch.parent_span_id) in {(s.trace_id, s.span_id) for s in requests.values()}
    for wait in (s for s in spans if s.name == "queue wait" and s.trace_id in client_traces):
        assert wait.parent_span_id == requests[wait.trace_id].span_id
        assert [(link.trace_id, link.span_id) for link in wait.links] == [(batch.trace_id, batch.span_id)]
        assert wait.attributes["inference.batch.id"] == batch.attributes["inference.batch.id"]


# -- the real server process: tracing, JSON logs, access log ------------------------------------------


@pytest.fixture(scope="module")
def traced_server(tiny_model_base: Path) -> Iterator[tuple[ServerProcess, OtlpTraceReceiver]]:
    with OtlpTraceReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_SERVICE_NAME": "batchserve-test",
        }
        with ServerProcess(
            tiny_model_base, "--enable_batching=true", "--max_batch_size=8", "--access_log", model_name=MODEL, env=env
        ) as server:
            yield server, receiver


def test_metrics_have_the_documented_names_and_labels_at_both_paths(traced_server) -> None:
    server, _ = traced_server
    with server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(predict_request(MODEL, [jpeg(1)]), 10.0)
        with pytest.raises(grpc.RpcError):
            stub.Predict(predict_request("no-such-model", [jpeg(1)]), 10.0)
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10.0)

    assert len(DOCUMENTED_METRICS) > 15  # docs/observability.md's table was found and read
    for path in ("/metrics", "/monitoring/prometheus/metrics"):
        families = {family.name: family for family in text_string_to_metric_families(server.metrics_text(path))}
        for name, (kind, labels) in DOCUMENTED_METRICS.items():
            assert name in families, f"{path}: {name} is in docs/observability.md's metrics table but not exported"
            family = families[name]
            assert family.type == kind, f"{name}: exported as {family.type}, docs/observability.md says {kind}"
            assert family.samples or name == "inference_batch_size_throughput", name  # that one: auto only
            for sample in family.samples:
                assert set(sample.labels) - {"le"} == labels, (
                    f"{name}: exported with labels {sorted(sample.labels)}, docs/observability.md says {sorted(labels)}"
                )
        # ... and nothing the server exports goes undocumented.
        undocumented = {name for name in families if name.startswith("inference_")} - set(DOCUMENTED_METRICS)
        assert not undocumented, f"exported but not in docs/observability.md's metrics table: {sorted(undocumented)}"

    text = server.metrics_text()
    assert value(text, "inference_requests_total", model=MODEL, method="Predict", code="OK") >= 1
    # A model name the server does not serve must not become a label value (clients choose names).
    assert value(text, "inference_requests_total", model="_unknown", method="Predict", code="NOT_FOUND") == 1
    assert value(text, "inference_requests_total", model="", method="Check", code="OK") >= 1
    assert "no-such-model" not in text
    with pytest.raises(urllib.error.HTTPError) as missing:
        server.metrics_text("/nothing-here")
    assert missing.value.code == 404


def test_a_client_trace_continues_through_the_server_and_into_the_logs(traced_server) -> None:
    server, receiver = traced_server
    header, trace_id, client_span_id = traceparent()
    with server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(predict_request(MODEL, [jpeg(2), jpeg(3)]), 10.0, metadata=(("traceparent", header),))

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        return {"decode", "queue wait", f"batch {MODEL}", PREDICT_SPAN} <= {s.name for s in mine}

    spans = [s for s in receiver.wait_for(complete) if s.trace_id == trace_id]
    (request,) = [s for s in spans if s.name == PREDICT_SPAN]
    assert request.parent_span_id == client_span_id
    assert request.kind == SERVER
    assert request.resource["service.name"] == "batchserve-test"
    assert request.attributes["rpc.system"] == "grpc"
    assert request.attributes["rpc.service"] == "tensorflow.serving.PredictionService"
    assert request.attributes["rpc.method"] == "Predict"
    assert request.attributes["rpc.grpc.status_code"] == 0
    assert request.attributes["inference.model.name"] == MODEL
    assert request.attributes["inference.model.version"] == 1
    assert request.attributes["inference.images"] == 2
    (decode,) = [s for s in spans if s.name == "decode"]
    assert decode.parent_span_id == request.span_id
    batches = [s for s in spans if s.name == f"batch {MODEL}"]
    assert all((link.trace_id, link.span_id) == (trace_id, request.span_id) for b in batches for link in b.links)
    assert sum(b.links[0].attributes["inference.batch.items"] for b in batches) == 2
    waits = [s for s in spans if s.name == "queue wait"]
    assert waits and all(w.parent_span_id == request.span_id for w in waits)

    # Every log line is one JSON object, except TensorFlow's C++ runtime's own (absl, written to fd 2 at
    # import, before any Python runs); the access log line of this RPC carries its trace and span ids.
    native = [line for line in server.log_lines if not line.startswith("{")]
    assert all(NATIVE_TF_LOG.match(line) for line in native), native
    records = [json.loads(line) for line in server.log_lines if line.startswith("{")]
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    access = [r for r in records if r["logger"] == "service.access" and r.get("trace_id") == trace_id]
    assert len(access) == 1
    assert access[0]["span_id"] == request.span_id
    assert access[0]["rpc"] == PREDICT_SPAN and access[0]["code"] == "OK" and access[0]["model"] == MODEL
    ready = [r for r in records if r["message"].startswith("ready: ")]
    assert ready and ready[0]["grpc_port"] == int(server.address.rsplit(":", 1)[1])


def test_grafana_dashboard_queries_only_metrics_the_server_exports() -> None:
    dashboard = json.loads((Path(__file__).parent.parent / "manifests/grafana/batchserve-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {
        re.sub(r"_(bucket|sum|count|total)$", "", name)
        for expression in expressions
        for name in re.findall(r"\b((?:inference|process)_[a-z_]+)\{", expression)
    }
    assert used <= set(DOCUMENTED_METRICS), used - set(DOCUMENTED_METRICS)
    assert {"inference_requests", "inference_request_seconds", "inference_backlog", "inference_batch_size",
            "inference_rejected", "inference_model_ready"} <= used
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def _server_span_and_batches(
    receiver: OtlpTraceReceiver, trace_id: str, route: str
) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    """Once the trace holds them: the request's one server span named `route`, and the batch spans."""
    def complete(spans: list[ReceivedSpan]) -> bool:
        return {route, f"batch {MODEL}"} <= {s.name for s in spans if s.trace_id == trace_id}

    spans = [s for s in receiver.wait_for(complete) if s.trace_id == trace_id]
    (span,) = [s for s in spans if s.name == route]
    return span, [s for s in spans if s.name == f"batch {MODEL}"]


def test_rest_requests_are_observed_like_grpc_ones(traced_server) -> None:
    """REST requests reach the same request metrics (method rest:<verb>, canonical codes), get an HTTP server
    span continuing the client's W3C context from the headers, and one access-log line with its ids."""
    from rest_client import b64

    server, receiver = traced_server
    header, trace_id, client_span_id = traceparent()
    body = json.dumps({"signature_name": "predict_images", "instances": [b64(jpeg(4))]}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.metrics_port}/v1/models/{MODEL}:predict", data=body, method="POST",
        headers={"Content-Type": "application/json", "traceparent": header},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    missing = urllib.request.Request(f"http://127.0.0.1:{server.metrics_port}/v1/models/no-such-model:predict",
                                     data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(missing, timeout=10)
    assert refused.value.code == 404

    text = server.metrics_text()
    assert value(text, "inference_requests_total", model=MODEL, method="rest:predict", code="OK") >= 1
    assert value(text, "inference_requests_total", model="_unknown", method="rest:predict", code="NOT_FOUND") == 1
    assert value(text, "inference_request_seconds_count", model=MODEL, method="rest:predict") >= 1
    assert "no-such-model" not in text

    route = "POST /v1/models/{model_name}:predict"
    span, batches = _server_span_and_batches(receiver, trace_id, route)
    assert span.parent_span_id == client_span_id and span.kind == SERVER
    assert span.attributes["http.request.method"] == "POST"
    assert span.attributes["http.route"] == "/v1/models/{model_name}:predict"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["inference.model.name"] == MODEL
    assert any(link.span_id == span.span_id for batch in batches for link in batch.links)

    records = [json.loads(line) for line in server.log_lines if line.startswith("{")]
    access = [r for r in records if r["logger"] == "service.access" and r.get("trace_id") == trace_id]
    assert len(access) == 1 and access[0]["span_id"] == span.span_id
    assert access[0]["code"] == "OK" and access[0]["http_status"] == 200 and access[0]["model"] == MODEL


def test_every_request_naming_a_model_is_labelled_with_it():
    """KServe's ModelReady and ModelMetadata name their model in `name`, ModelInfer in `model_name`, TF
    Serving's requests in `model_spec`; requests about the server name none."""
    from tensorflow_serving.apis import predict_pb2
    from tritonclient.grpc import service_pb2 as kserve

    from service.adapters.grpc_api.rpc_observer import requested_model

    predict = predict_pb2.PredictRequest()
    predict.model_spec.name = "a"
    assert requested_model(predict) == "a"
    assert requested_model(kserve.ModelInferRequest(model_name="b")) == "b"
    assert requested_model(kserve.ModelReadyRequest(name="c")) == "c"
    assert requested_model(kserve.ModelMetadataRequest(name="d")) == "d"
    assert requested_model(kserve.ServerReadyRequest()) is None


def test_kserve_http_requests_are_observed_like_grpc_ones(traced_server) -> None:
    """KServe v2 over HTTP: its own method label, a server span continuing the client's traceparent and linked
    to the batch it rode in, and one access-log line."""
    import struct

    server, receiver = traced_server
    header, trace_id, client_span_id = traceparent()
    image = jpeg(5)
    head = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"binary_data_size": 4 + len(image)}}]}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.metrics_port}/v2/models/{MODEL}/infer",
        data=head + struct.pack("<I", len(image)) + image, method="POST",
        headers={"Content-Type": "application/octet-stream", "traceparent": header,
                 "Inference-Header-Content-Length": str(len(head))},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    text = server.metrics_text()
    assert value(text, "inference_requests_total", model=MODEL, method="kserve-http:infer", code="OK") >= 1
    route = "POST /v2/models/{model_name}/infer"
    span, batches = _server_span_and_batches(receiver, trace_id, route)
    assert span.parent_span_id == client_span_id and span.kind == SERVER
    assert span.attributes["http.response.status_code"] == 200
    assert any(link.span_id == span.span_id for batch in batches for link in batch.links)
    records = [json.loads(line) for line in server.log_lines if line.startswith("{")]
    access = [r for r in records if r["logger"] == "service.access" and r.get("trace_id") == trace_id]
    assert len(access) == 1 and access[0]["http_status"] == 200 and access[0]["rpc"] == route
