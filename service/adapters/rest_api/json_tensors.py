"""TF Serving's REST JSON ⇄ named numpy arrays, for any signature, with TF Serving's rules and error wording.

The rules and messages are those of tensorflow_serving/util/json_tensor.cc (and its test), the reference for
https://www.tensorflow.org/tfx/serving/api_rest: Predict takes the row format (`"instances"`) or the columnar
format (`"inputs"`) and answers `"predictions"` or `"outputs"` to match; Classify and Regress take tf.Example
features as JSON and answer `"results"`. Where TF Serving refuses a type this server can carry (half,
bfloat16 and uint16 inputs; half and bfloat16 outputs) the codec carries it, and where TF Serving would write
invalid JSON (a string output that is not UTF-8) it writes `{"b64": ...}`; the module's tests pin each choice.

Request values are checked with cheap whole-list tests (types and lengths, level by level) and converted by
numpy in one call; only a request that fails them walks the slow path, which repeats TF Serving's element
by element conversion to word the error (and converts the rare valid value the cheap tests are unsure of).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from itertools import chain
from typing import Any, Iterable, Mapping, NoReturn

import ml_dtypes
import numpy as np
import orjson
from tensorflow.core.example import example_pb2, feature_pb2

from service.errors import InvalidInputError
from service.tensors.dtypes import DType
from service.tensors.spec import SignatureSpec

MAX_TENSOR_DEPTH = 32  # nesting levels of a tensor's value: far beyond real ranks, well inside the stack
_B64 = "b64"
_BYTES_SUFFIX = "_bytes"  # TF Serving writes string outputs so named as {"b64": ...} (json_tensor.cc)
_INT64_MIN, _UINT64_END = -(1 << 63), 1 << 64  # rapidjson reads integer tokens outside these as doubles
_SHOW_CHARS = 200  # an echoed JSON value is cut here: a request may be megabytes


class _ValueError(Exception):
    """TF Serving's message for one value; the caller adds where the value was."""


# ------------------------------------------------------------------------------------------ JSON text


def loads(data: bytes | str) -> Any:
    """Parse a request body; errors read like TF Serving's ("JSON Parse error: ... at offset: N").

    NaN, Infinity and -Infinity are accepted (TF Serving parses with rapidjson's kParseNanAndInfFlag), but a
    number too large for a double (1e400) is refused as rapidjson refuses it, not read as an infinity. Nesting
    is bounded by the parser's recursion guard, turned into a parse error instead of a crash.
    """
    if not data:
        raise InvalidInputError("JSON Parse error: The document is empty")
    try:
        return orjson.loads(data)  # a few times faster on number-heavy bodies; strict where TF Serving is not
    except orjson.JSONDecodeError:
        pass  # NaN/Infinity tokens, a number beyond a double, lone surrogates, deep nesting: decided below
    try:
        if _may_overflow(data):  # rare: only then does every number go through a Python-level check
            return json.loads(data, parse_float=_finite_float, parse_int=_double_sized_int)
        return json.loads(data)
    except _NumberTooBig:
        raise InvalidInputError("JSON Parse error: Number too big to be stored in double.") from None
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"JSON Parse error: {_rapidjson_wording(error)} at offset: {error.pos}") from None
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"JSON Parse error: Invalid encoding in string. at offset: {error.start}") from None
    except RecursionError:
        raise InvalidInputError("JSON Parse error: The document is nested too deeply.") from None
    except ValueError:  # an integer token of more digits than Python converts (4300)
        raise InvalidInputError("JSON Parse error: Number too big to be stored in double.") from None


class _NumberTooBig(Exception):
    """A number token beyond the largest double (rapidjson's kParseErrorNumberTooBig)."""


