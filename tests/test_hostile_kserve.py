"""Hostile-input corpus for KServe v2 (inference.GRPCInferenceService) against the real server: each case gets
its gRPC status and a message naming the problem, and after each one the server is still live and ready and
answers good requests.

Requests are ModelInferRequest protos built by hand, so they can lie: raw_input_contents of the wrong size,
BYTES length prefixes that overrun, raw and typed contents together, shapes of 2**40 elements. One server serves
an image model (`tiny`), a TF1 graph (`half_plus_two`: x FP32 [-1, 1]) and a model of many datatypes
(`multi_io`, with `bf16` and `complex_sig` signatures) from a model config file, with a 4 MB message limit.

Choices:
- Unknown request and input parameters are ignored, as Triton ignores them: its parameters extension passes
  custom parameters through to the backend, and a backend reads only the ones it knows. Only
  `signature_name` is read here, and it must be a string naming a signature of the model.
- A model_version that is not a non-negative integer is INVALID_ARGUMENT (Triton: "failed to get model version
  from specified version string"), whatever its digits.
- Raw and typed contents for one input are refused with Triton's words ("contents field must not be specified
  when using raw_input_contents"), on every path.

A case with `bug` set documents a wrong answer found here in code outside the codecs (described in the
reason): it is expected to fail (xfail, strict) until that code is fixed, and still must leave the server
healthy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import ml_dtypes
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from imaging import jpeg
from hostile_inputs import case_params, errors_logged_while, three_model_server
from model_corpus import multi_io_example_inputs
from server_process import ServerProcess

MAX_MESSAGE = 4_000_000
MAX_ROWS = 8
OK, IA, NF, FP, RE = (
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
Tensor = service_pb2.ModelInferRequest.InferInputTensor
IMAGE = jpeg(5)


@pytest.fixture(scope="module")
def server(tiny_model_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hostile_kserve")
    flags = (f"--grpc_max_message_bytes={MAX_MESSAGE}", f"--max_images_per_request={MAX_ROWS}")
    with three_model_server(root, tiny_model_base, *flags) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with server.channel() as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


@dataclass(frozen=True)
class Case:
    request: Callable[[], Any]
    code: grpc.StatusCode
    fragments: tuple[str, ...] = ()  # each must be in the status details
    method: str = "ModelInfer"
    check: Callable[[Any], None] | None = None  # for OK: what the response must hold
    bug: str = ""  # a wrong answer from code outside the codecs: expected to fail (xfail) until fixed


# -- request builders ---------------------------------------------------------------------------------------


def tensor(name: str, datatype: str, shape: list[int], **contents: list[Any]) -> Tensor:
    built = Tensor(name=name, datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(built.contents, field).extend(values)
    return built


def f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def length_prefixed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(element)) + element for element in elements)


def infer(model: str = "half_plus_two", *inputs: Tensor, raw: list[bytes] | None = None, outputs: tuple[str, ...] = (),
          version: str = "", parameters: dict[str, Any] | None = None,
          tensor_parameters: dict[str, Any] | None = None) -> Callable[[], service_pb2.ModelInferRequest]:
    def build() -> service_pb2.ModelInferRequest:
        request = service_pb2.ModelInferRequest(model_name=model, model_version=version, id="hostile")
        request.inputs.extend(inputs)
        request.raw_input_contents.extend(raw or [])
        for name in outputs:
            request.outputs.add(name=name)
        for key, value in (parameters or {}).items():
            _set_parameter(request.parameters[key], value)
        for key, value in (tensor_parameters or {}).items():
            for each in request.inputs:
                _set_parameter(each.parameters[key], value)
        return request

    return build


def _set_parameter(parameter: service_pb2.InferParameter, value: Any) -> None:
    if value is None:
        parameter.SetInParent()  # present, with none of its oneof set
    elif isinstance(value, bool):
        parameter.bool_param = value
    elif isinstance(value, int):
        parameter.int64_param = value
    elif isinstance(value, float):
        parameter.double_param = value
    else:
        parameter.string_param = value


def x(*values: float, shape: list[int] | None = None, datatype: str = "FP32", name: str = "x") -> Tensor:
    """half_plus_two's input, typed."""
    return tensor(name, datatype, shape if shape is not None else [len(values), 1], fp32_contents=list(values))


