"""service.tensors.tensor_proto against TensorFlow's own codec (tf.make_tensor_proto / tf.make_ndarray)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from service.errors import InvalidInputError
from service.tensors.dtypes import BY_TF_ENUM, DType
from service.tensors.tensor_proto import MAX_DIMENSION, fill_proto, from_array, to_array

DTYPES = list(BY_TF_ENUM.values())
NUMERIC = [dtype for dtype in DTYPES if not dtype.is_string]
SHAPES = [(), (3,), (2, 3), (2, 0), (0,)]


def sample(dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """Distinct, exactly representable values of the type, including its extremes where it has them."""
    count = int(np.prod(shape))
    index = np.arange(count)
    if dtype.is_string:
        pool = [b"", b"a", b"\x00\xff", "é".encode(), b"xyz" * 10]
        values = np.empty(count, dtype=object)
        values[:] = [pool[i % len(pool)] for i in range(count)]
    elif dtype.numpy.kind == "b":
        values = index % 2 == 0
    elif dtype.numpy.kind == "c":
        values = (index - 1.5 + 1j * (index + 0.25)).astype(dtype.numpy)
    elif dtype.numpy.kind == "f" or dtype.numpy == ml_dtypes.bfloat16:
        values = (index * 1.5 - 2).astype(dtype.numpy)
    else:
        info = np.iinfo(dtype.numpy)
        values = np.array([info.min, info.max, 0, 1, 7, 42][:count] + list(range(count - 6)), dtype=dtype.numpy)
    return values.reshape(shape)


def proto(dtype: int, shape: list[int] | None, **fields) -> tensor_pb2.TensorProto:
    tensor_shape = (
        tensor_shape_pb2.TensorShapeProto(unknown_rank=True)
        if shape is None
        else tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape])
    )
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape, **fields)


def typed_proto(array: np.ndarray, dtype: DType) -> tensor_pb2.TensorProto:
    """The typed-values form, written the way TensorFlow's C++ AsProtoField does for each type."""
    flat = array.ravel()
    if dtype.proto_field == "half_val":
        values = flat.view(np.uint16).tolist()
    elif dtype.numpy.kind == "c":
        values = np.stack([flat.real, flat.imag], axis=-1).ravel().tolist()
    else:
        values = flat.tolist()
    return proto(dtype.tf_enum, list(array.shape), **{dtype.proto_field: values})


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.tolist() == expected.tolist()


def to_bytes(array: np.ndarray) -> np.ndarray:
    """tf.make_ndarray pads an empty DT_STRING list with str ''; compare as bytes."""
    out = np.empty(array.shape, dtype=object)
    out.ravel()[:] = [v.encode() if isinstance(v, str) else v for v in array.ravel().tolist()]
    return out


# --- round trips ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.tf_name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_from_array_is_read_by_tensorflow(dtype: DType, shape: tuple[int, ...]) -> None:
    array = sample(dtype, shape)
    tensor = from_array(array)
    assert tensor.dtype == dtype.tf_enum
    assert tensor.HasField("tensor_shape")
    assert [d.size for d in tensor.tensor_shape.dim] == list(shape)
    if dtype.is_string:
        assert not tensor.tensor_content and list(tensor.string_val) == array.ravel().tolist()
    else:  # packed, as TF Serving answers
        assert tensor.tensor_content == array.tobytes()
        assert {field.name for field, _ in tensor.ListFields()} <= {"dtype", "tensor_shape", "tensor_content"}
    assert_same(tf.make_ndarray(tensor), array)
    assert_same(to_array(tensor, "x"), array)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.tf_name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_reads_tensorflows_own_protos(dtype: DType, shape: tuple[int, ...]) -> None:
    array = sample(dtype, shape)
    tensor = tf.make_tensor_proto(array)
    assert_same(to_array(tensor, "x"), tf.make_ndarray(tensor))
    assert_same(to_array(tensor, "x"), array)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.tf_name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_reads_typed_values(dtype: DType, shape: tuple[int, ...]) -> None:
    array = sample(dtype, shape)
    tensor = typed_proto(array, dtype)
    assert not tensor.tensor_content
    assert_same(to_array(tensor, "x"), array)
    assert_same(to_array(tensor, "x"), tf.make_ndarray(tensor))


