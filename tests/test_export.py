"""Tests for model_export: the SavedModel contract in docs/architecture.md, determinism, CLI.

Inception-v3 is expensive on CPU, so it is built a handful of times and exported only
twice (module-scoped fixtures); everything about signature semantics uses tiny models.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2

from model_export import (
    SIGNATURE_NAMES,
    STANDARD_WEIGHTS_SHA256,
    VersionExistsError,
    WeightsFileError,
    build_inception_v3,
    build_inception_v3_with_info,
    export_classifier,
    load_labels,
    read_export_metadata,
    read_labels_asset,
)
from model_export.exporter import CLASSIFY_METHOD_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTRACT_METADATA_KEYS = {
    "model", "weights", "weights_file", "weights_sha256", "seed", "input_height", "input_width",
    "num_classes", "top_k", "preprocessing", "precision", "exported_at",
}
TINY_LABELS = [f"class_{i}" for i in range(10)]


# ---------------------------------------------------------------- helpers

def encode_image(height: int, width: int, mode: str = "RGB", fmt: str = "PNG", seed: int = 0) -> bytes:
    """A smooth random-ish image (smooth so JPEG stays close to the source)."""
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    yy, xx = np.mgrid[0:height, 0:width]
    planes = [
        127 + 120 * np.sin(xx / rng.uniform(2, 9) + yy / rng.uniform(2, 9) + rng.uniform(0, 6))
        for _ in range(channels)
    ]
    array = np.stack(planes, axis=-1).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(array[..., 0] if channels == 1 else array, mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def sample_images() -> list[bytes]:
    """Different sizes, formats and channel layouts, all of which must be accepted."""
    return [
        encode_image(32, 32, "RGB", "PNG", seed=1),
        encode_image(48, 71, "RGB", "JPEG", seed=2),
        encode_image(17, 23, "L", "PNG", seed=3),
        encode_image(64, 40, "RGBA", "PNG", seed=4),
        encode_image(300, 200, "RGB", "JPEG", seed=5),
        encode_image(20, 30, "RGB", "GIF", seed=6),
        encode_image(25, 25, "RGB", "BMP", seed=7),
    ]


def tf_example(image_bytes: bytes) -> bytes:
    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def tiny_classifier(seed: int, input_size: tuple[int, int] = (32, 32), classes: int = 10,
                    activation: str | None = "softmax") -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((*input_size, 3)),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation=activation),
        ],
        name="tiny_classifier",
    )


def server_path(loaded, images: list[bytes]) -> dict[str, np.ndarray]:
    """What service/runtime/model_runtime.py does: preprocess one image per call, then one batch call."""
    pixels = [loaded.signatures["preprocess"](image=tf.constant(image))["pixels"] for image in images]
    outputs = loaded.signatures["classify_pixels"](pixels=tf.stack(pixels))
    return {key: value.numpy() for key, value in outputs.items()}


def signature_defs(version_dir: Path) -> dict:
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return dict(saved_model.meta_graphs[0].signature_def)


def shape_of(tensor_info) -> list[int]:
    return [dim.size for dim in tensor_info.tensor_shape.dim]


def write_legacy_h5_weights(model: keras.Model, path: Path) -> Path:
    """Same layout as Keras' published inception_v3_weights_tf_dim_ordering_tf_kernels.h5."""
    with h5py.File(path, "w") as handle, warnings.catch_warnings():
        # Keras' own writer trips NumPy 2's __array__(copy=...) deprecation; not ours to fix.
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "model_export", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


# ---------------------------------------------------------------- tiny model: the contract

@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("tiny") / "models" / "tiny"
    return export_classifier(
        tiny_classifier(seed=0), TINY_LABELS, base, version=3, top_k=5, preprocessing="inception",
        metadata={"weights": "random", "seed": 0},
    )


@pytest.fixture(scope="module")
def tiny_loaded(tiny_export):
    return tf.saved_model.load(str(tiny_export))


def test_layout_is_tf_serving_style(tiny_export):
    assert tiny_export.name == "3"
    assert (tiny_export / "saved_model.pb").is_file()
    assert (tiny_export / "variables" / "variables.index").is_file()
    assert read_labels_asset(tiny_export) == TINY_LABELS
    siblings = [path.name for path in tiny_export.parent.iterdir()]
    assert siblings == ["3"], "staging directories must not be left behind"