def x_raw(shape: list[int], datatype: str = "FP32") -> Tensor:
    return tensor("x", datatype, shape)


def multi_io(drop: str = "", replace: dict[str, tuple[Tensor, bytes | None]] | None = None,
             **kwargs: Any) -> Callable[[], service_pb2.ModelInferRequest]:
    """multi_io's seven inputs (its example batch) in raw_input_contents (FP16 has no typed field, and raw is
    all or nothing); `replace` swaps one input's tensor and raw entry (None: no entry)."""
    inputs, raws = [], []
    for name, array in multi_io_example_inputs().items():
        if name == drop:
            continue
        if replace and name in replace:
            replaced, replaced_raw = replace[name]
            inputs.append(replaced)
            if replaced_raw is not None:
                raws.append(replaced_raw)
            continue
        datatype = {"int64": "INT64", "object": "BYTES", "bool": "BOOL", "float64": "FP64", "int8": "INT8",
                    "float16": "FP16", "uint16": "UINT16"}[array.dtype.name]
        inputs.append(Tensor(name=name, datatype=datatype, shape=list(array.shape)))
        raws.append(length_prefixed(*array.reshape(-1).tolist()) if array.dtype == object else array.tobytes())
    return infer("multi_io", *inputs, raw=raws, **kwargs)


def tokens(shape: list[int], raw: bytes) -> tuple[Tensor, bytes]:
    return Tensor(name="tokens", datatype="BYTES", shape=shape), raw


def images(*values: bytes, shape: list[int] | None = None, datatype: str = "BYTES", name: str = "images",
           raw: bool = True, **kwargs: Any) -> Callable[[], service_pb2.ModelInferRequest]:
    shape = shape if shape is not None else [len(values)]
    if raw:
        raws = [length_prefixed(*values)]
        return infer("tiny", Tensor(name=name, datatype=datatype, shape=shape), raw=raws, **kwargs)
    return infer("tiny", tensor(name, datatype, shape, bytes_contents=list(values)), **kwargs)


def pixel_tensor(shape: list[int], datatype: str = "FP32", count: int | None = None) -> Tensor:
    n = count if count is not None else int(np.prod(shape)) if all(0 <= d < 64 for d in shape) else 1
    return tensor("pixels", datatype, shape, fp32_contents=[0.5] * n)


def ready(name: str, version: str = "") -> Callable[[], service_pb2.ModelReadyRequest]:
    return lambda: service_pb2.ModelReadyRequest(name=name, version=version)


def metadata(name: str, version: str = "") -> Callable[[], service_pb2.ModelMetadataRequest]:
    return lambda: service_pb2.ModelMetadataRequest(name=name, version=version)


# -- response checks ----------------------------------------------------------------------------------------


def outputs_of(response: service_pb2.ModelInferResponse) -> dict[str, np.ndarray]:
    types = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4", "BOOL": "?",
             "UINT16": "<u2", "BF16": ml_dtypes.bfloat16}
    arrays = {}
    for output, raw in zip(response.outputs, response.raw_output_contents):
        if output.datatype == "BYTES":
            elements, offset = [], 0
            while offset < len(raw):
                (length,) = struct.unpack_from("<I", raw, offset)
                elements.append(raw[offset + 4 : offset + 4 + length])
                offset += 4 + length
            arrays[output.name] = np.array(elements, dtype=object).reshape(list(output.shape))
        else:
            arrays[output.name] = np.frombuffer(raw, dtype=types[output.datatype]).reshape(list(output.shape))
    return arrays


def y_is(*expected: float) -> Callable[[Any], None]:
    def check(response: Any) -> None:
        y = outputs_of(response)["y"].reshape(-1).astype(np.float64)
        np.testing.assert_array_equal(y, np.array(expected, np.float64))

    return check


