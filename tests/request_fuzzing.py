"""One fuzz target for request decoding, shared by the property tests and scripts/fuzz_request_decoding.py.

`decode_request(data)` does what the server does with the bytes of a Predict or Classify call before any
model runs: parse the proto, validate and convert its tensors / tf.Examples, read image headers for the
pixel limit. The only acceptable failures are the ones the server turns into a status: protobuf's
DecodeError (INVALID_ARGUMENT via the undecodable-request wrapper) and InvalidInputError / ImageTooLargeError
(INVALID_ARGUMENT). Anything else escaping is a crash: the client would get INTERNAL.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from tensorflow_serving.apis import classification_pb2, predict_pb2

from service.errors import InvalidInputError
from service.runtime.signatures import ENCODED_IMAGES_SIGNATURE, IMAGE_INPUT_BY_SIGNATURE, image_items
from service.tensors import image_inputs
from service.tensors.tensor_proto import to_array
from service.dataplane.image_limits import ImageTooLargeError, check_pixel_count

SIGNATURE_BY_INPUT = {name: signature for signature, name in IMAGE_INPUT_BY_SIGNATURE.items()}
ACCEPTABLE = (DecodeError, InvalidInputError, ImageTooLargeError)
MAX_PIXELS = 1_000_000


def decode_predict(data: bytes) -> int:
    """As the image path reads a Predict: each tensor to an array, then its images (or pixels)."""
    request = predict_pb2.PredictRequest()
    request.ParseFromString(data)
    decoded = 0
    for key, tensor in request.inputs.items():
        signature = SIGNATURE_BY_INPUT.get(key, ENCODED_IMAGES_SIGNATURE)
        items = image_items(signature, to_array(tensor, key), None)
        if key == "pixels":
            assert items.dtype.name == "float32"  # type: ignore[union-attr]
            assert list(items.shape) == [d.size for d in tensor.tensor_shape.dim]  # type: ignore[union-attr]
            decoded += items.size  # type: ignore[union-attr]
            continue
        if key != "inputs":
            assert len(items) == tensor.tensor_shape.dim[0].size
        for value in items:
            assert isinstance(value, bytes)
            check_pixel_count(value, MAX_PIXELS)
        decoded += len(items)
    return decoded


def decode_classify(data: bytes) -> int:
    request = classification_pb2.ClassificationRequest()
    request.ParseFromString(data)
    images = image_inputs.image_bytes_from_input(request.input)
    for image in images:
        check_pixel_count(image, MAX_PIXELS)
    return len(images)


def decode_request(data: bytes) -> str:
    """'ok' or the name of the acceptable error; anything else propagates (a crash)."""
    outcomes = []
    for decode in (decode_predict, decode_classify):
        try:
            decode(data)
            outcomes.append("ok")
        except ACCEPTABLE as error:
            outcomes.append(type(error).__name__)
    return "/".join(outcomes)
