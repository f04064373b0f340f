"""Model-agnostic export of a Keras image classifier to a TF Serving-style SavedModel.

The layout and the four signatures follow the "Contract: exported SavedModel" section
of docs/architecture.md, which is what ``service/runtime.py`` relies on.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import keras
import tensorflow as tf

from model_export.labels import validate_labels
from model_export.preprocessing import check_preprocessing_mode, decode_and_resize

SIGNATURE_NAMES: tuple[str, ...] = ("predict_images", "serving_default", "preprocess", "classify_pixels")
LABELS_FILENAME = "labels.txt"
METADATA_FILENAME = "export_metadata.json"
EXAMPLE_IMAGE_FEATURE = "image/encoded"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
"""TF Serving's Classify API only accepts signatures with this method name."""

COMPUTED_METADATA_KEYS: tuple[str, ...] = (
    "input_height", "input_width", "num_classes", "top_k", "preprocessing", "precision", "exported_at",
)
"""Metadata the exporter derives itself; callers may not override these."""

PROVENANCE_METADATA_DEFAULTS: Mapping[str, Any] = {
    "weights": None, "weights_file": None, "weights_sha256": None, "seed": None,
}
"""Contract keys only the caller knows (where the weights came from); None until given."""

ModelOutputs = Literal["probabilities", "logits"]


class VersionExistsError(FileExistsError):
    """The target version directory already exists and ``overwrite`` was not requested."""


def image_input_size(model: keras.Model) -> tuple[int, int]:
    """Height and width from the model's input shape, so any fixed-size classifier exports alike."""
    if len(model.inputs) != 1:
        raise ValueError(f"expected a model with one image input, got {len(model.inputs)} inputs")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
        raise ValueError(f"expected a channels-last RGB input of fixed size (None, H, W, 3), got {shape}")
    return int(shape[1]), int(shape[2])


def num_model_classes(model: keras.Model) -> int:
    shape = tuple(model.outputs[0].shape) if len(model.outputs) == 1 else ()
    if len(shape) != 2 or shape[1] is None:
        raise ValueError(f"expected a single (None, num_classes) output, got {[tuple(o.shape) for o in model.outputs]}")
    return int(shape[1])


def ends_in_softmax(model: keras.Model) -> bool:
    """True when the last layer applies softmax (e.g. Keras applications' classifier_activation)."""
    activation = getattr(model.layers[-1], "activation", None)
    return activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"


