"""Inception-v3 end to end, as `make serve` runs it: the classic client, parity, real batching."""

from __future__ import annotations

import json
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from imaging import jpeg, mixed_corpus
from server_process import REPO_ROOT, ServerProcess, free_port
from tf_serving_client import classify_request, predict_outputs

IMAGENET_LABELS = {
    name for _, name in json.loads((REPO_ROOT / "model_export/data/imagenet_class_index.json").read_text()).values()
}


@pytest.fixture(scope="module")
def in_process(inception_base):
    """The exported SavedModel's own predict_images signature, run in this process."""
    signature = tf.saved_model.load(str(inception_base / "1")).signatures["predict_images"]

    def run(images: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        out = signature(images=tf.constant(images))
        return out["classes"].numpy(), out["scores"].numpy()

    return run


def classic_predict(stub, jpeg_bytes: bytes, timeout: float = 10.0):
    """Verbatim the request of TF Serving's Inception client."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "inception"
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([jpeg_bytes], shape=[1]))
    return stub.Predict(request, timeout)


def batch_sizes_seen(server: ServerProcess) -> tuple[float, float]:
    """(batches executed, batches of size 1) from the server's own inception_batch_size record."""
    total = server.metric_value("inference_batch_size_count")
    singles = server.metric_value("inference_batch_size_bucket", 'le="1.0"')
    return total, singles


def test_classic_inception_client_classify_metadata_and_health(inception_server):
    with inception_server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = classic_predict(stub, jpeg(42, 500, 375))
        classes, scores = predict_outputs(response)
        assert classes.shape == (1, 5) and scores.shape == (1, 5) and scores.dtype == np.float32
        assert {c.decode() for c in classes[0]} <= IMAGENET_LABELS
        assert np.all(np.diff(scores[0]) <= 0)

        classification = stub.Classify(classify_request("inception", [jpeg(43)]), 10.0)
        [result] = classification.result.classifications
        assert len(result.classes) == 5 and all(c.label in IMAGENET_LABELS for c in result.classes)

        metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        metadata_request.model_spec.name = "inception"
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        stub.GetModelMetadata(metadata_request, 10.0).metadata["signature_def"].Unpack(signature_map)
        assert {"predict_images", "serving_default"} <= set(signature_map.signature_def)

        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_server_scores_equal_saved_model_in_process(inception_server, in_process):
    """Acceptance 3: 20 distinct JPEG/PNG images of various sizes, sent concurrently, match to 1e-4."""
    images = mixed_corpus(20, first_seed=1000)
    with inception_server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        futures = [stub.Predict.future(_request(image), 60.0) for image in images]
        served = [predict_outputs(f.result()) for f in futures]
    want_classes, want_scores = in_process(images)
    for index, (classes, scores) in enumerate(served):
        np.testing.assert_allclose(scores[0], want_scores[index], atol=1e-4, err_msg=f"image {index}")
        # Seeded random weights give near-uniform scores (~1e-3), so also hold a tight relative bound.
        np.testing.assert_allclose(scores[0], want_scores[index], rtol=1e-3, atol=1e-7, err_msg=f"image {index}")
        assert_same_ranking(classes[0], want_classes[index], want_scores[index])


def assert_same_ranking(classes: np.ndarray, want_classes: np.ndarray, want_scores: np.ndarray) -> None:
    """Labels agree wherever the scores are not a near-tie (within the 1e-4 tolerance)."""
    for rank, (label, want_label) in enumerate(zip(classes, want_classes)):
        neighbours = want_scores[max(rank - 1, 0): rank + 2]
        if np.min(np.abs(np.diff(neighbours)), initial=1.0) > 2e-4:
            assert label == want_label, f"rank {rank}: {label!r} != {want_label!r}"


def _request(image: bytes) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "inception"
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([image], shape=[1]))
    return request


def _send_concurrently(server: ServerProcess, images: list[bytes]) -> list[np.ndarray]:
    with server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        futures = [stub.Predict.future(_request(image), 120.0) for image in images]
        return [predict_outputs(f.result())[1][0] for f in futures]


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(inception_server, in_process):
    """Acceptance 4: 64 concurrent single-image requests, distinct images, batches larger than 1."""
    images = [jpeg(2000 + i, 320 + i, 240) for i in range(64)]
    batches_before, singles_before = batch_sizes_seen(inception_server)
    served = _send_concurrently(inception_server, images)
    _, want_scores = in_process(images)
    for index, scores in enumerate(served):
        np.testing.assert_allclose(scores, want_scores[index], atol=1e-4, err_msg=f"request {index}")
    batches, singles = batch_sizes_seen(inception_server)
    executed = batches - batches_before
    assert 0 < executed < 64, f"{executed} batches for 64 requests: no batching happened"
    assert executed - (singles - singles_before) > 0, "no batch larger than 1"


def health_statuses_until_serving(address: str, timeout: float = 240) -> list[int]:
    """Poll grpc.health.v1 from the moment the port answers until SERVING; returns the distinct statuses."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
            except grpc.RpcError:
                time.sleep(0.05)  # not listening yet
                continue
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
            time.sleep(0.05)
    return seen


def test_with_batching_disabled_every_batch_has_size_one(inception_base, in_process):
    """Also: health says NOT_SERVING while the model loads and warms up, and SIGTERM exits 0."""
    images = [jpeg(3000 + i) for i in range(64)]
    port = free_port()
    server = ServerProcess(inception_base, "--enable_batching=false", "--num_batch_threads=2", port=port, wait=False)
    with server:
        statuses = health_statuses_until_serving(f"127.0.0.1:{port}")
        server.wait_ready()
        served = _send_concurrently(server, images)
        batches, singles = batch_sizes_seen(server)
        assert server.stop() == 0, server.log
    assert statuses == [health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING]
    _, want_scores = in_process(images)
    for index, scores in enumerate(served):
        np.testing.assert_allclose(scores, want_scores[index], atol=1e-4)
    # Warm-up runs the model before serving, and the server's one warm-up request through its own gRPC
    # port is left out of the record: it holds the 64 client requests only.
    assert "self warm-up: 1 request(s) through the gRPC stack" in server.log
    assert batches == 64 and singles == 64