# A number token reaches 1.8e308 only with an exponent of three or more digits, or with 210 or more digits
# before its exponent (which then has at most two). `_may_overflow` looks for either in a copy of the body with
# every digit made '0' and '+' dropped: 2-3 ms per MB, a tenth of the parse at most, where checking every number
# would add a third to it. It may fire on a string's contents; the check it enables is exact.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_OVERFLOW_HINTS = (b"e000", b"0" * 210)


def _may_overflow(data: bytes | str) -> bool:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    skeleton = raw.translate(_DIGITS_AS_ZERO, b"+")
    return any(hint in skeleton for hint in _OVERFLOW_HINTS)


def _finite_float(token: str) -> float:
    number = float(token)
    if math.isinf(number):  # the tokens NaN/Infinity go to parse_constant, not here
        raise _NumberTooBig
    return number


def _double_sized_int(token: str) -> int:
    """An integer token as Python reads it; one beyond the largest double is refused, as rapidjson (which
    reads integers outside int64/uint64 as doubles) refuses it."""
    number = int(token)
    if len(token) > 300:
        try:
            float(number)
        except OverflowError:
            raise _NumberTooBig from None
    return number


_PARSE_WORDING = {  # Python's json message → rapidjson's, where one clearly corresponds
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
    "Extra data": "The document root must not be followed by other values.",
}


def _rapidjson_wording(error: json.JSONDecodeError) -> str:
    if error.msg == "Expecting value" and not error.doc[error.pos :].strip():
        return "The document is empty." if not str(error.doc).strip() else "Invalid value."
    return _PARSE_WORDING.get(error.msg, error.msg)


def dumps(body: Any) -> bytes:
    """Serialise a response: compact UTF-8, NaN/Infinity/-Infinity written as TF Serving writes them.

    orjson is not installed here (and would refuse NaN), so this is the standard library's C encoder; the
    values `predict_response` and the others return are already plain Python, so no per-value hook runs.
    """
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=True, default=_plain).encode()


def _plain(value: Any) -> Any:
    """dumps' fallback for numpy values a caller left in a body."""
    if isinstance(value, (np.ndarray, np.generic)):
        return _json_values(np.asarray(value), "")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _show(value: Any) -> str:
    """A JSON value as an error message echoes it (TF Serving's JsonValueToString), cut short."""
    text = json.dumps(_pruned(value, 4), ensure_ascii=False, allow_nan=True)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def _cut(name: str) -> str:
    """A key of the request (an input or feature name) as a message echoes it, cut short like a value."""
    return name if len(name) <= _SHOW_CHARS else name[: _SHOW_CHARS - 3] + "..."


def _pruned(value: Any, depth: int) -> Any:
    """A small copy of `value` to render: a few items per level, a few levels, short strings."""
    if isinstance(value, str):
        return value if len(value) <= _SHOW_CHARS else value[:_SHOW_CHARS]
    if isinstance(value, list):
        if depth <= 0:
            return ["..."] if value else []
        head = [_pruned(item, depth - 1) for item in value[:8]]
        return head + ["..."] if len(value) > 8 else head
    if isinstance(value, dict):
        if depth <= 0:
            return {"...": "..."} if value else {}
        return {str(key)[:_SHOW_CHARS]: _pruned(item, depth - 1) for key, item in list(value.items())[:8]}
    return value


