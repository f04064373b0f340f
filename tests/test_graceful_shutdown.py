"""SIGTERM with 64 requests in flight: NOT_SERVING at once, new RPCs refused with UNAVAILABLE after the
shutdown delay, every in-flight and queued request answered correctly, exit code 0 within the drain timeout."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from fault_model import pixels
from server_process import ServerProcess
from test_resilience import pixels_request, scores_of

IN_FLIGHT = 64
STALL = 0.05  # per batch of 4: 64 requests take ~0.8 s to drain
DELAY = 0.5
DRAIN_TIMEOUT = 20.0


async def test_sigterm_drains_in_flight_requests_and_exits_zero(fault_model_base):
    server = ServerProcess(
        fault_model_base, "--enable_batching=true", "--max_batch_size=4", "--max_enqueued_batches=32",
        f"--shutdown_delay_seconds={DELAY}", f"--shutdown_grace_seconds={DRAIN_TIMEOUT}", model_name="fault",
    )
    try:
        requests = {seed: pixels_request(pixels(seed, stall_seconds=STALL)) for seed in range(8)}
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            references = {seed: scores_of(await stub.Predict(r, timeout=10)) for seed, r in requests.items()}
            calls = [asyncio.ensure_future(stub.Predict(requests[n % 8], timeout=30)) for n in range(IN_FLIGHT)]
            await asyncio.sleep(0.3)  # all sent; the model works through them 4 at a time
            assert not all(call.done() for call in calls)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            # NOT_SERVING as soon as the server handles the signal, while the RPCs in flight still run.
            # (Answered at all, it was said during the shutdown delay: after it, new RPCs are refused.)
            while True:
                status = (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status
                not_serving_seen = time.monotonic()
                if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                assert not_serving_seen - signalled < DRAIN_TIMEOUT / 4, "health never became NOT_SERVING"
                await asyncio.sleep(0.02)
            # Draining is not a failure: the liveness probe keeps passing, so the kubelet lets the drain finish.
            live = (await health.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=5)).status
            assert live == health_pb2.HealthCheckResponse.SERVING

            # The server began its delay by the time it said NOT_SERVING: wait that out, with room to spare.
            await asyncio.sleep(max(0.0, not_serving_seen + DELAY + 0.5 - time.monotonic()))
            refused_code = None
            try:
                await stub.Predict(requests[0], timeout=5)
            except grpc.RpcError as error:
                refused_code = error.code()
            answers = await asyncio.gather(*calls, return_exceptions=True)

        failures = [a for a in answers if isinstance(a, BaseException)]
        assert not failures, failures[:3]
        for number, response in enumerate(answers):
            np.testing.assert_allclose(scores_of(response), references[number % 8], atol=1e-6)
        exit_code = await asyncio.to_thread(server.process.wait, DRAIN_TIMEOUT + 10)
        stopped_after = time.monotonic() - signalled
        print(f"\nshutdown: {len(answers)}/{IN_FLIGHT} in-flight answered correctly, new RPC after the delay got "
              f"{refused_code}, exit code {exit_code} after {stopped_after:.1f} s")
        assert refused_code == grpc.StatusCode.UNAVAILABLE
        assert exit_code == 0
        assert stopped_after < DRAIN_TIMEOUT
    finally:
        server.stop()
