"""Shared fixtures: exported models (tiny and Inception-v3) and real servers on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from server_process import REPO_ROOT, ServerProcess  # noqa: E402

TINY_LABELS = [f"class_{i}" for i in range(10)]


def build_tiny_classifier(seed: int = 7, size: int = 32, classes: int = 10):
    """A small seeded conv net: exercises every code path at a fraction of Inception's cost."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


@pytest.fixture(scope="session")
def tiny_model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_export import export_classifier

    base = tmp_path_factory.mktemp("tiny") / "tiny"
    export_classifier(build_tiny_classifier(), TINY_LABELS, base, version=1, top_k=5, preprocessing="unit")
    return base


@pytest.fixture(scope="session")
def fault_model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier whose graph fails or stalls on marked inputs (tests/fault_model.py)."""
    from fault_model import export_fault_model

    return export_fault_model(tmp_path_factory.mktemp("fault") / "fault")


@pytest.fixture(scope="session")
def inception_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inception-v3 with seeded weights, exported as `make serve` does when the ImageNet weights cannot be
    downloaded (tests never reach the network)."""
    base = tmp_path_factory.mktemp("inception") / "inception"
    subprocess.run(
        [sys.executable, "-m", "model_export", "--output", str(base), "--version", "1", "--seed", "0"],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    )
    return base


@pytest.fixture(scope="session")
def tiny_server(tiny_model_base: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        tiny_model_base, "--enable_batching=true", "--max_batch_size=8", "--max_images_per_request=16",
        model_name="tiny",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def inception_server(inception_base: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        inception_base, "--enable_batching=true", "--max_batch_size=16", "--allowed_batch_sizes=1,2,4,8,16",
        "--batch_timeout_micros=5000",
    ) as server:
        yield server
