"""Hostile-input corpus for the TF Serving REST API against the real server: each case gets its HTTP status and
an error naming the problem, and after each one the server is still healthy and answers good requests.

One server serves an image model (`tiny`, the image contract), a TF1 graph (`half_plus_two`: x float32 [-1, 1])
and a model of many dtypes (`multi_io`) from a model config file, with --rest_api_max_body_bytes=0 (REST bodies
bounded by --grpc_max_message_bytes) and that at 4 MB, so giant strings of a few MB fit and a larger body is
refused with 413.

Choices where TF Serving gives no answer to copy, or where this server deliberately differs:
- The Content-Type header is ignored, as TF Serving ignores it: a JSON body is parsed whatever it says.
- A body compressed with `Content-Encoding: gzip` is inflated (TF Serving's HTTP server does the same); the
  inflated size counts against the body limit, so a gzip bomb gets 413.
- A path under /v1/ that is no API route answers 404 {"error": "Malformed request: ..."} (this project's choice,
  pinned by test_rest_api.py; TF Serving answers 400 with the same message). A method other than GET/POST
  answers 405, but should say so in TF Serving's {"error": ...} body.
- Errors the HTTP layer raises before the API sees the request (a URL over 8 KB, broken chunked framing) are
  aiohttp's plain-text 400s.
- An unknown top-level key is ignored, as is an unknown key in a columnar "inputs" object (TF Serving reads
  only the signature's inputs from it); an unknown key in a row ("instances") object is refused, as TF Serving
  refuses it.

A case with `bug` set documents a wrong answer found here in code outside the codecs (described in the
reason): it is expected to fail (xfail, strict) until that code is fixed, and still must leave the server
healthy. A case with `malformed_http` is refused by the HTTP layer itself (aiohttp), before any handler runs.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from imaging import jpeg
from hostile_inputs import case_params, errors_logged_while, three_model_server
from server_process import ServerProcess

MAX_BODY = 4_000_000
MB = 1_000_000
PREDICT = "/v1/models/half_plus_two:predict"
MULTI = "/v1/models/multi_io:predict"
TINY = "/v1/models/tiny:predict"
REGRESS = "/v1/models/half_plus_two:regress"
CLASSIFY = "/v1/models/half_plus_two:classify"
TINY_CLASSIFY = "/v1/models/tiny:classify"
IMAGE = jpeg(5)
IMAGE_B64 = base64.b64encode(IMAGE).decode()


@pytest.fixture(scope="module")
def server(tiny_model_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hostile_rest")
    with three_model_server(root, tiny_model_base, f"--grpc_max_message_bytes={MAX_BODY}", "--rest_api_max_body_bytes=0") as running:
        yield running


@dataclass(frozen=True)
class Case:
    path: str
    body: bytes | Callable[[], bytes] | None  # sent as is (a callable builds a large one only when it runs)
    status: int
    fragments: tuple[str, ...] = ()  # each must be in the {"error": ...} message
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    answer: Any = None  # for a 200: the exact JSON answer, when given
    json_error: bool = True  # an error's body is {"error": "<message>"}, as every TF Serving REST error is
    bug: str = ""  # a wrong answer from code outside the codecs: expected to fail (xfail) until fixed
    malformed_http: bool = False  # refused by the HTTP layer (aiohttp) before any handler runs


def j(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def deep(depth: int, leaf: Any = 1.0) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


MULTI_ROW = {"ids": 1, "tokens": ["a", "b"], "flags": True, "weights": [1.0, 2.0, 3.0], "small": 1, "halfs": 1.5,
             "u16": 2}
MULTI_ANSWER = {"id_plus_one": 2, "joined": "a b", "flag_not": False, "weight_sum": 6.0, "small_times_two": 2,
                "half_sq": 2.25, "u16_plus": 3}


def multi_row(**changes: Any) -> bytes:
    return j({"instances": [{**MULTI_ROW, **changes}]})


def multi_columns(**changes: Any) -> bytes:
    return j({"inputs": {**{name: [value] for name, value in MULTI_ROW.items()}, **changes}})


def regress(*examples: Any, **extra: Any) -> bytes:
    return j({"signature_name": "regress_x_to_y", "examples": list(examples), **extra})


def images(*values: Any, signature: str = "predict_images") -> bytes:
    return j({"signature_name": signature, "instances": list(values)})


def pixels(value: Any) -> bytes:
    return j({"signature_name": "classify_pixels", "instances": [[[[value] * 3] * 32] * 32]})


PARSE = "JSON Parse error"
FLOAT_TYPE = "is not of expected type: float"
OK_ANSWER = {"predictions": [2.5]}
PLAIN = (("Content-Type", "application/json"),)
VERSION_BEYOND_INT64 = (
    "http_server._version turns /versions/<digits> into a Python int without bounds: 20 digits gives 404 for a "
    "version no ModelSpec can hold, 5000 digits raises ValueError (500 and a logged traceback); TF Serving "
    "answers 400 'Failed to convert version: ... to numeric.'"
)
SIGNATURE_NOT_STRING = (
    "http_server._signature treats a falsy non-string signature_name (null, false, 0) as the default signature; "
    "TF Serving refuses any non-string ('signature_name' key must be a string value)"
)

CASES: dict[str, Case] = {
    # -- malformed JSON ------------------------------------------------------------------------------------
    "json-truncated": Case(PREDICT, b'{"instances": [1.0', 400, (PARSE,)),
    "json-trailing-garbage": Case(PREDICT, b'{"instances": [1.0]} x', 400,
                                  ("The document root must not be followed by other values",)),
    "json-single-quotes": Case(PREDICT, b"{'instances': [1.0]}", 400, ("Missing a name for object member",)),
    "json-trailing-comma": Case(PREDICT, b'{"instances": [1.0,]}', 400, (PARSE,)),
    "json-unquoted-key": Case(PREDICT, b"{instances: [1.0]}", 400, (PARSE,)),
    "json-comment": Case(PREDICT, b'{"instances": [1.0] /* c */}', 400, (PARSE,)),
    "json-invalid-utf8": Case(PREDICT, b'{"instances": ["\xff"]}', 400, ("Invalid encoding in string",)),
    "json-bad-escape": Case(PREDICT, b'{"instances": ["\\x41"]}', 400, ("Invalid escape character in string",)),
    "json-bad-unicode-escape": Case(PREDICT, b'{"instances": ["\\u12G4"]}', 400,
                                    ("Incorrect hex digit after \\u escape",)),
    "json-control-character": Case(PREDICT, b'{"instances": ["a\x01b"]}', 400, (PARSE,)),
    "json-lowercase-nan": Case(PREDICT, b'{"instances": [nan]}', 400, ("Invalid value",)),
    "json-utf8-bom-accepted": Case(PREDICT, b'\xef\xbb\xbf{"instances": [1.0]}', 200, answer=OK_ANSWER),
    "empty-body": Case(PREDICT, b"", 400, ("The document is empty",)),
    "whitespace-body": Case(PREDICT, b" \n\t ", 400, ("The document is empty",)),
    "nul-bytes-body": Case(PREDICT, bytes(16), 400, (PARSE,)),
    # -- not an object --------------------------------------------------------------------------------------
    "body-array": Case(PREDICT, b"[1.0]", 400, ("must be a JSON object",)),
    "body-string": Case(PREDICT, b'"instances"', 400, ("must be a JSON object",)),
    "body-number": Case(PREDICT, b"42", 400, ("must be a JSON object",)),
    "body-null": Case(PREDICT, b"null", 400, ("must be a JSON object",)),
    "body-true": Case(PREDICT, b"true", 400, ("must be a JSON object",)),
    # -- deep nesting ---------------------------------------------------------------------------------------
    "nested-10k-lists": Case(PREDICT, b"[" * 10_000 + b"]" * 10_000, 400, ("nested too deeply",)),
    "nested-10k-objects": Case(PREDICT, b'{"instances": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001, 400,
                               ("nested too deeply",)),
    "nested-200k-unclosed": Case(PREDICT, lambda: b'{"instances": ' + b"[" * 200_000, 400, ("nested too deeply",)),
    "nested-40-levels-columnar": Case(PREDICT, j({"inputs": deep(40)}), 400, ("nested deeper than 32 levels",)),
    "nested-40-levels-rows": Case(PREDICT, j({"instances": [deep(40)]}), 400, ("nested deeper than 32 levels",)),
    # -- huge numbers ---------------------------------------------------------------------------------------
    "float-1e400": Case(PREDICT, b'{"instances": [1e400]}', 400, ("Number too big to be stored in double",)),
    "float-minus-1e400": Case(PREDICT, b'{"instances": [[-1e400]]}', 400, ("Number too big to be stored in double",)),
    "float-400-digit-integer": Case(PREDICT, b'{"instances": [1' + b"0" * 400 + b"]}", 400, ("Number too big",)),
    "float-5000-digit-integer": Case(PREDICT, b'{"instances": [' + b"9" * 5000 + b"]}", 400, ("Number too big",)),
    "float-1e400-in-a-string-is-a-string": Case(PREDICT, b'{"instances": ["1e400"]}', 400, (FLOAT_TYPE,)),
    "float32-overflow": Case(PREDICT, b'{"instances": [3.5e38]}', 400, ("to float without loss of precision",)),
    "float32-inexact-integer": Case(PREDICT, b'{"instances": [16777217]}', 400, ("without loss of precision",)),
    "float-nan-and-infinities-accepted": Case(PREDICT, b'{"instances": [NaN, Infinity, -Infinity]}', 200),
    # Beyond int64/uint64 the parser reads a double, as rapidjson does; it is then not an int64.
    "int64-2-pow-64": Case(MULTI, multi_row(ids=2**64), 400, ("1.8446744073709552e+19", "expected type: int64")),
    "int64-below-min": Case(MULTI, multi_row(ids=-(2**63) - 1), 400, ("expected type: int64",)),
    "int64-min-accepted": Case(MULTI, multi_row(ids=-(2**63)), 200,
                               answer={"predictions": [{**MULTI_ANSWER, "id_plus_one": -(2**63) + 1}]}),
    "int8-out-of-range": Case(MULTI, multi_row(small=128), 400, ("128", "expected type: int8")),
    "uint16-negative": Case(MULTI, multi_row(u16=-1), 400, ("expected type: uint16",)),
    "float16-overflow": Case(MULTI, multi_row(halfs=70000.0), 400, ("70000", "to half without loss of precision")),
    "bfloat16-overflow": Case(MULTI, j({"signature_name": "bf16", "instances": [1.5, 3.5e38]}), 400,
                              ("to bfloat16 without loss of precision",)),
    # -- wrong types ----------------------------------------------------------------------------------------
    "string-for-float": Case(PREDICT, j({"instances": ["1.0"]}), 400, ('"1.0" Type: String', FLOAT_TYPE)),
    "bool-for-float": Case(PREDICT, j({"instances": [True]}), 400, ("Type: True", FLOAT_TYPE)),
    "null-for-float": Case(PREDICT, j({"instances": [None]}), 400, ("Type: Null", FLOAT_TYPE)),
    "null-columnar": Case(PREDICT, j({"inputs": None}), 400, ("Type: Null", FLOAT_TYPE)),
    "object-in-list": Case(PREDICT, j({"instances": [[{"a": 1}]]}), 400, ("Type: Object", FLOAT_TYPE)),
    "b64-for-float": Case(PREDICT, j({"instances": [{"b64": "AAAA"}]}), 400, ("Type: Object", FLOAT_TYPE)),
    "int-for-bool": Case(MULTI, multi_row(flags=1), 400, ("expected type: bool",)),
    "number-for-string": Case(MULTI, multi_row(tokens=[1, 2]), 400, ("expected type: string",)),
    "unpaired-surrogate-string": Case(MULTI, multi_row(tokens=["\ud800", "b"]), 400,
                                      ("not valid UTF-8", "\\ud800")),
    "complex-signature": Case(MULTI, j({"signature_name": "complex_sig", "instances": [1.0]}), 400,
                              ("to type: complex64",)),
    # -- mixed row lengths ----------------------------------------------------------------------------------
    "ragged-rows": Case(PREDICT, j({"instances": [[1.0], [1.0, 2.0]]}), 400, ("Expecting tensor size: 1 but got: 2",)),
    "ragged-columns": Case(PREDICT, j({"inputs": [[1.0], [1.0, 2.0]]}), 400, ("Encountered list at unexpected size",)),
    "scalar-and-list-rows": Case(PREDICT, j({"instances": [1.0, [1.0]]}), 400, ("Failed to process element: 1",)),
    "empty-and-full-rows": Case(PREDICT, j({"instances": [[], [1.0]]}), 400, ("Expecting tensor size: 0 but got: 1",)),
    "empty-rows-accepted": Case(PREDICT, j({"instances": [[], []]}), 200, answer={"predictions": [[], []]}),
    "no-instances": Case(PREDICT, j({"instances": []}), 400, ("No values in 'instances' array",)),
    "columns-disagree-on-batch": Case(MULTI, multi_columns(flags=[True, False]), 400, ("must agree in dimension 0",)),
    "row-missing-an-input": Case(MULTI, j({"instances": [{k: v for k, v in MULTI_ROW.items() if k != "flags"}]}),
                                 400, ("missing: flags",)),
    "column-missing-an-input": Case(MULTI, j({"inputs": {k: [v] for k, v in MULTI_ROW.items() if k != "u16"}}),
                                    400, ("Missing named input: u16",)),
    "plain-list-for-many-inputs": Case(MULTI, j({"instances": [1, 2]}), 400,
                                       ("instances is a plain list, but expecting list of objects",)),
    # -- base64 ---------------------------------------------------------------------------------------------
    "b64-invalid-characters": Case(MULTI, multi_row(tokens=[{"b64": "%%%"}, "b"]), 400, ("Unable to base64 decode",)),
    "b64-not-a-string": Case(MULTI, multi_row(tokens=[{"b64": 5}, "b"]), 400, ("not formatted correctly for base64",)),
    "b64-extra-key": Case(MULTI, multi_row(tokens=[{"b64": "aGk=", "x": 1}, "b"]), 400,
                          ("not formatted correctly for base64",)),
    "b64-unpadded-accepted": Case(MULTI, multi_row(tokens=[{"b64": "aGk"}, "b"]), 200,
                                  answer={"predictions": [{**MULTI_ANSWER, "joined": "hi b"}]}),
    "b64-excess-padding": Case(MULTI, multi_row(tokens=[{"b64": "aGk=="}, "b"]), 400, ("Unable to base64 decode",)),
    "b64-padding-in-the-middle": Case(MULTI, multi_row(tokens=[{"b64": "aGk=aGk="}, "b"]), 400,
                                      ("Unable to base64 decode",)),
    "b64-line-breaks-accepted": Case(MULTI, multi_row(tokens=[{"b64": "aGVs\nbG8=\n"}, "b"]), 200,
                                     answer={"predictions": [{**MULTI_ANSWER, "joined": "hello b"}]}),
    "regress-b64-feature-with-line-breaks": Case("/v1/models/half_plus_two:regress", regress(
        {"x": 1.0, "note": {"b64": "aGVs\nbG8="}}), 200, answer={"results": [2.5]}),
    "image-b64-invalid": Case(TINY, images({"b64": "%%%"}), 400, ("element: 0 key: images", "base64")),
    "image-b64-unpadded": Case(TINY, images({"b64": IMAGE_B64.rstrip("=")}), 200),
    "image-b64-line-breaks": Case(TINY, images({"b64": base64.encodebytes(IMAGE).decode()}), 200),
    "image-not-an-image": Case(TINY, images("just text"), 400, ("images[0] is not a decodable image",)),
    "image-number": Case(TINY, images(5), 400, ("element: 0 key: images", "not of expected type: string")),
    "image-unpaired-surrogate": Case(TINY, b'{"signature_name": "predict_images", "instances": ["\\ud800"]}', 400,
                                     ("element: 0 key: images", "unpaired surrogate")),
    # -- giant strings and bodies ---------------------------------------------------------------------------
    "giant-string-for-float": Case(PREDICT, lambda: j({"instances": ["x" * (3 * MB)]}), 400, (FLOAT_TYPE,)),
    "giant-key": Case(PREDICT, lambda: j({"instances": [{"k" * (2 * MB): 1.0}]}), 400,
                      ("does not have named input: kkk",)),
    "giant-string-accepted": Case(MULTI, lambda: multi_row(tokens=["x" * MB, "y"]), 200),
    "giant-undecodable-image": Case(TINY, lambda: images({"b64": base64.b64encode(bytes(2 * MB)).decode()}), 400,
                                    ("images[0] is not a decodable image",)),
    "body-over-limit": Case(PREDICT, lambda: j({"instances": ["x" * (MAX_BODY + 100)]}), 413,
                            (f"Maximum request body size {MAX_BODY} exceeded",)),
    "body-over-limit-unknown-model": Case("/v1/models/nope:predict", lambda: bytes(MAX_BODY + 100), 404,
                                          ("Servable not found for request: Latest(nope)",)),
    "gzip-body": Case(PREDICT, gzip.compress(b'{"instances": [1.0]}'), 200,
                      headers=(*PLAIN, ("Content-Encoding", "gzip")), answer=OK_ANSWER),
    "gzip-bomb": Case(PREDICT, lambda: gzip.compress(b'{"instances": ["' + b"x" * (50 * MB) + b'"]}'), 413,
                      ("Maximum request body size",), headers=(*PLAIN, ("Content-Encoding", "gzip"))),
    "gzip-invalid": Case(PREDICT, b"this is not gzip", 400, headers=(*PLAIN, ("Content-Encoding", "gzip"))),
    "content-encoding-unsupported": Case(PREDICT, b'{"instances": [1.0]}', 400, json_error=False,
                                         headers=(*PLAIN, ("Content-Encoding", "br")), malformed_http=True),
    # -- unknown keys, both / neither formats -----------------------------------------------------------------
    "unknown-top-level-key": Case(PREDICT, j({"instances": [1.0], "foo": {"bar": 1}}), 200, answer=OK_ANSWER),
    "unknown-key-in-inputs-object": Case(MULTI, multi_columns(nope=[1]), 200),
    "unknown-key-in-row-object": Case(MULTI, multi_row(nope=1), 400, ("does not have named input: nope",)),
    "both-instances-and-inputs": Case(PREDICT, j({"instances": [1.0], "inputs": [1.0]}), 400,
                                      ("expecting only one of 'inputs' or 'instances'",)),
    "neither-instances-nor-inputs": Case(PREDICT, j({"examples": [1.0]}), 400,
                                         ("Missing 'inputs' or 'instances' key",)),
    "instances-not-a-list": Case(PREDICT, j({"instances": {"x": [1.0]}}), 400, ("'instances' to be an list/array",)),
    "instances-null": Case(PREDICT, j({"instances": None}), 400, ("'instances' to be an list/array",)),
    # -- content type ---------------------------------------------------------------------------------------
    "content-type-text-plain": Case(PREDICT, b'{"instances": [1.0]}', 200, headers=(("Content-Type", "text/plain"),),
                                    answer=OK_ANSWER),
    "content-type-form": Case(PREDICT, b'{"instances": [1.0]}', 200, answer=OK_ANSWER,
                              headers=(("Content-Type", "application/x-www-form-urlencoded"),)),
    "content-type-missing": Case(PREDICT, b'{"instances": [1.0]}', 200, headers=(), answer=OK_ANSWER),
    "content-type-utf16-charset-ignored": Case(PREDICT, b'{"instances": [1.0]}', 200, answer=OK_ANSWER,
                                               headers=(("Content-Type", "application/json; charset=utf-16"),)),
    # -- methods and paths ----------------------------------------------------------------------------------
    "get-on-predict": Case(PREDICT, None, 404, ("Malformed request: GET /v1/models/half_plus_two:predict",),
                           method="GET"),
    "put-on-predict": Case(PREDICT, b'{"instances": [1.0]}', 405, method="PUT"),
    "delete-on-model": Case("/v1/models/half_plus_two", None, 405, method="DELETE"),
    "post-on-status": Case("/v1/models/half_plus_two", b"{}", 404, ("Malformed request",)),
    "unknown-verb": Case("/v1/models/half_plus_two:explode", j({"instances": [1.0]}), 404, ("Malformed request",)),
    "uppercase-verb-accepted": Case("/v1/models/half_plus_two:PREDICT", j({"instances": [1.0]}), 200,
                                    answer=OK_ANSWER),
    "uppercase-path": Case("/V1/MODELS/half_plus_two:predict", j({"instances": [1.0]}), 200, answer=OK_ANSWER),
    "trailing-slash": Case(PREDICT + "/", j({"instances": [1.0]}), 404, ("Malformed request",)),
    "double-slash": Case("/v1/models//half_plus_two:predict", j({"instances": [1.0]}), 404, ("Malformed request",)),
    "empty-model-name": Case("/v1/models/:predict", j({"instances": [1.0]}), 404, ("Malformed request",)),
    "query-string-ignored": Case(PREDICT + "?signature_name=nope", j({"instances": [1.0]}), 200, answer=OK_ANSWER),
    "outside-the-apis": Case("/v3/models/half_plus_two/infer", b"{}", 404, json_error=False),
    "url-over-8k": Case("/v1/models/" + "m" * 20_000 + ":predict", b"{}", 400, json_error=False, malformed_http=True),
    "model-name-5k": Case("/v1/models/" + "m" * 5000 + ":predict", j({"instances": [1.0]}), 404,
                          ("Servable not found for request: Latest(mmm",)),
    "model-name-not-utf8": Case("/v1/models/%ED%A0%80:predict", j({"instances": [1.0]}), 404,
                                ("Servable not found",)),
    # -- versions and labels --------------------------------------------------------------------------------
    "unknown-model": Case("/v1/models/nope:predict", j({"instances": [1.0]}), 404,
                          ("Servable not found for request: Latest(nope)",)),
    "unknown-version": Case("/v1/models/half_plus_two/versions/7:predict", j({"instances": [1.0]}), 404,
                            ("Servable not found for request: Specific(half_plus_two, 7)",)),
    "unknown-label": Case("/v1/models/half_plus_two/labels/stable:predict", j({"instances": [1.0]}), 400,
                          ("Unrecognized servable version label: stable",)),
    "version-not-a-number": Case("/v1/models/half_plus_two/versions/abc:predict", j({"instances": [1.0]}), 404,
                                 ("Malformed request",)),
    "version-negative": Case("/v1/models/half_plus_two/versions/-1:predict", j({"instances": [1.0]}), 404,
                             ("Malformed request",)),
    "version-and-label": Case("/v1/models/half_plus_two/versions/1/labels/x:predict", j({"instances": [1.0]}), 404,
                              ("Malformed request",)),
    "version-20-digits": Case("/v1/models/half_plus_two/versions/99999999999999999999:predict",
                              j({"instances": [1.0]}), 400, ("Failed to convert version",)),
    "version-5000-digits": Case("/v1/models/half_plus_two/versions/" + "9" * 5000 + ":predict",
                                j({"instances": [1.0]}), 400, ("Failed to convert version",)),
    "status-version-5000-digits": Case("/v1/models/half_plus_two/versions/" + "9" * 5000, None, 400,
                                       ("Failed to convert version",), method="GET"),
    "version-arabic-indic-digit": Case("/v1/models/half_plus_two/versions/%D9%A1:predict", j({"instances": [1.0]}),
                                       404, ("Malformed request",)),
    # -- signature_name -------------------------------------------------------------------------------------
    "signature-name-number": Case(PREDICT, j({"signature_name": 5, "instances": [1.0]}), 400,
                                  ("'signature_name' must be a string",)),
    "signature-name-list": Case(PREDICT, j({"signature_name": ["serving_default"], "instances": [1.0]}), 400,
                                ("'signature_name' must be a string",)),
    "signature-name-null": Case(PREDICT, j({"signature_name": None, "instances": [1.0]}), 400,
                                ("'signature_name' must be a string",)),
    "signature-name-false": Case(PREDICT, j({"signature_name": False, "instances": [1.0]}), 400,
                                 ("'signature_name' must be a string",)),
    "signature-name-empty-is-default": Case(PREDICT, j({"signature_name": "", "instances": [1.0]}), 200,
                                            answer=OK_ANSWER),
    "unknown-signature": Case(PREDICT, j({"signature_name": "nope", "instances": [1.0]}), 400,
                              ('Serving signature key "nope" not found.',)),
    # -- classify / regress ---------------------------------------------------------------------------------
    "regress-ok": Case(REGRESS, regress({"x": 1.0}, {"x": 4.0}), 200, answer={"results": [2.5, 4.0]}),
    "regress-examples-not-a-list": Case(REGRESS, j({"signature_name": "regress_x_to_y", "examples": {"x": 1.0}}), 400,
                                        ("Expecting 'examples' value to be an list/array",)),
    "regress-no-examples": Case(REGRESS, j({"signature_name": "regress_x_to_y"}), 400,
                                ("key 'examples' is expected and was not found",)),
    "regress-empty-examples": Case(REGRESS, regress(), 400, ("'examples' value is an empty array",)),
    "regress-example-not-an-object": Case(REGRESS, regress(1.0), 400,
                                          ("Example must be JSON object but got JSON Number",)),
    "regress-context-not-an-object": Case(REGRESS, regress({"x": 1.0}, context=[1]), 400,
                                          ("Example must be JSON object but got JSON Array",)),
    "regress-feature-mixed-types": Case(REGRESS, regress({"x": [1.0, "a"]}), 400,
                                        ("Unexpected element type in feature: x expecting type: float",)),
    "regress-feature-null": Case(REGRESS, regress({"x": None}), 400,
                                 ("Feature: x has element with unexpected JSON type: Null",)),
    "regress-feature-nested-list": Case(REGRESS, regress({"x": [[1.0]]}), 400, ("unexpected JSON type: Array",)),
    "regress-feature-uint64": Case(REGRESS, regress({"x": 2**64 - 1}), 400, ("has uint64 element",)),
    "regress-feature-name-surrogate": Case(REGRESS, b'{"signature_name": "regress_x_to_y", "examples": '
                                           b'[{"\\ud800": 1.0}]}', 400, ("is not valid UTF-8", "\\ud800")),
    "regress-giant-feature-name": Case(REGRESS, lambda: regress({"f" * (2 * MB): None}), 400,
                                       ("has element with unexpected JSON type: Null",)),
    "regress-feature-of-wrong-kind": Case(REGRESS, regress({"x": "abc"}), 400, ("x",)),
    "regress-on-predict-signature": Case(REGRESS, j({"examples": [{"x": 1.0}]}), 400, (
        "No regression inputs found in SignatureDef 'serving_default'",)),
    "classify-on-predict-signature": Case(CLASSIFY, j({"examples": [{"x": 1.0}]}), 400,
                                          ("No classification inputs found in SignatureDef 'serving_default'",)),
    "tiny-classify-examples-not-a-list": Case(TINY_CLASSIFY, j({"examples": 5}), 400, ("Expecting 'examples' value to be an list/array",)),
    "tiny-classify-without-image": Case(TINY_CLASSIFY, j({"examples": [{"other": 1}]}), 400,
                                        ("examples[0] has no bytes feature 'image/encoded'",)),
    "tiny-classify-two-images": Case(TINY_CLASSIFY, j({"examples": [{"image/encoded": [{"b64": IMAGE_B64}] * 2}]}),
                                     400, ("must hold exactly one image, holds 2",)),
    "tiny-classify-context-not-an-object": Case(TINY_CLASSIFY, j({"examples": [{}], "context": 5}), 400,
                                                ("Example must be JSON object",)),
    # -- the image model's signatures -----------------------------------------------------------------------
    "pixels-ragged": Case(TINY, j({"signature_name": "classify_pixels", "instances": [[[[0.5] * 3] * 32] * 31 + [[]]]}),
                          400, ("pixels",)),
    "pixels-wrong-shape": Case(TINY, j({"signature_name": "classify_pixels", "instances": [[0.5] * 3]}), 400,
                               ("must have shape",)),
    "pixels-1e400": Case(TINY, pixels(1.0).replace(b"1.0", b"1e400", 1), 400, ("Number too big",)),
    "pixels-null": Case(TINY, pixels(None), 400, ("pixels",)),
    "pixels-strings": Case(TINY, pixels("0.5"), 400, ("pixels",)),
    "images-wrong-input-name": Case(TINY, images({"pictures": {"b64": IMAGE_B64}}), 400, ("pictures",)),
}


def send(port: int, case: Case) -> tuple[int, str, bytes]:
    body = case.body() if callable(case.body) else case.body
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest(case.method, case.path, skip_accept_encoding=True)
        for name, value in case.headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        try:
            connection.endheaders(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413, 404) and closed before reading all of a large body: read its answer
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


class ServerUnhealthy(Exception):
    """Not an AssertionError: an xfail for a known wrong answer must not hide a server the case broke."""


def assert_still_serving(port: int) -> None:
    try:
        status = send(port, Case("/v1/models/half_plus_two", None, 200, method="GET"))
        assert status[0] == 200 and json.loads(status[2])["model_version_status"][0]["state"] == "AVAILABLE", status
        answer = send(port, Case(PREDICT, b'{"instances": [1.0, 5.0]}', 200))
        assert (answer[0], json.loads(answer[2])) == (200, {"predictions": [2.5, 4.5]}), answer
        image = send(port, Case(TINY, images({"b64": IMAGE_B64}), 200))
        assert image[0] == 200 and len(json.loads(image[2])["predictions"][0]["scores"]) == 5, image
    except Exception as error:  # noqa: BLE001 - any failure here means the case hurt the server
        raise ServerUnhealthy(f"after the case the server does not answer good requests: {error!r}") from error


def check_answer(case: Case, status: int, content_type: str, raw: bytes) -> None:
    shown = raw[:500]
    assert status == case.status, (status, shown)
    if status == 200:
        body = json.loads(raw)
        if case.answer is not None:
            assert body == case.answer, shown
        return
    if case.json_error:
        assert content_type.startswith("application/json"), (content_type, shown)
        body = json.loads(raw)
        assert set(body) == {"error"} and isinstance(body["error"], str), shown
        for fragment in case.fragments:
            assert fragment in body["error"], (fragment, shown)
        # a body of megabytes is echoed cut short (a URL, at most 8 KB, may be echoed whole)
        assert len(body["error"]) < 10_000, f"the error echoes {len(body['error'])} characters of the request"


def test_corpus_covers_what_the_issue_asks():
    assert len(CASES) >= 60
    names = " ".join(CASES)
    for topic in ("json-", "body-", "nested-", "1e400", "int64", "for-float", "ragged", "b64", "giant", "over-limit",
                  "unknown-", "both-", "neither-", "content-type", "get-on-", "verb", "version", "label",
                  "regress-", "classify", "signature-name"):
        assert topic in names, topic


@pytest.mark.parametrize("name", case_params(CASES))
def test_hostile_rest_request_gets_its_status_and_the_server_keeps_serving(server, name):
    case = CASES[name]
    status, content_type, raw = send(server.metrics_port, case)
    assert_still_serving(server.metrics_port)
    check_answer(case, status, content_type, raw)


def _logged_errors(server: ServerProcess, cases: dict[str, Case]) -> list[str]:
    """Send the cases; the ERROR lines and tracebacks the server logged meanwhile."""
    def send_all() -> None:
        for case in cases.values():
            send(server.metrics_port, case)

    return errors_logged_while(server, send_all)


def test_client_errors_are_not_logged_as_server_errors(server):
    """Everything in the corpus is the client's doing: no ERROR lines or tracebacks for it in the server's log
    (the cases with known bugs aside)."""
    clean = {name: case for name, case in CASES.items() if not case.bug and not case.malformed_http}
    errors = _logged_errors(server, clean)
    assert not errors, errors[:3]


def test_malformed_http_is_not_logged_as_a_server_error(server):
    """aiohttp's own refusals (an 8 KB URL, an unknown encoding) are the client's mistake: no ERROR line."""
    noisy = {name: case for name, case in CASES.items() if case.malformed_http}
    assert noisy
    assert not _logged_errors(server, noisy)