def test_signature_defs_match_contract(tiny_export):
    defs = signature_defs(tiny_export)
    assert set(SIGNATURE_NAMES) <= set(defs)
    string, floating = tf.string.as_datatype_enum, tf.float32.as_datatype_enum
    expected_inputs = {
        "predict_images": {"images": (string, [-1])},
        "serving_default": {"inputs": (string, [-1])},
        "preprocess": {"image": (string, [])},
        "classify_pixels": {"pixels": (floating, [-1, 32, 32, 3])},
    }
    for name, inputs in expected_inputs.items():
        actual = {key: (info.dtype, shape_of(info)) for key, info in defs[name].inputs.items()}
        assert actual == inputs, name
    classify_outputs = {"classes": (string, [-1, 5]), "scores": (floating, [-1, 5])}
    for name in ("predict_images", "serving_default", "classify_pixels"):
        actual = {key: (info.dtype, shape_of(info)) for key, info in defs[name].outputs.items()}
        assert actual == classify_outputs, name
    preprocess_outputs = {key: (info.dtype, shape_of(info)) for key, info in defs["preprocess"].outputs.items()}
    assert preprocess_outputs == {"pixels": (floating, [32, 32, 3])}
    assert defs["serving_default"].method_name == CLASSIFY_METHOD_NAME


def test_loaded_signatures_have_contract_specs(tiny_loaded):
    assert set(SIGNATURE_NAMES) <= set(tiny_loaded.signatures)
    _, inputs = tiny_loaded.signatures["preprocess"].structured_input_signature
    assert inputs == {"image": tf.TensorSpec([], tf.string, name="image")}
    _, inputs = tiny_loaded.signatures["classify_pixels"].structured_input_signature
    assert inputs["pixels"].shape.as_list() == [None, 32, 32, 3]


def test_request_signatures_equal_preprocess_then_classify(tiny_loaded):
    images = sample_images()
    expected = server_path(tiny_loaded, images)
    predicted = tiny_loaded.signatures["predict_images"](images=tf.constant(images))
    classified = tiny_loaded.signatures["serving_default"](inputs=tf.constant([tf_example(i) for i in images]))
    for outputs in (predicted, classified):
        np.testing.assert_allclose(outputs["scores"].numpy(), expected["scores"], atol=1e-5, rtol=0)
        np.testing.assert_array_equal(outputs["classes"].numpy(), expected["classes"])
    scores = expected["scores"]
    assert scores.shape == (len(images), 5)
    assert np.all(np.diff(scores, axis=1) <= 0), "scores must be descending"
    assert np.all((scores >= 0) & (scores <= 1))
    assert {label.decode() for label in expected["classes"].ravel()} <= set(TINY_LABELS)


def test_scores_are_top_k_of_model_probabilities(tiny_loaded):
    model = tiny_classifier(seed=0)
    images = sample_images()[:3]
    pixels = tf.stack([tiny_loaded.signatures["preprocess"](image=tf.constant(i))["pixels"] for i in images])
    probabilities = model(pixels, training=False).numpy()
    outputs = tiny_loaded.signatures["classify_pixels"](pixels=pixels)
    top = np.argsort(-probabilities, axis=1)[:, :5]
    np.testing.assert_allclose(outputs["scores"].numpy(), np.take_along_axis(probabilities, top, 1), atol=1e-6)
    np.testing.assert_array_equal(outputs["classes"].numpy().astype(str), np.array(TINY_LABELS)[top])


