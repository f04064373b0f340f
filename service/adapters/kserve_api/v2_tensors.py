"""KServe v2 (Open Inference Protocol) tensors ⇄ numpy.

An input's values come either typed, in `contents` (one repeated field per wire type, so INT8/INT16 travel as
int32 and FP16/BF16 have no field at all), or packed in the request's `raw_input_contents` entry for it:
little-endian, BOOL one byte per element, BYTES each element a 4-byte little-endian length then its bytes.
Outputs are answered packed in `raw_output_contents`, as Triton does. Refusals follow Triton's rules and, where
a client may match on it, its wording; unlike Triton, typed values out of range for a narrow type (300 as INT8)
are refused rather than truncated.
"""

from __future__ import annotations

import base64
import struct
from typing import Iterable, Sequence

import numpy as np
from tritonclient.grpc import service_pb2

from service.errors import InvalidInputError
from service.tensors.dtypes import BY_V2_NAME, DType
from service.tensors.tensor_proto import MAX_ELEMENTS, checked_shape, packed_bytes, string_elements, tensor_type, unpacked

# The `contents` field each datatype's typed values travel in; FP16 and BF16 have none (raw only).
_CONTENTS_FIELD: dict[str, str | None] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP16": None,
    "BF16": None,
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_NARROW = {"INT8", "INT16", "UINT8", "UINT16"}  # carried in a 32-bit field
_LENGTH = struct.Struct("<I")


class NoV2TypeError(InvalidInputError):
    """A tensor's element type (complex) has no KServe v2 datatype, so it cannot be answered in this protocol."""


def datatype_of(spec_dtype: DType) -> str:
    """The v2 datatype for a signature's element type, for model metadata."""
    if spec_dtype.v2_name is None:
        raise NoV2TypeError(f"type {spec_dtype.tf_name} cannot be expressed in KServe v2")
    return spec_dtype.v2_name


def input_array(
    tensor: service_pb2.ModelInferRequest.InferInputTensor,
    raw: bytes | None,
    name: str | None = None,
    *,
    max_elements: int = MAX_ELEMENTS,
) -> np.ndarray:
    """An input tensor as a numpy array: from `raw` (its raw_input_contents entry; None when the request has
    none) or else from its typed `contents`. InvalidInputError names the input and the problem.

    Numbers from raw bytes are a read-only view on them (no copy); BYTES are an object array of bytes.
    """
    name = tensor.name if name is None else name
    what = f"input '{name}'"
    dtype = BY_V2_NAME.get(tensor.datatype)
    if dtype is None:
        raise InvalidInputError(
            f"{what} has datatype '{tensor.datatype}', which is not a KServe v2 datatype; "
            f"expected one of {', '.join(_CONTENTS_FIELD)}"
        )
    shape, count = checked_shape(tensor.shape, what, max_elements)
    if raw is not None:
        if tensor.HasField("contents"):  # Triton's rule and words
            raise InvalidInputError(f"contents field must not be specified when using raw_input_contents for '{name}'")
        return _from_raw(raw, dtype, shape, count, what)
    return _from_contents(tensor.contents, dtype, shape, count, what)


def _from_raw(raw: bytes, dtype: DType, shape: tuple[int, ...], count: int, what: str) -> np.ndarray:
    datatype = dtype.v2_name
    if dtype.is_string:
        elements = deserialize_bytes(raw, what, count)  # before allocating: the shape may be a lie
        values = np.empty(count, dtype=object)
        values[:] = elements
        return values.reshape(shape)
    itemsize = dtype.numpy.itemsize
    if len(raw) != count * itemsize:
        raise InvalidInputError(
            f"{what} declares shape {list(shape)} of {datatype} ({count} elements, {count * itemsize} bytes) "
            f"but raw_input_contents holds {len(raw)} bytes"
        )
    return unpacked(raw, dtype).reshape(shape)