@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: d.tf_name)
def test_reads_tensor_content_without_copying(dtype: DType) -> None:
    array = sample(dtype, (2, 3))
    tensor = proto(dtype.tf_enum, [2, 3], tensor_content=array.tobytes())
    result = to_array(tensor, "x")
    assert_same(result, array)
    assert_same(result, tf.make_ndarray(tensor))
    assert not result.flags.writeable and result.base is not None  # a view on the request's bytes


def test_tensor_content_wins_over_typed_values() -> None:
    tensor = proto(types_pb2.DT_FLOAT, [2], tensor_content=np.array([1, 2], "<f4").tobytes(), float_val=[9, 9, 9])
    assert to_array(tensor, "x").tolist() == tf.make_ndarray(tensor).tolist() == [1, 2]


def test_bool_content_bytes_other_than_zero_and_one_are_true() -> None:
    tensor = proto(types_pb2.DT_BOOL, [3], tensor_content=b"\x00\x01\x02")
    result = to_array(tensor, "x")
    assert result.tolist() == tf.make_ndarray(tensor).tolist() == [False, True, True]
    assert result.view(np.uint8).tolist() == [0, 1, 1]


# --- TensorFlow's rule for a short value list ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.tf_name)
def test_no_typed_values_means_zeros(dtype: DType) -> None:
    tensor = proto(dtype.tf_enum, [2, 3])
    result = to_array(tensor, "x")
    assert_same(result, to_bytes(tf.make_ndarray(tensor)) if dtype.is_string else tf.make_ndarray(tensor))
    expected = [[b""] * 3] * 2 if dtype.is_string else np.zeros((2, 3), dtype.numpy).tolist()
    assert result.tolist() == expected


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.tf_name)
@pytest.mark.parametrize("given", [1, 2, 5])
def test_short_typed_values_repeat_the_last(dtype: DType, given: int) -> None:
    full = sample(dtype, (6,))
    tensor = typed_proto(full[:given], dtype)
    tensor.tensor_shape.CopyFrom(proto(0, [2, 3]).tensor_shape)
    result = to_array(tensor, "x")
    assert_same(result, tf.make_ndarray(tensor))
    assert result.ravel().tolist() == full[:given].tolist() + [full[given - 1]] * (6 - given)


def test_scalar_from_one_value_and_from_none() -> None:
    assert_same(to_array(proto(types_pb2.DT_FLOAT, [], float_val=[3.5]), "x"), np.array(3.5, np.float32))
    assert_same(to_array(proto(types_pb2.DT_INT64, []), "x"), np.array(0, np.int64))
    assert_same(to_array(proto(types_pb2.DT_STRING, [], string_val=[b"s"]), "x"), np.array(b"s", dtype=object))


def test_zero_dimension_empties_the_tensor() -> None:
    result = to_array(proto(types_pb2.DT_FLOAT, [2**15, 2**15, 0]), "x")
    assert result.shape == (2**15, 2**15, 0) and result.size == 0


def test_zero_dimension_does_not_excuse_huge_ones() -> None:
    refused(proto(types_pb2.DT_FLOAT, [MAX_DIMENSION, MAX_DIMENSION, 0]), "(not counting its zero dimension) exceeds")


# --- errors --------------------------------------------------------------------------------------------------


def refused(tensor: tensor_pb2.TensorProto, *fragments: str, **kwargs) -> str:
    with pytest.raises(InvalidInputError) as caught:
        to_array(tensor, "images", **kwargs)
    message = str(caught.value)
    assert "input 'images'" in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(
    ("dtype", "name"),
    [(types_pb2.DT_INVALID, "DT_INVALID"), (types_pb2.DT_RESOURCE, "DT_RESOURCE"), (types_pb2.DT_VARIANT, "DT_VARIANT"),
     (types_pb2.DT_QINT8, "DT_QINT8"), (types_pb2.DT_FLOAT_REF, "DT_FLOAT_REF"), (9999, "9999")],
)
def test_refuses_types_outside_the_table(dtype: int, name: str) -> None:
    refused(proto(dtype, [1]), f"type {name}", "not supported")


