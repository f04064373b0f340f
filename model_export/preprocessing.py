"""The one definition of image preprocessing, shared by every exported signature.

Keeping decode/resize/scale in a single function is what guarantees that the server's
path (``preprocess`` per image, then ``classify_pixels`` per batch) and the model's own
request-level signatures (``predict_images``, ``serving_default``) produce identical pixels.
"""

from __future__ import annotations

import tensorflow as tf

PREPROCESSING_MODES: tuple[str, ...] = ("inception", "unit")
"""``inception``: pixels scaled to [-1, 1] (x/127.5 - 1); ``unit``: pixels scaled to [0, 1]."""


def check_preprocessing_mode(mode: str) -> str:
    """Fail early (at export time, not at trace time) on an unknown scaling mode."""
    if mode not in PREPROCESSING_MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {PREPROCESSING_MODES}")
    return mode


def scale_pixels(pixels: tf.Tensor, mode: str) -> tf.Tensor:
    """Map float pixels in [0, 255] to the range the network was trained on."""
    check_preprocessing_mode(mode)
    if mode == "inception":
        return pixels / 127.5 - 1.0
    return pixels / 255.0


def decode_and_resize(image_bytes: tf.Tensor, height: int, width: int, mode: str) -> tf.Tensor:
    """Decode ONE encoded image (scalar string) into float32 pixels of shape [height, width, 3].

    ``channels=3`` turns grayscale and RGBA into RGB, and ``expand_animations=False`` keeps
    only the first GIF frame, so every supported format yields a 3-D tensor. Undecodable
    bytes raise ``tf.errors.InvalidArgumentError`` when the function runs.
    """
    check_preprocessing_mode(mode)
    decoded = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    pixels = tf.cast(decoded, tf.float32)  # uint8 values 0..255, not rescaled
    pixels = tf.image.resize(pixels, (height, width), method=tf.image.ResizeMethod.BILINEAR)
    pixels = scale_pixels(pixels, mode)
    return tf.ensure_shape(pixels, (height, width, 3))
