"""service.adapters.kserve_api.v2_tensors against Triton's own client (tritonclient): what it sends is read, what we answer it reads."""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np
import pytest
from tritonclient.grpc import InferInput, InferResult, service_pb2
from tritonclient.utils import deserialize_bytes_tensor, np_to_triton_dtype, serialize_byte_tensor, triton_to_np_dtype

from service.errors import InvalidInputError
from service.tensors.dtypes import BY_TF_ENUM, BY_V2_NAME
from service.tensors.tensor_proto import MAX_DIMENSION
from service.adapters.kserve_api.v2_tensors import (
    NoV2TypeError,
    datatype_of,
    deserialize_bytes,
    fill_output,
    input_array,
    serialize_bytes,
)

DATATYPES = list(BY_V2_NAME)
TYPED_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
SHAPES = [(), (3,), (2, 3), (2, 0)]
InputTensor = service_pb2.ModelInferRequest.InferInputTensor


def sample(datatype: str, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    index = np.arange(count)
    numpy_type = np.dtype(triton_to_np_dtype(datatype))
    if datatype == "BYTES":
        pool = [b"", b"a", b"\x00\xff", "é".encode(), b"xyz" * 10]
        values = np.empty(count, dtype=object)
        values[:] = [pool[i % len(pool)] for i in range(count)]
    elif datatype == "BOOL":
        values = index % 2 == 0
    elif numpy_type.kind == "f" or numpy_type == ml_dtypes.bfloat16:
        values = (index * 1.5 - 2).astype(numpy_type)
    else:
        info = np.iinfo(numpy_type)
        values = np.array([info.min, info.max, 0, 1, 7, 42][:count] + list(range(count - 6)), dtype=numpy_type)
    return values.reshape(shape)


def client_input(array: np.ndarray, name: str = "x") -> tuple[InputTensor, bytes]:
    """The tensor and raw bytes tritonclient itself puts in a ModelInferRequest."""
    infer_input = InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    infer_input.set_data_from_numpy(array)
    return infer_input._get_tensor(), infer_input._get_content()


def typed_input(datatype: str, shape: list[int], field: str | None = None, values: list | None = None) -> InputTensor:
    tensor = InputTensor(name="x", datatype=datatype, shape=shape)
    if field is not None:
        getattr(tensor.contents, field).extend(values or [])
        tensor.contents.SetInParent()
    return tensor


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.tolist() == expected.tolist()


# --- inputs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_reads_what_tritonclient_sends_raw(datatype: str, shape: tuple[int, ...]) -> None:
    array = sample(datatype, shape)
    tensor, raw = client_input(array)
    assert tensor.datatype == datatype and not tensor.HasField("contents")
    result = input_array(tensor, raw)
    assert_same(result, array)
    if datatype != "BYTES":
        assert not result.flags.writeable  # a view on the request's bytes


@pytest.mark.parametrize("datatype", list(TYPED_FIELD))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_reads_typed_contents(datatype: str, shape: tuple[int, ...]) -> None:
    array = sample(datatype, shape)
    tensor = typed_input(datatype, list(shape), TYPED_FIELD[datatype], array.ravel().tolist())
    assert_same(input_array(tensor, None), array)


def test_reads_a_raw_bool_byte_other_than_zero_and_one_as_true() -> None:
    result = input_array(InputTensor(name="x", datatype="BOOL", shape=[3]), b"\x00\x01\x07")
    assert result.tolist() == [False, True, True] and result.view(np.uint8).tolist() == [0, 1, 1]


def test_empty_tensor_needs_no_data() -> None:
    assert_same(input_array(InputTensor(name="x", datatype="FP16", shape=[0, 4]), None), np.empty((0, 4), np.float16))


def test_name_defaults_to_the_tensors_own() -> None:
    tensor = InputTensor(name="pixels", datatype="NOPE", shape=[1])
    with pytest.raises(InvalidInputError, match="input 'pixels'"):
        input_array(tensor, None)
    with pytest.raises(InvalidInputError, match="input 'inputs\\[0\\]'"):
        input_array(tensor, None, "inputs[0]")


# --- input errors -----------------------------------------------------------------------------------------------


def refused(tensor: InputTensor, raw: bytes | None, *fragments: str, **kwargs) -> str:
    with pytest.raises(InvalidInputError) as caught:
        input_array(tensor, raw, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("datatype", ["", "FLOAT32", "fp32", "STRING", "COMPLEX64"])
def test_refuses_unknown_datatypes(datatype: str) -> None:
    tensor = InputTensor(name="x", datatype=datatype, shape=[1])
    refused(tensor, b"\x00" * 4, f"input 'x' has datatype '{datatype}'", "expected one of BOOL,", "FP32")


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ([1, -1], "must be non-negative"),
        ([2**31], f"exceeds {MAX_DIMENSION}"),
        ([2**62, 0, 2**62], "exceeds"),
        ([2**16, 2**16, 2], f"{2**33} elements exceeds the limit"),
    ],
)
def test_refuses_bad_shapes(shape: list[int], fragment: str) -> None:
    refused(InputTensor(name="x", datatype="FP32", shape=shape), b"\x00" * 4, str(shape), fragment)