def output_equals(name: str, expected: list[Any]) -> Callable[[Any], None]:
    def check(response: Any) -> None:
        assert outputs_of(response)[name].tolist() == expected

    return check


def outputs_are(*names: str) -> Callable[[Any], None]:
    def check(response: Any) -> None:
        assert sorted(output.name for output in response.outputs) == sorted(names)

    return check


def is_ready(expected: bool) -> Callable[[Any], None]:
    def check(response: Any) -> None:
        assert response.ready is expected

    return check


def multi_io_answer(response: Any) -> None:
    outputs = outputs_of(response)
    assert outputs["id_plus_one"].tolist() == [2, 2**40 + 1]
    assert outputs["joined"].tolist() == [b"hello world", b"a \xc3\xa9"]


# -- the corpus ---------------------------------------------------------------------------------------------

VERSION_TEXT = (
    "inference_service.parse_version accepts any str.isdigit() text and calls int() on it: '\u00b2' (a digit "
    "to isdigit, not to int) and 5000 digits raise ValueError, answered INTERNAL with a logged traceback; "
    "'\u0661' (Arabic-Indic one) is read as version 1; 20 digits (beyond int64) is NOT_FOUND. Triton parses "
    "versions as int64 and answers INVALID_ARGUMENT for anything else"
)
MODEL_READY_VERSION = (
    "ModelReady has no error mapping: the ValueError from parse_version (see VERSION_TEXT) escapes the handler "
    "and grpc answers UNKNOWN with the exception text; it should answer ready=false as it does for 'abc'"
)
PIXELS_SHAPE = (
    "inference_service._pixels checks the element count with np.prod(shape), which wraps around in int64 "
    "([2**32, 2**32] gives 0) and then reshape fails; more than 64 dimensions fail in reshape too: INTERNAL "
    "and a logged traceback instead of INVALID_ARGUMENT (v2.input_array's checked_shape does this right)"
)