def _from_contents(
    contents: service_pb2.InferTensorContents, dtype: DType, shape: tuple[int, ...], count: int, what: str
) -> np.ndarray:
    datatype = dtype.v2_name
    expected = _CONTENTS_FIELD[datatype]
    given = [descriptor.name for descriptor, _ in contents.ListFields()]  # the non-empty ones
    if not given:
        if count == 0:
            return np.empty(shape, dtype=dtype.numpy)
        raise InvalidInputError(
            f"{what} declares shape {list(shape)} ({count} elements) but carries no data: "
            "set raw_input_contents or its contents"
        )
    if len(given) > 1:
        raise InvalidInputError(f"{what} carries values in more than one contents field: {', '.join(given)}")
    field = given[0]
    if expected is None:
        raise InvalidInputError(
            f"{what} is {datatype}, which has no typed contents field: send it in raw_input_contents, "
            f"not contents.{field}"
        )
    if field != expected:
        raise InvalidInputError(
            f"{what} is {datatype}, whose values belong in contents.{expected}, not contents.{field}"
        )
    listed = getattr(contents, field)
    if len(listed) != count:
        raise InvalidInputError(
            f"{what} declares shape {list(shape)} ({count} elements) but contents.{field} holds {len(listed)} values"
        )
    if dtype.is_string:
        values = np.empty(count, dtype=object)
        values[:] = list(listed)
        return values.reshape(shape)
    if datatype in _NARROW:
        return _narrowed(listed, dtype, field, what).reshape(shape)
    return np.fromiter(listed, dtype=dtype.numpy, count=count).reshape(shape)


def _narrowed(listed: Sequence[int], dtype: DType, field: str, what: str) -> np.ndarray:
    wide = np.fromiter(listed, dtype=np.int64, count=len(listed))
    limits = np.iinfo(dtype.numpy)
    out_of_range = (wide < limits.min) | (wide > limits.max)
    if out_of_range.any():
        value = int(wide[np.argmax(out_of_range)])
        raise InvalidInputError(
            f"{what} contents.{field} holds {value}, out of range for {dtype.v2_name} [{limits.min}, {limits.max}]"
        )
    return wide.astype(dtype.numpy)


