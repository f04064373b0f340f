"""TensorFlow's TensorProto ⇄ numpy, for every element type in the dtype table.

Reads follow TensorFlow's own rules (`tf.make_ndarray`, `Tensor::FromProto`) so any request TF Serving takes is
taken here, but refuse what TensorFlow would silently mangle: typed values out of range for the element type,
more values than the shape holds, a complex list with half a pair. Writes pack numbers into `tensor_content`,
as TF Serving's responses do. numpy only: the request path never runs a TensorFlow op.

The shape, byte-order and string helpers are shared with the other protocols' codecs.
"""

from __future__ import annotations

import math
import sys
from typing import Sequence

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from service.errors import InvalidInputError
from service.tensors.dtypes import BY_NUMPY, BY_TF_ENUM, STRING, DType, of_array, tf_type_name

MAX_DIMENSION = 2**31 - 1  # TF Serving refuses larger dimensions too, and numpy cannot describe some
MAX_RANK = 64  # numpy's limit (NPY_MAXDIMS); TensorFlow allows 254, but no request tensor needs more than 64
MAX_ELEMENTS = 2**31  # a guard against a few bytes of request asking for terabytes of zeros
# TensorFlow's short-list rule lets a few bytes ask for any number of repeated values; tensors larger than this
# must carry their values (the message size limit then bounds them).
MAX_FILLED_ELEMENTS = 2**24

_LITTLE_ENDIAN = sys.byteorder == "little"

# The typed values that hold a narrower type in a wider field: TensorFlow's C++ casts (wraps) them silently and
# tf.make_ndarray raises OverflowError; a client sending 300 as an int8 has a bug, so say so.
_NARROWED_FIELDS = {"int_val", "half_val"}


def checked_shape(dims: Sequence[int], what: str, max_elements: int = MAX_ELEMENTS) -> tuple[tuple[int, ...], int]:
    """A client's dimensions as a shape and its element count, refused before anything is allocated for it.

    `what` names the tensor in the message ("input 'x'"). Counted in Python ints, so hostile dimensions cannot
    overflow; the limit applies to the non-zero dimensions even when a zero one empties the tensor, since
    numpy cannot describe such a shape either.
    """
    if 0 < len(dims) <= MAX_RANK and min(dims) > 0 and max(dims) <= MAX_DIMENSION:  # the usual case, at once
        shape = tuple(dims)
        count = math.prod(shape)
        if count <= max_elements:
            return shape, count
    if len(dims) > MAX_RANK:  # before reading them: the message names the rank, not thousands of dimensions
        raise InvalidInputError(f"{what} has {len(dims)} dimensions; at most {MAX_RANK} are supported")
    shape = tuple(int(size) for size in dims)
    if any(size < 0 for size in shape):
        raise InvalidInputError(f"{what} has shape {list(shape)}: dimensions must be non-negative")
    too_large = [size for size in shape if size > MAX_DIMENSION]
    if too_large:
        raise InvalidInputError(f"{what} has shape {list(shape)}: dimension {too_large[0]} exceeds {MAX_DIMENSION}")
    count = math.prod(shape)
    extent = math.prod(size for size in shape if size)  # numpy refuses to describe [2**31-1, 2**31-1, 0] too
    if extent > max_elements:
        ignoring = "" if extent == count else " (not counting its zero dimension)"
        raise InvalidInputError(
            f"{what} has shape {list(shape)}: {extent} elements{ignoring} exceeds the limit of {max_elements}"
        )
    return shape, count


def to_array(
    tensor: tensor_pb2.TensorProto, name: str, *, max_elements: int = MAX_ELEMENTS
) -> np.ndarray:
    """A request's TensorProto as a numpy array; InvalidInputError names the input and what is wrong with it.

    Numbers packed in `tensor_content` come back as a read-only view on those bytes (no copy). A typed value list
    shorter than the shape follows TensorFlow: none means all zeros (empty strings), otherwise the last value
    repeats. `tensor_content`, when present, wins over the typed fields, as in TensorFlow.
    """
    what = f"input '{name}'"
    dtype = BY_TF_ENUM.get(tensor.dtype)
    if dtype is None:
        raise InvalidInputError(f"{what} has type {tf_type_name(tensor.dtype)}, which is not supported")
    if tensor.tensor_shape.unknown_rank:
        raise InvalidInputError(f"{what} has unknown rank; a request tensor needs a fully known shape")
    shape, count = checked_shape([dim.size for dim in tensor.tensor_shape.dim], what, max_elements)
    content = tensor.tensor_content
    if content:
        if dtype is STRING:
            raise InvalidInputError(f"{what} is DT_STRING: its values belong in string_val, not tensor_content")
        return _from_content(content, dtype, shape, count, what)
    if dtype is STRING:
        _check_value_count(len(tensor.string_val), count, "string_val", shape, what)
        return _repeat_last(list(tensor.string_val), np.empty(count, dtype=object), b"", "string_val", shape, what)
    return _from_typed_values(tensor, dtype, shape, count, what)


