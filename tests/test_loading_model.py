"""A model that is still loading answers as TF Serving's does: NOT_FOUND (REST 404), with TF Serving's wording.

Clients and tools written for TF Serving treat NOT_FOUND during start-up as "not there yet" and retry or wait
on GetModelStatus; readiness stays NOT_SERVING meanwhile, so a load balancer sends nothing. The model here
stalls its own load: its recorded warm-up request (assets.extra/tf_serving_warmup_requests) makes the graph
wait a few seconds, while the ports already accept requests.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from rest_client import rest_call
from server_process import ServerProcess, free_port
from service.tensors.tensor_proto import from_array

STALL_SECONDS = 4.0


def write_stalling_model(base: Path, stall_seconds: float = STALL_SECONDS) -> Path:
    """y = x; the graph busy-waits x[0] seconds first. Its warm-up request asks for `stall_seconds`."""

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            stall = tf.cast(x[0], tf.float64)
            start = tf.timestamp()
            waited = tf.while_loop(lambda t: t - start < stall, lambda t: [tf.timestamp()], [start])[0]
            with tf.control_dependencies([waited]):
                return {"y": tf.identity(x)}

    module = Module()
    version_dir = base / "1"
    tf.saved_model.save(module, str(version_dir), {"serving_default": module.serve})
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["x"].CopyFrom(from_array(np.array([stall_seconds], np.float32)))
    warmup = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    warmup.parent.mkdir()
    with tf.io.TFRecordWriter(str(warmup)) as writer:
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        writer.write(log.SerializeToString())
    return version_dir


def _predict(stub, x: float):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["x"].CopyFrom(from_array(np.array([x], np.float32)))
    return stub.Predict(request, timeout=10)


def test_a_loading_model_is_not_found_until_it_serves(tmp_path: Path) -> None:
    write_stalling_model(tmp_path / "slow")
    port = free_port()
    server = ServerProcess(tmp_path / "slow", model_name="slow", port=port, wait=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 120
            while True:  # until the port is bound (the process imports TensorFlow first)
                try:
                    _predict(stub, 0.0)
                    pytest.fail("the model answered before its warm-up finished")
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:  # UNAVAILABLE: nothing listening yet
                        refused = error
                        break
                assert time.monotonic() < deadline, server.log
                time.sleep(0.05)
            assert refused.code() == grpc.StatusCode.NOT_FOUND, refused.details()
            assert refused.details() == "Servable not found for request: Latest(slow)"
            assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == \
                health_pb2.HealthCheckResponse.NOT_SERVING
            status, body = rest_call(server.metrics_port, "POST", "/v1/models/slow:predict", {"instances": [0.0]})
            assert (status, body) == (404, {"error": "Servable not found for request: Latest(slow)"})

            server.wait_ready(120)
            assert list(_predict(stub, 0.0).outputs["y"].float_val) == [0.0]
    finally:
        server.stop()


def test_a_stop_while_models_load_exits_at_once(tmp_path: Path) -> None:
    """docker stop and Kubernetes send SIGTERM, then SIGKILL after 10 or 30 s: a server whose model takes longer
    to load must not wait for the load when nothing is serving yet."""
    write_stalling_model(tmp_path / "slow", stall_seconds=120.0)
    port = free_port()
    server = ServerProcess(tmp_path / "slow", model_name="slow", port=port, wait=False)
    try:
        deadline = time.monotonic() + 120
        while "loading model slow version 1" not in server.log:  # the ports are bound; the load has begun
            assert time.monotonic() < deadline and server.process.poll() is None, server.log
            time.sleep(0.05)
        time.sleep(0.5)
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=10) == 0, server.log
        assert time.monotonic() - stopped_at < 5
        time.sleep(0.2)  # the log reader thread catches up
        assert "stopped during start-up" in server.log
        assert "Traceback" not in server.log
    finally:
        server.stop()
