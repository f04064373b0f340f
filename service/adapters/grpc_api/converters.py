"""TF Serving's gRPC messages ⇄ plain values: a request's tf.Examples serialized for the data plane, and a
classification's (label, score) rows as a ClassificationResult.

Written against the protos directly (not tf.make_ndarray) so the request path never calls TensorFlow.
"""

from __future__ import annotations

from typing import Sequence

from tensorflow_serving.apis import classification_pb2, input_pb2

from service.errors import InvalidInputError


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
