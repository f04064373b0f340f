"""TF Serving's REST API on the real server: predict (row and columnar), classify, status, metadata, errors.

Answers are compared with the same server's gRPC Predict: both protocols run the same data plane.
"""

from __future__ import annotations

import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from conftest import TINY_LABELS
from imaging import jpeg, png
from rest_client import b64, rest_call
from tf_serving_client import image_example, predict_outputs, predict_request

MODEL = "tiny"
IMAGES = [jpeg(11), png(12), jpeg(13)]


@pytest.fixture(scope="module")
def port(tiny_server) -> int:
    return tiny_server.metrics_port


@pytest.fixture(scope="module")
def grpc_answer(tiny_server):
    with tiny_server.channel() as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(predict_request(MODEL, IMAGES), 10.0)
    return predict_outputs(response)


def test_predict_row_format_matches_grpc(port, grpc_answer):
    status, body = rest_call(
        port, "POST", f"/v1/models/{MODEL}:predict",
        {"signature_name": "predict_images", "instances": [b64(image) for image in IMAGES]},
    )
    assert status == 200, body
    want_classes, want_scores = grpc_answer
    assert [p["classes"] for p in body["predictions"]] == [[c.decode() for c in row] for row in want_classes]
    np.testing.assert_allclose([p["scores"] for p in body["predictions"]], want_scores, atol=1e-6)


def test_predict_columnar_format_with_named_input_and_version(port, grpc_answer):
    status, body = rest_call(
        port, "POST", f"/v1/models/{MODEL}/versions/1:predict",
        {"signature_name": "predict_images", "inputs": {"images": [b64(image) for image in IMAGES]}},
    )
    assert status == 200, body
    assert set(body["outputs"]) == {"classes", "scores"}
    np.testing.assert_allclose(body["outputs"]["scores"], grpc_answer[1], atol=1e-6)
    assert all(label in TINY_LABELS for row in body["outputs"]["classes"] for label in row)


def test_predict_row_objects_on_default_signature_take_serialized_examples(port, grpc_answer):
    instances = [{"inputs": b64(image_example(image).SerializeToString())} for image in IMAGES]
    status, body = rest_call(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": instances})
    assert status == 200, body
    np.testing.assert_allclose([p["scores"] for p in body["predictions"]], grpc_answer[1], atol=1e-6)


def test_predict_pixels_signature_takes_nested_float_lists(port):
    pixels = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    status, body = rest_call(
        port, "POST", f"/v1/models/{MODEL}:predict",
        {"signature_name": "classify_pixels", "instances": pixels.tolist()},
    )
    assert status == 200, body
    scores = np.array([p["scores"] for p in body["predictions"]])
    assert scores.shape == (2, 5) and np.all(np.diff(scores, axis=1) <= 0)


def test_classify_returns_label_score_pairs(port, grpc_answer):
    examples = [{"image/encoded": b64(image)} for image in IMAGES]
    status, body = rest_call(port, "POST", f"/v1/models/{MODEL}:classify", {"examples": examples})
    assert status == 200, body
    assert len(body["results"]) == 3
    for result, want_classes, want_scores in zip(body["results"], *grpc_answer):
        assert [label for label, _ in result] == [c.decode() for c in want_classes]
        np.testing.assert_allclose([score for _, score in result], want_scores, atol=1e-6)


def _tf_serving_float32_text(value: float) -> str:
    """How TF Serving writes a float32: %.6g when that reads back as the same float32, else %.9g."""
    narrow = np.float32(value)
    short = "%.6g" % narrow
    return short if np.float32(short) == narrow else "%.9g" % narrow


def test_image_answers_write_scores_as_tf_serving_writes_a_float32(port, grpc_answer):
    """Not the double nearest the float32 (0.0010021175257861614) but its short decimal (0.00100211753)."""
    predicted = rest_call(
        port, "POST", f"/v1/models/{MODEL}:predict",
        {"signature_name": "predict_images", "instances": [b64(image) for image in IMAGES]},
    )[1]
    classified = rest_call(
        port, "POST", f"/v1/models/{MODEL}:classify", {"examples": [{"image/encoded": b64(i)} for i in IMAGES]}
    )[1]
    scores = [s for p in predicted["predictions"] for s in p["scores"]]
    scores += [score for result in classified["results"] for _, score in result]
    assert len(scores) == 2 * 3 * 5
    for score in scores:
        assert float(_tf_serving_float32_text(score)) == score
    assert [s for p in predicted["predictions"] for s in p["scores"]] == [
        float(_tf_serving_float32_text(s)) for s in grpc_answer[1].ravel()
    ]


def test_status_and_metadata_in_tf_serving_json(port):
    status, body = rest_call(port, "GET", f"/v1/models/{MODEL}")
    assert status == 200
    assert body == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    status, body = rest_call(port, "GET", f"/v1/models/{MODEL}/versions/1/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": MODEL, "version": "1", "signature_name": ""}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"predict_images", "serving_default", "classify_pixels"} <= set(signatures)
    assert signatures["predict_images"]["inputs"]["images"]["dtype"] == "DT_STRING"
    assert set(signatures["predict_images"]["outputs"]) == {"classes", "scores"}


