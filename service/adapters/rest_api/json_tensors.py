"""TF Serving's REST Predict request ⇄ named numpy arrays, for any signature, with TF Serving's rules and wording.

The rules and messages are those of tensorflow_serving/util/json_tensor.cc (and its test), the reference for
https://www.tensorflow.org/tfx/serving/api_rest: Predict takes the row format (`"instances"`) or the columnar
format (`"inputs"`), binary strings as `{"b64": ...}`. Where TF Serving refuses an input type this server can
carry (half, bfloat16 and uint16) the codec carries it; the tests pin each choice.

Request values are checked with cheap whole-list tests (types and lengths, level by level) and converted by
numpy in one call; only a request that fails them walks the slow path, which repeats TF Serving's element
by element conversion to word the error (and converts the rare valid value the cheap tests are unsure of).
"""

from __future__ import annotations

import base64
import binascii
import math
from itertools import chain
from typing import Any, NoReturn

import ml_dtypes
import numpy as np

from service.errors import InvalidInputError
from service.tensors.dtypes import DType
from service.tensors.spec import SignatureSpec
from service.adapters.rest_api.json_body import _B64, _cut, _json_type, _shape_text, _show, _utf8_safe

MAX_TENSOR_DEPTH = 32  # nesting levels of a tensor's value: far beyond real ranks, well inside the stack
_INT64_MIN, _UINT64_END = -(1 << 63), 1 << 64  # rapidjson reads integer tokens outside these as doubles


class _ValueError(Exception):
    """TF Serving's message for one value; the caller adds where the value was."""


def _type_name(dtype: DType) -> str:
    """TensorFlow's DataTypeString: float, int32, string, ..."""
    return dtype.tf_name.removeprefix("DT_").lower()


# --------------------------------------------------------------------------------------- Predict request


def parse_predict_request(body: Any, signature: SignatureSpec) -> tuple[dict[str, np.ndarray], bool]:
    """The request's input arrays, by input name, and whether it used the row format ("instances").

    Row format: a list with one item per example, each the bare value (one-input signatures) or an object
    naming every input; an input's items must share one shape and are stacked along a new dimension 0.
    Columnar format: the bare value (one-input signatures) or an object naming every input, each a nested
    list of any rank or a scalar. `signature_name` is the caller's business.
    """
    try:
        return _predict_request(body, signature)
    except InvalidInputError as error:
        raise _utf8_safe(error) from None


