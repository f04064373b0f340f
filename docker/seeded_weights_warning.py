"""Prints one WARNING line when a baked model has seeded (random) weights, as the last words of its build step.

An image built without network falls back to seeded weights: every API works but the labels mean nothing. The
export says so once, early, in a long log; this repeats it where a build log ends.

Usage: python seeded_weights_warning.py MODEL_DIR     (MODEL_DIR: /models/<name>, holding version directories)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HOW_TO_GET_REAL_WEIGHTS = (
    "for real labels, rebuild with network access (--build-arg WEIGHTS=imagenet fails instead of falling back), "
    "or put Keras' inception_v3_weights_tf_dim_ordering_tf_kernels.h5 in weights/ and build with "
    "--build-arg WEIGHTS=inception_v3_weights_tf_dim_ordering_tf_kernels.h5 (see docs/models.md, "
    "'Real ImageNet weights', and python -m model_export --help)"
)


def seeded_versions(model_dir: Path) -> list[tuple[str, dict]]:
    """(version, export metadata) of each version whose metadata records random weights."""
    found = []
    for metadata_file in sorted(model_dir.glob("*/assets/export_metadata.json")):
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        if metadata.get("weights") == "random":
            found.append((metadata_file.parent.parent.name, metadata))
    return found


def warning_line(model_dir: Path, version: str, metadata: dict) -> str:
    reason = metadata.get("weights_fallback_reason")
    why = f" (the ImageNet download failed: {reason})" if reason else ""
    return (
        f"WARNING: the model baked into this image, {model_dir}/{version}, has SEEDED RANDOM WEIGHTS{why}: "
        f"every API works, but its labels are meaningless; {HOW_TO_GET_REAL_WEIGHTS}"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    model_dir = Path(argv[0])
    for version, metadata in seeded_versions(model_dir):
        print(warning_line(model_dir, version, metadata), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
