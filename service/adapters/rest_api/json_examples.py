"""TF Serving's REST Classify and Regress requests: tf.Example features written as JSON, to serialized tf.Examples.

The rules and messages are those of tensorflow_serving/util/json_tensor.cc (MakeExampleFromJsonObject,
AddValueToFeature): a request holds `"examples"` and optionally `"context"`, each a JSON object of features,
and a feature's values are typed by their JSON tokens.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2

from service.errors import InvalidInputError
from service.adapters.rest_api.json_body import _cut, _json_type, _show, _utf8_safe
from service.adapters.rest_api.json_tensors import (
    _FLOAT_MAX,
    _INT64_MIN,
    _NUMBER_TYPES,
    _UINT64_END,
    _ValueError,
    _b64_decode,
    _is_b64,
    _lossless,
)


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
