"""Faults, deadlines and overload against the real server running a model whose graph fails or stalls on
request (tests/fault_model.py). Figures are printed (run with -s to see them); timing bounds are loose.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import statistics
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from fault_model import FAULT_MESSAGE, pixels
from server_process import ServerProcess

MODEL = "fault"
BATCH = 4
QUEUE_BATCHES = 16  # 64 queued images
MAX_INFLIGHT = 40
EXECUTION_TIMEOUT = 1.5
STUCK_LIVENESS = 1.0  # seconds stuck before the liveness health service fails
STALL = 0.1  # seconds per batch under load: capacity = BATCH / STALL = 40 images/s


@pytest.fixture(scope="module")
def server(fault_model_base):
    with ServerProcess(
        fault_model_base, "--enable_batching=true", f"--max_batch_size={BATCH}",
        f"--max_enqueued_batches={QUEUE_BATCHES}", f"--max_inflight_requests={MAX_INFLIGHT}",
        f"--batch_execution_timeout_seconds={EXECUTION_TIMEOUT}", "--num_batch_threads=1",
        f"--stuck_model_liveness_seconds={STUCK_LIVENESS}", model_name=MODEL,
    ) as running:
        yield running


def pixels_request(image: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "classify_pixels"
    batch = image[None].astype("<f4")
    request.inputs["pixels"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in batch.shape]),
        tensor_content=batch.tobytes(),
    ))
    return request


def scores_of(response: predict_pb2.PredictResponse) -> np.ndarray:
    return np.asarray(response.outputs["scores"].float_val, np.float32)  # TF Serving's default: typed values


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def health_of(channel: grpc.Channel, service: str = "") -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def wait_for_health(channel: grpc.Channel, service: str, status: int, timeout: float = 5.0) -> None:
    """Health follows a stuck model within the server's watch interval (half a second)."""
    deadline = time.monotonic() + timeout
    while health_of(channel, service) != status:
        assert time.monotonic() < deadline, f"health of {service!r} never became {status}"
        time.sleep(0.1)


def assert_serving(server: ServerProcess) -> None:
    with server.channel() as channel:
        wait_for_health(channel, "", health_pb2.HealthCheckResponse.SERVING)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert scores_of(stub.Predict(pixels_request(pixels(0)), timeout=10)).shape == (5,)


