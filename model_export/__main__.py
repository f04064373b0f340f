"""Command line: export Inception-v3 (or the trivial benchmark model) as a TF Serving-style SavedModel version.

    python -m model_export --output models/inception [--version 1]
        [--weights imagenet | imagenet-or-seeded | seeded | FILE.h5] [--precision bf16]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from model_export.exporter import VersionExistsError, check_version_dir_free, export_classifier
from model_export.inception import (
    INCEPTION_V3_NUM_CLASSES,
    INCEPTION_V3_PREPROCESSING,
    STANDARD_WEIGHTS_FILENAME,
    WeightsFileError,
    WeightsInfo,
    build_inception_v3_with_info,
    check_weights_file,
)
from model_export.labels import load_labels
from model_export.precision import PRECISIONS, compute_precision, precision_warning
from model_export.tiny import TINY_PREPROCESSING, build_tiny_classifier, tiny_labels
from model_export.weights_download import (
    KERAS_WEIGHTS_URL,
    WEIGHTS_CHOICES,
    WEIGHTS_SEEDED,
    WEIGHTS_URL_ENV,
    WeightsDownloadError,
    select_weights,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_export",
        description=(
            "Export Inception-v3 as <output>/<version>/ (saved_model.pb, variables/, assets/labels.txt, "
            "assets/export_metadata.json) with the signatures predict_images, serving_default, preprocess "
            "and classify_pixels. --weights imagenet downloads Keras' ImageNet weights (or reuses Keras' "
            "cache); without --weights the network gets seeded random weights, which serve the API "
            "correctly but predict meaningless classes."
        ),
    )
    parser.add_argument("--output", required=True, type=Path, help="model base path; the version goes in a subdirectory")
    parser.add_argument("--version", type=int, default=1, help="version number / subdirectory name (default: 1)")
    parser.add_argument(
        "--weights",
        default=WEIGHTS_SEEDED,
        metavar="WEIGHTS",
        help=f"imagenet: download {STANDARD_WEIGHTS_FILENAME} into Keras' cache (or reuse it there), "
        "sha256-checked, and fail if that is impossible; imagenet-or-seeded: the same, but fall back to "
        "seeded random weights (saying why) when the download fails; seeded (default): seeded random weights; "
        "otherwise a local Keras HDF5 file (its sha256 is checked and recorded)",
    )
    parser.add_argument(
        "--weights-url",
        default=None,
        metavar="URL",
        help="where --weights imagenet and imagenet-or-seeded download from "
        f"(default: ${WEIGHTS_URL_ENV}, else {KERAS_WEIGHTS_URL})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the seeded random weights (default: 0)")
    parser.add_argument("--top-k", type=int, default=5, help="classes returned per image (default: 5)")
    parser.add_argument(
        "--labels",
        type=Path,
        default=None,
        metavar="FILE",
        help="labels: Keras class index (.json) or one label per line (default: bundled ImageNet names)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version directory")
    parser.add_argument(
        "--model",
        choices=["inception_v3", "tiny"],
        default="inception_v3",
        help="inception_v3 (default), or tiny: a 2-layer net on 32x32 input for measuring serving overhead",
    )
    parser.add_argument(
        "--precision",
        choices=sorted(PRECISIONS),
        default="fp32",
        help="compute precision: fp32 (default), bf16 (CPUs with AVX512-BF16/AMX), fp16 (GPUs); "
        "weights stay float32 and outputs are float32",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the export; returns the process exit status (errors are reported in one line)."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    try:
        if args.version < 0:
            raise ValueError(f"--version must be >= 0, got {args.version}")
        if args.top_k < 1:
            raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
        # Cheap checks first, so bad input fails before the slow build.
        version_dir = check_version_dir_free(args.output, args.version, overwrite=args.overwrite)
        if args.weights != WEIGHTS_SEEDED:
            if args.model != "inception_v3":
                raise ValueError("--weights applies to --model inception_v3 only")
            if args.weights not in WEIGHTS_CHOICES:
                check_weights_file(args.weights)
        warning = precision_warning(args.precision)
        if warning:
            progress(f"warning: {warning}")
        if args.model == "tiny":
            labels = load_labels(args.labels) if args.labels else tiny_labels()
            progress(f"building the tiny benchmark model ({args.precision})")
            with compute_precision(args.precision):
                model = build_tiny_classifier(args.seed, num_classes=len(labels))
            weights_info = WeightsInfo(kind="random", seed=args.seed)
            preprocessing, model_name = TINY_PREPROCESSING, "tiny_mlp"
        else:
            labels = load_labels(args.labels)
            if len(labels) != INCEPTION_V3_NUM_CLASSES:
                raise ValueError(
                    f"Inception-v3 has {INCEPTION_V3_NUM_CLASSES} classes but {len(labels)} labels were given"
                )
            weights = select_weights(args.weights, url=args.weights_url, log=progress)
            progress(
                f"building Inception-v3 ({args.precision})"
                + (f" and loading weights from {weights.file}" if weights.file else "")
            )
            with compute_precision(args.precision):
                model, weights_info = build_inception_v3_with_info(
                    weights.file, args.seed, log=progress, fallback_reason=weights.fallback_reason
                )
            preprocessing, model_name = INCEPTION_V3_PREPROCESSING, "inception_v3"
        progress(f"tracing signatures and writing {version_dir} (via a staging directory)")
        version_dir = export_classifier(
            model,
            labels,
            args.output,
            version=args.version,
            top_k=args.top_k,
            preprocessing=preprocessing,
            metadata={"model": model_name, **weights_info.as_metadata()},
            overwrite=args.overwrite,
        )
    except WeightsDownloadError as error:
        print(f"error: could not download the ImageNet weights: {error}", file=sys.stderr)
        return 1
    except (VersionExistsError, WeightsFileError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if weights_info.kind == "file":
        weights_note = f"weights from {weights_info.file}"
    elif weights_info.fallback_reason:
        weights_note = "seeded random weights: the ImageNet weights could not be downloaded"
    else:
        weights_note = "seeded random weights"
    progress(f"done: {version_dir} ({weights_note}) in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
