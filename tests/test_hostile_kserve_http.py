"""Hostile-input corpus for KServe v2 over HTTP against the real server: each case gets the HTTP status Triton
gives the same fault and {"error": ...} naming the problem, and after each one the server is still healthy and
answers good requests over KServe HTTP.

The server is the one the REST and KServe gRPC corpora attack: an image model (`tiny`), a TF1 graph
(`half_plus_two`: x float32 [-1, 1]) and a model of many dtypes (`multi_io`), with bodies bounded at 4 MB.
"""

from __future__ import annotations

import http.client
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from hostile_inputs import case_params, errors_logged_while, three_model_server
from imaging import jpeg
from server_process import ServerProcess

MAX_BODY = 4_000_000
HALF = "/v2/models/half_plus_two/infer"
TINY = "/v2/models/tiny/infer"
MULTI = "/v2/models/multi_io/infer"
HEADER = "Inference-Header-Content-Length"
IMAGE = jpeg(6)


@pytest.fixture(scope="module")
def server(tiny_model_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hostile_kserve_http")
    with three_model_server(root, tiny_model_base, f"--grpc_max_message_bytes={MAX_BODY}",
                            "--rest_api_max_body_bytes=0") as running:
        yield running


@dataclass(frozen=True)
class Case:
    path: str
    body: bytes | Callable[[], bytes] | None
    status: int
    fragments: tuple[str, ...] = ()  # each must be in the {"error": ...} message
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    bug: str = ""


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


def x(data: Any = (1.0,), shape: Any = (1, 1), datatype: Any = "FP32", **tensor: Any) -> dict[str, Any]:
    """half_plus_two's input, overridable piece by piece."""
    return {"name": "x", "datatype": datatype, "shape": list(shape) if isinstance(shape, tuple) else shape,
            "data": list(data) if isinstance(data, tuple) else data, **tensor}


def infer(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return j({"inputs": list(inputs), **extra})


def binary(header: dict[str, Any], payload: bytes, declared: str | None = None) -> Case:
    """A binary-extension request to half_plus_two with the given JSON header and bytes after it."""
    head = j(header)
    return Case(HALF, head + payload, 400, headers=((HEADER, declared if declared is not None else str(len(head))),))


def x_binary(size: int, datatype: str = "FP32", shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": "x", "datatype": datatype, "shape": shape or [1, 1], "parameters": {"binary_data_size": size}}


def with_fragments(case: Case, *fragments: str, status: int | None = None) -> Case:
    return Case(case.path, case.body, status or case.status, fragments, case.method, case.headers, case.bug)


def images(*values: bytes, datatype: str = "BYTES", shape: list[int] | None = None) -> Case:
    chunk = b"".join(struct.pack("<I", len(value)) + value for value in values)
    head = j({"inputs": [{"name": "images", "datatype": datatype, "shape": shape or [len(values)],
                          "parameters": {"binary_data_size": len(chunk)}}]})
    return Case(TINY, head + chunk, 200, headers=((HEADER, str(len(head))),))


CASES: dict[str, Case] = {
    # -- malformed JSON -------------------------------------------------------------------------------------
    "json-truncated": Case(HALF, b'{"inputs": [', 400, ("not valid JSON",)),
    "json-trailing-garbage": Case(HALF, infer(x()) + b" x", 400, ("not valid JSON",)),
    "json-single-quotes": Case(HALF, b"{'inputs': []}", 400, ("not valid JSON",)),
    "json-nan-token": Case(HALF, b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [NaN]}]}',
                           400, ("not valid JSON",)),
    "json-invalid-utf8": Case(HALF, b'{"inputs": [], "id": "\xff"}', 400, ("not valid JSON",)),
    "json-empty-body": Case(HALF, b"", 400, ("not valid JSON",)),
    "json-array-body": Case(HALF, b"[1, 2]", 400, ("must be a JSON object",)),
    "json-number-body": Case(HALF, b"5", 400, ("must be a JSON object",)),
    # -- request structure ----------------------------------------------------------------------------------
    "inputs-missing": Case(HALF, j({}), 400, ("'inputs' must be a list",)),
    "inputs-not-a-list": Case(HALF, j({"inputs": {"x": 1}}), 400, ("'inputs' must be a list",)),
    "input-not-an-object": Case(HALF, j({"inputs": [5]}), 400, ("'inputs' must be a list of objects",)),
    "input-without-name": Case(HALF, infer({"datatype": "FP32", "shape": [1, 1], "data": [1.0]}), 400, ("'name'",)),
    "input-name-not-a-string": Case(HALF, infer(x(name=5)), 400, ("'name'",)),
    "input-given-twice": Case(HALF, infer(x(), x()), 400, ("'x' is given twice",)),
    "input-unknown-name": Case(HALF, infer(x(name="z")), 400, ("input tensor alias not found in signature: z",)),
    "input-missing-for-signature": Case(HALF, infer(), 400, ("Missing but required: {x}",)),
    "input-without-data": Case(HALF, infer({"name": "x", "datatype": "FP32", "shape": [1, 1]}), 400,
                               ("neither 'data' nor a 'binary_data_size'",)),
    "outputs-not-a-list": Case(HALF, infer(x(), outputs={"y": 1}), 400, ("'outputs' must be a list",)),
    "output-without-name": Case(HALF, infer(x(), outputs=[{}]), 400, ("'outputs' must be a list of objects",)),
    "output-unknown-name": Case(HALF, infer(x(), outputs=[{"name": "z"}]), 400,
                                ("output tensor alias not found in signature: z",)),
    "output-parameters-not-an-object": Case(HALF, infer(x(), outputs=[{"name": "y", "parameters": 3}]), 400,
                                            ("parameters must be an object",)),
    "output-binary-data-not-a-bool": Case(HALF, infer(x(), outputs=[{"name": "y", "parameters": {"binary_data": 1}}]),
                                          400, ("'binary_data' must be true or false",)),
    "id-not-a-string": Case(HALF, infer(x(), id=7), 400, ("'id' must be a string",)),
    "parameters-not-an-object": Case(HALF, infer(x(), parameters=[1]), 400, ("'parameters' must be an object",)),
    "binary-data-output-not-a-bool": Case(HALF, infer(x(), parameters={"binary_data_output": "yes"}), 400,
                                          ("'binary_data_output' must be true or false",)),
    "signature-name-not-a-string": Case(HALF, infer(x(), parameters={"signature_name": 5}), 400,
                                        ("'signature_name' must be a string",)),
    "signature-name-unknown": Case(HALF, infer(x(), parameters={"signature_name": "bogus"}), 400,
                                   ('Serving signature key "bogus" not found.',)),
    "timeout-negative": Case(HALF, infer(x(), parameters={"timeout": -1}), 400, ("'timeout' must be",)),
    "timeout-not-a-number": Case(HALF, infer(x(), parameters={"timeout": "1s"}), 400, ("'timeout' must be",)),
    # -- datatypes -------------------------------------------------------------------------------------------
    "datatype-unknown": Case(HALF, infer(x(datatype="FLOAT")), 400, ("'FLOAT', which is not a KServe v2 datatype",)),
    "datatype-not-a-string": Case(HALF, infer(x(datatype=3)), 400, ("not a KServe v2 datatype",)),
    "datatype-other-than-signature": Case(HALF, infer(x(datatype="INT32", data=(1,))), 400,
                                          ("input 'x' is DT_INT32; signature 'serving_default' takes DT_FLOAT",)),
    "fp32-with-a-string": Case(HALF, infer(x(data=("1.5",))), 400, ("FP32: its data must be numbers",)),
    "fp32-with-a-bool": Case(HALF, infer(x(data=(True,))), 400, ("FP32: its data must be numbers",)),
    "fp32-with-null": Case(HALF, infer(x(data=(None,))), 400, ("FP32: its data must be numbers",)),
    "fp32-beyond-range": Case(HALF, infer(x(data=(1e39,))), 400, ("out of the range of FP32",)),
    "int64-with-a-decimal": Case(MULTI, infer({"name": "ids", "datatype": "INT64", "shape": [1], "data": [1.5]}), 400,
                                 ("INT64: its data must be integers",)),
    "int8-out-of-range": Case(MULTI, infer({"name": "small", "datatype": "INT8", "shape": [1], "data": [300]}), 400,
                              ("out of the range of INT8",)),
    "uint16-negative": Case(MULTI, infer({"name": "u16", "datatype": "UINT16", "shape": [1], "data": [-1]}), 400,
                            ("out of the range of UINT16",)),
    "bool-with-a-number": Case(MULTI, infer({"name": "flags", "datatype": "BOOL", "shape": [1], "data": [1]}), 400,
                               ("BOOL: its data must be true or false",)),
    "bytes-with-a-number": Case(MULTI, infer({"name": "tokens", "datatype": "BYTES", "shape": [1, 1], "data": [5]}),
                                400, ("BYTES: its data must be strings",)),
    "bytes-with-a-lone-surrogate": Case(MULTI, b'{"inputs": [{"name": "tokens", "datatype": "BYTES", "shape": [1, 1],'
                                               b' "data": ["\\ud800"]}]}', 400, ("not valid",)),
    # -- shapes and sizes ------------------------------------------------------------------------------------
    "shape-missing": Case(HALF, infer({"name": "x", "datatype": "FP32", "data": [1.0]}), 400, ("'shape'",)),
    "shape-not-a-list": Case(HALF, infer(x(shape=1)), 400, ("'shape'",)),
    "shape-with-a-string": Case(HALF, infer(x(shape=[1, "1"])), 400, ("'shape'",)),
    "shape-with-a-float": Case(HALF, infer(x(shape=[1.0, 1])), 400, ("'shape'",)),
    "shape-negative": Case(HALF, infer(x(shape=[-1, 1])), 400, ("must be non-negative",)),
    "shape-huge-dims": Case(HALF, infer(x(shape=[2**62, 2**62])), 400, ("exceeds",)),
    "shape-too-many-elements": Case(HALF, infer(x(shape=[2**31 - 1, 2**31 - 1])), 400, ("exceeds the limit",)),
    "shape-too-many-dimensions": Case(HALF, infer(x(shape=[1] * 100)), 400, ("dimensions",)),
    "data-fewer-than-shape": Case(HALF, infer(x(data=(1.0,), shape=(3, 1))), 400,
                                  ("declares shape [3, 1] (3 elements) but its data holds 1 values",)),
    "data-more-than-shape": Case(HALF, infer(x(data=(1.0, 2.0), shape=(1, 1))), 400, ("holds 2 values",)),
    # Nested data is read row-major whatever its nesting, as Triton reads it; only the count must agree.
    "data-ragged-with-more-values": Case(HALF, infer(x(data=[[1.0], [2.0, 3.0]], shape=(2, 1))), 400,
                                         ("holds 3 values",)),
    "data-mixes-lists-and-values": Case(HALF, infer(x(data=[[1.0], 2.0], shape=(2, 1))), 400, ("mixes lists",)),
    "data-nested-too-deep": Case(HALF, infer(x(data=json.loads("[" * 70 + "1.0" + "]" * 70))), 400,
                                 ("nested deeper",)),
    "rank-other-than-signature": Case(MULTI, infer({"name": "x", "datatype": "BF16", "shape": [1, 1], "data": [1.0]},
                                            parameters={"signature_name": "bf16"}), 400,
                                      ("input 'x' has shape [1, 1]; signature 'bf16' takes [-1]",)),
    # -- binary tensor data: lies in the header --------------------------------------------------------------
    "header-length-not-a-number": binary({"inputs": [x_binary(4)]}, struct.pack("<f", 1.0), declared="four"),
    "header-length-negative": binary({"inputs": [x_binary(4)]}, struct.pack("<f", 1.0), declared="-1"),
    "header-length-beyond-body": binary({"inputs": [x_binary(4)]}, struct.pack("<f", 1.0), declared="5000"),
    "header-length-huge": binary({"inputs": [x_binary(4)]}, struct.pack("<f", 1.0), declared=str(10**15)),
    "header-length-zero": binary({"inputs": [x_binary(4)]}, struct.pack("<f", 1.0), declared="0"),
    "header-length-cuts-the-json": binary({"inputs": [x_binary(4)]}, struct.pack("<f", 1.0), declared="10"),
    "binary-size-beyond-body": binary({"inputs": [x_binary(400)]}, struct.pack("<f", 1.0)),
    "binary-size-huge": binary({"inputs": [x_binary(10**12)]}, struct.pack("<f", 1.0)),
    "binary-size-short-of-body": binary({"inputs": [x_binary(4)]}, struct.pack("<ff", 1.0, 2.0)),
    "binary-size-negative": binary({"inputs": [x_binary(-4)]}, struct.pack("<f", 1.0)),
    "binary-size-a-string": binary({"inputs": [{**x_binary(4), "parameters": {"binary_data_size": "4"}}]},
                                   struct.pack("<f", 1.0)),
    "binary-size-and-data": binary({"inputs": [{**x_binary(4), "data": [1.0]}]}, struct.pack("<f", 1.0)),
    "binary-bytes-for-the-shape": binary({"inputs": [x_binary(6)]}, b"\0" * 6),
    "binary-bytes-fewer-than-shape": binary({"inputs": [x_binary(4, shape=[3, 1])]}, struct.pack("<f", 1.0)),
    "binary-with-huge-shape": binary({"inputs": [x_binary(4, shape=[2**31 - 1, 2**31 - 1])]}, struct.pack("<f", 1.0)),
    "binary-bytes-length-prefix-lies": Case(MULTI, (lambda head: head + struct.pack("<I", 10**6) + b"ab")(
        j({"inputs": [{"name": "tokens", "datatype": "BYTES", "shape": [1, 1],
                       "parameters": {"binary_data_size": 6}}]})), 400),
    "binary-without-header-length": Case(HALF, j({"inputs": [x_binary(4)]}) + struct.pack("<f", 1.0), 400,
                                         ("not valid JSON",)),
    "body-over-the-limit": Case(HALF, lambda: infer(x(data=[1.0] * 1_000_000, shape=(1_000_000, 1))), 413),
    # -- models and versions ---------------------------------------------------------------------------------
    "unknown-model": Case("/v2/models/nope/infer", infer(x()), 404, ("Request for unknown model: 'nope' is not found",)),
    "unknown-version": Case("/v2/models/half_plus_two/versions/7/infer", infer(x()), 404,
                            ("Request for unknown model: 'half_plus_two' version 7 is not found",)),
    "version-not-a-number": Case("/v2/models/half_plus_two/versions/abc/infer", infer(x()), 400,
                                 ("model_version must be a version number",)),
    "version-beyond-int64": Case("/v2/models/half_plus_two/versions/" + "9" * 30 + "/infer", infer(x()), 400,
                                 ("model_version must be a version number",)),
    "version-unicode-digits": Case("/v2/models/half_plus_two/versions/%C2%B2/infer", infer(x()), 400,
                                   ("model_version must be a version number",)),
    "metadata-unknown-model": Case("/v2/models/nope", None, 404, ("Request for unknown model",), method="GET"),
    "metadata-unknown-version": Case("/v2/models/tiny/versions/9", None, 404, ("version 9",), method="GET"),
    # -- the image model -------------------------------------------------------------------------------------
    "image-undecodable": with_fragments(images(b"not an image"), "images[0] is not a decodable image", status=400),
    "image-as-fp32": Case(TINY, infer({"name": "images", "datatype": "FP32", "shape": [1], "data": [1.0]}), 400,
                          ("input 'images' is DT_FLOAT",)),
    "image-rank-2": with_fragments(images(IMAGE, IMAGE, shape=[1, 2]), "[N] or [N, 1]", status=400),
    "image-unknown-input": Case(TINY, infer({"name": "pictures", "datatype": "BYTES", "shape": [1], "data": ["a"]}),
                                400, ("takes exactly one input", "got ['pictures']")),
    "image-pixels-wrong-size": Case(TINY, infer({"name": "pixels", "datatype": "FP32", "shape": [1, 2, 2, 3],
                                                 "data": [0.5] * 12}), 400, ("must have shape [N, 32, 32, 3]",)),
    "image-unknown-output": with_fragments(Case(TINY, images(IMAGE).body, 400, headers=()), status=400),
    # -- methods and paths -----------------------------------------------------------------------------------
    "get-on-infer": Case(HALF, None, 405, ("Method Not Allowed",), method="GET"),
    "post-on-live": Case("/v2/health/live", b"{}", 405, ("Method Not Allowed",)),
    "unknown-path": Case("/v2/nothing/here", None, 404, ("Not Found",), method="GET"),
    "model-path-with-extra-segments": Case("/v2/models/half_plus_two/versions/1/infer/more", infer(x()), 404),
}

