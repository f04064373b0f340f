"""Three real replicas on loopback, as the headless Service and the LoadBalancer Service present them.

- gRPC's client-side `round_robin` over the three addresses spreads requests, and one replica's SIGTERM
  drain (what Kubernetes does to a pod) loses no request.
- Behind an L4 balancer (a per-connection round-robin TCP proxy here) one channel sticks to one backend;
  with --grpc_max_connection_age_ms the server closes old connections and the channel spreads anyway.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from imaging import jpeg
from server_process import ServerProcess
from tf_serving_client import predict_outputs, predict_request

MODEL = "tiny"
CONNECTION_AGE_MS = 500


@pytest.fixture(scope="module")
def replicas(tiny_model_base) -> Iterator[list[ServerProcess]]:
    # The shutdown delay is the window in which health says NOT_SERVING while the replica still serves:
    # health-checking clients (and Kubernetes endpoints) move away before it stops accepting.
    flags = ("--enable_batching=true", "--max_batch_size=8", "--shutdown_grace_seconds=10",
             "--shutdown_delay_seconds=1",
             f"--grpc_max_connection_age_ms={CONNECTION_AGE_MS}", "--grpc_max_connection_age_grace_ms=1000")
    servers = [ServerProcess(tiny_model_base, *flags, model_name=MODEL, wait=False) for _ in range(3)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:  # SIGTERM all first: they drain in parallel
            if server.process.poll() is None:
                server.process.terminate()
        for server in servers:
            server.stop()


def images_computed(server: ServerProcess) -> float:
    return server.metric_value("inference_batch_size_sum", f'model="{MODEL}"')


def round_robin_channel(servers: list[ServerProcess]) -> grpc.Channel:
    """round_robin over the replicas with gRPC client-side health checking: a replica whose health turns
    NOT_SERVING (draining) leaves the rotation before it stops accepting, so no request races its stop."""
    target = "ipv4:" + ",".join(server.address for server in servers)
    service_config = {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
    return grpc.insecure_channel(target, options=[("grpc.service_config", json.dumps(service_config))])


def test_round_robin_spreads_requests_and_a_draining_replica_loses_nothing(replicas):
    images = [jpeg(seed) for seed in range(4)]
    before = [images_computed(server) for server in replicas]
    with round_robin_channel(replicas) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        time.sleep(0.5)  # round_robin connects to every address; let all three subchannels become ready
        for _ in range(30):
            stub.Predict(predict_request(MODEL, images[:1]), 10.0)
        spread = [images_computed(server) - b for server, b in zip(replicas, before)]
        assert sum(spread) == 30
        assert all(count >= 5 for count in spread), f"requests per replica: {spread}"

        # Steady concurrent load; SIGTERM one replica in the middle of it.
        stop_at = time.monotonic() + 4.0
        outcomes: list[str] = []
        lock = threading.Lock()

        def client_loop(worker: int) -> None:
            for i in itertools.count():
                if time.monotonic() > stop_at:
                    return
                try:
                    response = stub.Predict(predict_request(MODEL, images), 10.0)
                    classes, _ = predict_outputs(response)
                    result = "ok" if classes.shape == (len(images), 5) else f"bad shape {classes.shape}"
                except grpc.RpcError as error:
                    result = f"{error.code().name}: {error.details()}"
                with lock:
                    outcomes.append(result)

        draining = replicas[1]
        before_drain = images_computed(draining)
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client_loop, worker) for worker in range(4)]
            time.sleep(1.5)
            served_before_sigterm = images_computed(draining) - before_drain
            exit_code = draining.stop(timeout=30)
            for future in futures:
                future.result()
        failures = [o for o in outcomes if o != "ok"]
        assert not failures, f"{len(failures)} of {len(outcomes)} requests failed: {failures[:5]}"
        assert served_before_sigterm > 0, "the drained replica had taken no traffic before SIGTERM"
        assert exit_code == 0, draining.log
        print(f"{len(outcomes)} requests, {served_before_sigterm:.0f} images on the drained replica before SIGTERM")
        assert len(outcomes) > 20
        # The survivors took the load after the drain.
        after = [images_computed(server) for server in (replicas[0], replicas[2])]
        with round_robin_channel([replicas[0], replicas[2]]) as survivors:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(survivors)
            stub.Predict(predict_request(MODEL, images[:1]), 10.0, wait_for_ready=True)
        assert sum(images_computed(s) for s in (replicas[0], replicas[2])) > sum(after)


class ConnectionRoundRobinProxy:
    """An L4 load balancer in miniature: each new TCP connection goes to the next backend, bytes pass as is."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self._backends = itertools.cycle(backends)
        self.connections_per_backend: dict[int, int] = {port: 0 for _, port in backends}
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        started.wait(10)
        assert self._server is not None
        self.port = self._server.sockets[0].getsockname()[1]

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        started.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = next(self._backends)
        self.connections_per_backend[port] += 1
        try:
            backend_reader, backend_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, backend_writer), self._pipe(backend_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            # Finish the pipes while the loop runs: left pending, they would close their sockets at garbage
            # collection, on a closed loop.
            pipes = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def test_max_connection_age_spreads_one_channel_behind_an_l4_balancer(replicas):
    live = [server for server in replicas if server.process.poll() is None]  # the drain test stopped one
    assert len(live) >= 2
    proxy = ConnectionRoundRobinProxy([("127.0.0.1", server.port) for server in live])
    before = [images_computed(server) for server in live]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}") as channel:  # pick_first: one connection at a time
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            image = [jpeg(0)]
            deadline = time.monotonic() + 6 * CONNECTION_AGE_MS / 1000
            sent = 0
            while time.monotonic() < deadline:
                stub.Predict(predict_request(MODEL, image), 10.0, wait_for_ready=True)
                sent += 1
                time.sleep(0.02)
    finally:
        proxy.close()
    spread = [images_computed(server) - b for server, b in zip(live, before)]
    assert sum(spread) == sent
    # Without a connection age the one channel would keep its first connection, and so one backend.
    assert sum(proxy.connections_per_backend.values()) >= 3, proxy.connections_per_backend
    assert sum(1 for count in spread if count > 0) >= 2, f"requests per backend: {spread}"
