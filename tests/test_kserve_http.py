"""KServe v2 / Open Inference Protocol over HTTP on the real server's REST port, called with tritonclient.http
(Triton's own client, JSON and binary tensors) and with plain HTTP.

An image model's answers are compared with the same server's KServe gRPC answers; any-SavedModel answers with
what the model computes (y = 0.5x + 2, and the multi-type module's arithmetic).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from imaging import jpeg, png
from model_corpus import multi_io_example_inputs, write_half_plus_two_tf1, write_model_config, write_multi_io
from server_process import ServerProcess

IMAGES = [jpeg(31), png(32), jpeg(33)]


@pytest.fixture(scope="module")
def image_http(tiny_server: ServerProcess) -> Iterator[triton_http.InferenceServerClient]:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{tiny_server.metrics_port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def image_grpc(tiny_server: ServerProcess) -> Iterator[triton_grpc.InferenceServerClient]:
    client = triton_grpc.InferenceServerClient(tiny_server.address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def any_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("kserve_http")
    half = write_half_plus_two_tf1(root / "half_plus_two")
    multi = write_multi_io(root / "multi_io")
    config = write_model_config(root / "models.config", {"half_plus_two": half.parent, "multi_io": multi.parent})
    with ServerProcess(half.parent, f"--model_config_file={config}", "--enable_batching=true",
                       "--max_batch_size=8", model_name="ignored") as server:
        yield server


@pytest.fixture(scope="module")
def any_http(any_server: ServerProcess) -> Iterator[triton_http.InferenceServerClient]:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{any_server.metrics_port}")
    yield client
    client.close()


def http_input(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton_http.InferInput:
    tensor = triton_http.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def raw_call(port: int, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# -- the image model -------------------------------------------------------------------------------------

def test_health_and_metadata_match_grpc(image_http, image_grpc, tiny_server):
    assert image_http.is_server_live() and image_http.is_server_ready()
    assert image_http.is_model_ready("tiny") and image_http.is_model_ready("tiny", "1")
    assert not image_http.is_model_ready("nope") and not image_http.is_model_ready("tiny", "9")
    server = image_http.get_server_metadata()
    assert server["name"] == "batchserve" and "binary_tensor_data" in server["extensions"]
    over_http = image_http.get_model_metadata("tiny")
    over_grpc = image_grpc.get_model_metadata("tiny")
    assert over_http["name"] == "tiny" and over_http["versions"] == ["1"]
    assert over_http["platform"] == over_grpc.platform
    for kind in ("inputs", "outputs"):
        assert [(t["name"], t["datatype"], t["shape"]) for t in over_http[kind]] == [
            (t.name, t.datatype, list(t.shape)) for t in getattr(over_grpc, kind)
        ]
    status, _, body = raw_call(tiny_server.metrics_port, "GET", "/v2/health/live")
    assert status == 200 and json.loads(body) == {"live": True}


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_images_over_http_answer_as_over_grpc(image_http, image_grpc, binary_out):
    """Encoded images are not text: they travel as binary tensor data (JSON BYTES are strings)."""
    images = np.array(IMAGES, dtype=np.object_)
    want = image_grpc.infer("tiny", [_grpc_bytes("images", images)])
    outputs = [triton_http.InferRequestedOutput(name, binary_data=binary_out) for name in ("classes", "scores")]
    result = image_http.infer("tiny", [http_input("images", images, "BYTES", binary=True)], outputs=outputs,
                              request_id="r-7")
    assert result.get_response()["id"] == "r-7"
    text = [[label if isinstance(label, str) else label.decode() for label in row]  # JSON BYTES arrive as str
            for row in result.as_numpy("classes").tolist()]
    assert text == [[label.decode() for label in row] for row in want.as_numpy("classes").tolist()]
    np.testing.assert_allclose(result.as_numpy("scores"), want.as_numpy("scores"), rtol=1e-6)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_pixels_over_http_answer_as_over_grpc(image_http, image_grpc, binary):
    pixels = np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)
    grpc_input = triton_grpc.InferInput("pixels", [2, 32, 32, 3], "FP32")
    grpc_input.set_data_from_numpy(pixels)
    want = image_grpc.infer("tiny", [grpc_input])
    result = image_http.infer("tiny", [http_input("pixels", pixels, "FP32", binary)],
                              outputs=[triton_http.InferRequestedOutput("scores", binary_data=binary)])
    assert result.as_numpy("classes") is None  # only the output asked for
    np.testing.assert_allclose(result.as_numpy("scores"), want.as_numpy("scores"), rtol=1e-5)


def test_faults_answer_with_tritons_status_and_the_server_keeps_serving(image_http, tiny_server):
    port = tiny_server.metrics_port
    status, _, body = raw_call(port, "POST", "/v2/models/nope/infer", {"inputs": []})
    assert status == 404 and "Request for unknown model: 'nope' is not found" in json.loads(body)["error"]
    status, _, body = raw_call(port, "POST", "/v2/models/tiny/infer", b"{not json")
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]
    status, _, body = raw_call(port, "POST", "/v2/models/tiny/infer", {
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 32, 32, 3], "data": [1.0, 2.0]}]})
    assert status == 400 and "declares shape [1, 32, 32, 3] (3072 elements)" in json.loads(body)["error"]
    status, _, body = raw_call(port, "POST", "/v2/models/tiny/infer", b'{"inputs": []}',
                               headers={"Inference-Header-Content-Length": "999"})
    assert status == 400 and "Inference-Header-Content-Length" in json.loads(body)["error"]
    header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": 10**9}}]}).encode()
    status, _, body = raw_call(port, "POST", "/v2/models/tiny/infer", header + b"\0\0\0\0",
                               headers={"Inference-Header-Content-Length": str(len(header))})
    assert status == 400 and "binary_data_size" in json.loads(body)["error"]
    status, _, _ = raw_call(port, "GET", "/v2/models/tiny/infer")
    assert status == 405
    status, _, body = raw_call(port, "GET", "/v2/nothing/here")
    assert status == 404 and "error" in json.loads(body)
    result = image_http.infer("tiny", [http_input("images", np.array(IMAGES[:1], dtype=np.object_), "BYTES", True)])
    assert result.as_numpy("classes").shape == (1, 5)


def test_requests_are_counted_under_their_own_method(image_http, tiny_server):
    before = tiny_server.metric_value("inference_requests_total", 'method="kserve-http:infer"')
    image_http.infer("tiny", [http_input("images", np.array(IMAGES[:1], dtype=np.object_), "BYTES", True)])
    assert tiny_server.metric_value("inference_requests_total", 'method="kserve-http:infer"') == before + 1


# -- any SavedModel ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_tf1_graph_over_http(any_http, binary):
    x = np.array([[1.0], [2.0], [5.0]], dtype=np.float32)
    result = any_http.infer("half_plus_two", [http_input("x", x, "FP32", binary)],
                            outputs=[triton_http.InferRequestedOutput("y", binary_data=binary)])
    np.testing.assert_allclose(result.as_numpy("y"), 0.5 * x + 2)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_every_datatype_of_a_tf2_module_over_http(any_http, binary):
    inputs = multi_io_example_inputs()
    datatypes = {"ids": "INT64", "tokens": "BYTES", "flags": "BOOL", "weights": "FP64", "small": "INT8",
                 "halfs": "FP16", "u16": "UINT16"}
    if not binary:
        inputs["tokens"] = np.array([[b"hello", b"world"], [b"a", "é".encode()]], dtype=np.object_)
    sent = [http_input(name, array, datatypes[name], binary) for name, array in inputs.items()]
    names = ["id_plus_one", "joined", "flag_not", "weight_sum", "small_times_two", "half_sq", "u16_plus"]
    result = any_http.infer("multi_io", sent,
                            outputs=[triton_http.InferRequestedOutput(n, binary_data=binary) for n in names])
    assert result.as_numpy("id_plus_one").tolist() == (inputs["ids"] + 1).tolist()
    joined = [value if isinstance(value, bytes) else value.encode() for value in result.as_numpy("joined").tolist()]
    assert joined == [b"hello world", "a é".encode()]  # JSON BYTES arrive as str
    assert result.as_numpy("flag_not").tolist() == [False, True]
    np.testing.assert_allclose(result.as_numpy("weight_sum"), inputs["weights"].sum(axis=1))
    assert result.as_numpy("small_times_two").tolist() == [-256, 254]
    np.testing.assert_allclose(result.as_numpy("half_sq").astype(np.float32), [2.25, 4.0])
    assert result.as_numpy("u16_plus").tolist() == [1, 65535]


def test_signature_parameter_and_plain_json(any_server):
    port = any_server.metrics_port
    body = {"parameters": {"signature_name": "bf16"},
            "inputs": [{"name": "x", "datatype": "BF16", "shape": [2], "data": [1.5, -3.0]}]}
    status, headers, answer = raw_call(port, "POST", "/v2/models/multi_io/infer", body)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    output = json.loads(answer)["outputs"][0]
    assert (output["name"], output["datatype"], output["shape"], output["data"]) == ("y", "BF16", [2], [3.0, -6.0])
    status, _, answer = raw_call(port, "POST", "/v2/models/half_plus_two/versions/1/infer",
                                 {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [[1], [3]]}]})
    assert status == 200 and json.loads(answer)["outputs"][0]["data"] == [2.5, 3.5]
    status, _, answer = raw_call(port, "POST", "/v2/models/half_plus_two/infer",
                                 {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [True]}]})
    assert status == 400 and "must be numbers" in json.loads(answer)["error"]


def _grpc_bytes(name: str, array: np.ndarray) -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput(name, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def test_bytes_as_base64_in_json(tiny_server):
    """MLServer's `content_type: base64`: binary BYTES (an encoded image) in a JSON body, and back."""
    import base64

    status, _, answer = raw_call(tiny_server.metrics_port, "POST", "/v2/models/tiny/infer", {
        "inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "parameters": {"content_type": "base64"},
                    "data": [base64.b64encode(IMAGES[0]).decode()]}],
        "outputs": [{"name": "classes", "parameters": {"content_type": "base64"}}]})
    assert status == 200, answer
    classes = json.loads(answer)["outputs"][0]["data"]
    assert len(classes) == 5 and all(base64.b64decode(label).startswith(b"class_") for label in classes)
    status, _, answer = raw_call(tiny_server.metrics_port, "POST", "/v2/models/tiny/infer", {
        "inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "parameters": {"content_type": "base64"},
                    "data": ["not base64!"]}]})
    assert status == 400 and "not base64" in json.loads(answer)["error"]


def test_tritons_timeout_parameter_is_the_deadline_within_the_rest_timeout():
    from service.adapters.kserve_api.http_api import _deadline
    from service.errors import InvalidInputError

    assert _deadline({}, 100.0, None) is None
    assert _deadline({}, 100.0, 160.0) == 160.0
    assert _deadline({"timeout": 2_500_000}, 100.0, None) == 102.5  # microseconds, as Triton counts them
    assert _deadline({"timeout": 2_500_000}, 100.0, 101.0) == 101.0  # --rest_api_timeout_in_ms still bounds it
    for bad in (-1, 1.5, "1s", True):
        with pytest.raises(InvalidInputError, match="'timeout' must be"):
            _deadline({"timeout": bad}, 100.0, None)
