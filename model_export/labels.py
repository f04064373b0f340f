"""Class labels: the bundled ImageNet index, a Keras-style JSON index, or a plain text file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

IMAGENET_CLASS_INDEX = Path(__file__).resolve().parent / "data" / "imagenet_class_index.json"
"""Keras' ImageNet index ({"0": ["n01440764", "tench"], ...}) shipped with the package (no download)."""


def labels_from_class_index(index: dict[str, Sequence[str]]) -> list[str]:
    """Turn a Keras class index into human-readable names in class-index order."""
    try:
        positions = sorted(int(key) for key in index)
    except ValueError as error:
        raise ValueError(f"class index keys must be integers: {error}") from None
    if positions != list(range(len(positions))):
        raise ValueError("class index keys must be exactly 0..N-1")
    names = []
    for position in positions:
        entry = index[str(position)]
        if isinstance(entry, str):
            names.append(entry)
        elif isinstance(entry, Sequence) and len(entry) == 2:
            names.append(str(entry[1]))  # [wordnet_id, name]
        else:
            raise ValueError(f"class index entry {position} is neither a name nor [id, name]: {entry!r}")
    return names


def load_labels(path: str | Path | None = None) -> list[str]:
    """Read labels in class-index order; ``None`` means the bundled ImageNet names.

    ``*.json`` files are read as a Keras class index; anything else as one label per line
    (trailing blank lines ignored, so files ending in a newline work).
    """
    source = Path(path) if path is not None else IMAGENET_CLASS_INDEX
    if not source.is_file():
        raise FileNotFoundError(f"labels file not found: {source}")
    text = source.read_text(encoding="utf-8")
    if source.suffix.lower() == ".json":
        try:
            labels = labels_from_class_index(json.loads(text))
        except (json.JSONDecodeError, AttributeError, ValueError) as error:
            raise ValueError(f"{source} is not a Keras class index: {error}") from None
    else:
        labels = [line.strip() for line in text.rstrip("\n\r ").splitlines()]
    validate_labels(labels)
    return labels


def validate_labels(labels: Sequence[str]) -> list[str]:
    """Labels end up one per line in labels.txt, so they must be non-empty and single-line."""
    labels = list(labels)
    if not labels:
        raise ValueError("no labels given")
    for position, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"label {position} is empty or not a string: {label!r}")
        if "\n" in label or "\r" in label:
            raise ValueError(f"label {position} contains a line break: {label!r}")
    return labels
