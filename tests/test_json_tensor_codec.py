"""service.adapters.rest_api.json_tensors against TF Serving's REST rules (tensorflow_serving/util/json_tensor.cc and the
cases of its json_tensor_test.cc), plus the choices made where TF Serving refuses or mis-writes a value."""

from __future__ import annotations

import json
import math

import ml_dtypes
import numpy as np
import pytest
from tensorflow.core.example import example_pb2

from service.errors import InvalidInputError
from service.tensors.dtypes import BY_NUMPY, BY_TF_ENUM, DType
from service.adapters.rest_api.json_answers import classify_response, dumps, predict_response, regress_response
from service.adapters.rest_api.json_body import loads
from service.adapters.rest_api.json_examples import examples_from_json
from service.adapters.rest_api.json_tensors import MAX_TENSOR_DEPTH, parse_predict_request
from service.tensors.spec import SignatureSpec, TensorSpec

FLOAT32, FLOAT64 = BY_NUMPY[np.dtype(np.float32)], BY_NUMPY[np.dtype(np.float64)]
INT32, INT64, UINT8 = BY_NUMPY[np.dtype(np.int32)], BY_NUMPY[np.dtype(np.int64)], BY_NUMPY[np.dtype(np.uint8)]
BOOL, STRING = BY_NUMPY[np.dtype(np.bool_)], BY_NUMPY[np.dtype(object)]
HALF, BF16 = BY_NUMPY[np.dtype(np.float16)], BY_NUMPY[np.dtype(ml_dtypes.bfloat16)]
COMPLEX64 = BY_NUMPY[np.dtype(np.complex64)]


def signature(**inputs: DType) -> SignatureSpec:
    return SignatureSpec(
        "serving_default",
        "tensorflow/serving/predict",
        {name: TensorSpec(name, dtype, None) for name, dtype in inputs.items()},
        {},
    )


def parse(body: dict, **inputs: DType) -> tuple[dict[str, np.ndarray], bool]:
    return parse_predict_request(body, signature(**inputs))


def refused(body: dict, match: str, **inputs: DType) -> str:
    with pytest.raises(InvalidInputError, match=match) as caught:
        parse(body, **inputs)
    return str(caught.value)


def text(body: dict) -> str:
    return dumps(body).decode()


# ------------------------------------------------------------------------------------------ loads / dumps


