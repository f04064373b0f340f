"""One batcher per model, whatever the protocol: a TF Serving gRPC, a REST and a KServe v2 request ride one batch.

The server runs TF Serving's strict batching with a long timeout, so a batch closes only when it is full or
its first image has waited 2 s; the three one-image requests, sent together, must leave in one batch of 3.
The batch-size histogram proves it: one more batch, three more images.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as triton
from tensorflow_serving.apis import prediction_service_pb2_grpc

from imaging import jpeg
from rest_client import b64, rest_call
from server_process import ServerProcess
from tf_serving_client import predict_outputs, predict_request

MODEL = "tiny"


@pytest.fixture(scope="module")
def strict_server(tiny_model_base):
    with ServerProcess(
        tiny_model_base, "--enable_batching=true", "--max_batch_size=8", "--dispatch_when_idle=false",
        "--batch_timeout_micros=2000000", model_name=MODEL,
    ) as server:
        yield server


def test_grpc_rest_and_kserve_requests_share_one_batch(strict_server):
    image = jpeg(31)
    labels = f'model="{MODEL}"'
    batches_before = strict_server.metric_value("inference_batch_size_count", labels)
    images_before = strict_server.metric_value("inference_batch_size_sum", labels)

    def by_grpc():
        with strict_server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            return predict_outputs(stub.Predict(predict_request(MODEL, [image]), 30.0))[1][0]

    def by_rest():
        status, body = rest_call(
            strict_server.metrics_port, "POST", f"/v1/models/{MODEL}:predict",
            {"signature_name": "predict_images", "instances": [b64(image)]},
        )
        assert status == 200, body
        return np.array(body["predictions"][0]["scores"])

    def by_kserve():
        client = triton.InferenceServerClient(strict_server.address)
        tensor = triton.InferInput("images", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([image], dtype=np.object_))
        try:
            return client.infer(MODEL, [tensor], client_timeout=30).as_numpy("scores")[0]
        finally:
            client.close()

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(call) for call in (by_grpc, by_rest, by_kserve)]
        scores = [future.result(timeout=60) for future in futures]

    for other in scores[1:]:
        np.testing.assert_allclose(other, scores[0], atol=1e-6)
    assert strict_server.metric_value("inference_batch_size_count", labels) - batches_before == 1
    assert strict_server.metric_value("inference_batch_size_sum", labels) - images_before == 3
