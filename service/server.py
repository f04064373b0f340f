"""Assembles the server: gRPC and REST services over the data plane, models and their versions, health,
metrics, shutdown."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer  # the asyncio servicer grpcio-health-checking ships
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from tensorflow_serving.apis import model_service_pb2, model_service_pb2_grpc, prediction_service_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tritonclient.grpc import service_pb2_grpc as kserve_pb2_grpc

from batching import ListenerGroup

from service.dataplane.dataplane import DataPlane
from service.errors import one_line
from service.adapters.grpc_api.model_service import ModelServicer
from service.adapters.grpc_api.prediction_service import PredictionServicer
from service.adapters.grpc_api.rpc_observer import RpcObserver
from service.observability.observation import RequestObserver
from service.adapters.grpc_api.routing import MethodRouter
from service.adapters.grpc_api.undecodable import reject_undecodable_requests
from service.adapters.kserve_api.inference_service import SERVICE_NAME as KSERVE_SERVICE
from service.adapters.kserve_api.inference_service import InferenceServicer
from service.adapters.kserve_api.http_api import KServeHttpApi
from service.observability.metrics import ServingMetrics
from service.models.model_config import parse_model_config
from service.models.model_manager import ModelManager
from service.adapters.rest_api.http_server import RestServer
from service.models.batch_size_tuning import LADDER
from service.runtime.model_runtime import ModelLoadError, ModelRuntime, configure_tensorflow
from service.process.self_warmup import loopback_address, warm_up_through_grpc
from service.process.settings import ServerSettings
from service.process.tls import tls_material
from service.observability.tracing import configure_tracing

_log = logging.getLogger("service")

PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name
MODEL_SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_SERVED = ("", PREDICTION_SERVICE, MODEL_SERVICE, KSERVE_SERVICE)
# The gRPC health service a liveness probe asks: SERVING while the process can still answer; NOT_SERVING once a
# model has been stuck longer than --stuck_model_liveness_seconds (readiness, the services above, goes first).
LIVENESS_SERVICE = "liveness"
HEALTH_WATCH_SECONDS = 0.5


class StartupError(Exception):
    """The server cannot start; the message says why and what to change, in one line."""


def grpc_server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """Channel arguments of the gRPC server; the connection-age ones only when set.

    SO_REUSEPORT is off (gRPC turns it on by default): with it, a second server on a port already served
    would start without a word and take a share of the first one's connections."""
    options = [
        ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
        ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
    ]
    if not any(key == "grpc.so_reuseport" for key, _ in settings.grpc_channel_arguments):
        options.append(("grpc.so_reuseport", 0))
    if settings.grpc_max_connection_age_ms:
        options.append(("grpc.max_connection_age_ms", settings.grpc_max_connection_age_ms))
    if settings.grpc_max_connection_age_grace_ms:
        options.append(("grpc.max_connection_age_grace_ms", settings.grpc_max_connection_age_grace_ms))
    options.extend(settings.grpc_channel_arguments)  # --grpc_channel_arguments, as TF Serving passes them
    return options