def test_element_limit_can_be_tightened() -> None:
    tensor = InputTensor(name="x", datatype="UINT8", shape=[10, 10])
    refused(tensor, bytes(100), "100 elements exceeds the limit of 99", max_elements=99)
    assert input_array(tensor, bytes(100), max_elements=100).shape == (10, 10)


@pytest.mark.parametrize("datatype", [d for d in DATATYPES if d != "BYTES"])
def test_refuses_raw_bytes_not_matching_the_shape(datatype: str) -> None:
    array = sample(datatype, (2, 3))
    tensor, raw = client_input(array)
    size = array.dtype.itemsize
    refused(tensor, raw[:-1], f"input 'x' declares shape [2, 3] of {datatype} (6 elements, {6 * size} bytes)",
            f"raw_input_contents holds {6 * size - 1} bytes")
    refused(tensor, raw + raw[:size], f"holds {7 * size} bytes")


@pytest.mark.parametrize("datatype", list(TYPED_FIELD))
def test_refuses_typed_counts_not_matching_the_shape(datatype: str) -> None:
    values = sample(datatype, (5,)).tolist()
    field = TYPED_FIELD[datatype]
    tensor = typed_input(datatype, [2, 3], field, values)
    refused(tensor, None, "shape [2, 3] (6 elements)", f"contents.{field} holds 5 values")
    refused(typed_input(datatype, [2], field, values), None, "shape [2] (2 elements)", "holds 5 values")


def test_refuses_no_data_for_a_non_empty_shape() -> None:
    refused(InputTensor(name="x", datatype="FP32", shape=[2]), None, "shape [2] (2 elements) but carries no data")


def test_refuses_raw_and_contents_together_in_tritons_words() -> None:
    tensor, raw = client_input(np.array([1.0, 2.0], np.float32))
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    refused(tensor, raw, "contents field must not be specified when using raw_input_contents for 'x'")
    tensor.contents.ClearField("fp32_contents")  # present though empty: Triton refuses that too
    refused(tensor, raw, "contents field must not be specified")


@pytest.mark.parametrize(
    ("datatype", "field", "value"),
    [("FP32", "fp64_contents", 1.0), ("INT8", "int64_contents", 1), ("UINT16", "int_contents", 1),
     ("INT32", "uint_contents", 1), ("BYTES", "fp32_contents", 1.0), ("BOOL", "int_contents", 1)],
)
def test_refuses_typed_contents_in_the_wrong_field(datatype: str, field: str, value: object) -> None:
    expected = TYPED_FIELD[datatype]
    refused(typed_input(datatype, [1], field, [value]), None,
            f"input 'x' is {datatype}, whose values belong in contents.{expected}, not contents.{field}")


@pytest.mark.parametrize("datatype", ["FP16", "BF16"])
def test_refuses_typed_contents_for_types_without_a_field(datatype: str) -> None:
    tensor = typed_input(datatype, [1], "fp32_contents", [1.0])
    refused(tensor, None, f"is {datatype}, which has no typed contents field", "raw_input_contents")


def test_refuses_values_in_two_fields() -> None:
    tensor = typed_input("FP32", [1], "fp32_contents", [1.0])
    tensor.contents.fp64_contents.append(1.0)
    refused(tensor, None, "more than one contents field: fp32_contents, fp64_contents")


@pytest.mark.parametrize(
    ("datatype", "field", "value", "fragment"),
    [("INT8", "int_contents", 300, "contents.int_contents holds 300, out of range for INT8 [-128, 127]"),
     ("INT16", "int_contents", -40000, "[-32768, 32767]"),
     ("UINT8", "uint_contents", 256, "out of range for UINT8 [0, 255]"),
     ("UINT16", "uint_contents", 70000, "[0, 65535]")],
)
def test_refuses_narrow_typed_values_out_of_range(datatype: str, field: str, value: int, fragment: str) -> None:
    refused(typed_input(datatype, [2], field, [1, value]), None, fragment)


