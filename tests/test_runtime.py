"""ModelRuntime.run_batch with encoded items (the idle fast path): same answers, per-item decode errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imaging import jpeg, png
from service.runtime.model_runtime import EncodedImage, ImageDecodeError, ModelRuntime, Prediction

NOT_AN_IMAGE = b"this is not an image"


@pytest.fixture(scope="module")
def runtime(tiny_model_base: Path) -> ModelRuntime:
    return ModelRuntime(tiny_model_base / "1")


def reference(runtime: ModelRuntime, images: list[bytes]) -> list[Prediction]:
    """The two-step path the decode pool takes: preprocess each image, then one batch of pixels."""
    return runtime.run_batch([runtime.preprocess(image) for image in images], len(images))


def assert_same(actual: Prediction, expected: Prediction) -> None:
    assert list(actual.classes) == list(expected.classes)
    np.testing.assert_allclose(actual.scores, expected.scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("padding", [0, 2], ids=["unpadded: predict_images", "padded: decoded one by one"])
def test_encoded_batch_matches_the_decode_pool_path(runtime: ModelRuntime, padding: int) -> None:
    """Unpadded, the batch runs through `predict_images`; padded (allowed_batch_sizes), item by item."""
    images = [jpeg(11, 120, 90), png(12, 40, 64), jpeg(13, 32, 32)]
    expected = reference(runtime, images)
    actual = runtime.run_batch([EncodedImage(image) for image in images], len(images) + padding)
    assert len(actual) == 3
    for got, want in zip(actual, expected):
        assert_same(got, want)


def test_undecodable_encoded_item_fails_alone_in_a_mixed_batch(runtime: ModelRuntime) -> None:
    good = [jpeg(16), png(17)]
    expected = reference(runtime, good)
    pixels = runtime.preprocess(good[1])
    actual = runtime.run_batch([EncodedImage(good[0]), EncodedImage(NOT_AN_IMAGE), pixels], 3)
    assert isinstance(actual[1], ImageDecodeError)
    assert_same(actual[0], expected[0])  # type: ignore[arg-type]
    assert_same(actual[2], expected[1])  # type: ignore[arg-type]


def test_undecodable_item_in_an_all_encoded_batch_fails_alone(runtime: ModelRuntime) -> None:
    """The one-call graph rejects the whole batch; the runtime then finds the bad item by itself."""
    good = jpeg(18)
    [expected] = reference(runtime, [good])
    actual = runtime.run_batch([EncodedImage(NOT_AN_IMAGE), EncodedImage(good)], 2)
    assert isinstance(actual[0], ImageDecodeError)
    assert_same(actual[1], expected)  # type: ignore[arg-type]


def test_a_batch_of_only_undecodable_items_runs_no_network(runtime: ModelRuntime) -> None:
    actual = runtime.run_batch([EncodedImage(NOT_AN_IMAGE)], 1)
    assert len(actual) == 1 and isinstance(actual[0], ImageDecodeError)
