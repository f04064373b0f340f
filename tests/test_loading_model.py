"""While models load, requests answer as TF Serving's clients expect.

At start-up TF Serving's ports stay closed until its models have loaded, so its clients see UNAVAILABLE and
its own test harness takes any answer naming a servable as "ready"; this server answers UNAVAILABLE for every
model (health, status and metrics answer meanwhile). A model that loads later (a config reload adds it) is
NOT_FOUND, with TF Serving's wording, until it serves, as there. The models here stall their own load: a
recorded warm-up request (assets.extra/tf_serving_warmup_requests) makes the graph wait.
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

from model_corpus import write_model_config
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


def _first_refusal(stub, channel_ready_deadline: float, log) -> grpc.RpcError:
    """The first answer other than "nothing listens yet" (the process imports TensorFlow first)."""
    while True:
        try:
            _predict(stub, 0.0)
            pytest.fail("the model answered before its warm-up finished")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or "starting" in (error.details() or ""):
                return error
        assert time.monotonic() < channel_ready_deadline, log()
        time.sleep(0.05)


def test_at_start_up_every_model_is_unavailable_until_the_models_serve(tmp_path: Path) -> None:
    write_stalling_model(tmp_path / "slow")
    port = free_port()
    server = ServerProcess(tmp_path / "slow", model_name="slow", port=port, wait=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            refused = _first_refusal(stub, time.monotonic() + 120, lambda: server.log)
            assert refused.code() == grpc.StatusCode.UNAVAILABLE
            assert refused.details() == "the server is starting: its models are still loading; retry shortly"
            missing = predict_pb2.PredictRequest()
            missing.model_spec.name = "intentionally_missing_model"  # TF Serving's harness waits on this one
            with pytest.raises(grpc.RpcError) as unknown:
                stub.Predict(missing, timeout=10)
            assert unknown.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "Servable" not in unknown.value.details()
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == \
                health_pb2.HealthCheckResponse.NOT_SERVING
            status, body = rest_call(server.metrics_port, "POST", "/v1/models/slow:predict", {"instances": [0.0]})
            assert status == 503 and "starting" in body["error"]
            status, body = rest_call(server.metrics_port, "GET", "/v1/models/slow")
            assert status == 200 and body["model_version_status"][0]["state"] == "LOADING", body

            server.wait_ready(120)
            assert list(_predict(stub, 0.0).outputs["y"].float_val) == [0.0]
            with pytest.raises(grpc.RpcError) as unknown:
                stub.Predict(missing, timeout=10)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
            assert unknown.value.details() == "Servable not found for request: Latest(intentionally_missing_model)"
    finally:
        server.stop()


def test_a_model_added_later_is_not_found_until_it_serves(tmp_path: Path) -> None:
    write_stalling_model(tmp_path / "fast", stall_seconds=0.0)
    write_stalling_model(tmp_path / "slow")
    config = tmp_path / "models.config"
    write_model_config(config, {"fast": tmp_path / "fast"})
    with ServerProcess(tmp_path / "fast", f"--model_config_file={config}",
                       "--model_config_file_poll_wait_seconds=0.2", model_name="ignored") as server, \
            server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        write_model_config(config, {"fast": tmp_path / "fast", "slow": tmp_path / "slow"})
        deadline = time.monotonic() + 60
        while "loading model slow version 1" not in server.log:
            assert time.monotonic() < deadline, server.log
            time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as refused:
            _predict(stub, 0.0)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert refused.value.details() == "Servable not found for request: Latest(slow)"
        status, body = rest_call(server.metrics_port, "POST", "/v1/models/slow:predict", {"instances": [0.0]})
        assert (status, body) == (404, {"error": "Servable not found for request: Latest(slow)"})
        while True:
            try:
                assert list(_predict(stub, 0.0).outputs["y"].float_val) == [0.0]
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline, error.details()
                time.sleep(0.2)


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
        assert server.process.wait(timeout=60) == 0, server.log
        assert time.monotonic() - stopped_at < 30  # far sooner than the 120 s load, within Kubernetes' grace
        while "stopped during start-up" not in server.log and time.monotonic() < deadline:
            time.sleep(0.05)  # the log reader thread catches up
        assert "stopped during start-up" in server.log
        assert "Traceback" not in server.log
    finally:
        server.stop()