def test_preprocess_decodes_and_scales_like_reference(tiny_loaded):
    preprocess = tiny_loaded.signatures["preprocess"]
    rgb = encode_image(32, 32, "RGB", "PNG", seed=11)  # already 32x32: resize is the identity
    reference = np.asarray(Image.open(io.BytesIO(rgb)), np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(preprocess(image=tf.constant(rgb))["pixels"].numpy(), reference, atol=1e-6)

    gray = encode_image(32, 32, "L", "PNG", seed=12)
    pixels = preprocess(image=tf.constant(gray))["pixels"].numpy()
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])
    rgba = encode_image(32, 32, "RGBA", "PNG", seed=13)
    reference = np.asarray(Image.open(io.BytesIO(rgba)), np.float32)[..., :3] / 127.5 - 1.0
    np.testing.assert_allclose(preprocess(image=tf.constant(rgba))["pixels"].numpy(), reference, atol=1e-6)

    big = preprocess(image=tf.constant(encode_image(300, 200, "RGB", "JPEG")))["pixels"].numpy()
    assert big.shape == (32, 32, 3) and big.min() >= -1.0 and big.max() <= 1.0


def test_undecodable_bytes_raise(tiny_loaded):
    with pytest.raises(tf.errors.InvalidArgumentError):
        tiny_loaded.signatures["preprocess"](image=tf.constant(b"definitely not an image"))
    with pytest.raises(tf.errors.InvalidArgumentError):
        tiny_loaded.signatures["predict_images"](images=tf.constant([sample_images()[0], b"garbage"]))


def test_empty_batch_returns_empty_outputs(tiny_loaded):
    outputs = tiny_loaded.signatures["predict_images"](images=tf.constant([], tf.string))
    assert outputs["scores"].shape == (0, 5) and outputs["classes"].shape == (0, 5)


def test_many_batch_sizes_do_not_retrace(tiny_export):
    module_like = tf.saved_model.load(str(tiny_export))
    images = sample_images()
    for size in (1, 2, 5, 7):  # signatures are concrete functions with a None batch dim
        outputs = module_like.signatures["predict_images"](images=tf.constant(images[:size]))
        assert outputs["scores"].shape == (size, 5)


def test_metadata_contents(tiny_export):
    metadata = read_export_metadata(tiny_export)
    assert CONTRACT_METADATA_KEYS <= set(metadata)
    assert metadata["model"] == "tiny_classifier"
    assert metadata["weights"] == "random" and metadata["seed"] == 0
    assert metadata["weights_file"] is None and metadata["weights_sha256"] is None
    assert (metadata["input_height"], metadata["input_width"]) == (32, 32)
    assert metadata["num_classes"] == 10 and metadata["top_k"] == 5
    assert metadata["preprocessing"] == "inception" and metadata["precision"] == "float32"
    assert metadata["exported_at"].endswith("+00:00")


def test_other_input_size_logits_and_capped_top_k(tmp_path):
    """Any Keras classifier goes through the same code: non-square input, 3 classes, logits."""
    model = tiny_classifier(seed=5, input_size=(24, 40), classes=3, activation=None)
    version_dir = export_classifier(
        model, ["cat", "dog", "fish"], tmp_path, top_k=5, preprocessing="unit", model_outputs="logits"
    )
    loaded = tf.saved_model.load(str(version_dir))
    image = encode_image(24, 40, "RGB", "PNG", seed=9)
    pixels = loaded.signatures["preprocess"](image=tf.constant(image))["pixels"]
    reference = np.asarray(Image.open(io.BytesIO(image)), np.float32) / 255.0
    np.testing.assert_allclose(pixels.numpy(), reference, atol=1e-6)
    outputs = loaded.signatures["predict_images"](images=tf.constant([image]))
    expected = tf.nn.softmax(model(pixels[None], training=False)).numpy()[0]
    assert outputs["scores"].shape == (1, 3)
    np.testing.assert_allclose(outputs["scores"].numpy()[0], np.sort(expected)[::-1], atol=1e-6)
    metadata = read_export_metadata(version_dir)
    assert (metadata["input_height"], metadata["input_width"], metadata["top_k"]) == (24, 40, 3)


def test_bad_exporter_inputs_are_rejected(tmp_path):
    model = tiny_classifier(seed=0)
    with pytest.raises(ValueError, match="labels"):
        export_classifier(model, TINY_LABELS[:9], tmp_path)
    with pytest.raises(ValueError, match="already ends in softmax"):
        export_classifier(model, TINY_LABELS, tmp_path, model_outputs="logits")
    with pytest.raises(ValueError, match="preprocessing"):
        export_classifier(model, TINY_LABELS, tmp_path, preprocessing="caffe")
    with pytest.raises(ValueError, match="computed by the exporter"):
        export_classifier(model, TINY_LABELS, tmp_path, metadata={"num_classes": 3})
    assert list(tmp_path.iterdir()) == []