def _from_content(content: bytes, dtype: DType, shape: tuple[int, ...], count: int, what: str) -> np.ndarray:
    itemsize = dtype.numpy.itemsize
    if len(content) % itemsize:
        raise InvalidInputError(
            f"{what} tensor_content holds {len(content)} bytes, not a whole number of {dtype.tf_name} values "
            f"({itemsize} bytes each)"
        )
    if len(content) != count * itemsize:
        raise InvalidInputError(
            f"{what} declares shape {list(shape)} ({count} {dtype.tf_name} values, {count * itemsize} bytes) "
            f"but tensor_content holds {len(content)} bytes ({len(content) // itemsize} values)"
        )
    return unpacked(content, dtype).reshape(shape)


def unpacked(data: bytes, dtype: DType) -> np.ndarray:
    """Packed little-endian elements as a flat read-only view on `data` (no copy where the host allows).

    A bool byte other than 0 or 1 is read as True, into a copy: numpy would keep the odd byte and misbehave.
    """
    if dtype.tf_enum == types_pb2.DT_BOOL:
        octets = np.frombuffer(data, dtype=np.uint8)
        return octets != 0 if octets.size and octets.max() > 1 else octets.view(np.bool_)
    values = np.frombuffer(data, dtype=dtype.numpy)
    return values if _LITTLE_ENDIAN else values.byteswap()