class ModelServer:
    """One process: one gRPC port (TF Serving and KServe v2 APIs), one HTTP port (TF Serving's REST API and
    /metrics), the models it was told to serve."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        configure_tensorflow(settings.intra_op_threads, settings.inter_op_threads)
        self.metrics = ServingMetrics(
            max(LADDER) if settings.auto_batch_size else settings.effective_batching.max_batch_size)
        self.tracing = configure_tracing()
        listener_factories = [self.metrics.listener_factory()]
        if self.tracing.enabled:  # off, the batch tracer would only walk every batch to find nothing sampled
            listener_factories.append(self.tracing.listener_factory())
        self.models = ModelManager(
            settings.effective_batching,
            listener_factory=lambda name, version: ListenerGroup(*(make(name, version) for make in listener_factories)),
            batch_execution_timeout=settings.batch_execution_timeout_seconds or None,
            deadline_policy=settings.deadline_policy,
            enable_model_warmup=settings.enable_model_warmup,
            saved_model_tags=settings.saved_model_tags,
            auto_batch_size=settings.auto_batch_size and settings.enable_batching,
            batch_latency_budget_seconds=settings.batch_latency_budget_ms / 1000,
        )
        self.metrics.watch_models(self.models)
        self._decode_executor = ThreadPoolExecutor(
            max_workers=settings.effective_decode_threads, thread_name_prefix="decode"
        )
        self.dataplane = DataPlane(
            self.models,
            self._decode_executor,
            max_images_per_request=settings.max_images_per_request,
            max_inflight_requests=settings.max_inflight_requests,
            max_image_pixels=settings.max_image_pixels,
            signature_method_name_check=settings.enable_signature_method_name_check,
            tracer=self.tracing.tracer,
        )
        self.health = HealthServicer()
        self._observer = observer = RequestObserver(
            self.metrics, self.tracing.tracer,
            is_served=self.models.serves,
            access_log_enabled=settings.access_log,
        )
        # Innermost first: requests refused as undecodable are still counted, traced and logged.
        self.router = router = MethodRouter([reject_undecodable_requests, RpcObserver(observer).wrap])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(
            self.dataplane, tensor_content=settings.enable_serialization_as_tensor_content), router)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(
            self.dataplane, reload_enabled=settings.enable_model_config_reload, admin=settings.admin_access), router)
        kserve_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self.dataplane), router)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, router)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(
                (PREDICTION_SERVICE, MODEL_SERVICE, KSERVE_SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME)
            ),
            router,
        )
        self._grpc = grpc.aio.server(handlers=[router], options=grpc_server_options(settings))
        self.rest = RestServer(
            self.dataplane,
            observer=observer,
            metrics_exposition=self.metrics.exposition,
            more_routes=[KServeHttpApi(
                self.dataplane, observer=observer, timeout_seconds=settings.rest_api_timeout_in_ms / 1000,
            ).add_routes],
            metrics_path=settings.prometheus_path,
            max_body_bytes=settings.rest_api_max_body_bytes or settings.grpc_max_message_bytes,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            timeout_seconds=settings.rest_api_timeout_in_ms / 1000,
            idle_timeout_seconds=settings.rest_api_idle_timeout_seconds,
        )
        self.grpc_port = 0
        self.metrics_port = 0  # the REST port: it serves /metrics too
        self._config_watcher: asyncio.Task[None] | None = None
        self._health_watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind, report NOT_SERVING while the models load and warm up, then SERVING; then poll for versions."""
        for service in _SERVED:
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        settings = self.settings
        tls = tls_material(settings)
        self.models.hold_requests_until_started()

        def bind(address: str) -> int:
            """The port bound at `address` (0: none), with TLS when it is configured."""
            credentials = tls.server_credentials() if tls is not None else None
            try:
                if credentials is None:
                    return self._grpc.add_insecure_port(address)
                return self._grpc.add_secure_port(address, credentials)
            except RuntimeError:  # grpcio's "Failed to bind to address ...", with no reason
                return 0

        self.grpc_port = bind(f"{settings.host}:{settings.port}")
        if self.grpc_port == 0:
            raise StartupError(unbindable_port_message("gRPC", "--port", settings.host, settings.port))
        # TF Serving's --grpc_socket_path: the same services on a Unix socket too.
        if settings.grpc_socket_path and bind(f"unix:{settings.grpc_socket_path}") == 0:
            raise StartupError(
                f"cannot listen on the gRPC socket {settings.grpc_socket_path} (--grpc_socket_path): its directory "
                "must exist and be writable, and no other process may be listening on it"
            )
        await self._grpc.start()
        if settings.rest_api_port:
            # The REST port takes the same TLS (and client verification) as the gRPC port.
            ssl_context = tls.ssl_context() if tls is not None else None
            try:
                self.metrics_port = await self.rest.start(
                    settings.host, settings.rest_api_port, ssl_context=ssl_context)
            except OSError as error:
                raise StartupError(unbindable_port_message(
                    "REST", "--rest_api_port", settings.host, settings.rest_api_port, error)) from None
        _log.info("tracing: %s", self.tracing.description)
        for source in settings.model_sources:
            await self.models.add_model(source)
        self.models.started()
        await self._warm_up_serving_stack(tls is not None)
        self.models.start_polling(settings.file_system_poll_wait_seconds)
        if settings.model_config_file and settings.model_config_file_poll_wait_seconds > 0:
            self._config_watcher = asyncio.get_running_loop().create_task(
                self._watch_model_config(settings.model_config_file, settings.model_config_file_poll_wait_seconds),
                name="model-config-watcher",
            )
        for service in _SERVED:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._health_watcher = asyncio.get_running_loop().create_task(self._watch_health(), name="health-watcher")
        batching = settings.effective_batching
        _log.info(
            "ready: models=%s grpc=%s:%d metrics=%s:%d batching=%s max_batch_size=%s "
            "batch_timeout_micros=%d num_batch_threads=%d tls=%s",
            ",".join(f"{name}@{self.models.get(name).version}" for name in self.models.model_names),
            settings.host, self.grpc_port, settings.host, self.metrics_port,
            "on" if settings.enable_batching else "off",
            ",".join(f"{name}:{self.models.get(name).batching.max_batch_size}" for name in self.models.model_names)  # type: ignore[union-attr]
            if settings.auto_batch_size and settings.enable_batching else batching.max_batch_size,
            batching.batch_timeout_micros, batching.num_batch_threads,
            "off" if tls is None else ("mutual" if tls.require_client_auth else "on"),
            extra={"grpc_port": self.grpc_port, "metrics_port": self.metrics_port},
        )

    async def _warm_up_serving_stack(self, tls: bool) -> None:
        """One request per model through our own gRPC port, so no client pays for the stack's first call."""
        if tls:  # a loopback client would need a certificate of its own under mutual TLS
            _log.info("self warm-up request skipped: TLS is on")
            return
        images = {  # models with the image contract; the first request of any other signature builds its graph
            name: ModelRuntime.sample_jpeg() for name in self.models.model_names
            if self.models.get(name).runtime.image_contract  # type: ignore[union-attr]
        }
        if not images:
            return
        started = time.perf_counter()
        try:
            with self._observer.expecting_warmup():
                await warm_up_through_grpc(loopback_address(self.settings.host, self.grpc_port), images)
        except grpc.aio.AioRpcError as error:  # never fatal: it only saves the first client a few ms
            _log.warning("self warm-up request failed: %s %s", error.code().name, error.details())
            return
        _log.info("self warm-up: %d request(s) through the gRPC stack in %.1f ms", len(images),
                  (time.perf_counter() - started) * 1e3)

    async def _watch_model_config(self, path: Path, interval_seconds: float) -> None:
        """TF Serving's --model_config_file_poll_wait_seconds: serve what the file names whenever it changes.
        A file that does not parse, or names a model that cannot load, is logged and the served set kept.
        The first pass applies what the file says then: a change made while the models loaded is not missed,
        and re-applying the start-up config changes nothing."""
        applied: str | None = None
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                text = await asyncio.to_thread(path.read_text, encoding="utf-8")
                if text == applied:
                    continue
                applied = text
                await self.models.apply_config(parse_model_config(text))
            except (OSError, ValueError, ModelLoadError) as error:
                _log.error("--model_config_file %s not applied, still serving %s: %s", path, self.models.model_names, error)

    async def _watch_health(self) -> None:
        """A stuck model takes the pod out of rotation (readiness NOT_SERVING, per-model health too) until a batch
        completes again; stuck longer than --stuck_model_liveness_seconds, liveness fails too, so Kubernetes
        restarts the pod."""
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        ready, live, stuck_before = True, True, set()
        limit = self.settings.stuck_model_liveness_seconds
        while True:
            await asyncio.sleep(HEALTH_WATCH_SECONDS)
            stuck = self.models.stuck_seconds()
            for name in stuck.keys() ^ stuck_before:
                await self.health.set(name, not_serving if name in stuck else serving)
            stuck_before = set(stuck)
            if ready != (not stuck):
                ready = not stuck
                for service in _SERVED:
                    await self.health.set(service, serving if ready else not_serving)
            alive = not (limit and any(seconds > limit for seconds in stuck.values()))
            if live != alive:
                live = alive
                await self.health.set(LIVENESS_SERVICE, serving if live else not_serving)
                if not live:
                    _log.error("models %s stuck longer than %g s: liveness fails, the pod should be restarted",
                               sorted(stuck), limit)

    async def stop(self) -> None:
        """Drain: NOT_SERVING at once; after `shutdown_delay_seconds` refuse new RPCs (UNAVAILABLE) while
        in-flight and queued ones finish within `shutdown_grace_seconds`; then release the models."""
        if self._config_watcher is not None:
            self._config_watcher.cancel()
        if self._health_watcher is not None:
            self._health_watcher.cancel()
        # Readiness goes (every service a readiness probe or a client asks), liveness stays: a drain is not a
        # failure, and a failed liveness probe during it would have the kubelet cut the drain short.
        for service in (*_SERVED, *self.models.model_names):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.settings.shutdown_delay_seconds:
            await asyncio.sleep(self.settings.shutdown_delay_seconds)
        await asyncio.gather(self._grpc.stop(self.settings.shutdown_grace_seconds), self.rest.stop())
        await self.models.close()
        self._decode_executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.tracing.shutdown)  # export the last spans


