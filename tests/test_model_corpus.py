"""The model corpus (tests/model_corpus.py) writes the SavedModels it promises, and they compute what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import model_corpus as mc

VALID_METHODS = {mc.PREDICT, mc.CLASSIFY, mc.REGRESS}


def described(version_dir: Path) -> dict[str, dict]:
    """Callable signatures as describe_signature dicts (TF2's `__saved_model_init_op` entry left out)."""
    return {
        key: mc.describe_signature(signature)
        for key, signature in mc.read_signature_defs(version_dir).items()
        if not key.startswith("__")
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    builders = {
        "half_plus_two": mc.write_half_plus_two_tf1,
        "unknown_shape": mc.write_tf2_module_unknown_shape,
        "keras": mc.write_keras_sequential,
        "multi_io": mc.write_multi_io,
        "no_batch_dim": mc.write_no_batch_dim,
        "tutorial": mc.write_tutorial_inception_style,
    }
    return {name: build(root / name) for name, build in builders.items()}


def test_every_builder_writes_tf_serving_layout(corpus: dict[str, Path]) -> None:
    for name, version_dir in corpus.items():
        assert version_dir.name == "1", name
        assert (version_dir / "saved_model.pb").is_file(), name
        assert (version_dir / "variables").is_dir(), name
        assert sorted(p.name for p in version_dir.parent.iterdir()) == ["1"], name  # no staging leftovers
        signatures = described(version_dir)
        assert signatures, name
        for key, signature in signatures.items():
            assert signature["method"] in VALID_METHODS, (name, key)


def test_versions_sit_side_by_side_and_are_never_overwritten(tmp_path: Path) -> None:
    base = tmp_path / "m"
    assert mc.write_no_batch_dim(base) == base / "1"
    assert mc.write_no_batch_dim(base, version=7) == base / "7"
    assert sorted(p.name for p in base.iterdir()) == ["1", "7"]
    with pytest.raises(FileExistsError):
        mc.write_no_batch_dim(base, version=7)
    assert sorted(p.name for p in base.iterdir()) == ["1", "7"]


# ---------------------------------------------------------------------------------------------------------


def test_half_plus_two_signatures(corpus: dict[str, Path]) -> None:
    assert described(corpus["half_plus_two"]) == {
        "serving_default": {
            "method": mc.PREDICT,
            "inputs": {"x": ("float32", [-1, 1])},
            "outputs": {"y": ("float32", [-1, 1])},
        },
        "regress_x_to_y": {
            "method": mc.REGRESS,
            "inputs": {"inputs": ("string", [-1])},
            "outputs": {"outputs": ("float32", [-1, 1])},
        },
        "classify_x_to_y": {
            "method": mc.CLASSIFY,
            "inputs": {"inputs": ("string", [-1])},
            "outputs": {"scores": ("float32", [-1, 1])},
        },
    }


def test_half_plus_two_values(corpus: dict[str, Path]) -> None:
    version_dir = corpus["half_plus_two"]
    y = mc.run_in_process(version_dir, x=np.array([[1.0], [0.0], [-4.0]], np.float32))["y"]
    np.testing.assert_array_equal(y, [[2.5], [2.0], [0.0]])

    examples = [mc.make_example(x=1.0), mc.make_example(x=[3.0])]
    regressed = mc.run_in_process(version_dir, "regress_x_to_y", inputs=examples)
    np.testing.assert_array_equal(regressed["outputs"], [[2.5], [3.5]])
    classified = mc.run_in_process(version_dir, "classify_x_to_y", inputs=examples)
    assert set(classified) == {"scores"}
    np.testing.assert_array_equal(classified["scores"], [[2.5], [3.5]])


# ---------------------------------------------------------------------------------------------------------


def test_tf2_module_unknown_shape_signatures(corpus: dict[str, Path]) -> None:
    assert described(corpus["unknown_shape"]) == {
        "serving_default": {
            "method": mc.PREDICT,
            "inputs": {"x": ("float32", None)},
            "outputs": {"doubled": ("float32", None)},
        },
        "scaled": {
            "method": mc.PREDICT,
            "inputs": {"x": ("float32", [-1, 3])},
            "outputs": {"scaled": ("float32", [-1, 3]), "total": ("float32", [-1])},
        },
    }


def test_tf2_module_unknown_shape_values(corpus: dict[str, Path]) -> None:
    version_dir = corpus["unknown_shape"]
    assert mc.run_in_process(version_dir, x=np.float32(1.5))["doubled"] == np.float32(3.0)
    cube = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    np.testing.assert_array_equal(mc.run_in_process(version_dir, x=cube)["doubled"], cube * 2)

    rows = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    out = mc.run_in_process(version_dir, "scaled", x=rows)
    np.testing.assert_array_equal(out["scaled"], rows * 3)
    np.testing.assert_array_equal(out["total"], [6.0, 15.0])


# ---------------------------------------------------------------------------------------------------------


def test_keras_sequential_signatures(corpus: dict[str, Path]) -> None:
    endpoint = {
        "method": mc.PREDICT,
        "inputs": {mc.KERAS_INPUT_KEY: ("float32", [-1, mc.KERAS_INPUT_DIM])},
        "outputs": {mc.KERAS_OUTPUT_KEY: ("float32", [-1, mc.KERAS_CLASSES])},
    }
    assert described(corpus["keras"]) == {"serving_default": endpoint, "serve": endpoint}


def test_keras_sequential_values(corpus: dict[str, Path]) -> None:
    x = np.array([[0, 1, 2, 3], [1, -1, 0.5, 0], [0, 0, 0, 0]], np.float32)
    for signature in ("serving_default", "serve"):
        probabilities = mc.run_in_process(corpus["keras"], signature, **{mc.KERAS_INPUT_KEY: x})[mc.KERAS_OUTPUT_KEY]
        np.testing.assert_allclose(probabilities, mc.keras_sequential_expected(x), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------


def test_multi_io_signatures(corpus: dict[str, Path]) -> None:
    signatures = described(corpus["multi_io"])
    assert signatures == {
        "serving_default": {
            "method": mc.PREDICT,
            "inputs": {key: (dtype, shape) for key, (dtype, shape) in mc.MULTI_IO_INPUTS.items()},
            "outputs": {key: (dtype, shape) for key, (dtype, shape) in mc.MULTI_IO_OUTPUTS.items()},
        },
        "complex_sig": {
            "method": mc.PREDICT,
            "inputs": {"x": ("complex64", [-1])},
            "outputs": {"y": ("complex64", [-1])},
        },
        "bf16": {
            "method": mc.PREDICT,
            "inputs": {"x": ("bfloat16", [-1])},
            "outputs": {"y": ("bfloat16", [-1])},
        },
    }


def test_multi_io_values(corpus: dict[str, Path]) -> None:
    version_dir = corpus["multi_io"]
    out = mc.run_in_process(version_dir, **mc.multi_io_example_inputs())
    expected = {
        "id_plus_one": np.array([2, 2**40 + 1], np.int64),
        "joined": np.array([b"hello world", "a é".encode()], object),
        "flag_not": np.array([False, True]),
        "weight_sum": np.array([0.875, 6.0], np.float64),
        "small_times_two": np.array([-256, 254], np.int32),
        "half_sq": np.array([2.25, 4.0], np.float16),
        "u16_plus": np.array([1, 65535], np.uint16),
    }
    assert set(out) == set(expected)
    for key, want in expected.items():
        assert out[key].dtype == want.dtype, key
        np.testing.assert_array_equal(out[key], want, err_msg=key)

    y = mc.run_in_process(version_dir, "complex_sig", x=np.array([1 + 2j, -0.5j], np.complex64))["y"]
    assert y.dtype == np.complex64
    np.testing.assert_array_equal(y, [2 + 4j, -1j])

    y = mc.run_in_process(version_dir, "bf16", x=np.array([1.5, -3.0, 0.0]))["y"]
    assert y.dtype.name == "bfloat16"
    np.testing.assert_array_equal(y.astype(np.float32), [3.0, -6.0, 0.0])


# ---------------------------------------------------------------------------------------------------------


def test_no_batch_dim_signature_and_values(corpus: dict[str, Path]) -> None:
    version_dir = corpus["no_batch_dim"]
    assert described(version_dir) == {
        "serving_default": {
            "method": mc.PREDICT,
            "inputs": {"matrix": ("float32", [2, 2])},
            "outputs": {"determinant": ("float32", []), "transposed": ("float32", [2, 2])},
        }
    }
    out = mc.run_in_process(version_dir, matrix=np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    assert out["determinant"].shape == ()
    np.testing.assert_allclose(out["determinant"], -2.0, rtol=1e-6)
    np.testing.assert_array_equal(out["transposed"], [[1.0, 3.0], [2.0, 4.0]])


# ---------------------------------------------------------------------------------------------------------


def test_tutorial_signatures(corpus: dict[str, Path]) -> None:
    outputs = {"classes": ("string", [-1, mc.TUTORIAL_TOP_K]), "scores": ("float32", [-1, mc.TUTORIAL_TOP_K])}
    signatures = described(corpus["tutorial"])
    assert signatures == {
        "predict_images": {"method": mc.PREDICT, "inputs": {"images": ("string", [-1])}, "outputs": outputs},
        "serving_default": {"method": mc.CLASSIFY, "inputs": {"inputs": ("string", [-1])}, "outputs": outputs},
    }
    assert "preprocess" not in signatures and "classify_pixels" not in signatures


def test_tutorial_predicts_ranked_top5_and_classify_agrees(corpus: dict[str, Path]) -> None:
    version_dir = corpus["tutorial"]
    jpegs = mc.encode_test_jpegs(3)
    predicted = mc.run_in_process(version_dir, "predict_images", images=jpegs)
    classes, scores = predicted["classes"], predicted["scores"]
    assert classes.shape == (3, mc.TUTORIAL_TOP_K) and scores.shape == (3, mc.TUTORIAL_TOP_K)
    assert scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 0), scores
    assert np.all(scores > 0) and np.all(scores.sum(axis=1) <= 1.0 + 1e-6)
    labels = {label.encode() for label in mc.TUTORIAL_LABELS}
    for row in classes:
        assert set(row) <= labels and len(set(row)) == mc.TUTORIAL_TOP_K
    assert len({tuple(row) for row in classes}) > 1, "different images should rank differently"

    examples = [mc.make_example(**{"image/encoded": jpeg}) for jpeg in jpegs]
    classified = mc.run_in_process(version_dir, "serving_default", inputs=examples)
    np.testing.assert_array_equal(classified["classes"], classes)
    np.testing.assert_allclose(classified["scores"], scores, rtol=1e-6)

    single = mc.run_in_process(version_dir, "predict_images", images=jpegs[1:2])
    np.testing.assert_array_equal(single["classes"], classes[1:2])
    np.testing.assert_allclose(single["scores"], scores[1:2], rtol=1e-5)


def test_builders_are_deterministic(tmp_path: Path, corpus: dict[str, Path]) -> None:
    jpegs = mc.encode_test_jpegs(2)
    again = mc.write_tutorial_inception_style(tmp_path / "tutorial")
    first = mc.run_in_process(corpus["tutorial"], "predict_images", images=jpegs)
    second = mc.run_in_process(again, "predict_images", images=jpegs)
    np.testing.assert_array_equal(first["classes"], second["classes"])
    np.testing.assert_array_equal(first["scores"], second["scores"])

    x = np.ones((1, mc.KERAS_INPUT_DIM), np.float32)
    keras_again = mc.write_keras_sequential(tmp_path / "keras")
    np.testing.assert_array_equal(
        mc.run_in_process(corpus["keras"], **{mc.KERAS_INPUT_KEY: x})[mc.KERAS_OUTPUT_KEY],
        mc.run_in_process(keras_again, **{mc.KERAS_INPUT_KEY: x})[mc.KERAS_OUTPUT_KEY],
    )


def test_tutorial_image_size_is_a_parameter(tmp_path: Path) -> None:
    version_dir = mc.write_tutorial_inception_style(tmp_path / "big", size=64)
    out = mc.run_in_process(version_dir, "predict_images", images=mc.encode_test_jpegs(1, size=100))
    assert out["scores"].shape == (1, mc.TUTORIAL_TOP_K)


def test_run_in_process_rejects_unknown_inputs(corpus: dict[str, Path]) -> None:
    with pytest.raises(KeyError, match="nope"):
        mc.run_in_process(corpus["no_batch_dim"], nope=[1.0])