def _json_type(value: Any) -> str:
    """rapidjson's type names, as TF Serving's errors use them."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


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


def _utf8_safe(error: InvalidInputError) -> InvalidInputError:
    """The error, its message made encodable as UTF-8: a string or key it echoes from the request may hold an
    unpaired surrogate (JSON's "\\ud800"), which gRPC details, logs and strict JSON readers cannot take; it is
    written as the six characters \\ud800 instead."""
    text = str(error)
    try:
        text.encode()
    except UnicodeEncodeError:
        return InvalidInputError(text.encode("utf-8", "backslashreplace").decode())
    return error


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


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


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


def _fast_tensor(value: Any, dtype: DType) -> np.ndarray | None:
    """The array when cheap whole-list checks show the value is valid; None sends it to the slow path."""
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


# -------------------------------------------------------------------------------------- Predict response


def predict_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """TF Serving's Predict answer in the request's format (MakeJsonFromTensors).

    Row format: `{"predictions": [...]}`, one item per position of dimension 0, the bare value for one output
    or an object by output name; every output needs a dimension 0 and the same size along it. Columnar:
    `{"outputs": value}` for one output, `{"outputs": {name: value}}` for several.
    """
    if not outputs:
        raise InvalidInputError("Cannot convert empty tensor map to JSON")
    arrays = {name: np.asarray(array) for name, array in outputs.items()}
    if not row_format:
        values = {name: _json_values(array, name) for name, array in arrays.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    batch_size: int | None = None
    for name, array in arrays.items():
        if array.ndim == 0:
            raise InvalidInputError(f"Tensor name: {name} has no shape information ")
        if batch_size is not None and array.shape[0] != batch_size:
            raise InvalidInputError(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch_size}"
            )
        batch_size = array.shape[0]
    columns = {name: _json_values(array, name) for name, array in arrays.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [dict(zip(columns, row)) for row in zip(*columns.values())]}


def _json_values(array: np.ndarray, name: str) -> Any:
    """An output array as JSON values, nested like its shape (a bare value for a scalar).

    Strings are text, or {"b64": ...} for outputs named "..._bytes" (TF Serving's rule) and for bytes that
    are not UTF-8. float32 values are the numbers TF Serving writes (see _float32_numbers); half and
    bfloat16, which TF Serving cannot write, are written as the float32 values they widen to.
    """
    if array.dtype.kind in "SU":
        array = array.astype(object)
    dtype = array.dtype
    if dtype == object:
        return _strings(array, always_b64=name.endswith(_BYTES_SUFFIX))
    if dtype == np.float32:
        return _float32_numbers(array).tolist()
    if dtype in (np.float16, ml_dtypes.bfloat16):
        return _float32_numbers(array.astype(np.float32)).tolist()
    if dtype.kind in "biuf":
        return array.tolist()
    type_name = dtype.name if dtype.kind != "c" else ("complex64" if dtype == np.complex64 else "complex128")
    raise InvalidInputError(f"Failed to write JSON value for tensor type: {type_name} (output '{name}')")


def _strings(array: np.ndarray, always_b64: bool) -> Any:
    flat = array.reshape(-1)
    out = np.empty(flat.shape, dtype=object)
    out[:] = [_string(item, always_b64) for item in flat.tolist()]
    return out.reshape(array.shape).tolist()


def _string(value: bytes | str, always_b64: bool) -> str | dict[str, str]:
    if isinstance(value, str):
        if not always_b64:
            return value
        value = value.encode()
    if not always_b64:
        try:
            return value.decode()
        except UnicodeDecodeError:
            pass  # TF Serving would write the raw bytes: invalid JSON
    return {_B64: base64.b64encode(value).decode("ascii")}


# float32 → the number TF Serving writes (WriteDecimal in json_tensor.cc): absl::StrCat's six significant
# digits when they read back as the same float32, else "%.9g". The numbers below are the doubles nearest those
# decimals, so any JSON encoder writes them as digits a reader parses to exactly TF Serving's value (the
# notation may differ: Python writes 9000000.0 where TF Serving writes 9e+06).
_POW10_BIAS = 64
_POW10 = np.array([float(f"1e{k}") for k in range(-_POW10_BIAS, _POW10_BIAS + 1)])


def _round_significant(x: np.ndarray, digits: int) -> tuple[np.ndarray, np.ndarray]:
    """The doubles nearest the `%.{digits}g` decimals of finite, non-zero float32 values `x` (as float64),
    and where that arithmetic is exact; the caller formats strings for the rest (tiny values, near-ties).

    x·10^s is exact for 0 ≤ s ≤ 12 (24 + 28 bits), so np.rint rounds half-to-even exactly as printf does;
    for other |s| ≤ 22 the scaled value carries at most one rounding, harmless unless it lies next to a tie.
    Then m·10^-s of exact operands is one correctly rounded operation: the double nearest the decimal.
    """
    magnitude = np.abs(x)
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log10(magnitude)).astype(np.int64)
    exponent += magnitude >= _POW10[exponent + 1 + _POW10_BIAS]  # log10 may be one off by a power of ten
    exponent -= magnitude < _POW10[exponent + _POW10_BIAS]
    shift = digits - 1 - exponent
    in_table = np.abs(shift) <= 22
    shift = np.clip(shift, -22, 22)
    scale = _POW10[np.abs(shift) + _POW10_BIAS]
    up = shift >= 0
    scaled = np.where(up, x * scale, x / scale)
    mantissa = np.rint(scaled)
    exact = in_table & (((shift >= 0) & (shift <= 12)) | (np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) > 1e-6))
    return np.where(up, mantissa / scale, mantissa * scale), exact


def _formatted(x: np.ndarray, digits: int) -> np.ndarray:
    numbers, exact = _round_significant(x, digits)
    if not exact.all():
        spec = f"%.{digits}g"
        numbers[~exact] = [float(spec % value) for value in x[~exact].tolist()]
    return numbers


def _float32_numbers(array: np.ndarray) -> np.ndarray:
    """float64 values whose shortest repr is the decimal TF Serving writes for each float32 (NaN, ±inf and
    zeros unchanged)."""
    narrow = np.asarray(array, dtype=np.float32)
    wide = narrow.astype(np.float64)
    plain = np.isfinite(wide) & (wide != 0)
    if not plain.any():
        return wide
    x = wide[plain]
    numbers = _formatted(x, 6)
    long = numbers.astype(np.float32) != narrow[plain]
    if long.any():
        numbers[long] = _formatted(x[long], 9)
    wide[plain] = numbers
    return wide


# ----------------------------------------------------------------------------------- Classify / Regress


def examples_from_json(body: Any) -> list[bytes]:
    """The request's tf.Examples, serialized, each with the "context" features merged in.

    TF Serving's typing (AddValueToFeature): an integer token → int64_list, true/false → int64_list (1/0), a
    decimal token → float_list, a string or {"b64": ...} → bytes_list; a feature's values (one, or a flat
    list) must share one list type. The merge is TF Serving's: the context's bytes followed by the example's,
    so a feature named in both takes the example's value (protobuf's map merge).
    """
    try:
        return _examples(body)
    except InvalidInputError as error:
        raise _utf8_safe(error) from None


def _examples(body: Any) -> list[bytes]:
    if not isinstance(body, dict):
        raise InvalidInputError(f"JSON Value: {_show(body)} Is not object")
    context = _example(body["context"]).SerializeToString() if "context" in body else b""
    if "examples" not in body:
        raise InvalidInputError(
            f"JSON Value: {_show(body)} When method is classify, key 'examples' is expected and was not found"
        )
    examples = body["examples"]
    if not isinstance(examples, list):
        raise InvalidInputError(f"JSON Value: {_show(body)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise InvalidInputError(f"JSON Value: {_show(body)} 'examples' value is an empty array")
    return [context + _example(example).SerializeToString() for example in examples]


def _example(value: Any) -> example_pb2.Example:
    """TF Serving's MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise InvalidInputError(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        feature = _feature(name, content if type(content) is list else [content])
        try:
            example.features.feature[name].CopyFrom(feature)
        except ValueError:  # UnicodeEncodeError: protobuf's map keys are UTF-8
            raise InvalidInputError(f"Feature name {_show(name)} is not valid UTF-8 (an unpaired surrogate)") from None
    return example


