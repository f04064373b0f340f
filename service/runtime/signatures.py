"""The image contract's signature names and tensors (docs/architecture.md), one name for each.

A model exported by model_export has them all; the runtime recognises the contract by `preprocess` and
`classify_pixels`. A request naming one of the request-level signatures below takes the image path
(service/dataplane/routing.py), and a recorded warm-up request for one is run the same way: both read its
images with `image_items`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from service.errors import InvalidInputError
from service.tensors.image_inputs import image_bytes_from_serialized_examples

DEFAULT_SIGNATURE = "serving_default"  # TF Serving's default; on an image model it takes serialized tf.Examples
ENCODED_IMAGES_SIGNATURE = "predict_images"  # encoded images (the classic Inception client); optional
PIXELS_SIGNATURE = "classify_pixels"  # preprocessed float pixels [N, H, W, 3]: the network, once per batch
PREPROCESS_SIGNATURE = "preprocess"  # one encoded image -> its pixels [H, W, 3]
REQUIRED_SIGNATURES = (PREPROCESS_SIGNATURE, PIXELS_SIGNATURE)

# The one input of each request-level image signature.
IMAGE_INPUT_BY_SIGNATURE = {
    ENCODED_IMAGES_SIGNATURE: "images",
    DEFAULT_SIGNATURE: "inputs",
    PIXELS_SIGNATURE: "pixels",
}
INPUT_KEY_BY_SIGNATURE = IMAGE_INPUT_BY_SIGNATURE  # the loopback self-warm-up's older name for it
OUTPUT_KEYS = ("classes", "scores")


def image_items(signature: str, array: np.ndarray, input_shape: Sequence[int] | None) -> list[bytes] | np.ndarray:
    """The images a request-level image signature's one input carries: encoded images (a list), from the
    values themselves or, for serving_default, from each serialized tf.Example's `image/encoded`; or for
    `classify_pixels` the pixels `[N, H, W, 3]` (an array; `input_shape` is H, W, 3 when known)."""
    name = IMAGE_INPUT_BY_SIGNATURE[signature]
    if signature == PIXELS_SIGNATURE:
        if array.dtype != np.float32:
            raise InvalidInputError(f"input '{name}' must hold float32 pixels, got {array.dtype}")
        if array.ndim != 4 or (input_shape is not None and tuple(array.shape[1:]) != tuple(input_shape)):
            shape = ", ".join(map(str, input_shape)) if input_shape is not None else "H, W, 3"
            raise InvalidInputError(f"input '{name}' must have shape [N, {shape}], got {list(array.shape)}")
        return array
    if array.dtype != object:
        raise InvalidInputError(f"input '{name}' must hold encoded images (strings), got {array.dtype}")
    if not (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        raise InvalidInputError(f"input '{name}' must have shape [N] or [N, 1], got {list(array.shape)}")
    values = array.reshape(-1).tolist()
    if signature == DEFAULT_SIGNATURE:
        values = image_bytes_from_serialized_examples(values, name)
    return values
