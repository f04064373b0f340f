"""TF Serving's REST answers: Predict outputs, Classify and Regress results, as TF Serving writes them.

The rules are those of tensorflow_serving/util/json_tensor.cc (MakeJsonFromTensors and the result writers):
Predict answers `"predictions"` (row format) or `"outputs"` (columnar) to match the request, Classify and
Regress answer `"results"`, and a float32 is written as the decimal TF Serving writes (six significant digits
when they read back exactly, else nine). Where TF Serving cannot write an output (half and bfloat16) it is
written as the float32 it widens to, and where TF Serving would write invalid JSON (a string output that is
not UTF-8) it is written as `{"b64": ...}`.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping

import ml_dtypes
import numpy as np

from service.errors import InvalidInputError
from service.adapters.rest_api.json_body import _B64, _shape_text

_BYTES_SUFFIX = "_bytes"  # TF Serving writes string outputs so named as {"b64": ...} (json_tensor.cc)


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
