"""KServe v2 / Open Inference Protocol on the real server, called with tritonclient.grpc (Triton's own client).

Results are compared with the same server's TF Serving Predict.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from imaging import jpeg, png
from tf_serving_client import predict_outputs, predict_request

MODEL = "tiny"
IMAGES = [jpeg(21), png(22), jpeg(23)]


@pytest.fixture(scope="module")
def client(tiny_server):
    client = triton.InferenceServerClient(tiny_server.address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def tf_serving_answer(tiny_server):
    with tiny_server.channel() as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(predict_request(MODEL, IMAGES), 10.0)
    return predict_outputs(response)


def images_input(images, shape=None) -> triton.InferInput:
    tensor = triton.InferInput("images", shape or [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_).reshape(shape or [len(images)]))
    return tensor


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready("nope") and not client.is_model_ready(MODEL, "9")
    assert client.get_server_metadata().name == "batchserve"
    metadata = client.get_model_metadata(MODEL)
    assert metadata.name == MODEL and list(metadata.versions) == ["1"]
    assert {(t.name, t.datatype, tuple(t.shape)) for t in metadata.inputs} == {
        ("images", "BYTES", (-1,)), ("pixels", "FP32", (-1, 32, 32, 3))
    }
    assert {(t.name, t.datatype, tuple(t.shape)) for t in metadata.outputs} == {
        ("classes", "BYTES", (-1, 5)), ("scores", "FP32", (-1, 5))
    }


def test_infer_bytes_raw_input_matches_tf_serving_predict(client, tf_serving_answer):
    result = client.infer(MODEL, [images_input(IMAGES)], request_id="r-1")
    want_classes, want_scores = tf_serving_answer
    np.testing.assert_allclose(result.as_numpy("scores"), want_scores, atol=1e-6)
    assert (result.as_numpy("classes") == want_classes).all()
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (MODEL, "1", "r-1")


def test_infer_typed_contents_and_requested_output(tiny_server, tf_serving_answer):
    """The same request with `contents.bytes_contents` instead of raw_input_contents, built by hand."""
    request = service_pb2.ModelInferRequest(model_name=MODEL, model_version="1")
    tensor = request.inputs.add(name="images", datatype="BYTES", shape=[len(IMAGES)])
    tensor.contents.bytes_contents.extend(IMAGES)
    request.outputs.add(name="scores")
    with tiny_server.channel() as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert [o.name for o in response.outputs] == ["scores"]
    scores = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(list(response.outputs[0].shape))
    np.testing.assert_allclose(scores, tf_serving_answer[1], atol=1e-6)


def test_infer_fp32_pixels(client):
    pixels = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels)
    result = client.infer(MODEL, [tensor], outputs=[triton.InferRequestedOutput("scores")])
    scores = result.as_numpy("scores")
    assert scores.shape == (2, 5) and np.all(np.diff(scores, axis=1) <= 0)
    assert result.as_numpy("classes") is None


@pytest.mark.parametrize(
    "model, version, inputs, code, fragment",
    [
        # Triton's wording, which tritonclient users match on.
        ("nope", "", lambda: [images_input([jpeg(1)])], grpc.StatusCode.NOT_FOUND,
         "Request for unknown model: 'nope' is not found"),
        (MODEL, "9", lambda: [images_input([jpeg(1)])], grpc.StatusCode.NOT_FOUND,
         f"Request for unknown model: '{MODEL}' version 9 is not found"),
        (MODEL, "x", lambda: [images_input([jpeg(1)])], grpc.StatusCode.INVALID_ARGUMENT, "model_version"),
        (MODEL, "", lambda: [images_input([b"not an image"])], grpc.StatusCode.INVALID_ARGUMENT, "images[0]"),
        (MODEL, "", lambda: [images_input([jpeg(1)]), images_input([jpeg(2)])], grpc.StatusCode.INVALID_ARGUMENT,
         "given twice"),
    ],
    ids=["unknown-model", "unknown-version", "bad-version", "undecodable", "two-inputs"],
)
def test_errors_carry_actionable_status(client, model, version, inputs, code, fragment):
    with pytest.raises(InferenceServerException) as caught:
        client.infer(model, inputs(), model_version=version)
    assert caught.value.status() == f"StatusCode.{code.name}"
    assert fragment in caught.value.message()
