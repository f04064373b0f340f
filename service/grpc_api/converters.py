"""TF Serving protos ⇄ plain values (bytes, numpy), with validation errors a client can act on.

Written against the protos directly (not tf.make_ndarray) so the request path never calls TensorFlow.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2

from ..errors import InvalidInputError
from ..runtime import Prediction
from ..signatures import IMAGE_FEATURE

_MAX_DIMENSION = 2**31 - 1


def _shape(tensor: tensor_pb2.TensorProto) -> list[int]:
    return [dim.size for dim in tensor.tensor_shape.dim]


def _dtype_name(dtype: int) -> str:
    return types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else str(dtype)


def string_vector(tensor: tensor_pb2.TensorProto, input_name: str) -> list[bytes]:
    """A DT_STRING tensor of shape [N] as N byte strings."""
    if tensor.dtype != types_pb2.DT_STRING:
        raise InvalidInputError(
            f"input '{input_name}' must be DT_STRING (encoded images), got {_dtype_name(tensor.dtype)}"
        )
    shape = _shape(tensor)
    if tensor.tensor_shape.unknown_rank or len(shape) != 1:
        raise InvalidInputError(f"input '{input_name}' must be a 1-D tensor of shape [N], got shape {shape}")
    if shape[0] != len(tensor.string_val):
        raise InvalidInputError(
            f"input '{input_name}' declares shape {shape} but carries {len(tensor.string_val)} values"
        )
    return list(tensor.string_val)


def float_array(tensor: tensor_pb2.TensorProto, input_name: str) -> np.ndarray:
    """A DT_FLOAT tensor as a float32 array (a view on tensor_content when the client packed it)."""
    if tensor.dtype != types_pb2.DT_FLOAT:
        raise InvalidInputError(f"input '{input_name}' must be DT_FLOAT, got {_dtype_name(tensor.dtype)}")
    shape = _shape(tensor)
    if tensor.tensor_shape.unknown_rank or any(size < 0 for size in shape):
        raise InvalidInputError(f"input '{input_name}' needs a fully known shape, got {shape}")
    if any(size > _MAX_DIMENSION for size in shape):  # numpy cannot even describe [2**62, 0, 2**62]
        raise InvalidInputError(f"input '{input_name}' declares shape {shape}: a dimension exceeds {_MAX_DIMENSION}")
    expected = math.prod(shape)  # Python ints: no overflow on hostile dimensions
    if tensor.tensor_content:
        if len(tensor.tensor_content) % 4:
            raise InvalidInputError(
                f"input '{input_name}' tensor_content holds {len(tensor.tensor_content)} bytes, "
                "not a whole number of float32 values"
            )
        values = np.frombuffer(tensor.tensor_content, dtype="<f4")
    else:
        values = np.asarray(tensor.float_val, dtype=np.float32)
    if values.size != expected:
        raise InvalidInputError(
            f"input '{input_name}' declares shape {shape} ({expected} values) but carries {values.size}"
        )
    return values.reshape(shape)


def image_bytes_from_serialized_examples(serialized: Sequence[bytes], input_name: str) -> list[bytes]:
    """The 'image/encoded' feature of each serialized tf.Example."""
    examples = []
    for index, data in enumerate(serialized):
        example = example_pb2.Example()
        try:
            example.ParseFromString(data)
        except DecodeError:
            raise InvalidInputError(f"{input_name}[{index}] is not a serialized tf.Example") from None
        examples.append(example)
    return image_bytes_from_examples(examples, input_name)


def image_bytes_from_examples(
    examples: Iterable[example_pb2.Example], input_name: str, context: example_pb2.Example | None = None
) -> list[bytes]:
    """One image per example, from its bytes feature 'image/encoded' (or the shared context's)."""
    images = []
    for index, example in enumerate(examples):
        feature = _image_feature(example.features)
        if feature is None and context is not None:
            feature = _image_feature(context.features)
        if feature is None:
            raise InvalidInputError(f"{input_name}[{index}] has no bytes feature '{IMAGE_FEATURE}'")
        values = feature.bytes_list.value
        if len(values) != 1:
            raise InvalidInputError(
                f"{input_name}[{index}] feature '{IMAGE_FEATURE}' must hold exactly one image, holds {len(values)}"
            )
        images.append(values[0])
    return images


def _image_feature(features: feature_pb2.Features) -> feature_pb2.Feature | None:
    if IMAGE_FEATURE not in features.feature:
        return None
    feature = features.feature[IMAGE_FEATURE]
    return feature if feature.WhichOneof("kind") == "bytes_list" else None


def image_bytes_from_input(request_input: input_pb2.Input) -> list[bytes]:
    """Images of a ClassificationRequest's `input` (example_list or example_list_with_context)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return image_bytes_from_examples(request_input.example_list.examples, "input.example_list.examples")
    if kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        return image_bytes_from_examples(
            listed.examples, "input.example_list_with_context.examples", context=listed.context
        )
    raise InvalidInputError("request.input is empty: set input.example_list.examples")


def serialized_examples(request_input: input_pb2.Input) -> list[bytes]:
    """The serialized tf.Examples a classify or regress signature takes, from a request's `input`.

    With `example_list_with_context`, each example is merged over the context, as TF Serving does: the two
    serializations concatenated parse as their merge, the example's own features winning.
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [example.SerializeToString() for example in request_input.example_list.examples]
    if kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        context = listed.context.SerializeToString()
        return [context + example.SerializeToString() for example in listed.examples]
    raise InvalidInputError("Invalid argument: Input is empty.")


def classification_result_of(rows: Sequence[Sequence[tuple[bytes | None, float | None]]]) -> classification_pb2.ClassificationResult:
    """A ClassificationResult from (label, score) pairs per example; a part the model lacks is left unset."""
    result = classification_pb2.ClassificationResult()
    for pairs in rows:
        classifications = result.classifications.add()
        for label, score in pairs:
            entry = classifications.classes.add()
            if label is not None:
                entry.label = label.decode("utf-8", "replace")
            if score is not None:
                entry.score = score
    return result


def fill_classes(tensor: tensor_pb2.TensorProto, predictions: Sequence[Prediction]) -> None:
    """Write classes [N, k] into `tensor` in place (filling the response's own field avoids a copy)."""
    k = len(predictions[0].classes) if predictions else 0
    tensor.dtype = types_pb2.DT_STRING
    tensor.tensor_shape.dim.add(size=len(predictions))
    tensor.tensor_shape.dim.add(size=k)
    for prediction in predictions:
        tensor.string_val.extend(prediction.classes)


def fill_scores(tensor: tensor_pb2.TensorProto, predictions: Sequence[Prediction]) -> None:
    """Write scores [N, k] into `tensor` in place, as packed little-endian float32 tensor_content."""
    if len(predictions) == 1:
        scores = predictions[0].scores.reshape(1, -1)
    else:
        scores = np.stack([p.scores for p in predictions])
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=scores.shape[0])
    tensor.tensor_shape.dim.add(size=scores.shape[1])
    tensor.tensor_content = scores.astype("<f4", copy=False).tobytes()


def classification_result(predictions: Sequence[Prediction]) -> classification_pb2.ClassificationResult:
    return classification_pb2.ClassificationResult(
        classifications=[
            classification_pb2.Classifications(
                classes=[
                    classification_pb2.Class(label=label.decode("utf-8", "replace"), score=float(score))
                    for label, score in zip(p.classes, p.scores)
                ]
            )
            for p in predictions
        ]
    )