@pytest.mark.parametrize(
    ("raw", "shape", "fragment"),
    [
        (struct.pack("<I", 5) + b"abc", [1], "element 0 claims 5 bytes, 3 left"),
        (struct.pack("<I", 1) + b"a" + b"\x02\x00", [2], "cannot hold 2 BYTES elements"),
        (struct.pack("<I", 1) + b"a" + b"\x02\x00\x00", [2], "truncated element length at byte 5"),
        (struct.pack("<I", 1) + b"a" + struct.pack("<I", 0), [1], "4 bytes left over after the 1 BYTES elements"),
        (b"", [1], "0 raw bytes cannot hold 1 BYTES elements"),
        (struct.pack("<I", 2**32 - 1), [1], "claims 4294967295 bytes, 0 left"),
        (b"\x00" * 8, [2**30], "8 raw bytes cannot hold 1073741824 BYTES elements"),
    ],
    ids=["overrun", "too-few-bytes", "truncated-prefix", "trailing", "empty", "huge-length", "huge-shape"],
)
def test_refuses_malformed_raw_bytes(raw: bytes, shape: list[int], fragment: str) -> None:
    refused(InputTensor(name="x", datatype="BYTES", shape=shape), raw, "input 'x'", fragment)


# --- the BYTES layout itself -------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [b""], [b"a", b"", b"\x00" * 300], ["é".encode()] * 3])
def test_bytes_layout_matches_tritonclient(values: list[bytes]) -> None:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    encoded = serialize_bytes(values)
    assert encoded == (serialize_byte_tensor(array).item() if values else b"")
    assert deserialize_bytes(encoded, "x") == deserialize_bytes(encoded, "x", len(values)) == values
    assert deserialize_bytes_tensor(encoded).tolist() == values


def test_deserialize_bytes_without_a_count_keeps_the_old_contract() -> None:
    encoded = serialize_bytes([b"a", b"bc"])
    assert deserialize_bytes(encoded, "where") == [b"a", b"bc"]
    with pytest.raises(InvalidInputError, match="where: truncated element length at byte 11"):
        deserialize_bytes(encoded + b"\x00", "where")


# --- outputs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_tritonclient_reads_our_outputs(datatype: str, shape: tuple[int, ...]) -> None:
    array = sample(datatype, shape)
    response = service_pb2.ModelInferResponse()
    fill_output(response, "before", np.zeros(2, np.float32))
    fill_output(response, "y", array)
    fill_output(response, "after", np.array([b"z"], dtype=object))
    output = response.outputs[1]
    assert (output.name, output.datatype, list(output.shape)) == ("y", datatype, list(shape))
    assert len(response.raw_output_contents) == len(response.outputs) == 3
    result = InferResult(response)
    assert_same(result.as_numpy("y"), array)
    assert result.as_numpy("after").tolist() == [b"z"]
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="y", datatype=datatype, shape=shape)
    assert_same(input_array(tensor, response.raw_output_contents[1]), array)


@pytest.mark.parametrize(
    ("array", "expected"),
    [(np.array(["a", "é"]), [b"a", "é".encode()]), (np.array([b"a", b"b"]), [b"a", b"b"]),
     (np.array(["a", b"b"], dtype=object), [b"a", b"b"])],
    ids=["unicode", "bytes", "mixed-object"],
)
def test_string_outputs_of_every_form_are_bytes(array: np.ndarray, expected: list[bytes]) -> None:
    response = service_pb2.ModelInferResponse()
    fill_output(response, "y", array)
    assert response.outputs[0].datatype == "BYTES"
    assert InferResult(response).as_numpy("y").tolist() == expected


def test_outputs_pack_any_layout_little_endian() -> None:
    array = np.arange(6, dtype=">i4").reshape(2, 3).T
    response = service_pb2.ModelInferResponse()
    fill_output(response, "y", array)
    assert response.outputs[0].datatype == "INT32"
    assert InferResult(response).as_numpy("y").tolist() == array.tolist()


@pytest.mark.parametrize("numpy_type", [np.complex64, np.complex128])
def test_complex_outputs_cannot_be_expressed_and_leave_the_response_untouched(numpy_type: type) -> None:
    response = service_pb2.ModelInferResponse()
    with pytest.raises(NoV2TypeError, match="output 'y' has type DT_COMPLEX.*cannot be expressed in KServe v2"):
        fill_output(response, "y", np.array([1j], numpy_type))
    assert not response.outputs and not response.raw_output_contents
    assert issubclass(NoV2TypeError, InvalidInputError)


# --- metadata ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(BY_TF_ENUM.values()), ids=lambda d: d.tf_name)
def test_datatype_of_every_table_type(dtype) -> None:
    if dtype.v2_name is None:
        with pytest.raises(NoV2TypeError, match=f"type {dtype.tf_name} cannot be expressed in KServe v2"):
            datatype_of(dtype)
    else:
        assert datatype_of(dtype) == dtype.v2_name == np_to_triton_dtype(dtype.numpy)
        assert np.dtype(triton_to_np_dtype(dtype.v2_name)) == dtype.numpy