def test_refuses_unknown_rank() -> None:
    refused(proto(types_pb2.DT_FLOAT, None, float_val=[1]), "unknown rank")


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ([2, -1], "must be non-negative"),
        ([2**31], f"dimension {2**31} exceeds {MAX_DIMENSION}"),
        ([2**62, 0, 2**62], "exceeds"),
        ([2**16, 2**16, 2], f"{2**33} elements exceeds the limit of {2**31}"),
    ],
)
def test_refuses_bad_shapes_before_allocating(shape: list[int], fragment: str) -> None:
    refused(proto(types_pb2.DT_FLOAT, shape, float_val=[1]), str(shape), fragment)


def test_element_limit_can_be_tightened() -> None:
    refused(proto(types_pb2.DT_FLOAT, [10, 10], float_val=[1]), "100 elements exceeds the limit of 99", max_elements=99)
    assert to_array(proto(types_pb2.DT_FLOAT, [10, 10]), "x", max_elements=100).shape == (10, 10)


def test_refuses_tensor_content_not_whole_values() -> None:
    refused(proto(types_pb2.DT_FLOAT, [2], tensor_content=b"\x00" * 7), "7 bytes", "not a whole number", "4 bytes each")


@pytest.mark.parametrize("shape", [[3], [1], [0], []], ids=str)
def test_refuses_tensor_content_not_matching_the_shape(shape: list[int]) -> None:
    content = np.zeros(2, "<f8").tobytes()
    count = int(np.prod(shape))
    refused(proto(types_pb2.DT_DOUBLE, shape, tensor_content=content), f"shape {shape} ({count} DT_DOUBLE", "16 bytes")


def test_refuses_tensor_content_for_strings() -> None:
    refused(proto(types_pb2.DT_STRING, [1], tensor_content=b"\x01a"), "string_val, not tensor_content")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.tf_name)
def test_refuses_more_typed_values_than_the_shape_holds(dtype: DType) -> None:
    tensor = typed_proto(sample(dtype, (3,)), dtype)
    tensor.tensor_shape.dim[0].size = 2
    refused(tensor, "shape [2] (2 values)", f"{dtype.proto_field} holds 3")
    with pytest.raises(ValueError):
        tf.make_ndarray(tensor)  # TensorFlow's Python refuses too (its C++ would drop the extra value)


def test_refuses_values_for_an_empty_shape() -> None:
    refused(proto(types_pb2.DT_INT32, [2, 0], int_val=[1]), "(0 values)", "int_val holds 1")


@pytest.mark.parametrize(
    ("dtype", "field", "value", "fragment"),
    [
        (types_pb2.DT_INT8, "int_val", 300, "int_val holds 300, out of range for DT_INT8 values [-128, 127]"),
        (types_pb2.DT_INT8, "int_val", -129, "-129"),
        (types_pb2.DT_INT16, "int_val", 70000, "[-32768, 32767]"),
        (types_pb2.DT_UINT8, "int_val", -1, "out of range for DT_UINT8 values [0, 255]"),
        (types_pb2.DT_UINT16, "int_val", 65536, "[0, 65535]"),
        (types_pb2.DT_HALF, "half_val", 70000, "half_val holds 70000, out of range for DT_HALF 16-bit patterns"),
        (types_pb2.DT_BFLOAT16, "half_val", -1, "DT_BFLOAT16 16-bit patterns [0, 65535]"),
    ],
)
def test_refuses_typed_values_out_of_range(dtype: int, field: str, value: int, fragment: str) -> None:
    tensor = proto(dtype, [2], **{field: [1, value]})
    refused(tensor, fragment)
    with pytest.raises(OverflowError):
        tf.make_ndarray(tensor)  # TensorFlow's Python refuses too (its C++ would wrap the value)


@pytest.mark.parametrize(
    ("dtype", "field"), [(types_pb2.DT_COMPLEX64, "scomplex_val"), (types_pb2.DT_COMPLEX128, "dcomplex_val")]
)
def test_refuses_half_a_complex_pair(dtype: int, field: str) -> None:
    refused(proto(dtype, [2], **{field: [1, 2, 3]}), f"{field} holds 3 numbers, not whole (real, imaginary) pairs")