# The unknown-output case needs the header of a real binary request with an output the model lacks.
_head = j({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                       "parameters": {"binary_data_size": 4 + len(IMAGE)}}], "outputs": [{"name": "logits"}]})
CASES["image-unknown-output"] = Case(TINY, _head + struct.pack("<I", len(IMAGE)) + IMAGE, 400,
                                     ("output tensor alias not found in signature: logits",),
                                     headers=((HEADER, str(len(_head))),))


def send(port: int, case: Case) -> tuple[int, str, bytes]:
    body = case.body() if callable(case.body) else case.body
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest(case.method, case.path, skip_accept_encoding=True)
        connection.putheader("Content-Type", "application/json")
        for name, value in case.headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        try:
            connection.endheaders(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) and closed before reading all of a large body: read its answer
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def assert_still_serving(port: int) -> None:
    answer = send(port, Case(HALF, infer(x(data=(1.0, 5.0), shape=(2, 1))), 200))
    assert answer[0] == 200 and json.loads(answer[2])["outputs"][0]["data"] == [2.5, 4.5], answer
    image = send(port, images(IMAGE))
    assert image[0] == 200, image
    assert send(port, Case("/v2/health/ready", None, 200, method="GET"))[0] == 200


def test_corpus_covers_what_the_issue_asks():
    assert len(CASES) >= 60
    names = " ".join(CASES)
    for topic in ("json-", "datatype-", "shape-", "data-", "header-length-", "binary-size-", "huge",
                  "unknown-model", "unknown-version", "version-"):
        assert topic in names, topic


@pytest.mark.parametrize("name", case_params(CASES))
def test_hostile_kserve_http_request_gets_its_status_and_the_server_keeps_serving(server, name):
    case = CASES[name]
    status, content_type, raw = send(server.metrics_port, case)
    assert_still_serving(server.metrics_port)
    shown = raw[:400]
    assert status == case.status, (status, shown)
    if status == 413:
        return  # aiohttp's refusal, before any handler runs
    assert content_type.startswith("application/json"), (content_type, shown)
    body = json.loads(raw)
    assert set(body) == {"error"} and isinstance(body["error"], str), shown
    for fragment in case.fragments:
        assert fragment in body["error"], (fragment, shown)
    assert len(body["error"]) < 10_000


def test_client_errors_are_not_logged_as_server_errors(server):
    """Everything in the corpus is the client's doing: no ERROR lines or tracebacks for it in the log."""
    def send_all() -> None:
        for case in CASES.values():
            send(server.metrics_port, case)

    errors = errors_logged_while(server, send_all)
    assert not errors, errors[:3]