_KIND_NAMES = {None: "UNKNOWN", "int64_list": "int64", "float_list": "float", "bytes_list": "bytes"}


def _feature(name: str, values: Iterable[Any]) -> feature_pb2.Feature:
    kind: str | None = None
    items: list[Any] = []
    for value in values:
        value_kind = _feature_kind(name, value)
        if kind is not None and value_kind != kind:
            raise InvalidInputError(
                f"Unexpected element type in feature: {_cut(name)} expecting type: {_KIND_NAMES[kind]}"
            )
        kind = value_kind
        items.append(_feature_item(name, value_kind, value))
    feature = feature_pb2.Feature()
    if kind is not None:
        getattr(feature, kind).value.extend(items)
    return feature


def _feature_kind(name: str, value: Any) -> str:
    """The feature list a JSON value belongs in (AddValueToFeature): a decimal token, or an integer token
    rapidjson reads as a double (outside int64 and uint64), is a float."""
    if type(value) is bool:
        return "int64_list"
    if type(value) is str or _is_b64(value):
        return "bytes_list"
    if type(value) is int and _INT64_MIN <= value < _UINT64_END:
        return "int64_list"
    if type(value) in _NUMBER_TYPES:
        return "float_list"
    raise InvalidInputError(f"Feature: {_cut(name)} has element with unexpected JSON type: {_json_type(value)}")