def test_existing_version_is_refused_unless_overwrite(tmp_path):
    model = tiny_classifier(seed=0)
    first = export_classifier(model, TINY_LABELS, tmp_path, version=2)
    stamp = read_export_metadata(first)["exported_at"]
    with pytest.raises(VersionExistsError):
        export_classifier(model, TINY_LABELS, tmp_path, version=2)
    (first / "marker").write_text("old")
    second = export_classifier(model, TINY_LABELS, tmp_path, version=2, overwrite=True)
    assert second == first and not (second / "marker").exists()
    assert read_export_metadata(second)["exported_at"] >= stamp
    assert [path.name for path in tmp_path.iterdir()] == ["2"]


def test_failed_export_leaves_no_partial_version(tmp_path, monkeypatch):
    """A server polling the base path must never see a half-written version."""
    from model_export import exporter

    def crash(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(exporter, "_mark_classify_signature", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_classifier(tiny_classifier(seed=0), TINY_LABELS, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_same_seed_exports_identical_scores(tmp_path):
    images = sample_images()
    scores = []
    for run in range(2):
        version_dir = export_classifier(tiny_classifier(seed=42), TINY_LABELS, tmp_path / str(run))
        loaded = tf.saved_model.load(str(version_dir))
        scores.append(loaded.signatures["predict_images"](images=tf.constant(images))["scores"].numpy())
    np.testing.assert_array_equal(scores[0], scores[1])


# ---------------------------------------------------------------- labels

def test_labels_bundled_imagenet_json_and_plain_text(tmp_path):
    imagenet = load_labels()
    assert len(imagenet) == 1000 and imagenet[0] == "tench" and imagenet[1] == "goldfish"
    plain = tmp_path / "labels.txt"
    plain.write_text("cat\ndog\n\n")
    assert load_labels(plain) == ["cat", "dog"]
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"1": ["n2", "dog"], "0": ["n1", "cat"]}))
    assert load_labels(index) == ["cat", "dog"]
    with pytest.raises(FileNotFoundError):
        load_labels(tmp_path / "missing.txt")


# ---------------------------------------------------------------- Inception-v3

@pytest.fixture(scope="module")
def inception_123() -> keras.Model:
    return build_inception_v3(None, seed=123)


@pytest.fixture(scope="module")
def inception_images() -> list[bytes]:
    return [encode_image(299, 299, "RGB", "PNG", seed=21), encode_image(180, 240, "RGB", "JPEG", seed=22),
            encode_image(64, 64, "L", "PNG", seed=23)]


@pytest.fixture(scope="module")
def weights_h5(inception_123, tmp_path_factory) -> Path:
    return write_legacy_h5_weights(inception_123, tmp_path_factory.mktemp("weights") / "inception_123.h5")


