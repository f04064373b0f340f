"""A trivial classifier for measuring the server's own per-request cost, where the network costs nothing."""

from __future__ import annotations

import keras

TINY_INPUT_SIZE = 32
TINY_NUM_CLASSES = 10
TINY_PREPROCESSING = "unit"


def tiny_labels(num_classes: int = TINY_NUM_CLASSES) -> list[str]:
    return [f"class_{index}" for index in range(num_classes)]


def build_tiny_classifier(seed: int, input_size: int = TINY_INPUT_SIZE, num_classes: int = TINY_NUM_CLASSES) -> keras.Model:
    """Two dense layers on a small image: microseconds per batch, so benchmarks see only serving overhead."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((input_size, input_size, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="tiny_mlp",
    )
