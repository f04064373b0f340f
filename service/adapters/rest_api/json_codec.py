"""TF Serving's REST JSON ⇄ plain values (bytes, numpy), with errors that name the offending field.

Formats as TF Serving documents them (https://www.tensorflow.org/tfx/serving/api_rest): Predict takes the row
format (`"instances": [...]`) or the columnar format (`"inputs": ...`), either bare values (the signatures here
have one input) or objects keyed by the input name; binary values are `{"b64": "..."}`. Predict answers
`"predictions"` (rows) or `"outputs"` (columns) as the request chose; Classify answers
`"results": [[[label, score], ...], ...]`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from service.errors import InvalidInputError
from service.adapters.rest_api import json_tensors
from service.adapters.rest_api.json_tensors import b64_decode
from service.runtime.model_runtime import Prediction
from service.runtime.signatures import IMAGE_FEATURE, OUTPUT_KEYS


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def bytes_value(value: Any, where: str) -> bytes:
    """A DT_STRING element: {"b64": ...} decoded (TF Serving's base64 rules: padding optional, whitespace
    skipped), or a plain JSON string as UTF-8."""
    if _is_b64(value):
        if not isinstance(value["b64"], str):
            raise InvalidInputError(f"{where}: 'b64' must hold a base64 string")
        try:
            return b64_decode(value)
        except InvalidInputError as error:
            raise InvalidInputError(f"{where}: invalid base64: {error}") from None
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(f"{where}: the string is not valid Unicode (a lone surrogate)") from None
    raise InvalidInputError(f"{where}: expected a string or {{\"b64\": ...}}, got {type(value).__name__}")


def predict_input(body: dict[str, Any], input_key: str) -> tuple[list[Any], bool]:
    """The input's per-example values and whether the request used the row format."""
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances == has_inputs:
        raise InvalidInputError(
            "Missing 'inputs' or 'instances' key" if not has_instances
            else "Not both 'inputs' and 'instances' may be specified"
        )
    if has_instances:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise InvalidInputError("'instances' must be a list with one element per example")
        values = []
        for index, instance in enumerate(instances):
            if isinstance(instance, dict) and not _is_b64(instance):
                if set(instance) != {input_key}:
                    raise InvalidInputError(
                        f"instances[{index}] names inputs {sorted(instance)}; this signature takes only '{input_key}'"
                    )
                instance = instance[input_key]
            values.append(instance)
        return values, True
    columns = body["inputs"]
    if isinstance(columns, dict) and not _is_b64(columns):
        if set(columns) != {input_key}:
            raise InvalidInputError(f"inputs names {sorted(columns)}; this signature takes only '{input_key}'")
        columns = columns[input_key]
    if not isinstance(columns, list):
        raise InvalidInputError(f"input '{input_key}' must be a list with one element per example")
    return columns, False


def bytes_values(values: Sequence[Any], input_key: str) -> list[bytes]:
    return [bytes_value(value, f"{input_key}[{index}]") for index, value in enumerate(values)]


def float_values(values: Sequence[Any], input_key: str) -> np.ndarray:
    """Nested lists of JSON numbers; null, strings and booleans are refused, not read as NaN or numbers."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as error:
        raise InvalidInputError(f"input '{input_key}' must be a dense array of numbers: {error}") from None
    if array.dtype.kind not in "fiu":
        raise InvalidInputError(
            f"input '{input_key}' must be a dense array of numbers (got values of type {array.dtype.kind!r}: "
            "null, strings, booleans or ragged rows)"
        )
    return array.astype(np.float32, copy=False)


def _output_arrays(predictions: Sequence[Prediction]) -> tuple[np.ndarray, np.ndarray]:
    """The answers as the [N, k] `classes` (bytes) and `scores` (float32) a signature returns."""
    classes = np.empty((len(predictions), len(predictions[0].classes) if predictions else 0), dtype=object)
    for row, prediction in enumerate(predictions):
        classes[row] = prediction.classes
    scores = np.asarray([p.scores for p in predictions], dtype=np.float32)
    return classes, scores.reshape(classes.shape)


def predict_body(predictions: Sequence[Prediction], row_format: bool) -> dict[str, Any]:
    """Outputs `classes` and `scores` in the format the request used, numbers written as TF Serving writes a
    float32 (the shared codec's rules)."""
    classes, scores = _output_arrays(predictions)
    return json_tensors.predict_response(dict(zip(OUTPUT_KEYS, (classes, scores))), row_format)


def classify_images(body: dict[str, Any]) -> list[bytes]:
    """The 'image/encoded' feature of each JSON example (or of the shared 'context')."""
    examples = body.get("examples")
    if not isinstance(examples, list):
        raise InvalidInputError("'examples' must be a list of objects (feature name to value)")
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise InvalidInputError("'context' must be an object (feature name to value)")
    images = []
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise InvalidInputError(f"examples[{index}] must be an object (feature name to value)")
        value = example.get(IMAGE_FEATURE, context.get(IMAGE_FEATURE))
        if value is None:
            raise InvalidInputError(f"examples[{index}] has no feature '{IMAGE_FEATURE}'")
        if isinstance(value, list):
            if len(value) != 1:
                raise InvalidInputError(
                    f"examples[{index}] feature '{IMAGE_FEATURE}' must hold exactly one image, holds {len(value)}"
                )
            value = value[0]
        images.append(bytes_value(value, f"examples[{index}].{IMAGE_FEATURE}"))
    return images


def classify_body(predictions: Sequence[Prediction]) -> dict[str, Any]:
    return json_tensors.classify_response(*_output_arrays(predictions))