# --- writing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.array([["a", "é"], ["", "xyz"]]),  # numpy U
        np.array([b"a", b"bc"]),  # numpy S
        np.array(["a", b"b", np.bytes_(b"c")], dtype=object),  # mixed str and bytes
        np.array("scalar", dtype=object),
    ],
    ids=["unicode", "bytes", "mixed-object", "scalar"],
)
def test_fill_proto_accepts_every_string_form(array: np.ndarray) -> None:
    tensor = from_array(array)
    expected = [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel().tolist()]
    assert tensor.dtype == types_pb2.DT_STRING
    assert list(tensor.string_val) == expected
    assert tf.make_ndarray(tensor).ravel().tolist() == expected
    assert to_array(tensor, "x").shape == array.shape


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.arange(6, dtype=np.float64).reshape(2, 3).T,
        np.arange(10, dtype=np.int16)[::3],
    ],
    ids=["big-endian", "transposed", "strided"],
)
def test_fill_proto_packs_any_layout_little_endian(array: np.ndarray) -> None:
    tensor = from_array(array)
    assert_same(tf.make_ndarray(tensor), array.astype(array.dtype.newbyteorder("=")))


def test_fill_proto_replaces_what_the_tensor_held() -> None:
    tensor = proto(types_pb2.DT_STRING, [3, 1], string_val=[b"old"])
    fill_proto(tensor, np.array([1.5, 2.5], np.float32))
    assert tensor.dtype == types_pb2.DT_FLOAT and not tensor.string_val
    assert tf.make_ndarray(tensor).tolist() == [1.5, 2.5]


def test_fill_proto_fills_a_response_field_in_place() -> None:
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    fill_proto(response.outputs["scores"], np.array([[0.25, 0.75]], np.float32))
    assert tf.make_ndarray(response.outputs["scores"]).tolist() == [[0.25, 0.75]]


@pytest.mark.parametrize(
    "array",
    [np.array(["2020-01-01"], dtype="datetime64[D]"), np.array([1, 2], dtype=object), np.array([None], dtype=object)],
    ids=["datetime", "object-ints", "object-none"],
)
def test_fill_proto_refuses_arrays_no_tensor_type_holds(array: np.ndarray) -> None:
    with pytest.raises(TypeError):
        from_array(array)


def test_a_few_values_cannot_stand_for_a_huge_tensor():
    """TensorFlow's short-list rule would let a few bytes ask for gigabytes; past a bound, values must be sent."""
    from service.errors import InvalidInputError
    from service.tensors.tensor_proto import MAX_FILLED_ELEMENTS, to_array

    for dtype, field, value in ((types_pb2.DT_FLOAT, "float_val", 1.0), (types_pb2.DT_STRING, "string_val", b"x")):
        tensor = tensor_pb2.TensorProto(dtype=dtype)
        tensor.tensor_shape.dim.add(size=MAX_FILLED_ELEMENTS * 64)
        getattr(tensor, field).append(value)
        with pytest.raises(InvalidInputError, match="filled in by repeating"):
            to_array(tensor, "x")


@pytest.mark.parametrize("dtype", [d for d in BY_TF_ENUM.values() if not d.is_string], ids=lambda d: d.tf_name)
def test_typed_field_output_reads_back_in_tensorflow(dtype: DType):
    """TF Serving answers in the typed *_val fields by default; TensorFlow reads them back to the same array."""
    values = np.arange(6).reshape(2, 3)
    array = (values % 2 == 0) if dtype.numpy == np.bool_ else (values + 1j * values if dtype.numpy.kind == "c" else values)
    array = np.asarray(array).astype(dtype.numpy)
    tensor = tensor_pb2.TensorProto()
    fill_proto(tensor, array, as_content=False)
    assert not tensor.tensor_content and len(getattr(tensor, dtype.proto_field)) > 0
    np.testing.assert_array_equal(tf.make_ndarray(tensor), array)
    np.testing.assert_array_equal(to_array(tensor, "y"), array)