def unbindable_port_message(api: str, flag: str, host: str, port: int, error: OSError | None = None) -> str:
    """Why `host:port` cannot be listened on, and what to change. gRPC gives no reason, so a plain socket
    tries the same bind to find it."""
    if error is None or error.errno is None:
        error = _bind_error(host, port) or error
    code = error.errno if error is not None else None
    address = f"{host}:{port}"
    if code == errno.EADDRINUSE:
        return (f"{api} port {address} ({flag}) is already in use: another process listens on it; "
                f"stop that process or choose another {flag}")
    if code == errno.EACCES:
        return (f"{api} port {address} ({flag}): permission denied; ports below 1024 need privileges, "
                f"choose another {flag}")
    if code == errno.EADDRNOTAVAIL:
        return f"{api} port {address} ({flag}): no network interface here has the address {host}; check --host"
    reason = (error.strerror or str(error)) if error is not None else "the address cannot be listened on"
    return f"cannot listen on {api} port {address} ({flag}): {reason}; check --host and {flag}"


def _bind_error(host: str, port: int) -> OSError | None:
    """The OSError a plain listening socket gets binding `host:port` (None: it binds)."""
    address = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no obstacle
            probe.bind((address, port))
    except OSError as error:
        return error
    return None


async def run_server(settings: ServerSettings) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code: 0 after a drain, 1 when it cannot start (a
    model that cannot load, a port in use, ...: one ERROR line says why, and the orchestrator restarts us)."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    server: ModelServer | None = None
    try:
        server = ModelServer(settings)
        starting = asyncio.ensure_future(server.start())
        stopping = asyncio.ensure_future(stop_requested.wait())
        await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            # Told to stop while models load: nothing serves yet, so nothing drains. A load runs in a thread
            # that cannot be interrupted, and the interpreter would wait for it at exit (Inception: longer than
            # docker stop's 10 s, and then SIGKILL), so the process leaves now.
            _log.info("stopped during start-up: no model was serving yet")
            logging.shutdown()
            os._exit(0)
        stopping.cancel()
        starting.result()  # a start-up failure is raised here
    except Exception as error:
        _log.error("cannot start: %s", one_line(error))
        _log.debug("start-up failure", exc_info=True)  # the stack, for whoever runs with --log_level=DEBUG
        if server is not None:
            try:
                await server.stop()
            except Exception:  # what did start is released as far as it can be; the failure above is the news
                _log.debug("releasing a server that failed to start", exc_info=True)
        return 1
    await stop_requested.wait()
    _log.info("shutting down: draining in-flight requests (grace %.1f s)", settings.shutdown_grace_seconds)
    await server.stop()
    _log.info("stopped")
    return 0
