"""Fuzz the REST JSON codec and the KServe v2 tensor decoder for N inputs; report inputs run and crashes.

    .venv/bin/python scripts/fuzz_codecs.py --inputs 100000 [--seed 0]

What the server does with a request before any model runs, for three targets (inputs are shared round-robin):

  json   service.tensors.json_tensors: `loads` on a body's bytes, then `parse_predict_request` against two of a
         few signatures (every element type, one input and many, none) and `examples_from_json`; the arrays an
         accepted body gives go back out through `predict_response` and `dumps`, as a model's outputs would.
  v2     service.tensors.v2.input_array on InferInputTensor messages, with or without a raw_input_contents entry
         (and `deserialize_bytes` on BYTES raw entries, as the image models' path reads them).
  proto  service.tensors.tensor_proto.to_array, whose shape checks the v2 decoder shares.

Inputs are seeded and come from valid bodies / tensors, mutated: types flipped, values nested, lists truncated,
keys added or dropped, huge and non-finite numbers, random unicode (unpaired surrogates included), shapes that
lie, raw byte counts that are off, BYTES length prefixes that overrun or leave bytes over; then, for a share of
them, their serialized bytes mutated (truncated, spliced, number tokens replaced, nesting added).

A crash is an exception other than InvalidInputError (which the server answers with 400 / INVALID_ARGUMENT), a
refusal whose message cannot be written as UTF-8, or an accepted input whose arrays break the codec's contract
(names, element type, shape). Each is printed with its input (repr, cut short); the exit status is 1 if any.
tests/test_fuzz_codecs.py runs a short budget of it in `make test`.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import struct
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
from google.protobuf.message import DecodeError  # noqa: E402
from tensorflow.core.example import example_pb2  # noqa: E402
from tensorflow.core.framework import tensor_pb2, types_pb2  # noqa: E402
from tritonclient.grpc import service_pb2  # noqa: E402

from service.errors import InvalidInputError  # noqa: E402
from service.adapters.rest_api import json_answers, json_body, json_examples, json_tensors  # noqa: E402
from service.adapters.kserve_api import v2_tensors as v2  # noqa: E402
from service.tensors import tensor_proto  # noqa: E402
from service.tensors.dtypes import BY_NUMPY, BY_TF_ENUM, BY_V2_NAME, DType  # noqa: E402
from service.tensors.spec import PREDICT_METHOD, SignatureSpec, TensorSpec  # noqa: E402

SHOW = 600  # characters of an input's repr printed with its crash
PRINTED_CRASHES = 20


def _dtype(name: str) -> DType:
    return BY_NUMPY[np.dtype(ml_dtypes.bfloat16 if name == "bfloat16" else name)]


def _signature(name: str, **inputs: tuple[str, tuple[int, ...] | None]) -> SignatureSpec:
    return SignatureSpec(
        name, PREDICT_METHOD, {key: TensorSpec(key, _dtype(dtype), shape) for key, (dtype, shape) in inputs.items()}, {}
    )


SIGNATURES = [
    _signature("half_plus_two", x=("float32", (-1, 1))),
    _signature("strings", images=("object", (-1,))),
    _signature(  # tests/model_corpus.py's multi_io
        "multi_io", ids=("int64", (-1,)), tokens=("object", (-1, 2)), flags=("bool", (-1,)),
        weights=("float64", (-1, 3)), small=("int8", (-1,)), halfs=("float16", (-1,)), u16=("uint16", (-1,)),
    ),
    _signature(
        "odd_types", b=("bfloat16", None), u=("uint64", (-1,)), i=("int32", (-1,)), u8=("uint8", (-1,)),
        u32=("uint32", None), i16=("int16", (-1, 2)),
    ),
    _signature("complex", c=("complex64", (-1,))),  # no JSON value converts to it: always refused
    _signature("no_inputs"),
]
SIGNATURE_WEIGHTS = [4, 4, 4, 4, 1, 1]

# ------------------------------------------------------------------------------------------ hostile values

_HUGE_INTS = [0, 1, -1, 127, 128, -129, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1,
              2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30, 10**308, 10**309, -(10**400)]
_ODD_FLOATS = [0.0, -0.0, 0.5, 1e-45, 5e-324, 65504.0, 65520.0, 3.4028235e38, 3.5e38, 1.7976931348623157e308,
               math.nan, math.inf, -math.inf, 16777217.0, 1e16]
_NUMBER_TOKENS = [b"1e400", b"-1e400", b"1e-400", b"1" * 400, b"9" * 5000, b"1" * 250 + b"e99", b"01", b"1.",
                  b".5", b"-", b"+1", b"0x10", b"1e", b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"inf",
                  b"1E+308", b"123456789012345678901234567890", b"-0", b"1e0400"]
_WEIRD_TEXT = ["", "\ud800", "\udfff", "a\ud83d", "\ufeff", "\x00", "é", "😀", "\u202e", "b64", "instances",
               "inputs", "x" * 3000, "\\", '"', "\u0660"]


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return rng.choice(_WEIRD_TEXT)
    out = []
    for _ in range(rng.randint(0, 12)):
        low, high = rng.choices(_TEXT_RANGES, _TEXT_WEIGHTS)[0]
        out.append(chr(rng.randint(low, high)))
    return "".join(out)


# printable ASCII, control characters, Latin, unpaired surrogates (rare: they make the whole body invalid), CJK,
# emoji (astral: a surrogate pair in JSON's \u escapes)
_TEXT_RANGES = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x2FF), (0xD800, 0xDFFF), (0x4E00, 0x4E50), (0x1F600, 0x1F64F)]
_TEXT_WEIGHTS = [60, 5, 15, 1, 10, 9]


def random_b64(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.75:
        text = base64.b64encode(rng.randbytes(rng.randint(0, 24))).decode()
        if rng.random() < 0.3:
            text = text.rstrip("=")  # TF Serving (absl) takes unpadded base64
        return {"b64": text}
    if roll < 0.9:
        return {"b64": rng.choice(["%%%", "a", "ab=", "a=b=", "====", "QUJD\n", "QU JD", "é", "\ud800", "A" * 5])}
    return rng.choice([{"b64": 5}, {"b64": None}, {"b64": ["QUJD"]}, {"b64": "QUJD", "x": 1}, {"B64": "QUJD"}, {}])


def hostile_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.22:
        return rng.choice(_HUGE_INTS)
    if roll < 0.38:
        return rng.choice(_ODD_FLOATS) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
    if roll < 0.5:
        return random_text(rng)
    if roll < 0.58:
        return rng.choice([None, True, False])
    if roll < 0.68:
        return random_b64(rng)
    if roll < 0.78 and depth < 4:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if roll < 0.86 and depth < 4:
        return {random_text(rng): hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if roll < 0.93:
        value: Any = rng.choice([1.0, "s", True, None, []])
        for _ in range(rng.randint(1, 40)):  # deep nesting around a scalar
            value = [value]
        return value
    return rng.choice([[], {}, [[]], [[], [1.0]], [[1.0], []], [1, [2]], [[1], 2]])


# ------------------------------------------------------------------------------------------ JSON bodies


def element(rng: random.Random, dtype: DType) -> Any:
    kind = dtype.numpy.kind
    if dtype.is_string:
        return random_b64(rng) if rng.random() < 0.3 else random_text(rng)
    if kind == "b":
        return rng.random() < 0.5
    if kind in "iu":
        info = np.iinfo(dtype.numpy)
        return rng.choice([int(info.min), int(info.max), 0, rng.randint(max(int(info.min), -1000), 1000)])
    if kind == "c":
        return rng.uniform(-2, 2)
    return rng.choice([rng.uniform(-100, 100), float(rng.randint(-50, 50)), rng.randint(-50, 50)])


def tensor_value(rng: random.Random, dtype: DType, shape: list[int]) -> Any:
    if not shape:
        return element(rng, dtype)
    return [tensor_value(rng, dtype, shape[1:]) for _ in range(shape[0])]


def valid_body(rng: random.Random, spec: SignatureSpec) -> dict[str, Any]:
    """A body the signature takes (before mutation): row or columnar format, any inner shape."""
    rows = rng.randint(1, 3)
    inner = {name: [rng.randint(1, 3) for _ in range(rng.randint(0, 2))] for name in spec.inputs}
    if not spec.inputs or rng.random() < 0.5:
        columns = {name: tensor_value(rng, s.dtype, [rows, *inner[name]]) for name, s in spec.inputs.items()}
        if len(columns) == 1 and rng.random() < 0.5:
            return {"inputs": next(iter(columns.values()))}
        return {"inputs": columns}
    if len(spec.inputs) == 1 and rng.random() < 0.5:
        ((name, s),) = spec.inputs.items()
        return {"instances": [tensor_value(rng, s.dtype, inner[name]) for _ in range(rows)]}
    return {"instances": [{name: tensor_value(rng, s.dtype, inner[name]) for name, s in spec.inputs.items()}
                          for _ in range(rows)]}


def valid_examples(rng: random.Random) -> dict[str, Any]:
    def example() -> dict[str, Any]:
        features: dict[str, Any] = {}
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(["int", "float", "bytes", "b64", "bool"])
            make: Callable[[], Any] = {
                "int": lambda: rng.randint(-(2**40), 2**40), "float": lambda: rng.uniform(-10, 10),
                "bytes": lambda: random_text(rng), "b64": lambda: random_b64(rng), "bool": lambda: rng.random() < 0.5,
            }[kind]
            features[rng.choice(["x", "image/encoded", random_text(rng)])] = (
                make() if rng.random() < 0.5 else [make() for _ in range(rng.randint(0, 3))]
            )
        return features

    body: dict[str, Any] = {"examples": [example() for _ in range(rng.randint(1, 3))]}
    if rng.random() < 0.3:
        body["context"] = example()
    if rng.random() < 0.3:
        body["signature_name"] = rng.choice(["regress_x_to_y", "", 5, None])
    return body


def mutate_tree(rng: random.Random, tree: Any, depth: int = 0) -> Any:
    """The tree with one random change somewhere inside it."""
    descend = depth < 40 and rng.random() < 0.7
    if isinstance(tree, list) and tree and descend:
        index = rng.randrange(len(tree))
        return tree[:index] + [mutate_tree(rng, tree[index], depth + 1)] + tree[index + 1 :]
    if isinstance(tree, dict) and tree and descend:
        key = rng.choice(list(tree))
        return {**tree, key: mutate_tree(rng, tree[key], depth + 1)}
    roll = rng.random()
    if isinstance(tree, list) and roll < 0.35:
        action = rng.choice(["truncate", "duplicate", "append", "wrap", "drop"])
        if action == "truncate":
            return tree[: rng.randint(0, len(tree))]
        if action == "duplicate" and tree:
            return tree + [tree[rng.randrange(len(tree))]]
        if action == "append":
            return tree + [hostile_value(rng)]
        if action == "wrap":
            return [tree]
        return [item for item in tree if rng.random() < 0.5]
    if isinstance(tree, dict) and roll < 0.35:
        action = rng.choice(["drop", "add", "rename"])
        keys = list(tree)
        if action == "drop" and keys:
            return {key: value for key, value in tree.items() if key != rng.choice(keys)}
        if action == "rename" and keys:
            old = rng.choice(keys)
            new = rng.choice(["instances", "inputs", "examples", "context", random_text(rng)])
            return {(new if key == old else key): value for key, value in tree.items()}
        return {**tree, rng.choice(["instances", "inputs", "signature_name", "context", "b64", random_text(rng)]):
                hostile_value(rng)}
    return hostile_value(rng, depth=min(depth, 3))


def serialize(rng: random.Random, tree: Any) -> bytes:
    text = json.dumps(tree, allow_nan=True, ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")  # an unpaired surrogate becomes bytes that are not UTF-8


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        position = rng.randint(0, len(data))
        action = rng.random()
        if action < 0.2:
            del data[position:]
        elif action < 0.4:
            digits = [i for i in range(len(data)) if 48 <= data[i] <= 57]
            if digits:
                start = end = rng.choice(digits)
                while start > 0 and data[start - 1] in b"0123456789.eE+-":
                    start -= 1
                while end < len(data) and data[end] in b"0123456789.eE+-":
                    end += 1
                data[start:end] = rng.choice(_NUMBER_TOKENS)
        elif action < 0.55:
            data[position:position] = rng.choice([b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"null",
                                                  b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"[" * 2000])
        elif action < 0.7:
            del data[position : position + rng.randint(1, 8)]
        elif action < 0.85 and data:
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif action < 0.93:
            data[:0] = rng.choice([b"\xef\xbb\xbf", b" \n\t", b"[", b"\xff\xfe"])
        else:
            data = bytearray(bytes(data).decode("utf-8", "replace").encode(rng.choice(["utf-16", "utf-32"])))
    return bytes(data)


def random_json_body(rng: random.Random) -> tuple[bytes, SignatureSpec]:
    """A body's bytes and the signature it was made for (a classify/regress body's: any)."""
    spec = rng.choices(SIGNATURES, SIGNATURE_WEIGHTS)[0]
    tree: Any = valid_examples(rng) if rng.random() < 0.2 else valid_body(rng, spec)
    for _ in range(rng.choice([0, 0, 0, 1, 1, 1, 1, 2, 2, 3])):
        tree = mutate_tree(rng, tree)
    if rng.random() < 0.03:
        tree = hostile_value(rng)  # not an object at all
    data = serialize(rng, tree)
    if rng.random() < 0.2:
        data = mutate_bytes(rng, data)
    return data, spec


# ------------------------------------------------------------------------------------------ v2 tensors

_CONTENTS_FIELDS = ["bool_contents", "int_contents", "int64_contents", "uint_contents", "uint64_contents",
                    "fp32_contents", "fp64_contents", "bytes_contents"]
_FIELD_OF = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
             "FP64": "fp64_contents", "BYTES": "bytes_contents", "FP16": None, "BF16": None}
_BAD_DATATYPES = ["", "FLOAT32", "fp32", "STRING", "INT128", "BYTES ", "DT_FLOAT", "\u0660", "COMPLEX64"]
_BIG_DIMS = [2**31 - 1, 2**31, 2**40, 2**62, 2**63 - 1, -1, -(2**63)]


def _shape(rng: random.Random) -> list[int]:
    roll = rng.random()
    if roll < 0.03:
        return [1] * rng.randint(65, 80)  # more dimensions than numpy has
    shape = [rng.choice([0, 1, 1, 2, 3, 4]) for _ in range(rng.randint(0, 4))]
    if roll < 0.2 and shape:
        shape[rng.randrange(len(shape))] = rng.choice(_BIG_DIMS)
    return shape


def _field_values(rng: random.Random, name: str, count: int) -> list[Any]:
    make: Callable[[], Any] = {
        "bool_contents": lambda: rng.random() < 0.5,
        "int_contents": lambda: rng.choice([0, 1, -1, 127, 128, -129, 255, 256, 32767, 65535, 65536, 2**31 - 1,
                                            -(2**31)]),
        "int64_contents": lambda: rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randint(-1000, 1000)]),
        "uint_contents": lambda: rng.choice([0, 1, 255, 256, 65535, 65536, 2**32 - 1]),
        "uint64_contents": lambda: rng.choice([0, 1, 2**64 - 1, 2**63]),
        "fp32_contents": lambda: rng.choice([0.5, -1.0, math.nan, math.inf, -math.inf, 3.4e38, 1e-45]),
        "fp64_contents": lambda: rng.choice([0.5, -1.0, math.nan, math.inf, 1.7976931348623157e308, 5e-324]),
        "bytes_contents": lambda: rng.randbytes(rng.randint(0, 6)),
    }[name]
    return [make() for _ in range(count)]


def _raw_for(rng: random.Random, datatype: str, count: int) -> bytes:
    dtype = BY_V2_NAME.get(datatype)
    if dtype is None:
        return rng.randbytes(rng.randint(0, 16))
    if dtype.is_string:
        elements = [rng.randbytes(rng.randint(0, 5)) for _ in range(min(count, 64))]
        raw = bytearray(v2.serialize_bytes(elements))
        lie = rng.random()
        if lie < 0.15 and raw:  # a length prefix that overruns (or underruns) the bytes
            at = 0
            struct.pack_into("<I", raw, at, rng.choice([2**32 - 1, len(raw), len(raw) + 1, 0, 7]))
        elif lie < 0.25:
            raw += rng.randbytes(rng.randint(1, 5))  # trailing bytes
        elif lie < 0.35 and raw:
            del raw[rng.randint(0, len(raw) - 1):]  # truncated, possibly mid-prefix
        return bytes(raw)
    size = count * dtype.numpy.itemsize
    if size > 4096:
        size = rng.randint(0, 64)
    roll = rng.random()
    if roll < 0.2:
        size += rng.choice([-1, 1, -dtype.numpy.itemsize, dtype.numpy.itemsize, 3])
    return rng.randbytes(max(size, 0))


def random_v2_input(rng: random.Random) -> tuple[service_pb2.ModelInferRequest.InferInputTensor, bytes | None]:
    datatype = rng.choice(list(_FIELD_OF)) if rng.random() < 0.9 else rng.choice(_BAD_DATATYPES)
    shape = _shape(rng)
    count = math.prod(shape) if all(0 <= d <= 4096 for d in shape) and len(shape) <= 64 else rng.randint(0, 4)
    name = random_text(rng)[:20].encode("utf-8", "ignore").decode() or "x"  # protobuf strings are UTF-8
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=datatype)
    tensor.shape.extend(shape)
    raw: bytes | None = None
    if rng.random() < 0.5:
        raw = _raw_for(rng, datatype, count)
        if rng.random() < 0.1:
            tensor.contents.SetInParent()  # contents present (empty) alongside raw
        elif rng.random() < 0.1:
            tensor.contents.fp32_contents.append(1.0)  # raw and typed together
    else:
        fields = [_FIELD_OF.get(datatype) or rng.choice(_CONTENTS_FIELDS)]
        if rng.random() < 0.2:
            fields = [rng.choice(_CONTENTS_FIELDS)]  # the wrong field for the datatype
        if rng.random() < 0.1:
            fields.append(rng.choice(_CONTENTS_FIELDS))  # two fields at once
        for name in fields:
            n = min(count, 512) + (rng.choice([-1, 1, 0, 0, 0]) if rng.random() < 0.3 else 0)
            try:
                getattr(tensor.contents, name).extend(_field_values(rng, name, max(n, 0)))
            except (ValueError, TypeError, OverflowError):
                pass  # a value the field's wire type cannot hold: protobuf refuses it client-side
    if rng.random() < 0.15:  # the message's own bytes mutated, then decoded as the server would
        data = bytearray(tensor.SerializeToString())
        for _ in range(rng.randint(1, 3)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        mutated = service_pb2.ModelInferRequest.InferInputTensor()
        try:
            mutated.ParseFromString(bytes(data))
            tensor = mutated
        except DecodeError:
            pass
    return tensor, raw


# ------------------------------------------------------------------------------------------ TensorProtos

_TF_TYPES = [t for t in BY_TF_ENUM] + [types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, 9999, 0]
_PROTO_FIELDS = ["float_val", "double_val", "int_val", "int64_val", "string_val", "bool_val", "half_val",
                 "uint32_val", "uint64_val", "scomplex_val", "dcomplex_val"]


def random_tensor_proto(rng: random.Random) -> tensor_pb2.TensorProto:
    dtype = rng.choice(_TF_TYPES)
    tensor = tensor_pb2.TensorProto(dtype=dtype)
    shape = _shape(rng)
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_shape.unknown_rank = rng.random() < 0.03
    count = math.prod(shape) if all(0 <= d <= 4096 for d in shape) and len(shape) <= 64 else rng.randint(0, 4)
    known = BY_TF_ENUM.get(dtype)
    if rng.random() < 0.4:
        itemsize = known.numpy.itemsize if known is not None and not known.is_string else 4
        size = min(count * itemsize, 4096) + (rng.choice([-1, 1, 0, 0]) if rng.random() < 0.3 else 0)
        tensor.tensor_content = rng.randbytes(max(size, 0))
    else:
        name = known.proto_field if known is not None and rng.random() < 0.8 else rng.choice(_PROTO_FIELDS)
        n = rng.choice([0, 1, min(count, 512), min(count, 512) + 1, max(min(count, 512) - 1, 0)])
        if name in ("scomplex_val", "dcomplex_val"):
            n *= rng.choice([1, 2, 2])
        values: list[Any]
        if name == "string_val":
            values = [rng.randbytes(rng.randint(0, 5)) for _ in range(n)]
        elif name == "bool_val":
            values = [rng.random() < 0.5 for _ in range(n)]
        elif name in ("float_val", "double_val", "scomplex_val", "dcomplex_val"):
            values = [rng.choice([0.5, math.nan, math.inf, -1e30]) for _ in range(n)]
        elif name in ("int_val", "half_val"):
            values = [rng.choice([0, 1, -1, 255, 256, 65535, 65536, -129, 2**31 - 1, -(2**31)]) for _ in range(n)]
        elif name == "int64_val":
            values = [rng.choice([0, 2**63 - 1, -(2**63)]) for _ in range(n)]
        else:
            values = [rng.choice([0, 1, 2**32 - 1]) for _ in range(n)]
        getattr(tensor, name).extend(values)
    return tensor


# ------------------------------------------------------------------------------------------ checks


class ContractError(AssertionError):
    """An accepted input whose result is not what the codec promises."""


def check_refusal(error: InvalidInputError) -> None:
    message = str(error)
    if not message:
        raise ContractError("a refusal without a message")
    message.encode("utf-8")  # UnicodeEncodeError: gRPC details, logs and JSON writers could not take it


def check(condition: bool, what: str) -> None:
    if not condition:
        raise ContractError(what)


def check_array(array: Any, dtype: DType, what: str) -> None:
    check(isinstance(array, np.ndarray), f"{what} is not an ndarray: {type(array).__name__}")
    check(array.dtype == dtype.numpy, f"{what} has dtype {array.dtype}, expected {dtype.numpy}")
    if dtype.is_string:
        check(all(type(item) is bytes for item in array.reshape(-1).tolist()), f"{what} holds a non-bytes element")


def json_target(rng: random.Random, data: bytes, made_for: SignatureSpec) -> str:
    try:
        body = json_body.loads(data)
    except InvalidInputError as error:
        check_refusal(error)
        return "refused"
    outcomes = []
    for spec in {id(s): s for s in (made_for, rng.choice(SIGNATURES))}.values():
        try:
            arrays, row_format = json_tensors.parse_predict_request(body, spec)
        except InvalidInputError as error:
            check_refusal(error)
            outcomes.append("refused")
            continue
        check(set(arrays) == set(spec.inputs), f"inputs {sorted(arrays)} for signature inputs {sorted(spec.inputs)}")
        for name, array in arrays.items():
            check_array(array, spec.inputs[name].dtype, f"input '{name}'")
        try:  # the same arrays as a model's outputs, written back as TF Serving writes them
            written = json_answers.dumps(json_answers.predict_response(arrays, row_format))
            check(isinstance(json.loads(written), dict), "predict_response did not write an object")
        except InvalidInputError as error:
            check_refusal(error)
        outcomes.append("accepted")
    try:
        examples = json_examples.examples_from_json(body)
    except InvalidInputError as error:
        check_refusal(error)
    else:
        check(bool(examples), "no examples accepted")
        for serialized in examples:
            example_pb2.Example.FromString(serialized)
        outcomes.append("accepted")
    return "accepted" if "accepted" in outcomes else "refused"


def v2_target(tensor: service_pb2.ModelInferRequest.InferInputTensor, raw: bytes | None) -> str:
    outcome = "refused"
    try:
        array = v2.input_array(tensor, raw)
    except InvalidInputError as error:
        check_refusal(error)
    else:
        dtype = BY_V2_NAME[tensor.datatype]
        check_array(array, dtype, "input")
        check(array.shape == tuple(tensor.shape), f"shape {array.shape} for declared {list(tensor.shape)}")
        outcome = "accepted"
    if raw is not None and tensor.datatype == "BYTES":
        try:
            elements = v2.deserialize_bytes(raw, "input 'images'")
        except InvalidInputError as error:
            check_refusal(error)
        else:
            check(v2.serialize_bytes(elements) == raw, "BYTES elements do not serialize back to their raw bytes")
    return outcome


def proto_target(tensor: tensor_pb2.TensorProto) -> str:
    try:
        array = tensor_proto.to_array(tensor, "x")
    except InvalidInputError as error:
        check_refusal(error)
        return "refused"
    check_array(array, BY_TF_ENUM[tensor.dtype], "input 'x'")
    check(array.shape == tuple(d.size for d in tensor.tensor_shape.dim), f"shape {array.shape}")
    return "accepted"


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Crash:
    target: str
    input: str
    error: str


@dataclass
class Result:
    inputs: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)  # (target, outcome) -> count
    crashes: list[Crash] = field(default_factory=list)


def fuzz(inputs: int = 100_000, seed: int = 0, *, out: Any = None) -> Result:
    """Run `inputs` inputs, round-robin over the targets (json gets half); crashes are printed to `out`
    (default: standard output)."""
    out = sys.stdout if out is None else out
    rng = random.Random(seed)
    result = Result()
    started = time.perf_counter()
    for number in range(inputs):
        target = ("json", "v2", "json", "proto")[number % 4]
        subject: Any = (random_json_body, random_v2_input, random_json_body, random_tensor_proto)[number % 4](rng)
        try:
            if target == "json":
                outcome = json_target(rng, *subject)
            elif target == "v2":
                outcome = v2_target(*subject)
            else:
                outcome = proto_target(subject)
        except Exception:  # noqa: BLE001 - anything escaping is what this looks for
            outcome = "CRASH"
            crash = Crash(target, _printable(_shown(subject)), _printable(traceback.format_exc(limit=-4)))
            result.crashes.append(crash)
            if len(result.crashes) <= PRINTED_CRASHES:
                print(f"CRASH #{len(result.crashes)} ({target}, input {number}) on {crash.input}\n{crash.error}",
                      file=out)
        result.outcomes[target, outcome] += 1
        result.inputs += 1
    result.seconds = time.perf_counter() - started
    return result


def _shown(subject: Any) -> str:
    if isinstance(subject, tuple) and isinstance(subject[0], bytes):
        data, spec = subject
        text = f"{data!r} (made for signature '{spec.name}')"
    elif isinstance(subject, tuple):
        tensor, raw = subject
        text = f"InferInputTensor({_one_line(tensor)}), raw={raw!r}"
    elif hasattr(subject, "ListFields"):
        text = f"{type(subject).__name__}({_one_line(subject)})"
    else:
        text = repr(subject)
    return text if len(text) <= SHOW else text[: SHOW - 3] + "..."


def _printable(text: str) -> str:
    """Text any stream can write: an unpaired surrogate (the inputs hold some) as \\udXXX."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


def summary(result: Result) -> str:
    lines = [f"inputs run: {result.inputs} in {result.seconds:.1f} s; crashes: {len(result.crashes)}"]
    for (target, outcome), count in sorted(result.outcomes.items()):
        lines.append(f"  {count:8d}  {target:5s} {outcome}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs to run (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    result = fuzz(args.inputs, args.seed)
    print(summary(result))
    return 1 if result.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