def _predict_request(body: Any, signature: SignatureSpec) -> tuple[dict[str, np.ndarray], bool]:
    if not isinstance(body, dict):
        raise InvalidInputError(f"JSON Value: {_show(body)} Is not object")
    if not signature.inputs:
        raise InvalidInputError(f"Failed to get input map for signature: {signature.name or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances and has_inputs:
        raise InvalidInputError(
            f"JSON Value: {_show(body)} Not formatted correctly expecting only one of 'inputs' or 'instances' "
            "keys to exist "
        )
    if has_instances:
        return _rows(body, signature), True
    if has_inputs:
        return _columns(body["inputs"], signature), False
    raise InvalidInputError("Missing 'inputs' or 'instances' key")


def _is_b64(value: Any) -> bool:
    """TF Serving's binary value: an object whose one key, "b64", holds a string."""
    return type(value) is dict and len(value) == 1 and type(value.get(_B64)) is str


def _is_named(value: Any) -> bool:
    return type(value) is dict and not _is_b64(value)


def _input_list(signature: SignatureSpec) -> str:
    return ",".join(sorted(signature.inputs))


def _rows(body: dict[str, Any], signature: SignatureSpec) -> dict[str, np.ndarray]:
    instances = body["instances"]
    if not isinstance(instances, list):
        raise InvalidInputError(f"JSON Value: {_show(body)} Excepting 'instances' to be an list/array")
    if not instances:
        raise InvalidInputError(f"JSON Value: {_show(body)} No values in 'instances' array")
    if not _is_named(instances[0]):
        if len(signature.inputs) > 1:
            raise InvalidInputError(
                "instances is a plain list, but expecting list of objects as multiple input tensors required as "
                f"per tensorinfo_map (the signature's inputs: {_input_list(signature)})"
            )
        for index, instance in enumerate(instances):
            if _is_named(instance):
                raise InvalidInputError(f"Expecting value/list but got object at item {index} of input list")
        (spec,) = signature.inputs.values()
        return {spec.name: _row_tensor(instances, spec.name, spec.dtype)}

    names = set(signature.inputs)
    for index, instance in enumerate(instances):
        if not _is_named(instance):
            raise InvalidInputError(f"Expecting object but got list at item {index} of input list")
        if instance.keys() != names:
            _instance_keys_error(index, instance, signature)
    return {
        name: _row_tensor([instance[name] for instance in instances], name, spec.dtype)
        for name, spec in signature.inputs.items()
    }


def _instance_keys_error(index: int, instance: dict[str, Any], signature: SignatureSpec) -> NoReturn:
    unknown = sorted(set(instance) - set(signature.inputs))
    if unknown:
        key = _cut(unknown[0])
        raise InvalidInputError(
            f"Failed to process element: {index} key: {key} of 'instances' list. Error: INVALID_ARGUMENT: "
            f"JSON object: does not have named input: {key} (the signature's inputs: {_input_list(signature)})"
        )
    missing = ",".join(sorted(set(signature.inputs) - set(instance)))
    raise InvalidInputError(
        f"Failed to process element: {index} of 'instances' list. JSON object: {_show(instance)} must only have "
        f"keys: {_input_list(signature)} (missing: {missing})"
    )


def _row_tensor(items: list[Any], name: str, dtype: DType) -> np.ndarray:
    """One input's instances stacked: they must all have one shape (TF Serving's AddInstanceItem)."""
    array = _fast_tensor(items, dtype)
    if array is not None:
        return array
    first_shape: tuple[int, ...] | None = None
    first_size = 0
    flat: list[Any] = []
    for index, item in enumerate(items):
        try:
            shape, values = _slow_tensor(item, dtype)
            size = len(values)
            if first_shape is None:
                first_shape, first_size = shape, size
            elif size != first_size:
                raise _ValueError(f"Expecting tensor size: {first_size} but got: {size}")
            elif shape != first_shape:
                raise _ValueError(f"Expecting shape {_shape_text(first_shape)} but got: {_shape_text(shape)}")
        except _ValueError as error:
            raise InvalidInputError(
                f"Failed to process element: {index} key: {name} of 'instances' list. Error: INVALID_ARGUMENT: "
                f"{error}"
            ) from None
        flat.extend(values)
    assert first_shape is not None
    return _from_flat(flat, (len(items), *first_shape), dtype)


def _columns(inputs: Any, signature: SignatureSpec) -> dict[str, np.ndarray]:
    if not _is_named(inputs):
        if len(signature.inputs) > 1:
            raise InvalidInputError(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
                f"tensorinfo_map (the signature's inputs: {_input_list(signature)})"
            )
        (spec,) = signature.inputs.values()
        return {spec.name: _column_tensor(inputs, spec.name, spec.dtype)}
    # TF Serving reads the signature's inputs from the object and ignores any other key it holds.
    for name in signature.inputs:
        if name not in inputs:
            raise InvalidInputError(
                f"Missing named input: {name} in 'inputs' object. (the signature's inputs: {_input_list(signature)})"
            )
    return {name: _column_tensor(inputs[name], name, spec.dtype) for name, spec in signature.inputs.items()}


def _column_tensor(value: Any, name: str, dtype: DType) -> np.ndarray:
    array = _fast_tensor(value, dtype)
    if array is not None:
        return array
    try:
        shape, values = _slow_tensor(value, dtype)
    except _ValueError as error:
        raise InvalidInputError(f"Failed to process input: {name} of 'inputs'. Error: {error}") from None
    return _from_flat(values, shape, dtype)


def _dense_shape(value: Any) -> tuple[int, ...]:
    """The shape read down the first items (TF Serving's GetDenseTensorShape), nesting bounded."""
    shape = []
    while type(value) is list:
        if len(shape) == MAX_TENSOR_DEPTH:
            raise _ValueError(f"Encountered list nested deeper than {MAX_TENSOR_DEPTH} levels")
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _leaves(value: Any) -> tuple[tuple[int, ...], list[Any]] | None:
    """The shape and the values of a dense nested list, checked a whole level at a time; None if not dense."""
    try:
        shape = _dense_shape(value)
    except _ValueError:
        return None
    level = [value]
    for size in shape:
        if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
            return None
        level = list(chain.from_iterable(level))
    return shape, level


_INT_KINDS = frozenset("iu")
_FLOAT_DTYPES = {
    np.dtype(np.float32): (1 << 24) - 1,  # TF Serving's IsLosslessDecimal: the type's largest exact integer
    np.dtype(np.float64): (1 << 53) - 1,
    np.dtype(np.float16): (1 << 11) - 1,
    np.dtype(ml_dtypes.bfloat16): (1 << 8) - 1,
}
_FLOAT_MAX = {
    np.dtype(np.float32): float(np.finfo(np.float32).max),
    np.dtype(np.float64): float(np.finfo(np.float64).max),
    np.dtype(np.float16): float(np.finfo(np.float16).max),
    np.dtype(ml_dtypes.bfloat16): float(ml_dtypes.finfo(ml_dtypes.bfloat16).max),
}
_NUMBER_TYPES = frozenset({int, float})


_BOOL_LOOKUPS = 64  # values of 0 or 1 whose JSON type is looked up before numpy's reading is trusted


def _numpy_read(value: Any, target: np.dtype) -> np.ndarray | None:
    """A dense nested list of JSON numbers for a float32, float64 or integer tensor, read by numpy in C (about
    twice as fast as walking it); None whenever numpy's reading could differ from TF Serving's rules, and the
    checked path decides. numpy reads JSON true and false as 1 and 0, so the few values equal to 0 or 1 are
    looked up in the list and any boolean among them sends the value to the checked path."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):  # ragged, or a value numpy cannot hold
        return None
    kind = array.dtype.kind
    if kind not in "if" or not array.size or array.ndim > MAX_TENSOR_DEPTH:
        return None
    if target.kind in _INT_KINDS:
        info = np.iinfo(target)
        if kind != "i" or array.min() < info.min or array.max() > info.max:
            return None
    elif np.abs(array).max() > _FLOAT_DTYPES[target]:  # large integers must be exact, large floats finite
        return None
    candidates = np.flatnonzero((array == 0) | (array == 1))
    if len(candidates) > _BOOL_LOOKUPS:
        return None
    for index in zip(*np.unravel_index(candidates, array.shape)):
        leaf = value
        for position in index:
            leaf = leaf[position]
        if type(leaf) is bool:
            return None
    return array.astype(target, copy=False)


def _fast_tensor(value: Any, dtype: DType) -> np.ndarray | None:
    """The array when cheap whole-list checks show the value is valid; None sends it to the slow path."""
    target = dtype.numpy
    if isinstance(value, list) and (target.kind in _INT_KINDS or target in (np.float32, np.float64)):
        array = _numpy_read(value, target)
        if array is not None:
            return array
    found = _leaves(value)
    if found is None:
        return None
    shape, leaves = found
    types = set(map(type, leaves))
    target = dtype.numpy
    try:
        if dtype.is_string:
            if not types <= {str, dict}:
                return None
            flat = np.empty(len(leaves), dtype=object)
            flat[:] = [item.encode() if type(item) is str else _b64_decode(item) for item in leaves]
            return flat.reshape(shape)
        if target.kind == "b":
            return np.array(leaves, dtype=np.bool_).reshape(shape) if types <= {bool} else None
        if target.kind in _INT_KINDS:  # numpy refuses an out-of-range Python int (OverflowError)
            return np.array(leaves, dtype=target).reshape(shape) if types <= {int} else None
        if target in _FLOAT_DTYPES:
            if not types <= _NUMBER_TYPES:
                return None
            if int in types:
                ints = leaves if float not in types else [item for item in leaves if type(item) is int]
                limit = _FLOAT_DTYPES[target]
                if max(ints) > limit or min(ints) < -limit:
                    return None
            wide = np.array(leaves, dtype=np.float64)
            if target != np.float64:
                too_big = np.abs(wide) > _FLOAT_MAX[target]
                if too_big.any() and np.isfinite(wide[too_big]).any():
                    return None
                return wide.astype(target).reshape(shape)
            return wide.reshape(shape)
    except (_ValueError, UnicodeEncodeError, OverflowError, ValueError, TypeError):
        return None
    return None  # complex: TF Serving converts no JSON value to it; the slow path words that


def _slow_tensor(value: Any, dtype: DType) -> tuple[tuple[int, ...], list[Any]]:
    """TF Serving's FillTensorProto: the shape read down the first items, every value checked against it."""
    shape = _dense_shape(value)
    rank = len(shape)
    values: list[Any] = []

    def fill(item: Any, level: int) -> None:
        if type(item) is not list:
            if level != rank:
                raise _ValueError(
                    f"JSON Value: {_show(item)} found at incorrect level: {level + 1} in the JSON DOM. "
                    f"Expected at level: {rank}"
                )
            values.append(_element(item, dtype))
            return
        if level >= rank:
            raise _ValueError(f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(item) != shape[level]:
            raise _ValueError(
                f"Encountered list at unexpected size: {len(item)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        for child in item:
            fill(child, level + 1)

    fill(value, 0)  # recursion depth is at most the rank, itself bounded by MAX_TENSOR_DEPTH
    return shape, values


def _type_error(value: Any, dtype: DType) -> _ValueError:
    return _ValueError(
        f"JSON Value: {_show(value)} Type: {_json_type(value)} is not of expected type: {_type_name(dtype)}"
    )


def _element(value: Any, dtype: DType) -> Any:
    """One JSON value as an element of `dtype` (TF Serving's AddValueToTensor), or its error."""
    target = dtype.numpy
    if dtype.is_string:
        if type(value) is dict:
            return _b64_decode(value)
        if type(value) is not str:
            raise _type_error(value, dtype)
        try:
            return value.encode()
        except UnicodeEncodeError:
            raise _ValueError(f"JSON Value: {_show(value)} is not valid UTF-8 (an unpaired surrogate)") from None
    if type(value) is dict:
        raise _type_error(value, dtype)
    if target.kind == "b":
        if type(value) is not bool:
            raise _type_error(value, dtype)
        return value
    if target.kind in _INT_KINDS:
        if type(value) is not int:
            raise _type_error(value, dtype)
        info = np.iinfo(target)
        if not info.min <= value <= info.max:  # TF Serving wraps int8/int16/uint8 silently; refused here
            raise _type_error(value, dtype)
        return value
    if target in _FLOAT_DTYPES:
        if type(value) not in _NUMBER_TYPES:
            raise _type_error(value, dtype)
        return _lossless(value, _FLOAT_DTYPES[target], _FLOAT_MAX[target], _type_name(dtype))
    raise _ValueError(f"Conversion of JSON Value: {_show(value)} to type: {_type_name(dtype)}")


def _lossless(value: int | float, max_int: int, max_value: float, target: str) -> float:
    """TF Serving's IsLosslessDecimal: an integer token must be exact in the type, a decimal in its range."""
    if type(value) is int and _INT64_MIN <= value < _UINT64_END:
        if abs(value) > max_int:
            raise _ValueError(f"Cannot convert JSON value: {value} to {target} without loss of precision.")
        return float(value)
    try:  # a decimal token, or an integer token rapidjson would have read as a double
        number = float(value)
    except OverflowError:
        number = math.inf
    if math.isfinite(number) and abs(number) > max_value or type(value) is int and math.isinf(number):
        raise _ValueError(f"Cannot convert JSON value: {_show(value)} to {target} without loss of precision.")
    return number


def _b64_decode(value: dict[str, Any]) -> bytes:
    """TF Serving's JsonDecodeBase64Object; like absl's Base64Unescape, the padding may be left off and ASCII
    whitespace anywhere is skipped (base64.encodebytes' line breaks, say)."""
    if not _is_b64(value):
        raise _ValueError(f"JSON Value: {_show(value)} not formatted correctly for base64 data")
    text = value[_B64]
    try:
        return _b64_unpadded(text)
    except (binascii.Error, ValueError):
        compact = text.translate(_NO_ASCII_SPACE)  # only on this rare path: the common one stays one call
        if compact != text:
            try:
                return _b64_unpadded(compact)
            except (binascii.Error, ValueError):
                pass
    raise _ValueError("Unable to base64 decode")


def b64_decode(value: dict[str, Any]) -> bytes:
    """A {"b64": ...} object decoded by TF Serving's rules; InvalidInputError when it is not base64."""
    try:
        return _b64_decode(value)
    except _ValueError as error:
        raise InvalidInputError(str(error)) from None


def _b64_unpadded(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


_NO_ASCII_SPACE = str.maketrans("", "", " \t\n\v\f\r")  # absl::ascii_isspace


def _from_flat(values: list[Any], shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    if dtype.is_string:
        flat = np.empty(len(values), dtype=object)
        flat[:] = values
        return flat.reshape(shape)
    return np.array(values, dtype=dtype.numpy).reshape(shape)
