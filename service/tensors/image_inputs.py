"""Encoded images out of tf.Examples' `image/encoded` feature, for models with the image contract; errors a
client can act on.

Shared by the image path and model warm-up; written against the protos directly, so the request path never
calls TensorFlow.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from service.errors import InvalidInputError

IMAGE_FEATURE = "image/encoded"  # the tf.Example bytes feature holding the encoded image


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
