"""Offline export of image classifiers as SavedModels for the server.

This is the only package that builds models; see docs/architecture.md
("Contract: exported SavedModel") for the layout and signatures it produces.
"""

from model_export.exporter import (
    SIGNATURE_NAMES,
    VersionExistsError,
    export_classifier,
    read_export_metadata,
    read_labels_asset,
)
from model_export.inception import (
    STANDARD_WEIGHTS_SHA256,
    WeightsFileError,
    WeightsInfo,
    build_inception_v3,
    build_inception_v3_with_info,
)
from model_export.labels import load_labels
from model_export.preprocessing import PREPROCESSING_MODES, decode_and_resize

__all__ = [
    "PREPROCESSING_MODES",
    "SIGNATURE_NAMES",
    "STANDARD_WEIGHTS_SHA256",
    "VersionExistsError",
    "WeightsFileError",
    "WeightsInfo",
    "build_inception_v3",
    "build_inception_v3_with_info",
    "decode_and_resize",
    "export_classifier",
    "load_labels",
    "read_export_metadata",
    "read_labels_asset",
]