def test_loads_accepts_the_non_finite_tokens_tf_serving_accepts() -> None:
    value = loads(b'{"instances": [NaN, Infinity, -Infinity, 1.5]}')
    assert math.isnan(value["instances"][0]) and value["instances"][1:] == [math.inf, -math.inf, 1.5]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"   ", "JSON Parse error: The document is empty. at offset: 3"),
        (b'{"a": }', "JSON Parse error: Invalid value. at offset: 6"),
        (b'{"a": 1} x', "JSON Parse error: The document root must not be followed by other values. at offset: 9"),
        (b'{"a": "\xff"}', "JSON Parse error: Invalid encoding in string. at offset: 7"),
        (b"[" * 100_000, "JSON Parse error: The document is nested too deeply."),
        (b"[" + b"9" * 5000 + b"]", "JSON Parse error: Number too big to be stored in double."),
    ],
)
def test_loads_errors_read_like_tf_servings(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        loads(data)
    assert str(caught.value) == message


def test_dumps_is_compact_utf8_with_tf_servings_non_finite_tokens() -> None:
    body = {"outputs": [math.nan, math.inf, -math.inf, 3.0, "é"]}
    assert dumps(body) == '{"outputs":[NaN,Infinity,-Infinity,3.0,"é"]}'.encode()
    assert dumps({"x": np.float32(0.1), "y": np.arange(2)}) == b'{"x":0.1,"y":[0,1]}'


# ----------------------------------------------------------------------------------- Predict: row format


def test_row_format_single_unnamed_input_is_stacked_along_dimension_0() -> None:
    arrays, row = parse({"instances": [[1, 2], [3, 4], [5, 6]]}, default=INT32)
    assert row is True
    assert arrays["default"].dtype == np.int32 and arrays["default"].tolist() == [[1, 2], [3, 4], [5, 6]]


def test_row_format_signature_name_is_ignored_here() -> None:
    arrays, _ = parse({"signature_name": "predict_images", "instances": [[1, 2]]}, default=INT32)
    assert arrays["default"].shape == (1, 2)


def test_row_format_mixed_integer_and_decimal_tokens_for_float_inputs() -> None:
    arrays, _ = parse({"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}, default=FLOAT32)
    np.testing.assert_array_equal(arrays["default"], np.array([1, 2, 3, 4, 5.003, 0.007, 0], np.float32))
    arrays, _ = parse({"instances": [1.0, 2, 0.662, 0]}, default=FLOAT64)
    assert arrays["default"].dtype == np.float64 and arrays["default"].tolist() == [1, 2, 0.662, 0]


def test_row_format_base64_scalars_and_lists() -> None:
    arrays, _ = parse({"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}, default=STRING)
    assert arrays["default"].dtype == object and arrays["default"].tolist() == [b"hello", b"world"]
    arrays, _ = parse({"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}, default=STRING)
    assert arrays["default"].shape == (2, 1)
    arrays, _ = parse({"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ"}]]}]}, default=STRING)
    assert arrays["default"].shape == (1, 2, 1) and arrays["default"].ravel().tolist() == [b"hello", b"world"]


def test_row_format_multiple_named_inputs() -> None:
    arrays, row = parse(
        {
            "instances": [
                {"int_tensor": [[1, 2], [3, 4], [5, 6]], "str_tensor": ["foo", "bar"], "float_tensor": [1.0, math.nan],
                 "dbl_tensor": [math.nan]},
                {"int_tensor": [[7, 8], [9, 0], [1, 2]], "str_tensor": ["baz", "bat"],
                 "float_tensor": [2.0, math.inf], "dbl_tensor": [2.0]},
            ]
        },
        int_tensor=INT32, str_tensor=STRING, float_tensor=FLOAT32, dbl_tensor=FLOAT64,
    )
    assert row is True
    assert arrays["int_tensor"].shape == (2, 3, 2)
    assert arrays["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]
    assert arrays["float_tensor"].dtype == np.float32 and arrays["float_tensor"][1, 1] == np.inf
    assert np.isnan(arrays["float_tensor"][0, 1]) and np.isnan(arrays["dbl_tensor"][0, 0])


def test_row_format_instances_errors() -> None:
    refused({"instances": {"a": 1}}, "Excepting 'instances' to be an list/array", x=INT32)
    refused({"instances": []}, "No values in 'instances' array", x=INT32)
    refused({"instances": [1, 2], "inputs": [1, 2]}, "Not formatted correctly expecting only one of", x=INT32)
    refused({"signature_name": "x"}, "^Missing 'inputs' or 'instances' key$", x=INT32)
    refused([1, 2], "Is not object", x=INT32)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="Failed to get input map for signature: serving_default"):
        parse_predict_request({"instances": [1]}, signature())


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([[1, 2], [3, 4], [5, 6, 7]], "Failed to process element: 2 key: x of 'instances' list. Error: "
                                      "INVALID_ARGUMENT: Expecting tensor size: 2 but got: 3"),
        ([[1, 2], [3, 4], [[5, 6]]],
         "Failed to process element: 2 key: x .* Expecting shape \\[2\\] but got: \\[1,2\\]"),
        ([1, [1]], "Failed to process element: 1 key: x .*Expecting tensor size: 1 but got: 1|Expecting shape \\[\\]"),
        ([[1, 2], ["a", "b"]], 'element: 1 key: x .*JSON Value: "a" Type: String is not of expected type: int32'),
        ([[1, [2]]], "element: 0 key: x .*Encountered list at unexpected level: 1 expected < 1"),
        ([[[1, 2], [3]]], "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        ([[[1, 2], 3]], "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ],
)
def test_row_format_ragged_instances_are_refused_naming_the_input(instances: list, message: str) -> None:
    refused({"instances": instances}, message, x=INT32)


def test_row_format_object_and_value_mix_and_key_errors() -> None:
    both = {"int_tensor": INT32, "str_tensor": STRING}
    first = {"int_tensor": [[1, 2]], "str_tensor": ["foo"]}
    refused({"instances": [first, [1, 20, 30], first]}, "Expecting object but got list at item 1 of input list", **both)
    refused({"instances": [["baz"], {"str_tensor": ["b"]}]}, "Expecting value/list but got object at item 1",
            str_tensor=STRING)
    refused({"instances": [[1], [2]]}, "instances is a plain list, but expecting list of objects .* "
            "\\(the signature's inputs: int_tensor,str_tensor\\)", **both)
    message = refused({"instances": [first, {**first, "extra": 1}]},
                      "Failed to process element: 1 key: extra of 'instances' list", **both)
    assert "does not have named input: extra" in message and "int_tensor,str_tensor" in message
    message = refused({"instances": [{"int_tensor": [[1, 2]]}]}, "Failed to process element: 0 of 'instances'", **both)
    assert "must only have keys: int_tensor,str_tensor (missing: str_tensor)" in message


def test_row_format_shapes_must_agree_across_named_instances() -> None:
    both = {"int_tensor": INT32, "str_tensor": STRING}
    refused({"instances": [{"int_tensor": [[1, 2], [3, 4]], "str_tensor": ["a"]},
                           {"int_tensor": [[[1, 2], [3, 4]]], "str_tensor": ["b"]}]},
            "key: int_tensor .*Expecting shape \\[2,2\\] but got: \\[1,2,2\\]", **both)
    refused({"instances": [{"int_tensor": [[1, 2], [3, 4], [5, 6], [7, 8]], "str_tensor": ["a"]},
                           {"int_tensor": [[7, 8], [9, 0], [1, 2]], "str_tensor": ["b"]}]},
            "Expecting tensor size: 8 but got: 6", **both)


def test_row_format_empty_instances_stack_to_a_zero_size_dimension() -> None:
    arrays, _ = parse({"instances": [[], []]}, x=FLOAT32)
    assert arrays["x"].shape == (2, 0) and arrays["x"].dtype == np.float32
    arrays, _ = parse({"instances": [[], []]}, x=STRING)
    assert arrays["x"].shape == (2, 0) and arrays["x"].dtype == object


# ------------------------------------------------------------------------------ Predict: columnar format


def test_columnar_format_named_and_bare() -> None:
    arrays, row = parse({"inputs": {"int_tensor": [[[1, 2], [3, 4], [5, 6]]]}}, int_tensor=INT32)
    assert row is False and arrays["int_tensor"].shape == (1, 3, 2)
    arrays, row = parse({"inputs": [[[1, 2], [3, 4], [5, 6]]]}, int_tensor=INT32)
    assert row is False and arrays["int_tensor"].shape == (1, 3, 2)


def test_columnar_format_multiple_inputs_of_different_batch_and_a_b64_scalar() -> None:
    arrays, _ = parse(
        {"inputs": {"int_tensor": [[[1, 2], [3, 4], [5, 6]]], "str_tensor": ["foo", "bar"],
                    "bin_tensor": {"b64": "aGVsbG8="}}},
        int_tensor=INT32, str_tensor=STRING, bin_tensor=STRING,
    )
    assert arrays["int_tensor"].shape == (1, 3, 2) and arrays["str_tensor"].tolist() == [b"foo", b"bar"]
    assert arrays["bin_tensor"].shape == () and arrays["bin_tensor"].item() == b"hello"


def test_columnar_format_scalars_of_every_kind() -> None:
    assert parse({"inputs": 7}, x=INT64)[0]["x"].shape == ()
    assert parse({"inputs": True}, x=BOOL)[0]["x"].item() is True
    assert parse({"inputs": "é"}, x=STRING)[0]["x"].item() == "é".encode()
    assert parse({"inputs": {"x": 2.5}}, x=FLOAT32)[0]["x"].item() == 2.5


def test_columnar_format_input_errors_name_the_inputs() -> None:
    both = {"a": INT32, "b": FLOAT32}
    refused({"inputs": [1, 2]}, "inputs is a plain value/list, but expecting an object as multiple input tensors "
            ".*\\(the signature's inputs: a,b\\)", **both)
    refused({"inputs": {"a": [1]}}, "Missing named input: b in 'inputs' object. \\(the signature's inputs: a,b\\)",
            **both)
    refused({"inputs": {"a": [1], "b": [[1.0], [2.0, 3.0]]}},
            "Failed to process input: b of 'inputs'. Error: Encountered list at unexpected size: 2", **both)
    refused({"inputs": {"a": [1.5], "b": [1.0]}},
            "input: a .*JSON Value: 1.5 Type: Number is not of expected type: int32", **both)


def test_columnar_format_ignores_keys_the_signature_does_not_name_as_tf_serving_does() -> None:
    arrays, _ = parse({"inputs": {"a": [1], "not_an_input": "x"}}, a=INT32)
    assert list(arrays) == ["a"]


# ------------------------------------------------------------------------------------ Predict: each type


@pytest.mark.parametrize("dtype", [d for d in BY_TF_ENUM.values() if d.numpy.kind in "iu"], ids=lambda d: d.tf_name)
def test_integer_inputs_take_integer_tokens_in_range(dtype: DType) -> None:
    info = np.iinfo(dtype.numpy)
    array = parse({"instances": [int(info.min), 0, int(info.max)]}, x=dtype)[0]["x"]
    assert array.dtype == dtype.numpy and array.tolist() == [info.min, 0, info.max]
    name = dtype.tf_name.removeprefix("DT_").lower()
    refused({"instances": [int(info.max) + 1]}, f"JSON Value: {int(info.max) + 1} Type: Number is not of expected "
            f"type: {name}$", x=dtype)
    refused({"instances": [int(info.min) - 1]}, f"is not of expected type: {name}", x=dtype)
    refused({"instances": [1.0]}, f"JSON Value: 1.0 Type: Number is not of expected type: {name}", x=dtype)
    refused({"instances": [1.5]}, "JSON Value: 1.5 Type: Number", x=dtype)
    refused({"instances": [True]}, "JSON Value: true Type: True is not of expected type", x=dtype)
    refused({"instances": ["1"]}, 'JSON Value: "1" Type: String is not of expected type', x=dtype)
    refused({"instances": [None]}, "JSON Value: null Type: Null is not of expected type", x=dtype)
    refused({"instances": [math.nan]}, "JSON Value: NaN Type: Number is not of expected type", x=dtype)


def test_huge_integer_tokens() -> None:
    array = parse({"instances": [2**64 - 1, 0]}, x=BY_NUMPY[np.dtype(np.uint64)])[0]["x"]
    assert array.dtype == np.uint64 and array[0] == 2**64 - 1
    refused({"instances": [2**64]}, "is not of expected type: uint64", x=BY_NUMPY[np.dtype(np.uint64)])
    refused({"instances": [2**63]}, "is not of expected type: int64", x=INT64)
    refused({"instances": [10**400]}, "is not of expected type: int64", x=INT64)
    refused({"instances": [10**400]}, "Cannot convert JSON value: .* to double without loss of precision", x=FLOAT64)


@pytest.mark.parametrize(("dtype", "exact_limit"), [(FLOAT32, 2**24 - 1), (FLOAT64, 2**53 - 1), (HALF, 2**11 - 1),
                                                    (BF16, 2**8 - 1)], ids=lambda d: getattr(d, "tf_name", d))
def test_float_inputs_refuse_integer_tokens_they_cannot_hold_exactly(dtype: DType, exact_limit: int) -> None:
    """TF Serving's IsLosslessDecimal (16777217 for float, 9007199254740993 for double); the same rule with the
    type's own precision for half and bfloat16, which TF Serving's REST API does not take at all."""
    array = parse({"instances": [exact_limit, -exact_limit, 0.5]}, x=dtype)[0]["x"]
    assert array.dtype == dtype.numpy and array.astype(np.float64).tolist() == [exact_limit, -exact_limit, 0.5]
    name = dtype.tf_name.removeprefix("DT_").lower()
    refused({"instances": [exact_limit + 2]}, f"^Failed to process element: 0 key: x .*Cannot convert JSON value: "
            f"{exact_limit + 2} to {name} without loss of precision.$", x=dtype)


def test_float32_inputs_refuse_decimals_beyond_its_range_but_take_non_finite_tokens() -> None:
    refused({"instances": [1.7976931348623157e308]}, "to float without loss of precision", x=FLOAT32)
    refused({"instances": [3.4028236e38]}, "to float without loss of precision", x=FLOAT32)
    array = parse({"instances": [math.nan, math.inf, -math.inf, 3.4028234e38]}, x=FLOAT32)[0]["x"]
    assert np.isnan(array[0]) and array[1:3].tolist() == [math.inf, -math.inf] and np.isfinite(array[3])
    refused({"instances": [70000.0]}, "to half without loss of precision", x=HALF)
    # An integer token past uint64 is a double to rapidjson, so TF Serving checks only its range:
    assert parse({"instances": [2**64]}, x=FLOAT32)[0]["x"][0] == np.float32(2**64)


@pytest.mark.parametrize("dtype", [FLOAT32, FLOAT64, HALF, BF16], ids=lambda d: d.tf_name)
def test_float_inputs_refuse_non_numbers(dtype: DType) -> None:
    name = dtype.tf_name.removeprefix("DT_").lower()
    refused({"instances": [1.0, True]}, f"JSON Value: true Type: True is not of expected type: {name}", x=dtype)
    refused({"instances": ["1.5"]}, f'JSON Value: "1.5" Type: String is not of expected type: {name}', x=dtype)
    refused({"instances": [None]}, "Type: Null", x=dtype)
    refused({"instances": [{"b64": "AAAA"}]}, 'JSON Value: {"b64": "AAAA"} Type: Object is not of expected type',
            x=dtype)


@pytest.mark.parametrize("dtype", [FLOAT32, FLOAT64, INT32, INT64, UINT8], ids=lambda d: d.tf_name)
def test_numbers_read_by_numpy_still_refuse_a_boolean_among_them(dtype: DType) -> None:
    """Dense numeric lists are read by numpy, which takes true and false for 1 and 0: a boolean hidden among
    numbers (one of few zeros and ones, or one of many) is still refused in TF Serving's words."""
    name = dtype.tf_name.removeprefix("DT_").lower()
    few = [[[2, 3], [4, True]], [[0, 1], [5, 6]]]
    many = [[0] * 100 + [False]]
    for value in (few, many):
        refused({"instances": value}, f"Type: (True|False) is not of expected type: {name}", x=dtype)
        refused({"inputs": value}, f"Type: (True|False) is not of expected type: {name}", x=dtype)
    array = parse({"instances": [[[2, 3], [0, 1]], [[0, 1], [5, 6]]]}, x=dtype)[0]["x"]
    assert array.dtype == dtype.numpy and array.tolist() == [[[2, 3], [0, 1]], [[0, 1], [5, 6]]]


def test_bool_inputs_take_only_true_and_false() -> None:
    assert parse({"instances": [[True, False]]}, x=BOOL)[0]["x"].tolist() == [[True, False]]
    refused({"instances": [1]}, "JSON Value: 1 Type: Number is not of expected type: bool", x=BOOL)
    refused({"instances": ["true"]}, "Type: String is not of expected type: bool", x=BOOL)


def test_string_inputs_text_and_base64() -> None:
    array = parse({"instances": ["héllo", {"b64": "AP8="}, {"b64": "AP8"}, ""]}, x=STRING)[0]["x"]
    assert array.tolist() == ["héllo".encode(), b"\x00\xff", b"\x00\xff", b""]
    refused({"instances": [1]}, "JSON Value: 1 Type: Number is not of expected type: string", x=STRING)
    refused({"instances": [{"b64": "***"}]}, "Unable to base64 decode", x=STRING)
    refused({"instances": [["a"], [{"b64": 5}]]}, 'JSON Value: {"b64": 5} not formatted correctly for base64 data',
            x=STRING)
    # Not a b64 object (two keys), so TF Serving reads it as an object of named inputs
    refused({"instances": [{"b64": "AA==", "y": 1}]}, "does not have named input: b64", x=STRING)
    refused({"inputs": [{"b64": "AA==", "y": 1}]}, "not formatted correctly for base64 data", x=STRING)
    refused({"instances": ["\ud800"]}, "not valid UTF-8", x=STRING)


def test_complex_inputs_are_refused_in_tf_servings_words() -> None:
    refused({"instances": [1.0]}, "Conversion of JSON Value: 1.0 to type: complex64", x=COMPLEX64)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    value: list = [1.0]
    for _ in range(MAX_TENSOR_DEPTH + 5):
        value = [value]
    refused({"inputs": value}, f"input: x .*nested deeper than {MAX_TENSOR_DEPTH} levels", x=FLOAT32)
    refused({"instances": [value]}, f"nested deeper than {MAX_TENSOR_DEPTH} levels", x=FLOAT32)
    deep = loads(b'{"inputs": ' + b"[" * 900 + b"1" + b"]" * 900 + b"}")
    refused(deep, "nested deeper", x=FLOAT32)
    fine: list = [2.0]
    for _ in range(MAX_TENSOR_DEPTH - 1):
        fine = [fine]
    assert parse({"inputs": fine}, x=FLOAT32)[0]["x"].ndim == MAX_TENSOR_DEPTH


def test_errors_echo_only_a_bounded_part_of_a_huge_value() -> None:
    message = refused({"instances": [["x" * 100_000] * 1000]}, "Type: Array|Type: String", x=INT32)
    assert len(message) < 1000


def test_large_numeric_request_converts_exactly() -> None:
    image = np.random.default_rng(1).random((4, 64, 64, 3)).astype(np.float32)
    body = loads(dumps({"instances": image.tolist()}))
    array = parse(body, x=FLOAT32)[0]["x"]
    assert array.dtype == np.float32 and np.array_equal(array, image)


# -------------------------------------------------------------------------------------- Predict response


def test_single_output_rows_and_columns() -> None:
    tensor = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32)
    expected = [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]
    assert predict_response({"int_tensor": tensor}, True) == {"predictions": expected}
    assert predict_response({"int_tensor": tensor}, False) == {"outputs": expected}
    assert predict_response({"v": np.arange(1, 6, dtype=np.int32)}, True) == {"predictions": [1, 2, 3, 4, 5]}