@pytest.mark.parametrize(
    "method, path, body, status, fragment",
    [
        # TF Serving's wording, which its clients match on.
        ("POST", "/v1/models/nope:predict", {"instances": []}, 404, "Servable not found for request: Latest(nope)"),
        ("POST", f"/v1/models/{MODEL}/versions/9:predict", {"instances": []}, 404,
         f"Servable not found for request: Specific({MODEL}, 9)"),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", f"/v1/models/{MODEL}/versions/9", None, 404, f"Could not find version 9 of model {MODEL}"),
        ("POST", f"/v1/models/{MODEL}:predict", b"{not json", 400, "JSON Parse error"),
        ("POST", f"/v1/models/{MODEL}:predict", {"signature_name": "predict_images"}, 400, "instances"),
        ("POST", f"/v1/models/{MODEL}:predict", {"signature_name": "bogus", "instances": []}, 400, "bogus"),
        ("POST", f"/v1/models/{MODEL}:predict",
         {"signature_name": "predict_images", "instances": [{"b64": "%%%"}]}, 400, "element: 0 key: images"),
        ("POST", f"/v1/models/{MODEL}:predict",
         {"signature_name": "predict_images", "instances": [b64(b"not an image")]}, 400, "images[0]"),
        ("POST", f"/v1/models/{MODEL}:predict",
         {"signature_name": "predict_images", "instances": [{"pictures": b64(b"x")}]}, 400, "pictures"),
        ("POST", f"/v1/models/{MODEL}:classify", {"examples": [{"other": 1}]}, 400, "examples[0]"),
        ("POST", f"/v1/models/{MODEL}:regress", {"examples": [{"x": 1.0}]}, 400,
         "Expected one output Tensor."),
        ("POST", "/v1/nonsense", {}, 404, "Malformed request"),
    ],
    ids=["unknown-model", "unknown-version", "status-unknown-model", "status-unknown-version", "bad-json", "no-instances",
         "unknown-signature", "bad-base64", "undecodable", "wrong-input-name", "example-without-image",
         "regress", "bad-path"],
)
def test_errors_are_tf_serving_json_with_http_status(port, method, path, body, status, fragment):
    got_status, got_body = rest_call(port, method, path, body)
    assert got_status == status, got_body
    assert set(got_body) == {"error"} and fragment in got_body["error"]


def _raw_http(port: int, head: bytes, body_part: bytes, wait: float) -> tuple[bytes, float]:
    """Send a request's head and part of its body on a raw socket; (what came back within `wait`, when)."""
    import socket
    import time

    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head + body_part)
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            answer = b""
    return answer, time.monotonic() - started


def test_rest_bodies_are_bounded_in_size_and_time_and_idle_connections_close(tiny_model_base):
    from server_process import ServerProcess

    with ServerProcess(tiny_model_base, "--rest_api_max_body_bytes=4096", "--rest_api_timeout_in_ms=1500",
                       "--rest_api_idle_timeout_seconds=1", model_name="tiny") as server:
        port = server.metrics_port
        path = b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        # A 10 MB body is refused with 413 once 4 KB have arrived, without waiting for the rest.
        answer, seconds = _raw_http(port, path + b"Content-Length: 10000000\r\n\r\n", b"[" * 8192, wait=10)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # A body that trickles in is cut off at the request's deadline: 504, not a connection held forever.
        answer, seconds = _raw_http(port, path + b"Content-Length: 1000\r\n\r\n", b'{"instances": [', wait=10)
        assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
        assert seconds < 5
        # An idle keep-alive connection is closed by the server.
        status_request = b"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\n\r\n"
        import socket
        import time

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(status_request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(2.5)
            closed = sock.recv(1) == b""
        assert closed
