"""TF Serving's gRPC messages ⇄ plain values: tf.Examples to serialize for classify and regress signatures, and
the image path's answers (top-k classes and scores) as TensorProtos and ClassificationResults.

Written against the protos directly (not tf.make_ndarray) so the request path never calls TensorFlow.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2

from service.errors import InvalidInputError
from service.runtime.model_runtime import Prediction


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


def fill_scores(tensor: tensor_pb2.TensorProto, predictions: Sequence[Prediction], *, as_content: bool) -> None:
    """Write scores [N, k] into `tensor` in place: float_val as TF Serving answers by default, or packed
    little-endian tensor_content (`as_content`, --enable_serialization_as_tensor_content)."""
    if len(predictions) == 1:
        scores = predictions[0].scores.reshape(1, -1)
    else:
        scores = np.stack([p.scores for p in predictions])
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=scores.shape[0])
    tensor.tensor_shape.dim.add(size=scores.shape[1])
    if as_content:
        tensor.tensor_content = scores.astype("<f4", copy=False).tobytes()
    else:
        tensor.float_val.extend(scores.reshape(-1).tolist())


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
