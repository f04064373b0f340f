"""The package's `tensorflow_model_server` command (and its `batchserve` alias), from a regular install.

The package is installed, not editable, into a fresh virtualenv: only the console scripts and the package
files pip copies, so a command that works from the source tree but not from the installed package (a missing
entry point, a package left out of the wheel) fails here. To stay fast and offline, the new virtualenv sees
the project virtualenv's site-packages for the dependencies (a path in a .pth file, which does not run the
project's editable-install hook), and pip installs with --no-deps --no-build-isolation --no-index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest

from benchmarks.launcher import LaunchedServer
from server_process import REPO_ROOT, free_port

COMMANDS = ("tensorflow_model_server", "batchserve")
# What the wheel is built from: the files pyproject.toml packages (a copy, so that building writes nothing into
# the source tree).
_PROJECT_FILES = ("pyproject.toml", "README.md", "batching", "service", "model_export", "benchmarks")


def _run(argv: list[str], timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{' '.join(argv)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the package installed from a copy of the project; returns its directory."""
    root = tmp_path_factory.mktemp("console-script")
    project = root / "project"
    project.mkdir()
    for name in _PROJECT_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, project / name)
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    site_packages = Path(_run([str(venv / "bin" / "python"), "-c",
                               "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site_packages / "_project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
          "--no-index", str(project)], env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return venv


def _imported_from(venv: Path, *argv: str) -> set[Path]:
    """Where the `service` package was imported from when the venv's command runs with `argv` (Python's
    verbose import log)."""
    result = subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=240,
                            cwd=REPO_ROOT, env={**os.environ, "PYTHONVERBOSE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    origins = set()
    for line in result.stderr.splitlines():  # "# /x/service/__pycache__/__init__....pyc matches /x/service/__init__.py"
        if line.startswith("# ") and line.endswith(os.path.join("service", "__init__.py")):
            origins.add(Path(line.rsplit(" ", 1)[1]).parent.parent)
        elif line.startswith("# code object from") and os.path.join("service", "__init__.py") in line:
            origins.add(Path(line.split("'")[1]).parent.parent)
    return origins


@pytest.mark.parametrize("command", COMMANDS)
def test_the_command_is_installed_and_prints_tf_servings_flags(installed: Path, command: str):
    script = installed / "bin" / command
    assert script.is_file() and os.access(script, os.X_OK)
    assert "service.__main__" in script.read_text()
    help_text = _run([str(script), "--help"], cwd=REPO_ROOT).stdout
    assert help_text.startswith(f"usage: {command} ")
    for flag in ("--port", "--rest_api_port", "--model_name", "--model_base_path", "--model_config_file",
                 "--enable_batching", "--batching_parameters_file", "--rest_api_timeout_in_ms"):
        assert flag in help_text
    version = _run([str(script), "--version"]).stdout.splitlines()
    assert version[0] == "TensorFlow ModelServer: batchserve 0.1.0" and version[1].startswith("TensorFlow Library: 2.")


def test_the_installed_copy_runs_not_the_source_tree(installed: Path):
    origins = _imported_from(installed, "tensorflow_model_server", "--help")
    assert origins, "the verbose import log named no service package"
    assert all(origin.is_relative_to(installed) for origin in origins), origins
    assert not any(origin.is_relative_to(REPO_ROOT) for origin in origins), origins


def test_python_m_service_still_works(installed: Path):
    help_text = _run([str(installed / "bin" / "python"), "-m", "service", "--help"], cwd=installed).stdout
    assert help_text.startswith("usage: python -m service ")


def test_a_bad_flag_names_the_command_and_exits_2(installed: Path):
    result = subprocess.run([str(installed / "bin" / "tensorflow_model_server"), "--no_such_flag=1"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 2
    assert "tensorflow_model_server: error: unrecognized arguments: --no_such_flag=1" in result.stderr


def test_the_command_serves_a_model_and_stops_cleanly(installed: Path, tmp_path: Path):
    from model_corpus import write_half_plus_two_tf1

    base = tmp_path / "half_plus_two"
    write_half_plus_two_tf1(base)
    rest_port = free_port()
    server = LaunchedServer(
        [str(installed / "bin" / "tensorflow_model_server"), "--host=127.0.0.1", "--port=0",
         f"--rest_api_port={rest_port}", "--model_name=half_plus_two", f"--model_base_path={base}",
         "--enable_batching=true"],
        start_timeout=240,
    )
    try:
        assert "models=half_plus_two@1" in server.log
        request = urllib.request.Request(
            f"http://127.0.0.1:{rest_port}/v1/models/half_plus_two:predict",
            data=json.dumps({"instances": [[1.0], [2.0], [5.0]]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read()) == {"predictions": [[2.5], [3.0], [4.5]]}
    finally:
        code = server.stop()
    assert code == 0, server.log[-3000:]
    assert '"message": "stopped"' in server.log
