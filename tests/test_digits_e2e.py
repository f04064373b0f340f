"""Acceptance 6: real classification end to end — train, export with model_export, serve, Classify.

scikit-learn's handwritten digits (8x8) are rendered as 32x32 PNG bytes; a small CNN is trained here on the
pixels the model's own exported preprocessing produces, exported through `export_classifier` (the code path
of `python -m model_export`), served by the real server, and scored through gRPC Classify on held-out images.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import prediction_service_pb2_grpc

from server_process import ServerProcess
from tf_serving_client import classify_request

SIZE = 32
LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digit_png(image_8x8: np.ndarray) -> bytes:
    pixels = np.clip(image_8x8 * (255.0 / 16.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").resize((SIZE, SIZE), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    encoded = [digit_png(image) for image in digits.images]
    return train_test_split(encoded, digits.target, test_size=0.25, random_state=0, stratify=digits.target)


def train_classifier(images: list[bytes], targets: np.ndarray):
    import keras

    from model_export import decode_and_resize

    pixels = np.stack([decode_and_resize(tf.constant(b), SIZE, SIZE, "unit").numpy() for b in images])
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(len(LABELS), activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(pixels, targets, epochs=8, batch_size=32, verbose=0)
    return model


def test_trained_digit_classifier_served_through_classify(digits_split, tmp_path):
    from model_export import export_classifier

    train_images, test_images, train_targets, test_targets = digits_split
    model = train_classifier(train_images, train_targets)
    base = tmp_path / "digits"
    export_classifier(model, LABELS, base, version=1, top_k=3, preprocessing="unit")

    with ServerProcess(base, "--enable_batching=true", "--max_batch_size=32", model_name="digits") as server:
        with server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            chunks = [test_images[i : i + 25] for i in range(0, len(test_images), 25)]
            futures = [stub.Classify.future(classify_request("digits", chunk), 60.0) for chunk in chunks]
            predicted = [
                c.classes[0].label for f in futures for c in f.result().result.classifications
            ]
    assert len(predicted) == len(test_images)
    accuracy = np.mean([label == LABELS[target] for label, target in zip(predicted, test_targets)])
    print(f"held-out accuracy through gRPC Classify: {accuracy:.3f} on {len(test_images)} images")
    assert accuracy >= 0.90