def _from_typed_values(
    tensor: tensor_pb2.TensorProto, dtype: DType, shape: tuple[int, ...], count: int, what: str
) -> np.ndarray:
    field = dtype.proto_field
    listed = getattr(tensor, field)
    pairs = 2 if dtype.numpy.kind == "c" else 1
    _check_value_count(len(listed) // pairs, count, field, shape, what)
    if dtype.numpy.kind == "c":  # interleaved (real, imaginary) pairs
        if len(listed) % 2:
            raise InvalidInputError(
                f"{what} {field} holds {len(listed)} numbers, not whole (real, imaginary) pairs"
            )
        parts = np.dtype(np.float32 if dtype.numpy == np.complex64 else np.float64)
        values = np.fromiter(listed, dtype=parts, count=len(listed)).view(dtype.numpy)
    elif field in _NARROWED_FIELDS and dtype.tf_enum != types_pb2.DT_INT32:
        values = _narrowed(listed, dtype, field, what)
    else:
        values = np.fromiter(listed, dtype=dtype.numpy, count=len(listed))
    return _repeat_last(values, np.zeros(count, dtype=dtype.numpy), None, field, shape, what)


def _narrowed(listed: Sequence[int], dtype: DType, field: str, what: str) -> np.ndarray:
    """int_val (int8/int16/uint8/uint16) and half_val (float16/bfloat16 bit patterns) carry int32 on the wire."""
    wide = np.fromiter(listed, dtype=np.int64, count=len(listed))
    bits = np.dtype(np.uint16) if field == "half_val" else dtype.numpy
    limits = np.iinfo(bits)
    out_of_range = (wide < limits.min) | (wide > limits.max)
    if out_of_range.any():
        value = int(wide[np.argmax(out_of_range)])
        meaning = "16-bit patterns" if field == "half_val" else "values"
        raise InvalidInputError(
            f"{what} {field} holds {value}, out of range for {dtype.tf_name} {meaning} [{limits.min}, {limits.max}]"
        )
    return wide.astype(bits).view(dtype.numpy)


def _check_value_count(given: int, count: int, field: str, shape: tuple[int, ...], what: str) -> None:
    """Before anything is allocated: too many values, or too few to stand for a large tensor."""
    if given > count:
        raise InvalidInputError(f"{what} declares shape {list(shape)} ({count} values) but {field} holds {given}")
    if given < count and count > MAX_FILLED_ELEMENTS:
        raise InvalidInputError(
            f"{what} declares shape {list(shape)} ({count} values) but {field} holds {given}: at most "
            f"{MAX_FILLED_ELEMENTS} values are filled in by repeating the last one; send them all"
        )


def _repeat_last(
    values: Sequence, out: np.ndarray, empty_fill: object, field: str, shape: tuple[int, ...], what: str
) -> np.ndarray:
    """TensorFlow's rule for a short value list, into `out` (already zeros, or empty for strings)."""
    given, count = len(values), out.size
    if given:
        out[:given] = values
        out[given:] = values[-1]
    elif empty_fill is not None:
        out[:] = empty_fill
    return out.reshape(shape)


def tensor_type(array: np.ndarray) -> DType:
    """The table entry for an array, counting numpy `S`/`U` arrays as strings; TypeError if there is none."""
    if array.dtype.kind in "SU":
        return STRING
    if array.dtype.byteorder not in "=|":
        return of_array(array.astype(array.dtype.newbyteorder("=")))
    return of_array(array)


def packed_bytes(array: np.ndarray) -> bytes:
    """A numeric array's elements, row-major and little-endian: the layout every protocol's packed form uses."""
    order = array.dtype.byteorder
    if order in "<|" or (order == "=" and _LITTLE_ENDIAN):
        return array.tobytes(order="C")
    return array.astype(array.dtype.newbyteorder("<")).tobytes(order="C")


_BYTES_ONLY = frozenset((bytes,))


def string_elements(array: np.ndarray) -> list[bytes]:
    """A string array's elements as bytes, row-major: str is UTF-8 encoded; anything else is a TypeError."""
    values = array.ravel().tolist()
    if set(map(type, values)) <= _BYTES_ONLY:
        return values
    elements = []
    for value in values:
        if isinstance(value, bytes):
            elements.append(bytes(value))
        elif isinstance(value, str):
            elements.append(value.encode("utf-8"))
        else:
            raise TypeError(f"a string tensor holds {type(value).__name__} {value!r}, neither bytes nor str")
    return elements


def fill_proto(tensor: tensor_pb2.TensorProto, array: np.ndarray, *, as_content: bool = True) -> None:
    """Write `array` into `tensor` in place, replacing what it held (filling a response's own field saves a copy).

    Numbers and bools go in `tensor_content` (`as_content`), or in their typed `*_val` field as TF Serving
    answers by default (clients read `outputs["y"].float_val`); strings always in `string_val`. TypeError for
    an array no TensorProto type holds (a server bug, not a client's).
    """
    if type(array) is not np.ndarray:
        array = np.asarray(array)
    dtype = BY_NUMPY.get(array.dtype) or tensor_type(array)
    tensor.Clear()
    tensor.dtype = dtype.tf_enum
    shape = tensor.tensor_shape
    shape.SetInParent()  # present even for a scalar, as TensorFlow writes it
    dims = shape.dim
    for size in array.shape:
        dims.add(size=size)
    if dtype is STRING:
        tensor.string_val.extend(string_elements(array))
    elif not array.size:
        return
    elif as_content:
        tensor.tensor_content = packed_bytes(array)
    else:
        getattr(tensor, dtype.proto_field).extend(_typed_values(array, dtype))


def _typed_values(array: np.ndarray, dtype: DType) -> list:
    """The values as the typed field holds them: half and bfloat16 as their 16-bit patterns, complex numbers
    as interleaved (real, imaginary) pairs."""
    if dtype.proto_field != "half_val" and dtype.numpy.kind != "c":
        return array.ravel().tolist()
    flat = np.ascontiguousarray(array).reshape(-1)
    if dtype.proto_field == "half_val":
        return flat.view(np.uint16).tolist()
    if dtype.numpy.kind == "c":
        return flat.view(np.float32 if dtype.numpy == np.complex64 else np.float64).tolist()
    return flat.tolist()


def from_array(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A new TensorProto holding `array` (see fill_proto)."""
    tensor = tensor_pb2.TensorProto()
    fill_proto(tensor, array)
    return tensor