def test_model_fault_fails_its_batch_with_internal_and_next_batches_succeed(server):
    with server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for attempt in range(3):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(pixels_request(pixels(attempt, fault=True)), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INTERNAL
            assert FAULT_MESSAGE in caught.value.details() and "pixels[0]" in caught.value.details()
            assert "function_node" not in caught.value.details()  # no graph internals leak to the client
            for seed in range(4):
                assert scores_of(stub.Predict(pixels_request(pixels(seed)), timeout=10)).shape == (5,)
    assert_serving(server)


async def test_hung_model_call_fails_its_requests_and_is_reported(server):
    timeouts_before = server.metric_value("inference_batch_timeouts_total")
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        started = time.monotonic()
        hung = asyncio.ensure_future(stub.Predict(pixels_request(pixels(1, stall_seconds=3 * EXECUTION_TIMEOUT)),
                                                  timeout=30))
        await asyncio.sleep(0.3)
        queued_behind = asyncio.ensure_future(stub.Predict(pixels_request(pixels(2)), timeout=30))
        with pytest.raises(grpc.RpcError) as caught:
            await hung
        failed_after = time.monotonic() - started
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        assert "did not return within" in caught.value.details()
        # Answered at the timeout, not when the call returned: with one batch thread, the request queued
        # behind can only run once the stuck call gives its thread back, so it must still be waiting.
        assert not queued_behind.done()
        assert scores_of(await queued_behind).shape == (5,)  # runs once the stuck call gives its thread back
    print(f"\nhung batch: client answered UNAVAILABLE after {failed_after:.2f} s (limit {EXECUTION_TIMEOUT} s)")
    assert server.metric_value("inference_batch_timeouts_total") == timeouts_before + 1
    assert any("still running after" in line for line in server.log_lines)
    assert_serving(server)


def test_a_stuck_model_is_taken_out_of_rotation_until_a_batch_completes(server):
    """Past the execution timeout the model is stuck: readiness (gRPC health, the model's own health entry,
    KServe ModelReady, REST status) says so until a batch completes; stuck past --stuck_model_liveness_seconds,
    the 'liveness' health service fails too, so Kubernetes would restart the pod."""
    from rest_client import rest_call
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    stall = EXECUTION_TIMEOUT + STUCK_LIVENESS + 2.5
    with server.channel() as channel, concurrent.futures.ThreadPoolExecutor(1) as pool:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        kserve = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert health_of(channel, "liveness") == serving
        hung = pool.submit(stub.Predict, pixels_request(pixels(1, stall_seconds=stall)), timeout=30)
        wait_for_health(channel, "", not_serving, timeout=EXECUTION_TIMEOUT + 3)
        assert health_of(channel, MODEL) == not_serving
        assert health_of(channel, "tensorflow.serving.PredictionService") == not_serving
        assert not kserve.ModelReady(service_pb2.ModelReadyRequest(name=MODEL), timeout=10).ready
        assert not kserve.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready
        status, body = rest_call(server.metrics_port, "GET", f"/v1/models/{MODEL}")
        version_status = body["model_version_status"][0]
        assert status == 200 and version_status["state"] == "AVAILABLE"
        assert version_status["status"]["error_code"] == "UNAVAILABLE" and "stuck" in version_status["status"]["error_message"]
        wait_for_health(channel, "liveness", not_serving, timeout=STUCK_LIVENESS + 3)
        with pytest.raises(grpc.RpcError):
            hung.result()
        # The stuck call returns at last; the next batch completes and the model is ready again.
        wait_for_health(channel, "", serving, timeout=stall + 5)
        assert health_of(channel, MODEL) == serving and health_of(channel, "liveness") == serving
        assert kserve.ModelReady(service_pb2.ModelReadyRequest(name=MODEL), timeout=10).ready
    assert any("is stuck" in line for line in server.log_lines)
    assert_serving(server)


def deltas(server: ServerProcess, before: dict[str, float]) -> dict[str, float]:
    now = counters(server)
    return {name: now[name] - before[name] for name in now}


def counters(server: ServerProcess) -> dict[str, float]:
    text = server.metrics_text()

    def value(name: str, labels: str = "") -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and labels in line and not line.startswith("#"))

    return {
        "computed": value("inference_batch_size_sum"),
        "batches": value("inference_batch_size_count"),
        **{reason: value("inference_rejected_total", f'reason="{reason}"')
           for reason in ("deadline", "deadline_unmeetable", "deadline_unmeetable_at_batch", "cancelled",
                          "queue_full", "closed")},
        "late": value("inference_late_items_total"),
    }