def test_multiple_outputs_rows_and_columns() -> None:
    outputs = {
        "double_scalar_tensor": np.array([8.0, 9.0]),
        "float_tensor": np.array([[1.0], [2.0]], np.float32),
        "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], dtype=object),
        "str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object),
    }
    assert json.loads(dumps(predict_response(outputs, True))) == {
        "predictions": [
            {"double_scalar_tensor": 8.0, "float_tensor": [1.0], "str_tensor": ["foo", "bar"],
             "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]},
            {"double_scalar_tensor": 9.0, "float_tensor": [2.0], "str_tensor": ["baz", "bat"],
             "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]},
        ]
    }
    assert json.loads(dumps(predict_response(outputs, False))) == {
        "outputs": {
            "double_scalar_tensor": [8.0, 9.0], "float_tensor": [[1.0], [2.0]],
            "str_tensor": [["foo", "bar"], ["baz", "bat"]],
            "str_tensor_bytes": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                                 [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]],
        }
    }


def test_row_format_needs_a_shared_dimension_0() -> None:
    with pytest.raises(InvalidInputError, match="Tensor name: s has inconsistent batch size: 1 expecting: 2"):
        predict_response({"i": np.zeros((2, 3), np.int32), "s": np.array([[b"a", b"b", b"c"]], dtype=object)}, True)
    with pytest.raises(InvalidInputError, match="Tensor name: i has inconsistent batch size: 0 expecting: 1"):
        predict_response({"s": np.zeros((1, 2), object), "i": np.zeros((0, 2), np.int32)}, True)
    with pytest.raises(InvalidInputError, match="Tensor name: t has no shape information"):
        predict_response({"t": np.int32(1)}, True)
    with pytest.raises(InvalidInputError, match="Cannot convert empty tensor map to JSON"):
        predict_response({}, False)
    assert predict_response({"t": np.int32(1)}, False) == {"outputs": 1}
    # Outputs of different dimension 0 are fine in the columnar format
    assert predict_response({"a": np.zeros(2, np.int8), "b": np.zeros(3, np.int8)}, False)["outputs"]["b"] == [0, 0, 0]


def test_zero_batch_outputs_give_empty_predictions() -> None:
    assert predict_response({"int_tensor": np.zeros((0, 2), np.int32)}, True) == {"predictions": []}
    outputs = {"s": np.zeros((0, 1, 2), object), "f": np.zeros((0, 3, 4), np.float32)}
    assert predict_response(outputs, True) == {"predictions": []}


def test_float32_outputs_are_written_as_tf_serving_writes_them() -> None:
    """WriteDecimal: six significant digits when they read back as the same float32, else %.9g; whole numbers
    keep a '.0'; NaN and the infinities as tokens. Notation may differ (9000000.0 for TF Serving's 9e+06), the
    number never does."""
    values = np.array([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]], np.float32)
    assert text(predict_response({"f": values}, True)) == (
        '{"predictions":[[9000000.0,999999.0,0.5],[0.0003,3e-05,555557.5]]}'
    )
    special = np.array([[math.nan, math.inf], [3, -math.inf]], np.float32)
    assert text(predict_response({"f": special}, True)) == '{"predictions":[[NaN,Infinity],[3.0,-Infinity]]}'
    tricky = np.array([0.1, 1 / 3, 123456.7, 1.001953125, 0.2, -0.0, 1e-45, 3.4028235e38], np.float32)
    assert text(predict_response({"f": tricky}, False)) == (
        '{"outputs":[0.1,0.333333343,123456.703,1.00195312,0.2,-0.0,1.4013e-45,3.40282347e+38]}'
    )


