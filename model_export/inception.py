"""Inception-v3 (Keras applications) with either seeded random weights or a local .h5 file.

Keras' own ``weights="imagenet"`` is never used: model_export.weights_download fetches the
standard file (verified, with a clear reason on failure) and hands it here as a local path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keras

INCEPTION_V3_INPUT_SIZE = 299
INCEPTION_V3_NUM_CLASSES = 1000
INCEPTION_V3_PREPROCESSING = "inception"  # Keras' inception_v3.preprocess_input: x/127.5 - 1
STANDARD_WEIGHTS_FILENAME = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
STANDARD_WEIGHTS_SHA256 = "00c9ea4e4762f716ac4d300d6d9c2935639cc5e4d139b5790d765dcbeea539d0"
"""sha256 of Keras' published ImageNet weights (with top) for InceptionV3."""

RANDOM_WEIGHTS_WARNING = "predictions are NOT meaningful ImageNet classes"


class WeightsFileError(ValueError):
    """The weights file is missing, unreadable, or does not fit Inception-v3."""


@dataclass(frozen=True)
class WeightsInfo:
    """Where the model's weights came from; recorded in export_metadata.json."""

    kind: Literal["random", "file"]
    seed: int | None = None
    file: Path | None = None
    sha256: str | None = None
    fallback_reason: str | None = None
    """Why the ImageNet weights were asked for but seeded weights were used instead."""

    @property
    def is_standard_file(self) -> bool:
        return self.sha256 == STANDARD_WEIGHTS_SHA256

    def as_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "weights": self.kind,
            "weights_file": str(self.file) if self.file else None,
            "weights_sha256": self.sha256,
            "seed": self.seed,
            "weights_fallback_reason": self.fallback_reason,
        }
        if self.kind == "file":
            metadata["weights_sha256_matches_standard"] = self.is_standard_file
        return metadata

    def describe(self) -> str:
        if self.kind == "random":
            fallback = " because the ImageNet weights could not be downloaded" if self.fallback_reason else ""
            return f"using seeded random weights (seed={self.seed}){fallback}: {RANDOM_WEIGHTS_WARNING}"
        verdict = (
            "matches the standard Keras ImageNet weights"
            if self.is_standard_file
            else f"does NOT match the standard Keras ImageNet weights ({STANDARD_WEIGHTS_SHA256}); "
            "loading it anyway since the shapes fit"
        )
        return f"loaded weights from {self.file} (sha256 {self.sha256}: {verdict})"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_weights_file(weights_file: str | Path) -> Path:
    """Cheap checks worth failing on before spending seconds building the network."""
    path = Path(weights_file)
    if not path.is_file():
        raise WeightsFileError(f"weights file not found: {path}")
    if not (path.name.endswith(".h5") or path.name.endswith(".hdf5")):
        raise WeightsFileError(f"weights file must be a Keras HDF5 file (.h5/.hdf5): {path}")
    return path


def _new_inception_v3() -> keras.Model:
    return keras.applications.InceptionV3(
        weights=None,
        include_top=True,
        classes=INCEPTION_V3_NUM_CLASSES,
        input_shape=(INCEPTION_V3_INPUT_SIZE, INCEPTION_V3_INPUT_SIZE, 3),
        classifier_activation="softmax",
    )


def build_inception_v3_with_info(
    weights_file: str | Path | None,
    seed: int,
    *,
    log: Callable[[str], None] = print,
    fallback_reason: str | None = None,
) -> tuple[keras.Model, WeightsInfo]:
    """Build Inception-v3 (outputs softmax probabilities) and report where its weights came from.

    The seed is set before building, so the same seed always yields the same random
    weights in any process; a weights file overwrites every weight, so the seed is then moot.
    ``fallback_reason`` (seeded weights only) records why the ImageNet weights were not used.
    """
    path = check_weights_file(weights_file) if weights_file is not None else None
    keras.utils.set_random_seed(seed)
    model = _new_inception_v3()
    if path is None:
        info = WeightsInfo(kind="random", seed=seed, fallback_reason=fallback_reason)
    else:
        info = WeightsInfo(kind="file", file=path.resolve(), sha256=file_sha256(path))
        try:
            model.load_weights(str(path))
        except (ValueError, OSError, KeyError, TypeError) as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise WeightsFileError(
                f"weights file {path} does not fit Inception-v3 (include_top=True, "
                f"{INCEPTION_V3_NUM_CLASSES} classes, legacy Keras HDF5 layout "
                f"like {STANDARD_WEIGHTS_FILENAME}): {reason}"
            ) from error
    log(info.describe())
    return model, info


def build_inception_v3(weights_file: str | Path | None, seed: int) -> keras.Model:
    """Inception-v3 from a local weights file, or with deterministic weights from ``seed``."""
    model, _ = build_inception_v3_with_info(weights_file, seed)
    return model
