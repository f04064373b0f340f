"""Requests built the way TF Serving's own clients build them (tensorflow-serving-api protos)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import classification_pb2, predict_pb2


def predict_request(
    model: str, images: Sequence[bytes], signature: str = "predict_images", input_key: str = "images"
) -> predict_pb2.PredictRequest:
    """The classic Inception client's request."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs[input_key].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string, shape=[len(images)]))
    return request


def image_example(image: bytes) -> example_pb2.Example:
    return example_pb2.Example(
        features=feature_pb2.Features(
            feature={"image/encoded": feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[image]))}
        )
    )


def classify_request(model: str, images: Sequence[bytes]) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model
    request.input.example_list.examples.extend(image_example(image) for image in images)
    return request


def predict_outputs(response) -> tuple[np.ndarray, np.ndarray]:
    """(classes [N,k] bytes, scores [N,k] float32) decoded with TF's own tensor reader."""
    return tf.make_ndarray(response.outputs["classes"]), tf.make_ndarray(response.outputs["scores"])