CASES: dict[str, Case] = {
    "good-typed": Case(infer("half_plus_two", x(1.0, 4.0)), OK, check=y_is(2.5, 4.0)),
    "good-raw": Case(infer("half_plus_two", x_raw([2, 1]), raw=[f32(1.0, 4.0)]), OK, check=y_is(2.5, 4.0)),
    "good-every-datatype-raw": Case(multi_io(), OK, check=multi_io_answer),
    # -- datatypes ------------------------------------------------------------------------------------------
    "datatype-fp64-for-fp32": Case(infer("half_plus_two", tensor("x", "FP64", [1, 1], fp64_contents=[1.0])), IA,
                                   ("input 'x' is DT_DOUBLE", "takes DT_FLOAT")),
    "datatype-int32-for-fp32": Case(infer("half_plus_two", tensor("x", "INT32", [1, 1], int_contents=[1])), IA,
                                    ("DT_INT32",)),
    "datatype-bytes-for-fp32": Case(infer("half_plus_two", tensor("x", "BYTES", [1, 1], bytes_contents=[b"1.0"])), IA,
                                    ("DT_STRING",)),
    "datatype-float32-is-not-v2": Case(infer("half_plus_two", x(1.0, datatype="FLOAT32")), IA,
                                       ("datatype 'FLOAT32', which is not a KServe v2 datatype",)),
    "datatype-lowercase": Case(infer("half_plus_two", x(1.0, datatype="fp32")), IA, ("not a KServe v2 datatype",)),
    "datatype-empty": Case(infer("half_plus_two", x(1.0, datatype="")), IA, ("not a KServe v2 datatype",)),
    "datatype-values-in-wrong-field": Case(infer("half_plus_two", tensor("x", "FP32", [1, 1], fp64_contents=[1.0])),
                                           IA, ("belong in contents.fp32_contents, not contents.fp64_contents",)),
    "datatype-two-contents-fields": Case(infer("half_plus_two", tensor("x", "FP32", [1, 1], fp32_contents=[1.0],
                                                                       int_contents=[1])), IA,
                                         ("more than one contents field",)),
    # (an input is decoded before the signature's other inputs are looked for: one input is enough)
    "fp16-typed-has-no-field": Case(infer("multi_io", tensor("halfs", "FP16", [2], fp32_contents=[1, 2])), IA,
                                    ("FP16, which has no typed contents field",)),
    "bf16-typed-has-no-field": Case(infer("multi_io", tensor("x", "BF16", [1], fp32_contents=[1.5]),
                                          parameters={"signature_name": "bf16"}), IA,
                                    ("BF16, which has no typed contents field",)),
    "bf16-raw-accepted": Case(infer("multi_io", Tensor(name="x", datatype="BF16", shape=[2]),
                                    raw=[np.array([1.5, -2.0], ml_dtypes.bfloat16).tobytes()],
                                    parameters={"signature_name": "bf16"}), OK,
                              check=lambda r: np.testing.assert_array_equal(
                                  outputs_of(r)["y"].astype(np.float32), [3.0, -4.0])),
    "complex-signature-has-no-v2-type": Case(infer("multi_io", x(1.0, shape=[1]),
                                                   parameters={"signature_name": "complex_sig"}), IA,
                                             ("DT_COMPLEX64",)),
    "int8-typed-out-of-range": Case(infer("multi_io", tensor("small", "INT8", [2], int_contents=[1, 300])), IA,
                                    ("holds 300, out of range for INT8",)),
    "uint16-typed-out-of-range": Case(infer("multi_io", tensor("u16", "UINT16", [1], uint_contents=[70000])), IA,
                                      ("holds 70000, out of range for UINT16",)),
    "bool-raw-byte-2-is-true": Case(multi_io(replace={"flags": (Tensor(name="flags", datatype="BOOL", shape=[2]),
                                                                b"\x02\x00")}), OK,
                                    check=output_equals("flag_not", [False, True])),
    "fp32-nan-and-infinity-accepted": Case(infer("half_plus_two", x(float("nan"), float("inf"))), OK),
    # -- shapes and element counts --------------------------------------------------------------------------
    "typed-fewer-values-than-shape": Case(infer("half_plus_two", x(1.0, shape=[2, 1])), IA,
                                          ("declares shape [2, 1] (2 elements) but contents.fp32_contents holds 1",)),
    "typed-more-values-than-shape": Case(infer("half_plus_two", x(1.0, 2.0, shape=[1, 1])), IA, ("holds 2 values",)),
    "raw-shorter-than-shape": Case(infer("half_plus_two", x_raw([2, 1]), raw=[f32(1.0)]), IA,
                                   ("(2 elements, 8 bytes) but raw_input_contents holds 4 bytes",)),
    "raw-longer-than-shape": Case(infer("half_plus_two", x_raw([1, 1]), raw=[f32(1.0, 2.0)]), IA, ("holds 8 bytes",)),
    "raw-not-whole-items": Case(infer("half_plus_two", x_raw([1, 1]), raw=[b"\0" * 5]), IA, ("holds 5 bytes",)),
    "raw-empty-for-a-shape": Case(infer("half_plus_two", x_raw([1, 1]), raw=[b""]), IA, ("holds 0 bytes",)),
    "no-data-at-all": Case(infer("half_plus_two", x_raw([1, 1])), IA, ("carries no data",)),
    "zero-rows": Case(infer("half_plus_two", x_raw([0, 1])), IA, ("0 rows",)),
    "scalar-for-batched-input": Case(infer("half_plus_two", x(1.0, shape=[])), IA, ("is a scalar",)),
    "negative-dimension": Case(infer("half_plus_two", x(1.0, shape=[-1, 1])), IA, ("dimensions must be non-negative",)),
    "shape-of-2-pow-40-elements": Case(infer("half_plus_two", x_raw([2**20, 2**20]), raw=[f32(1.0)]), IA,
                                       ("1099511627776 elements", "exceeds the limit")),
    "dimension-beyond-int32": Case(infer("half_plus_two", x_raw([2**31, 1]), raw=[f32(1.0)]), IA,
                                   ("dimension 2147483648 exceeds 2147483647",)),
    "dimension-int64-max": Case(infer("half_plus_two", x(1.0, shape=[2**63 - 1, 1])), IA, ("exceeds",)),
    "zero-dimension-with-huge-one": Case(infer("half_plus_two", x_raw([0, 2**31 - 1]), raw=[b""]), IA, ("0 rows",)),
    "rank-70": Case(infer("half_plus_two", x(1.0, shape=[1] * 70)), IA, ("70 dimensions; at most 64",)),
    "rank-100000": Case(infer("half_plus_two", x_raw([1] * 100_000), raw=[f32(1.0)]), IA, ("100000 dimensions",)),
    "rows-over-the-limit": Case(infer("half_plus_two", x(*[1.0] * (MAX_ROWS + 1))), IA,
                                (f"at most {MAX_ROWS} per request",)),
    "shape-the-signature-refuses": Case(multi_io(replace={"weights": (Tensor(name="weights", datatype="FP64",
                                                                             shape=[2, 2]), bytes(32))}), IA,
                                        ("input 'weights' has shape [2, 2]", "takes [-1, 3]")),
    "batch-sizes-disagree": Case(multi_io(replace={"flags": (Tensor(name="flags", datatype="BOOL", shape=[3]),
                                                             b"\x01\x00\x01")}), IA, ("must agree in dimension 0",)),
    # -- raw and typed together, raw entry counts -----------------------------------------------------------
    "raw-and-typed-together": Case(infer("half_plus_two", x(1.0), raw=[f32(1.0)]), IA,
                                   ("contents field must not be specified when using raw_input_contents for 'x'",)),
    "raw-and-empty-contents": Case(infer("half_plus_two", x(shape=[1, 1]), raw=[f32(1.0)]), IA,
                                   ("contents field must not be specified",)),
    "more-raw-entries-than-inputs": Case(infer("half_plus_two", x_raw([1, 1]), raw=[f32(1.0), f32(2.0)]), IA,
                                         ("raw_input_contents holds 2 entries for 1 input(s)",)),
    "fewer-raw-entries-than-inputs": Case(multi_io(replace={"u16": (Tensor(name="u16", datatype="UINT16", shape=[2]),
                                                                    None)}), IA,
                                          ("raw_input_contents holds 6 entries for 7 input(s)",)),
    "raw-entries-without-inputs": Case(infer("half_plus_two", raw=[f32(1.0)]), IA,
                                       ("raw_input_contents holds 1 entries for 0 input(s)",)),
    # -- BYTES length prefixes that lie ---------------------------------------------------------------------
    "bytes-prefix-overruns": Case(multi_io(replace={"tokens": tokens([2, 2], struct.pack("<I", 1000) + b"abc")}), IA,
                                  ("cannot hold 4 BYTES elements",)),
    "bytes-prefix-overruns-its-element": Case(multi_io(replace={"tokens": tokens(
        [2, 2], length_prefixed(b"a", b"b", b"c") + struct.pack("<I", 1000) + b"xyz")}), IA,
        ("element 3 claims 1000 bytes, 3 left",)),
    "bytes-prefix-4-gib": Case(multi_io(replace={"tokens": tokens([2, 2], length_prefixed(b"a", b"b", b"c")
                                                                  + b"\xff\xff\xff\xff" + b"d")}), IA,
                               ("element 3 claims 4294967295 bytes",)),
    "bytes-trailing-bytes": Case(multi_io(replace={"tokens": tokens([2, 2], length_prefixed(b"a", b"b", b"c", b"d")
                                                                    + b"\0\0")}), IA,
                                 ("2 bytes left over after the 4 BYTES elements",)),
    "bytes-truncated-prefix": Case(multi_io(replace={"tokens": tokens([2, 2], length_prefixed(b"a", b"b", b"c")
                                                                      + b"\x01\x00")}), IA,
                                   ("truncated element length",)),
    "bytes-more-elements-than-shape": Case(multi_io(replace={"tokens": tokens([2, 2], length_prefixed(*[b"a"] * 5))}),
                                           IA, ("left over after the 4 BYTES elements",)),
    "bytes-huge-shape-small-raw": Case(multi_io(replace={"tokens": tokens([2**30, 2], length_prefixed(b"a"))}), IA,
                                       ("cannot hold 2147483648 BYTES elements",)),
    "bytes-empty-elements-accepted": Case(multi_io(replace={"tokens": tokens([2, 2], length_prefixed(*[b""] * 4))}),
                                          OK, check=output_equals("joined", [b" ", b" "])),
    "bytes-typed-count-mismatch": Case(infer("multi_io", tensor("tokens", "BYTES", [2, 2], bytes_contents=[b"a"])),
                                       IA, ("contents.bytes_contents holds 1 values",)),
    # -- inputs and outputs ---------------------------------------------------------------------------------
    "duplicated-input": Case(infer("half_plus_two", x(1.0), x(2.0)), IA, ("input 'x' is given twice",)),
    "missing-input": Case(multi_io(drop="flags"), IA, ("Missing but required: {flags}",)),
    "extra-input": Case(infer("half_plus_two", x(1.0), x(2.0, name="y")), IA,
                        ("input tensor alias not found in signature: y",)),
    "misnamed-input": Case(infer("half_plus_two", x(1.0, name="X")), IA, ("alias not found in signature: X",)),
    "empty-input-name": Case(infer("half_plus_two", x(1.0, name="")), IA, ("alias not found in signature: .",)),
    "no-inputs": Case(infer("half_plus_two"), IA, ("input size does not match signature: 0!=1",)),
    "unknown-requested-output": Case(infer("half_plus_two", x(1.0), outputs=("z",)), IA,
                                     ("output tensor alias not found in signature: z",)),
    "duplicated-requested-output": Case(infer("half_plus_two", x(1.0), outputs=("y", "y")), IA,
                                        ("duplicate output tensor alias: y",)),
    "requested-output-subset": Case(multi_io(outputs=("joined",)), OK, check=outputs_are("joined")),
    # -- models and versions --------------------------------------------------------------------------------
    "unknown-model": Case(infer("nope", x(1.0)), NF, ("Request for unknown model: 'nope' is not found",)),
    "empty-model-name": Case(infer("", x(1.0)), NF, ("Request for unknown model: '' is not found",)),
    "unknown-version": Case(infer("half_plus_two", x(1.0), version="7"), NF,
                            ("Request for unknown model: 'half_plus_two' version 7 is not found",)),
    "version-not-a-number": Case(infer("half_plus_two", x(1.0), version="latest"), IA,
                                 ("model_version must be a version number",)),
    "version-negative": Case(infer("half_plus_two", x(1.0), version="-1"), IA, ("model_version",)),
    "version-with-space": Case(infer("half_plus_two", x(1.0), version=" 1"), IA, ("model_version",)),
    "version-superscript-digit": Case(infer("half_plus_two", x(1.0), version="\u00b2"), IA, ("model_version",)),
    "version-arabic-indic-digit": Case(infer("half_plus_two", x(1.0), version="\u0661"), IA, ("model_version",)),
    "version-20-digits": Case(infer("half_plus_two", x(1.0), version="9" * 20), IA, ("model_version",)),
    "version-5000-digits": Case(infer("half_plus_two", x(1.0), version="9" * 5000), IA, ("model_version",)),
    "ready-unknown-model": Case(ready("nope"), OK, method="ModelReady", check=is_ready(False)),
    "ready-version-not-a-number": Case(ready("half_plus_two", "abc"), OK, method="ModelReady", check=is_ready(False)),
    "ready-version-superscript-digit": Case(ready("half_plus_two", "\u00b2"), OK, method="ModelReady",
                                            check=is_ready(False)),
    "metadata-version-superscript-digit": Case(metadata("half_plus_two", "\u00b2"), IA, ("model_version",),
                                               method="ModelMetadata"),
    "metadata-unknown-model": Case(metadata("nope"), NF, ("Request for unknown model: 'nope'",),
                                   method="ModelMetadata"),
    # -- parameters -----------------------------------------------------------------------------------------
    "signature-name-int": Case(infer("half_plus_two", x(1.0), parameters={"signature_name": 3}), IA,
                               ("parameter 'signature_name' must be a string",)),
    "signature-name-bool": Case(infer("half_plus_two", x(1.0), parameters={"signature_name": True}), IA,
                                ("must be a string",)),
    "signature-name-without-value": Case(infer("half_plus_two", x(1.0), parameters={"signature_name": None}), IA,
                                         ("must be a string",)),
    "signature-name-empty-is-default": Case(infer("half_plus_two", x(1.0), parameters={"signature_name": ""}), OK,
                                            check=y_is(2.5)),
    "unknown-signature": Case(infer("half_plus_two", x(1.0), parameters={"signature_name": "nope"}), FP,
                              ('Serving signature key "nope" not found.',)),
    "signature-of-another-method": Case(infer("half_plus_two", x(1.0), parameters={"signature_name": "regress_x_to_y"}),
                                        IA, ("alias not found in signature: x", "{inputs}")),
    "unknown-parameters-ignored": Case(infer("half_plus_two", x(1.0), parameters={
        "foo": True, "priority": 3, "timeout": 1.5, "sequence_id": "abc", "binary_data_output": True, "": "x",
        "triton_enable_empty_final_response": 7}), OK, check=y_is(2.5)),
    "unknown-input-parameters-ignored": Case(infer("half_plus_two", x(1.0), tensor_parameters={
        "binary_data_size": 4, "foo": "bar", "": None}), OK, check=y_is(2.5)),
    "image-model-signature-name-int": Case(images(IMAGE, parameters={"signature_name": 3}), IA, ("must be a string",)),
    # -- the image model ------------------------------------------------------------------------------------
    "images-good-raw": Case(images(IMAGE, jpeg(6)), OK, check=outputs_are("classes", "scores")),
    "images-good-typed": Case(images(IMAGE, raw=False), OK),
    "images-as-fp32": Case(infer("tiny", tensor("images", "FP32", [1], fp32_contents=[1.0])), IA,
                           ("input 'images' is DT_FLOAT", "takes DT_STRING")),
    "images-rank-2": Case(images(IMAGE, IMAGE, shape=[1, 2]), IA, ("must have shape [N] or [N, 1]",)),
    "images-count-mismatch": Case(images(IMAGE, shape=[2]), IA, ("images", "truncated element length")),
    "images-undecodable": Case(images(b"not an image"), IA, ("images[0] is not a decodable image",)),
    "images-empty-batch": Case(images(shape=[0]), IA, ("is empty",)),
    "images-over-the-limit": Case(images(*[IMAGE] * (MAX_ROWS + 1)), IA, (f"at most {MAX_ROWS}",)),
    "images-prefix-overruns": Case(infer("tiny", Tensor(name="images", datatype="BYTES", shape=[1]),
                                         raw=[struct.pack("<I", 10**6) + IMAGE[:100]]), IA, ("claims 1000000 bytes",)),
    "images-raw-and-typed": Case(infer("tiny", tensor("images", "BYTES", [1], bytes_contents=[IMAGE]),
                                       raw=[length_prefixed(b"junk")]), IA, ("contents field must not be specified",)),
    "images-and-pixels-together": Case(infer("tiny", tensor("images", "BYTES", [1], bytes_contents=[IMAGE]),
                                             pixel_tensor([1, 32, 32, 3])), IA, ("exactly one input",)),
    "image-model-unknown-input": Case(infer("tiny", tensor("pictures", "BYTES", [1], bytes_contents=[IMAGE])), IA,
                                      ("takes exactly one input", "got ['pictures']")),
    "image-model-unknown-output": Case(images(IMAGE, outputs=("logits",)), IA, ("output tensor alias not found in signature: logits",)),
    "image-model-raw-entries-mismatch": Case(infer("tiny", Tensor(name="images", datatype="BYTES", shape=[1]),
                                                   raw=[length_prefixed(IMAGE)] * 2), IA, ("2 entries for 1 input",)),
    "pixels-good": Case(infer("tiny", pixel_tensor([2, 32, 32, 3])), OK),
    "pixels-as-fp64": Case(infer("tiny", tensor("pixels", "FP64", [1, 32, 32, 3], fp64_contents=[0.5] * 3072)), IA,
                           ("is DT_DOUBLE", "takes DT_FLOAT")),
    "pixels-wrong-image-size": Case(infer("tiny", pixel_tensor([1, 16, 16, 3])), IA,
                                    ("must have shape [N, 32, 32, 3]",)),
    "pixels-raw-not-whole-floats": Case(infer("tiny", Tensor(name="pixels", datatype="FP32", shape=[1, 32, 32, 3]),
                                              raw=[bytes(3 * 4 * 1024 + 1)]), IA, ("raw_input_contents holds 12289 bytes",)),
    "pixels-negative-dimension": Case(infer("tiny", pixel_tensor([-1, 32, 32, 3], count=3072)), IA,
                                      ("shape [-1, 32, 32, 3]", "non-negative")),
    "pixels-shape-product-wraps": Case(infer("tiny", Tensor(name="pixels", datatype="FP32", shape=[2**32, 2**32])), IA,
                                       ("pixels",)),
    "pixels-rank-70": Case(infer("tiny", pixel_tensor([1] * 70, count=1)), IA, ("pixels",)),
    # -- size -----------------------------------------------------------------------------------------------
    "message-over-the-limit": Case(infer("half_plus_two", x_raw([MAX_MESSAGE // 4 + 1, 1]),
                                         raw=[bytes(MAX_MESSAGE + 4)]), RE, ("larger than max",)),
}


def call(stub: service_pb2_grpc.GRPCInferenceServiceStub, case: Case) -> Any:
    return getattr(stub, case.method)(case.request(), timeout=30)


class ServerUnhealthy(Exception):
    """Not an AssertionError: an xfail for a known wrong answer must not hide a server the case broke."""


GOOD = infer("half_plus_two", x(1.0, 5.0))
GOOD_IMAGE = images(IMAGE)


def assert_still_serving(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    try:
        assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10).live
        assert stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready
        y_is(2.5, 4.5)(stub.ModelInfer(GOOD(), timeout=30))
        assert outputs_of(stub.ModelInfer(GOOD_IMAGE(), timeout=30))["scores"].shape == (1, 5)
    except Exception as error:  # noqa: BLE001 - any failure here means the case hurt the server
        raise ServerUnhealthy(f"after the case the server does not answer good requests: {error!r}") from error


def test_corpus_covers_what_the_issue_asks():
    assert len(CASES) >= 60
    names = " ".join(CASES)
    for topic in ("datatype-", "bf16", "fp16", "shape", "raw-", "raw-and-typed", "bytes-prefix", "bytes-trailing",
                  "bytes-truncated", "duplicated-input", "missing-input", "extra-input", "requested-output",
                  "unknown-model", "version-", "signature-name-int", "unknown-signature", "unknown-parameters",
                  "rank-", "negative-dimension", "images-", "pixels-"):
        assert topic in names, topic


@pytest.mark.parametrize("name", case_params(CASES))
def test_hostile_kserve_request_gets_its_status_and_the_server_keeps_serving(stub, name):
    case = CASES[name]
    try:
        response, code, details = call(stub, case), OK, ""
    except grpc.RpcError as error:
        response, code, details = None, error.code(), error.details() or ""
    assert_still_serving(stub)
    assert code == case.code, (code, details[:500])
    if code is OK:
        if case.check is not None:
            case.check(response)
        return
    for fragment in case.fragments:
        assert fragment in details, (fragment, details[:500])
    assert len(details) < 10_000, f"the message echoes {len(details)} characters of the request"


def test_client_errors_are_not_logged_as_server_errors(server, stub):
    """Everything in the corpus is the client's doing: no ERROR lines or tracebacks for it in the server's log
    (the cases with known bugs aside)."""
    def send_all() -> None:
        for case in CASES.values():
            if not case.bug:
                try:
                    call(stub, case)
                except grpc.RpcError:
                    pass

    errors = errors_logged_while(server, send_all)
    assert not errors, errors[:3]