def test_float32_output_numbers_equal_tf_servings_decimals_on_random_values() -> None:
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2**32, size=20_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = np.concatenate([bits[np.isfinite(bits)], rng.random(20_000).astype(np.float32),
                             (rng.standard_normal(5_000) * 1e-9).astype(np.float32)])
    got = predict_response({"f": values}, False)["outputs"]
    for value, number in zip(values.tolist(), got):
        decimal = "%.6g" % value
        if np.float32(float(decimal)) != np.float32(value):
            decimal = "%.9g" % value
        assert number == float(decimal)


def test_other_output_types() -> None:
    outputs = {
        "d": np.array([0.1, 1 / 3]),  # double: any round-tripping decimal is TF Serving's number
        "b": np.array([True, False]),
        "u64": np.array([2**64 - 1, 0], np.uint64),
        "i8": np.array([-128, 127], np.int8),
        "h": np.array([0.1, 2.0], np.float16),  # TF Serving cannot write half: the float32 it widens to
        "bf": np.array([0.1, 3.0], ml_dtypes.bfloat16),
    }
    assert text(predict_response(outputs, False)) == (
        '{"outputs":{"d":[0.1,0.3333333333333333],"b":[true,false],"u64":[18446744073709551615,0],'
        '"i8":[-128,127],"h":[0.0999755859,2.0],"bf":[0.100097656,3.0]}}'
    )
    with pytest.raises(InvalidInputError, match="Failed to write JSON value for tensor type: complex64"):
        predict_response({"c": np.array([1 + 2j], np.complex64)}, True)