@pytest.fixture(scope="module")
def cli_file_export(weights_h5, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("cli_file") / "inception"
    result = run_cli("--weights", str(weights_h5), "--output", str(base))
    assert result.returncode == 0, result.stderr
    assert "loaded weights from" in result.stdout and "does NOT match" in result.stdout
    assert f"done: {base / '1'}" in result.stdout
    return base / "1"


@pytest.fixture(scope="module")
def cli_seeded_export(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("cli_seeded") / "inception"
    result = run_cli("--output", str(base), "--seed", "123", "--version", "7", "--top-k", "3")
    assert result.returncode == 0, result.stderr
    assert "using seeded random weights (seed=123)" in result.stdout
    assert "NOT meaningful ImageNet classes" in result.stdout
    return base / "7"


def test_inception_seeded_build_is_deterministic(inception_123):
    again = build_inception_v3(None, seed=123)
    for original, rebuilt in zip(inception_123.weights, again.weights, strict=True):
        np.testing.assert_array_equal(original.numpy(), rebuilt.numpy())
    other = build_inception_v3(None, seed=124)
    assert not np.array_equal(inception_123.weights[0].numpy(), other.weights[0].numpy())


def test_cli_weights_file_export_matches_keras_model(cli_file_export, inception_123, inception_images, weights_h5):
    """Acceptance point 7: --weights from an .h5 file scores like the Keras model holding them."""
    loaded = tf.saved_model.load(str(cli_file_export))
    outputs = loaded.signatures["predict_images"](images=tf.constant(inception_images))
    pixels = tf.stack([loaded.signatures["preprocess"](image=tf.constant(i))["pixels"] for i in inception_images])
    probabilities = inception_123.predict(pixels, verbose=0)
    top5 = np.argsort(-probabilities, axis=1)[:, :5]
    labels = np.array(load_labels())
    np.testing.assert_array_equal(outputs["classes"].numpy().astype(str), labels[top5])
    np.testing.assert_allclose(outputs["scores"].numpy(), np.take_along_axis(probabilities, top5, 1), atol=1e-4)

    # The pixels really are Keras' Inception preprocessing (x/127.5 - 1 after a bilinear resize).
    decoded = np.asarray(Image.open(io.BytesIO(inception_images[0])).convert("RGB"), np.float32)
    reference = keras.applications.inception_v3.preprocess_input(decoded)
    np.testing.assert_allclose(pixels[0].numpy(), reference, atol=1e-5)

    metadata = read_export_metadata(cli_file_export)
    assert CONTRACT_METADATA_KEYS <= set(metadata)
    assert metadata["weights"] == "file"
    assert metadata["weights_file"] == str(weights_h5.resolve())
    assert len(metadata["weights_sha256"]) == 64 and metadata["weights_sha256"] != STANDARD_WEIGHTS_SHA256
    assert metadata["weights_sha256_matches_standard"] is False
    assert metadata["model"] == "inception_v3"
    assert (metadata["input_height"], metadata["input_width"], metadata["num_classes"]) == (299, 299, 1000)
    assert read_labels_asset(cli_file_export) == list(labels)


def test_cli_seeded_export_is_random_and_reproducible_across_processes(
    cli_seeded_export, cli_file_export, inception_images
):
    metadata = read_export_metadata(cli_seeded_export)
    assert metadata["weights"] == "random" and metadata["seed"] == 123
    assert metadata["weights_file"] is None and metadata["weights_sha256"] is None
    assert metadata["top_k"] == 3 and metadata["preprocessing"] == "inception"
    # Same seed in another process gives the very weights the .h5 file was written from.
    seeded = tf.saved_model.load(str(cli_seeded_export)).signatures["predict_images"]
    from_file = tf.saved_model.load(str(cli_file_export)).signatures["predict_images"]
    images = tf.constant(inception_images)
    np.testing.assert_allclose(seeded(images=images)["scores"].numpy(),
                               from_file(images=images)["scores"].numpy()[:, :3], atol=1e-6)


def test_incompatible_weights_file_fails_clearly(tmp_path):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsFileError, match="does not fit Inception-v3"):
        build_inception_v3_with_info(garbage, seed=0, log=lambda _: None)
    tiny = write_legacy_h5_weights(tiny_classifier(seed=0), tmp_path / "tiny.h5")
    with pytest.raises(WeightsFileError, match="Layer count mismatch"):
        build_inception_v3_with_info(tiny, seed=0, log=lambda _: None)


# ---------------------------------------------------------------- CLI

def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--output", "--version", "--weights", "--seed", "--top-k", "--labels", "--overwrite"):
        assert option in result.stdout


def test_cli_missing_weights_file_fails_with_one_line(tmp_path):
    result = run_cli("--output", str(tmp_path / "out"), "--weights", str(tmp_path / "nope.h5"))
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == [f"error: weights file not found: {tmp_path / 'nope.h5'}"]
    assert not (tmp_path / "out" / "1").exists()


def test_cli_refuses_existing_version(cli_seeded_export):
    result = run_cli("--output", str(cli_seeded_export.parent), "--version", "7")
    assert result.returncode != 0
    assert "already exists" in result.stderr and "--overwrite" in result.stderr
    assert read_export_metadata(cli_seeded_export)["seed"] == 123  # untouched