async def test_short_deadline_flood_never_computes_an_expired_item(server):
    """60 one-image requests at once with a 0.6 s deadline against a model that runs 4 images per 0.1 s."""
    count, deadline = 60, 0.6
    before = counters(server)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        async def one(seed: int) -> str:
            try:
                await stub.Predict(pixels_request(pixels(seed, stall_seconds=STALL)), timeout=deadline)
                return "OK"
            except grpc.RpcError as error:
                return error.code().name + (" inflight" if "max_inflight" in (error.details() or "") else "")

        outcomes = await asyncio.gather(*(one(seed) for seed in range(count)))
    seen = {outcome: outcomes.count(outcome) for outcome in set(outcomes)}
    reached_batcher = count - seen.get("RESOURCE_EXHAUSTED inflight", 0)

    def settled(change: dict[str, float]) -> float:
        dropped = sum(change[reason] for reason in ("deadline", "deadline_unmeetable", "deadline_unmeetable_at_batch",
                                                     "cancelled", "queue_full"))
        return change["computed"] + dropped

    # The batch that was running when the clients gave up finishes and is counted: wait for every item
    # that reached the batcher to be accounted for (the counters only grow), then check how.
    give_up_at = time.monotonic() + 30
    change = deltas(server, before)
    while settled(change) < reached_batcher and time.monotonic() < give_up_at:
        await asyncio.sleep(STALL / 2)
        change = deltas(server, before)
    print(f"\ndeadline flood: client {seen}; server {change}")
    assert set(seen) <= {"OK", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED inflight", "RESOURCE_EXHAUSTED"}
    refused_for_deadline = change["deadline"] + change["deadline_unmeetable"] + change["deadline_unmeetable_at_batch"]
    dropped = refused_for_deadline + change["cancelled"]
    # Every item that reached the batcher was either computed or dropped, never both: an expired item
    # computed anyway would be counted twice and break the equality.
    assert change["computed"] + dropped + change["queue_full"] == reached_batcher
    assert refused_for_deadline > 0 and change["computed"] < reached_batcher
    assert change["computed"] >= seen.get("OK", 0)
    assert_serving(server)


async def test_ten_times_sustainable_load_is_refused_fast_and_loses_nothing(server):
    """Offer ~10x capacity for 3 s: accepted requests are answered right, the rest refused fast."""
    capacity = BATCH / STALL  # images per second when every batch is full
    rate, seconds = 10 * capacity, 3.0
    references = {}
    with server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for seed in range(8):
            references[seed] = scores_of(stub.Predict(pixels_request(pixels(seed, stall_seconds=STALL)), timeout=10))
    rss_start = rss_bytes(server.process.pid)
    rss_peak = rss_start
    before = counters(server)
    results: list[tuple[str, float]] = []

    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        requests = {seed: pixels_request(pixels(seed, stall_seconds=STALL)) for seed in references}

        async def one(number: int) -> None:
            seed = number % len(references)
            started = time.monotonic()
            try:
                response = await stub.Predict(requests[seed], timeout=20)
                outcome = "OK" if np.allclose(scores_of(response), references[seed], atol=1e-6) else "WRONG"
            except grpc.RpcError as error:
                outcome = error.code().name
            results.append((outcome, time.monotonic() - started))

        tasks = []
        load_started = time.monotonic()
        for number in range(int(rate * seconds)):
            delay = load_started + number / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(number)))
            if number % 50 == 0:
                rss_peak = max(rss_peak, rss_bytes(server.process.pid))
        offered_for = time.monotonic() - load_started
        await asyncio.gather(*tasks)
        load_over = time.monotonic()
        change = deltas(server, before)
        recovery = await stub.Predict(pixels_request(pixels(0)), timeout=10)
        recovered_in = time.monotonic() - load_over
    rss_end = rss_bytes(server.process.pid)

    by_outcome: dict[str, list[float]] = {}
    for outcome, latency in results:
        by_outcome.setdefault(outcome, []).append(latency)
    summary = {k: (len(v), round(statistics.median(v), 4), round(max(v), 3)) for k, v in by_outcome.items()}
    print(f"\noverload: offered {len(results)} requests at {len(results) / offered_for:.0f}/s for {offered_for:.1f} s "
          f"(capacity ~{capacity:.0f}/s); outcome: (count, median s, max s) {summary}; server {change}; "
          f"RSS start {rss_start / 2**20:.0f} MiB peak {rss_peak / 2**20:.0f} MiB end {rss_end / 2**20:.0f} MiB; "
          f"first request after the load answered in {recovered_in * 1000:.0f} ms")

    assert set(by_outcome) <= {"OK", "RESOURCE_EXHAUSTED"}, summary  # nothing lost, wrong, or timed out
    accepted, refused = by_outcome.get("OK", []), by_outcome.get("RESOURCE_EXHAUSTED", [])
    assert len(refused) > len(accepted) > 0
    assert change["computed"] == len(accepted)  # every accepted request computed once; refused ones never
    assert statistics.median(refused) < statistics.median(accepted) / 5  # refusals don't wait in line
    assert rss_peak - rss_start < 300 * 2**20
    assert scores_of(recovery).shape == (5,)
    assert_serving(server)