def test_string_outputs_text_bytes_suffix_and_non_utf8() -> None:
    """"..._bytes" outputs are always base64 (TF Serving's rule); other non-UTF-8 strings, which TF Serving
    writes raw as invalid JSON, are base64 too."""
    values = np.array([b"caf\xc3\xa9", b"\xff\xfe", "already text"], dtype=object)
    assert predict_response({"s": values}, False) == {"outputs": ["café", {"b64": "//4="}, "already text"]}
    assert predict_response({"s_bytes": values[:1]}, False) == {"outputs": [{"b64": "Y2Fmw6k="}]}
    assert predict_response({"s": np.array([b"x", b"y"])}, False) == {"outputs": ["x", "y"]}


# -------------------------------------------------------------------------------------- Classify / Regress


def parsed_examples(body: dict) -> list[example_pb2.Example]:
    return [example_pb2.Example.FromString(data) for data in examples_from_json(body)]


def features(example: example_pb2.Example) -> dict[str, tuple[str, list]]:
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return out


def test_examples_feature_typing() -> None:
    examples = parsed_examples({
        "examples": [
            {"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},
            {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0, "intboolmix": [1, True, False], "none": []},
        ]
    })
    assert features(examples[0]) == {
        "names": ("bytes_list", [b"foo", b"bar"]), "ratings": ("float_list", [8.0, 9.0]), "age": ("int64_list", [20]),
    }
    assert features(examples[1]) == {
        "names": ("bytes_list", [b"baz", b"hello"]), "ratings": ("float_list", [6.0]),
        "intboolmix": ("int64_list", [1, 1, 0]), "none": (None, []),
    }


def test_examples_take_the_context_with_the_example_winning_a_shared_name() -> None:
    body = {
        "signature_name": "custom_signature",
        "context": {"query": "pizza", "location": ["sfo"], "age": 1},
        "examples": [{"names": "bar", "ratings": [8.0, math.nan, math.inf, -math.inf]}, {"age": [30, 31]}],
    }
    first, second = parsed_examples(body)
    got = features(first)
    assert got["query"] == ("bytes_list", [b"pizza"]) and got["location"] == ("bytes_list", [b"sfo"])
    assert got["names"] == ("bytes_list", [b"bar"]) and got["age"] == ("int64_list", [1])
    assert math.isnan(got["ratings"][1][1]) and got["ratings"][1][2:] == [math.inf, -math.inf]
    assert features(second)["age"] == ("int64_list", [30, 31])
    # TF Serving's bytes: the serialized context followed by the serialized example
    context = example_pb2.Example()
    context.features.feature["k"].bytes_list.value.append(b"v")
    example = example_pb2.Example()
    example.features.feature["n"].int64_list.value.append(5)
    assert examples_from_json({"context": {"k": "v"}, "examples": [{"n": 5}]}) == [
        context.SerializeToString() + example.SerializeToString()
    ]
    assert examples_from_json({"examples": [{}]}) == [b""]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"context": [{"names": ["foo"]}], "examples": [{}]}, "Example must be JSON object but got JSON Array"),
        ({"context": {"a": 1}}, "When method is classify, key 'examples' is expected and was not found"),
        ({"examples": {"names": ["foo"]}}, "Expecting 'examples' value to be an list/array"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": [[{"names": ["foo"]}]]}, "Example must be JSON object but got JSON Array"),
        ({"examples": [{"names": [10, None]}]}, "Feature: names has element with unexpected JSON type: Null"),
        ({"examples": [{"names": [10, 10.0]}]}, "Unexpected element type in feature: names expecting type: int64"),
        ({"examples": [{"names": [1.5, "a"]}]}, "Unexpected element type in feature: names expecting type: float"),
        ({"examples": [{"names": [10, {"test": 10}]}]}, "names has element with unexpected JSON type: Object"),
        ({"examples": [{"names": [[10], 20]}]}, "names has element with unexpected JSON type: Array"),
        ({"examples": [{"names": [20, 18446744073709551603]}]},
         "Feature: names has uint64 element. Only int64 is supported."),
        ({"examples": [{"names": 1.7976931348623157e308}]}, "to float without loss of precision"),
        ({"examples": [{"names": {"b64": "!"}}]}, "Unable to base64 decode"),
        ("[]", "Is not object"),
    ],
)
def test_examples_errors(body: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", "\\(").replace(")", "\\)")):
        examples_from_json(body)


