"""Images out of requests, for models with the image contract: encoded images from a DT_STRING TensorProto or
from tf.Examples' `image/encoded` feature, pixels from a DT_FLOAT TensorProto; errors a client can act on.

Shared by the TF Serving adapters (gRPC, REST) and warm-up; written against the protos directly, so the
request path never calls TensorFlow.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import input_pb2

from service.errors import InvalidInputError
from service.runtime.signatures import IMAGE_FEATURE
from service.tensors.dtypes import tf_type_name

_MAX_DIMENSION = 2**31 - 1
_MAX_RANK = 32


def _shape(tensor: tensor_pb2.TensorProto) -> list[int]:
    return [dim.size for dim in tensor.tensor_shape.dim]


def string_vector(tensor: tensor_pb2.TensorProto, input_name: str) -> list[bytes]:
    """A DT_STRING tensor of shape [N] as N byte strings."""
    if tensor.dtype != types_pb2.DT_STRING:
        raise InvalidInputError(
            f"input '{input_name}' must be DT_STRING (encoded images), got {tf_type_name(tensor.dtype)}"
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
        raise InvalidInputError(f"input '{input_name}' must be DT_FLOAT, got {tf_type_name(tensor.dtype)}")
    shape = _shape(tensor)
    if tensor.tensor_shape.unknown_rank or any(size < 0 for size in shape):
        raise InvalidInputError(f"input '{input_name}' needs a fully known shape, got {shape}")
    if len(shape) > _MAX_RANK:  # numpy cannot describe it, and no image batch has it
        raise InvalidInputError(f"input '{input_name}' has {len(shape)} dimensions; at most {_MAX_RANK} are supported")
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