def deserialize_bytes(raw: bytes, where: str, count: int | None = None) -> list[bytes]:
    """KServe's raw BYTES layout: each element is a 4-byte little-endian length, then its bytes.

    With `count` (the shape's element count) exactly that many elements must fill `raw`: leftover bytes are an
    error, and a count the bytes cannot possibly hold is refused before parsing.
    """
    raw = bytes(raw)
    if count is not None and count * _LENGTH.size > len(raw):
        raise InvalidInputError(
            f"{where}: {len(raw)} raw bytes cannot hold {count} BYTES elements (each needs a 4-byte length prefix)"
        )
    values: list[bytes] = []
    offset = 0
    while (offset < len(raw)) if count is None else (len(values) < count):
        if offset + _LENGTH.size > len(raw):
            raise InvalidInputError(f"{where}: truncated element length at byte {offset}")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise InvalidInputError(f"{where}: element {len(values)} claims {length} bytes, {len(raw) - offset} left")
        values.append(raw[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise InvalidInputError(
            f"{where}: {len(raw) - offset} bytes left over after the {count} BYTES elements its shape declares"
        )
    return values


def serialize_bytes(values: Iterable[bytes]) -> bytes:
    """The raw BYTES layout (see deserialize_bytes)."""
    return b"".join(_LENGTH.pack(len(value)) + value for value in values)


def fill_output(response: service_pb2.ModelInferResponse, name: str, array: np.ndarray) -> None:
    """Append output `name` (datatype, shape) and its raw_output_contents entry, keeping the two lists aligned.

    NoV2TypeError (an InvalidInputError) for a complex array; the response is left untouched then.
    """
    array = np.asarray(array)
    dtype = tensor_type(array)
    if dtype.v2_name is None:
        raise NoV2TypeError(f"output '{name}' has type {dtype.tf_name}, which cannot be expressed in KServe v2")
    raw = serialize_bytes(string_elements(array)) if dtype.is_string else packed_bytes(array)
    response.outputs.add(name=name, datatype=dtype.v2_name, shape=array.shape)
    response.raw_output_contents.append(raw)


# -- KServe v2 over HTTP: JSON `data`, and Triton's binary tensor data extension ---------------------------

_MAX_JSON_DEPTH = 64


def _dtype_of(datatype: object, what: str) -> DType:
    dtype = BY_V2_NAME.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidInputError(
            f"{what} has datatype '{str(datatype)[:40]}', which is not a KServe v2 datatype; "
            f"expected one of {', '.join(_CONTENTS_FIELD)}"
        )
    return dtype


def _shape_of(shape: object, what: str) -> tuple[tuple[int, ...], int]:
    if not isinstance(shape, list) or not all(type(size) is int for size in shape):
        raise InvalidInputError(f"{what} must have a 'shape': a list of integers")
    return checked_shape(shape, what)


def binary_input(datatype: object, shape: object, raw: bytes, what: str) -> np.ndarray:
    """An input sent in the binary tensor data extension: `raw` is its `binary_data_size` bytes, laid out as
    raw_input_contents (little-endian numbers; BYTES each after a 4-byte length)."""
    dtype = _dtype_of(datatype, what)
    checked, count = _shape_of(shape, what)
    return _from_raw(raw, dtype, checked, count, what)


def json_input(datatype: object, shape: object, data: object, what: str, *, base64_strings: bool = False) -> np.ndarray:
    """An input's JSON `data`, row-major, flat or nested: numbers for numeric datatypes (integers only for
    integer types), true/false for BOOL, strings for BYTES: UTF-8 text, or base64 with `base64_strings`
    (the input parameter `content_type: base64`, as MLServer reads it), so binary values fit in JSON."""
    dtype = _dtype_of(datatype, what)
    checked, count = _shape_of(shape, what)
    flat = _flattened(data, what)
    if len(flat) != count:
        raise InvalidInputError(
            f"{what} declares shape {list(checked)} ({count} elements) but its data holds {len(flat)} values"
        )
    types = set(map(type, flat))
    if dtype.is_string:
        if not types <= {str}:
            raise InvalidInputError(f"{what} is BYTES: its data must be strings")
        values = np.empty(count, dtype=object)
        try:
            values[:] = [_base64_value(value, what) for value in flat] if base64_strings else [
                value.encode("utf-8") for value in flat]
        except UnicodeEncodeError:
            raise InvalidInputError(f"{what} holds a string that is not valid Unicode (a lone surrogate)") from None
        return values.reshape(checked)
    kind = dtype.numpy.kind
    allowed = {bool} if kind == "b" else {int} if kind in "iu" else {int, float}
    if not types <= allowed:
        wanted = "true or false" if kind == "b" else "integers" if kind in "iu" else "numbers"
        raise InvalidInputError(f"{what} is {dtype.v2_name}: its data must be {wanted}")
    try:
        array = np.array(flat, dtype=dtype.numpy)
    except OverflowError:
        raise InvalidInputError(f"{what} holds a value out of the range of {dtype.v2_name}") from None
    if kind == "f" and count and not np.isfinite(array).all() and np.isfinite(np.array(flat, dtype=float)).all():
        raise InvalidInputError(f"{what} holds a value out of the range of {dtype.v2_name}")
    return array.reshape(checked)


def _base64_value(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise InvalidInputError(f"{what} has content_type base64 but holds a string that is not base64") from None


def _flattened(data: object, what: str) -> list:
    """Nested lists of equal lengths, row-major; a bare value is one element."""
    if not isinstance(data, list):
        return [data]
    level: list = data
    for _ in range(_MAX_JSON_DEPTH):
        kinds = set(map(type, level))
        if list not in kinds:
            return level
        if kinds != {list}:
            raise InvalidInputError(f"{what} has data that mixes lists and values at one level")
        level = [item for sub in level for item in sub]
    raise InvalidInputError(f"{what} has data nested deeper than {_MAX_JSON_DEPTH} levels")


def output_parts(name: str, array: np.ndarray) -> tuple[str, list[int], np.ndarray, DType]:
    """An output's v2 datatype and shape, the array and its table entry; NoV2TypeError for a complex array."""
    array = np.asarray(array)
    dtype = tensor_type(array)
    if dtype.v2_name is None:
        raise NoV2TypeError(f"output '{name}' has type {dtype.tf_name}, which cannot be expressed in KServe v2")
    return dtype.v2_name, list(array.shape), array, dtype


def binary_output(array: np.ndarray, dtype: DType) -> bytes:
    """An output's bytes in the binary tensor data extension (raw_output_contents' layout)."""
    return serialize_bytes(string_elements(array)) if dtype.is_string else packed_bytes(array)


def json_output(array: np.ndarray, dtype: DType, *, base64_strings: bool = False) -> list:
    """An output's JSON `data`, flattened row-major: BYTES as UTF-8 strings (bytes that are not UTF-8 with
    U+FFFD; ask for binary data or `content_type: base64` to get them exactly), FP16 and BF16 as numbers."""
    if dtype.is_string:
        if base64_strings:
            return [base64.b64encode(value).decode("ascii") for value in string_elements(array)]
        return [value.decode("utf-8", "replace") for value in string_elements(array)]
    flat = array.reshape(-1)
    if flat.dtype.kind == "f" and flat.dtype.itemsize < 4 or flat.dtype.kind == "V":
        flat = flat.astype(np.float32)
    return flat.tolist()