async def test_a_request_whose_deadline_the_queue_cannot_meet_is_refused_at_once_on_both_grpc_apis(server):
    """30 images queued ahead (about 8 batches of 0.1 s, behind a 1 s one): a request with 0.3 s left is
    refused on arrival."""
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    image = pixels(7, stall_seconds=STALL)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        kserve = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        # Batch times measured at the sizes the queue will form (the first batch of a size is not kept).
        await asyncio.gather(*(stub.Predict(pixels_request(image), timeout=30) for _ in range(6 * BATCH)))
        before = counters(server)
        # One long batch holds the only batch thread, so the 30 sent next stay queued (8 batches, about 0.8 s,
        # after it) however slowly the client sends them and the test sees them.
        holder = asyncio.ensure_future(stub.Predict(pixels_request(pixels(8, stall_seconds=1.0)), timeout=30))
        await asyncio.sleep(0.05)
        ahead = [asyncio.ensure_future(stub.Predict(pixels_request(image), timeout=30)) for _ in range(30)]
        give_up_at = time.monotonic() + 10
        while await asyncio.to_thread(server.metric_value, "inference_queue_depth") < len(ahead) - BATCH:
            assert time.monotonic() < give_up_at, "the requests sent ahead never queued"
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            await stub.Predict(pixels_request(image), timeout=0.3)
        predict_refused_in = time.monotonic() - started
        # On arrival, not at the deadline nor once the queue ahead drained: those queued ahead still wait.
        predict_answered_ahead = sum(answer.done() for answer in ahead)
        infer = service_pb2.ModelInferRequest(model_name=MODEL)
        infer.inputs.add(name="pixels", datatype="FP32", shape=[1, *image.shape])
        infer.raw_input_contents.append(image[None].astype("<f4").tobytes())
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as kserve_refused:
            await kserve.ModelInfer(infer, timeout=0.3)
        infer_refused_in = time.monotonic() - started
        infer_answered_ahead = sum(answer.done() for answer in ahead)
        answers = await asyncio.gather(holder, *ahead)
    change = deltas(server, before)
    print(f"\nunmeetable deadline: Predict refused in {predict_refused_in * 1000:.1f} ms, ModelInfer in "
          f"{infer_refused_in * 1000:.1f} ms; server {change}")
    for caught in (refused, kserve_refused):
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
        assert "cannot answer before the request's deadline" in caught.value.details()
    # Refused on arrival (the reason counted only there), before the queue they would wait behind drained.
    assert change["deadline_unmeetable"] == 2
    assert predict_answered_ahead < len(ahead) and infer_answered_ahead < len(ahead)
    assert all(scores_of(answer).shape == (5,) for answer in answers)  # those without a tight deadline: served
    assert change["computed"] == len(answers)  # the two refused requests were never computed
    assert_serving(server)


def test_the_in_flight_limit_applies_to_rest_and_kserve_as_to_grpc(fault_model_base):
    """--max_inflight_requests counts requests of every protocol: with one stalled gRPC request holding the
    only slot, REST answers 429 and KServe v2 RESOURCE_EXHAUSTED at once, naming the flag."""
    from rest_client import rest_call
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with ServerProcess(fault_model_base, "--enable_batching=true", "--max_inflight_requests=1", model_name=MODEL) as one_slot, \
            one_slot.channel() as channel, concurrent.futures.ThreadPoolExecutor(1) as pool:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        held = pool.submit(stub.Predict, pixels_request(pixels(1, stall_seconds=2.0)), timeout=30)
        time.sleep(0.5)  # the stalled request holds the slot
        body = {"signature_name": "classify_pixels", "instances": [pixels(2).tolist()]}
        status, answer = rest_call(one_slot.metrics_port, "POST", f"/v1/models/{MODEL}:predict", body)
        assert status == 429 and "--max_inflight_requests" in answer["error"]
        request = service_pb2.ModelInferRequest(model_name=MODEL)
        request.inputs.add(name="pixels", datatype="FP32", shape=[1, 32, 32, 3])
        request.raw_input_contents.append(pixels(3)[None].astype("<f4").tobytes())
        with pytest.raises(grpc.RpcError) as refused:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max_inflight_requests" in refused.value.details()
        assert scores_of(held.result()).shape == (5,)
        status, _ = rest_call(one_slot.metrics_port, "POST", f"/v1/models/{MODEL}:predict", body)
        assert status == 200  # the slot is free again
