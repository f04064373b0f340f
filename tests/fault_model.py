"""A tiny classifier whose graph fails or stalls on request, for fault tests through the real server.

The faults live in the exported graph itself, so the server under test runs unmodified: send
`classify_pixels` input whose pixel [0, 0] channel 0 is >= 2 and the batch raises InvalidArgumentError;
channel 1 = 1 + s makes the batch busy-wait s seconds (the longest in the batch). Ordinary pixels
(in [0, 1]) run normally.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 32
FAULT_MESSAGE = "injected fault"


def build_fault_classifier(seed: int = 3, classes: int = 10):
    import keras
    import tensorflow as tf

    class FaultInjection(keras.layers.Layer):
        def call(self, pixels):
            fault = tf.debugging.assert_less(tf.reduce_max(pixels[:, 0, 0, 0]), 2.0, message=FAULT_MESSAGE)
            stall = tf.cast(tf.reduce_max(tf.maximum(pixels[:, 0, 0, 1] - 1.0, 0.0)), tf.float64)
            start = tf.timestamp()
            waited = tf.while_loop(lambda t: t - start < stall, lambda t: [tf.timestamp()], [start])[0]
            with tf.control_dependencies([fault, waited]):
                return tf.identity(pixels)

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            FaultInjection(),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def pixels(seed: int, *, fault: bool = False, stall_seconds: float = 0.0) -> np.ndarray:
    """One image of pixels in [0, 1], distinct per seed, with the fault markers set as asked."""
    image = np.random.default_rng(seed).random((SIZE, SIZE, 3), dtype=np.float32)
    if fault:
        image[0, 0, 0] = 5.0
    if stall_seconds:
        image[0, 0, 1] = 1.0 + stall_seconds
    return image


def export_fault_model(base: Path) -> Path:
    from model_export import export_classifier

    export_classifier(build_fault_classifier(), [f"class_{i}" for i in range(10)], base, version=1, top_k=5,
                      preprocessing="unit")
    return base