def test_classify_response() -> None:
    classes = np.array([[b"car", b"bike", b"bus"], [b"car", b"bike", b"bus"]], dtype=object)
    scores = np.array([[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]], np.float32)
    assert text(classify_response(classes, scores)) == (
        '{"results":[[["car",0.2],["bike",0.7],["bus",0.1]],[["car",0.7],["bike",0.1],["bus",0.2]]]}'
    )
    assert classify_response(None, scores[:1, :2]) == {"results": [[["", 0.2], ["", 0.7]]]}
    assert classify_response(classes[:1, :1], None) == {"results": [[["car", 0.0]]]}
    with pytest.raises(InvalidInputError, match="Cannot convert empty ClassificationResults to JSON"):
        classify_response(np.zeros((0, 3), object), None)
    with pytest.raises(InvalidInputError, match="Expected scores Tensor shape"):
        classify_response(classes, scores[:, :2])


def test_regress_response() -> None:
    assert text(regress_response(np.array([0.2, 0.9, 1.0], np.float32))) == '{"results":[0.2,0.9,1.0]}'
    values = np.array([[0.2], [math.inf], [1.0], [-math.inf], [math.nan]], np.float32)
    assert text(regress_response(values)) == '{"results":[0.2,Infinity,1.0,-Infinity,NaN]}'
    with pytest.raises(InvalidInputError, match="Cannot convert empty RegressionResults to JSON"):
        regress_response(np.zeros(0, np.float32))
    with pytest.raises(InvalidInputError, match=r"\[batch_size\] or \[batch_size, 1\] but got \[2,2\]"):
        regress_response(np.zeros((2, 2), np.float32))