def _feature_item(name: str, kind: str, value: Any) -> Any:
    try:
        if kind == "bytes_list":
            return value.encode() if type(value) is str else _b64_decode(value)
        if kind == "float_list":
            return _lossless(value, 0, _FLOAT_MAX[np.dtype(np.float32)], "float")
    except _ValueError as error:
        raise InvalidInputError(str(error)) from None
    except UnicodeEncodeError:
        raise InvalidInputError(f"Feature: {_cut(name)} has a string that is not valid UTF-8") from None
    if value >= 1 << 63:
        raise InvalidInputError(f"Feature: {_cut(name)} has uint64 element. Only int64 is supported.")
    return int(value)


def classify_response(classes: np.ndarray | None, scores: np.ndarray | None) -> dict[str, Any]:
    """`{"results": [[[label, score], ...], ...]}`, one list per example (MakeJsonFromClassificationResult).

    `classes` (strings) and `scores` are [examples, classes] arrays; either may be absent, as in TF Serving's
    ClassificationResult: labels are then "" and scores 0.0. Scores are written as float32, the proto's type.
    """
    if classes is None and scores is None:
        raise InvalidInputError("Cannot convert empty ClassificationResults to JSON")
    shape = None
    for what, array in (("classes", classes), ("scores", scores)):
        if array is None:
            continue
        array = np.asarray(array)
        if array.ndim != 2 or (shape is not None and array.shape != shape):
            expected = "[batch_size num_classes]" if shape is None else _shape_text(shape)
            raise InvalidInputError(f"Expected {what} Tensor shape: {expected} but got {_shape_text(array.shape)}")
        shape = array.shape
    assert shape is not None
    if shape[0] == 0:
        raise InvalidInputError("Cannot convert empty ClassificationResults to JSON")
    labels = (
        [[_string(label, False) for label in row] for row in np.asarray(classes).tolist()]
        if classes is not None
        else [[""] * shape[1]] * shape[0]
    )
    values = _float32_numbers(np.asarray(scores)).tolist() if scores is not None else [[0.0] * shape[1]] * shape[0]
    return {"results": [[list(pair) for pair in zip(*row)] for row in zip(labels, values)]}


def regress_response(values: np.ndarray) -> dict[str, Any]:
    """`{"results": [value, ...]}`, one per example (MakeJsonFromRegressionResult); values are float32.

    TF Serving's regressor takes a [batch_size] or [batch_size, 1] output.
    """
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInputError(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            f"{_shape_text(array.shape)}"
        )
    if array.size == 0:
        raise InvalidInputError("Cannot convert empty RegressionResults to JSON")
    return {"results": _float32_numbers(array).tolist()}