class ClassifierModule(tf.Module):
    """Holds the Keras model and labels; its tf.functions become the SavedModel's signatures.

    Every signature is traced once with a ``None`` batch dimension, so no batch size
    ever triggers a retrace.
    """

    def __init__(
        self,
        model: keras.Model,
        labels: Sequence[str],
        *,
        top_k: int,
        preprocessing: str,
        model_outputs: ModelOutputs,
    ) -> None:
        super().__init__(name="image_classifier")
        self.model = model
        self.height, self.width = image_input_size(model)
        self.preprocessing = check_preprocessing_mode(preprocessing)
        self.top_k = top_k
        self.apply_softmax = model_outputs == "logits"
        self.class_names = tf.constant(list(labels), dtype=tf.string)

        pixels_spec = tf.TensorSpec([None, self.height, self.width, 3], tf.float32, name="pixels")
        self.preprocess = tf.function(
            self._preprocess, input_signature=[tf.TensorSpec([], tf.string, name="image")]
        )
        self.classify_pixels = tf.function(self._classify_pixels, input_signature=[pixels_spec])
        self.predict_images = tf.function(
            self._predict_images, input_signature=[tf.TensorSpec([None], tf.string, name="images")]
        )
        self.classify_examples = tf.function(
            self._classify_examples, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")]
        )

    def _decode(self, image: tf.Tensor) -> tf.Tensor:
        return decode_and_resize(image, self.height, self.width, self.preprocessing)

    def _preprocess(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"pixels": self._decode(image)}

    def _classify_pixels(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        # Some CPU kernels reject zero-sized batches, so an empty request skips the network.
        return tf.cond(
            tf.shape(pixels)[0] > 0,
            lambda: self._run_network(pixels),
            lambda: {
                "classes": tf.zeros([0, self.top_k], tf.string),
                "scores": tf.zeros([0, self.top_k], tf.float32),
            },
        )

    def _run_network(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = tf.cast(self.model(pixels, training=False), tf.float32)
        probabilities = tf.nn.softmax(outputs, axis=-1) if self.apply_softmax else outputs
        scores, indices = tf.math.top_k(probabilities, k=self.top_k, sorted=True)
        return {"classes": tf.gather(self.class_names, indices), "scores": scores}

    def _classify_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        # Same decode function the server calls per image, then the very same traced batch
        # function (a call, not a second copy of the network: one trace, one graph to agree on).
        pixels = tf.map_fn(
            self._decode,
            images,
            fn_output_signature=tf.TensorSpec([self.height, self.width, 3], tf.float32),
        )
        return self.classify_pixels(pixels)

    def _predict_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._classify_images(images)

    def _classify_examples(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(inputs, {EXAMPLE_IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        return self._classify_images(features[EXAMPLE_IMAGE_FEATURE])

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        return {
            "predict_images": self.predict_images.get_concrete_function(),
            "serving_default": self.classify_examples.get_concrete_function(),
            "preprocess": self.preprocess.get_concrete_function(),
            "classify_pixels": self.classify_pixels.get_concrete_function(),
        }


def build_metadata(
    model: keras.Model, *, num_classes: int, top_k: int, preprocessing: str, metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge caller-supplied provenance with what the exporter knows about the model."""
    clashing = sorted(set(metadata) & set(COMPUTED_METADATA_KEYS))
    if clashing:
        raise ValueError(f"metadata keys {clashing} are computed by the exporter and cannot be overridden")
    if metadata.get("weights") not in (None, "random", "file"):
        raise ValueError(f"metadata 'weights' must be 'random' or 'file', got {metadata['weights']!r}")
    height, width = image_input_size(model)
    result: dict[str, Any] = {"model": model.name, **PROVENANCE_METADATA_DEFAULTS, **dict(metadata)}
    result.update(
        input_height=height,
        input_width=width,
        num_classes=num_classes,
        top_k=top_k,
        preprocessing=preprocessing,
        precision=keras.backend.standardize_dtype(model.compute_dtype),
        exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
        signatures=list(SIGNATURE_NAMES),
    )
    return result


def _mark_classify_signature(saved_model_dir: Path, signature_name: str) -> None:
    """Give ``serving_default`` TF Serving's classify method name.

    ``tf.saved_model.save`` labels every signature "predict"; the stock
    tensorflow_model_server rejects Classify requests on such signatures. Loading with
    ``tf.saved_model.load`` ignores the method name, so this only widens compatibility.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = saved_model_dir / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(pb_path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        meta_graph.signature_def[signature_name].method_name = CLASSIFY_METHOD_NAME
    pb_path.write_bytes(saved_model.SerializeToString())
    _refresh_fingerprint(saved_model_dir)


def _refresh_fingerprint(saved_model_dir: Path) -> None:
    """fingerprint.pb hashes saved_model.pb, so it must be rewritten after patching.

    TF has no public writer; if the internal one is unavailable, drop the file
    (loaders treat it as optional) rather than leave a stale checksum behind.
    """
    try:
        from tensorflow.python.saved_model import fingerprinting_utils

        fingerprinting_utils.write_fingerprint(str(saved_model_dir))
    except Exception:  # noqa: BLE001 - any failure means: no trustworthy fingerprint
        (saved_model_dir / "fingerprint.pb").unlink(missing_ok=True)


def _fsync_tree(root: Path) -> None:
    """Flush files before the rename publishes them, so a crash cannot expose empty files."""
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())


def _make_world_readable(directory: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)


def _publish(staging_dir: Path, version_dir: Path, *, overwrite: bool) -> None:
    """Atomically rename the finished export into place (same filesystem, so rename is atomic)."""
    if version_dir.exists():
        if not overwrite:
            raise VersionExistsError(f"{version_dir} already exists (pass overwrite=True / --overwrite to replace it)")
        retired = Path(tempfile.mkdtemp(dir=version_dir.parent, prefix=f".retired-{version_dir.name}-"))
        os.rename(version_dir, retired / version_dir.name)
        os.rename(staging_dir, version_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging_dir, version_dir)


def check_version_dir_free(output_dir: str | Path, version: int, *, overwrite: bool = False) -> Path:
    """Return the version directory, refusing an existing one unless overwriting (cheap pre-check)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a non-negative integer, got {version!r}")
    version_dir = Path(output_dir) / str(version)
    if version_dir.exists() and not overwrite:
        raise VersionExistsError(f"{version_dir} already exists (pass overwrite=True / --overwrite to replace it)")
    return version_dir


def export_classifier(
    model: keras.Model,
    labels: Sequence[str],
    output_dir: str | Path,
    *,
    version: int = 1,
    top_k: int = 5,
    preprocessing: str = "inception",
    metadata: Mapping[str, Any] = {},  # noqa: B006 - read-only, never mutated
    model_outputs: ModelOutputs = "probabilities",
    overwrite: bool = False,
) -> Path:
    """Export ``model`` as ``<output_dir>/<version>/`` with the contract's four signatures.

    The model must take (None, H, W, 3) float pixels and return (None, num_classes).
    By default its outputs must already be probabilities (as Keras applications with
    ``classifier_activation="softmax"`` return); pass ``model_outputs="logits"`` to have the
    exporter apply softmax. Scores are top-k of those probabilities, top_k capped at the
    number of classes. The export is written to a hidden staging directory next to the
    target and renamed into place, so a server polling ``output_dir`` never sees a
    partial version. Returns the version directory.
    """
    if model_outputs not in ("probabilities", "logits"):
        raise ValueError(f"model_outputs must be 'probabilities' or 'logits', got {model_outputs!r}")
    if model_outputs == "logits" and ends_in_softmax(model):
        raise ValueError("model already ends in softmax; export it with model_outputs='probabilities'")
    check_preprocessing_mode(preprocessing)
    labels = validate_labels(labels)
    num_classes = num_model_classes(model)
    if len(labels) != num_classes:
        raise ValueError(f"model has {num_classes} classes but {len(labels)} labels were given")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    top_k = min(top_k, num_classes)
    output_dir = Path(output_dir)
    version_dir = check_version_dir_free(output_dir, version, overwrite=overwrite)
    export_metadata = build_metadata(
        model, num_classes=num_classes, top_k=top_k, preprocessing=preprocessing, metadata=metadata
    )

    module = ClassifierModule(
        model, labels, top_k=top_k, preprocessing=preprocessing, model_outputs=model_outputs
    )
    signatures = module.signatures()

    output_dir.mkdir(parents=True, exist_ok=True)
    # Hidden, non-numeric name: servers only consider numeric version directories.
    staging_dir = Path(tempfile.mkdtemp(dir=output_dir, prefix=f".staging-{version}-"))
    try:
        _make_world_readable(staging_dir)  # mkdtemp makes it 0700; a server may run as another user
        tf.saved_model.save(module, str(staging_dir), signatures=signatures)
        _mark_classify_signature(staging_dir, "serving_default")
        assets_dir = staging_dir / "assets"
        assets_dir.mkdir(exist_ok=True)
        (assets_dir / LABELS_FILENAME).write_text("\n".join(labels) + "\n", encoding="utf-8")
        (assets_dir / METADATA_FILENAME).write_text(
            json.dumps(export_metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        _fsync_tree(staging_dir)
        _publish(staging_dir, version_dir, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise
    return version_dir


def read_export_metadata(version_dir: str | Path) -> dict[str, Any]:
    """Read back ``assets/export_metadata.json`` of an exported version."""
    return json.loads((Path(version_dir) / "assets" / METADATA_FILENAME).read_text(encoding="utf-8"))


def read_labels_asset(version_dir: str | Path) -> list[str]:
    """Read back ``assets/labels.txt`` of an exported version."""
    return (Path(version_dir) / "assets" / LABELS_FILENAME).read_text(encoding="utf-8").splitlines()
