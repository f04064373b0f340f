"""The images' entrypoint, docker/tf_serving_entrypoint.sh: TF Serving's image contract.

Without a container engine, the same script runs here with a fake `tensorflow_model_server` first on PATH that
prints the command line it was given; the server's own settings builder then reads that command line, for each
way the docs run the image and for KServe's `kserve-tensorflow-serving` ClusterServingRuntime. With podman (when
it is installed and the image is built), the real image serves a mounted model the way TF Serving's docs mount
one, answers over REST, and stops cleanly on `podman stop`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

from server_process import REPO_ROOT, free_port
from service.process.settings import ServerSettings, load_settings
from test_deploy_static import DOCKERFILES, dockerfile_stages

ENTRYPOINT = REPO_ROOT / "docker" / "tf_serving_entrypoint.sh"
# KServe's kserve-tensorflow-serving ClusterServingRuntime: command and args, {{.Name}} filled in.
KSERVE_COMMAND = "/usr/bin/tensorflow_model_server"
KSERVE_ARGS = ("--model_name=half_plus_two", "--port=9000", "--rest_api_port=8080", "--model_base_path=/mnt/models",
               "--rest_api_timeout_in_ms=60000")
_FAKE_SERVER = """#!/bin/sh
# Stands in for the server: prints its PID and each argument on a line of its own.
echo "pid=$$"
for argument in "$@"; do printf 'arg=%s\\n' "$argument"; done
"""


def image_environment(dockerfile: str = "Dockerfile.cpu", target: str = "serving") -> dict[str, str]:
    """The environment a stage of the Dockerfile gives its container (ENV, build arguments' defaults filled in)."""
    return dict(dockerfile_stages(REPO_ROOT / dockerfile)[target]["env"])


def entrypoint_argv(
    args: Sequence[str], environment: Mapping[str, str], scratch: Path, pid: list[int] | None = None
) -> list[str]:
    """The command line the entrypoint runs the server with, for `docker run [-e ...] IMAGE ARGS`.

    `environment` is the container's (the image's ENV and any -e); the fake server comes first on PATH. The
    fake's PID is appended to `pid` when given, to compare with the entrypoint's own (exec keeps it)."""
    fake_bin = scratch / "fake-bin"
    fake_bin.mkdir(exist_ok=True)
    fake = fake_bin / "tensorflow_model_server"
    fake.write_text(_FAKE_SERVER)
    fake.chmod(0o755)
    env = {**environment, "PATH": f"{fake_bin}:/usr/bin:/bin"}
    process = subprocess.Popen([str(ENTRYPOINT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines and lines[0].startswith("pid="), stdout + stderr
    if pid is not None:
        pid += [process.pid, int(lines[0].removeprefix("pid="))]
    return [line.removeprefix("arg=") for line in lines[1:]]


def served_by(args: Sequence[str], environment: Mapping[str, str], scratch: Path) -> ServerSettings:
    """The settings the server runs with in a container started with `args` after the image name."""
    return load_settings(entrypoint_argv(args, environment, scratch), environ=environment)


# --- without an engine -------------------------------------------------------------------------------------


def test_the_script_is_executable_posix_sh():
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    result = subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_server_replaces_the_script_so_it_is_pid_1_and_gets_sigterm(tmp_path: Path):
    pids: list[int] = []
    entrypoint_argv([], image_environment(), tmp_path, pid=pids)
    entrypoint_pid, server_pid = pids
    assert server_pid == entrypoint_pid, "the entrypoint must exec the server, not run it as a child"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_image_with_its_model_runs_with_no_arguments(tmp_path: Path, dockerfile: str):
    """`docker run -p 8500:8500 -p 8501:8501 IMAGE`: Inception, as TF Serving's image would serve it."""
    settings = served_by([], image_environment(dockerfile, "serving"), tmp_path)
    assert (settings.port, settings.rest_api_port, settings.enable_batching) == (8500, 8501, True)
    assert (settings.model_name, settings.model_base_path) == ("inception", Path("/models/inception"))


@pytest.mark.parametrize("target", ["server", "serving"])
@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_a_model_mounted_as_tf_serving_docs_show_is_served_under_its_name(tmp_path: Path, dockerfile: str,
                                                                          target: str):
    """`docker run -p 8501:8501 -e MODEL_NAME=half_plus_two -v $PWD/half_plus_two:/models/half_plus_two IMAGE`,
    on the model-less image and on the one with Inception inside."""
    environment = {**image_environment(dockerfile, target), "MODEL_NAME": "half_plus_two"}
    settings = served_by([], environment, tmp_path)
    assert (settings.model_name, settings.model_base_path) == ("half_plus_two", Path("/models/half_plus_two"))
    assert (settings.port, settings.rest_api_port, settings.enable_batching) == (8500, 8501, True)


def test_the_model_less_image_serves_tf_servings_default_model_name(tmp_path: Path):
    """TF Serving's image: MODEL_NAME=model, MODEL_BASE_PATH=/models, so a model mounted at /models/model."""
    environment = image_environment("Dockerfile.cpu", "server")
    assert environment["MODEL_BASE_PATH"] == "/models" and "MODEL_NAME" not in environment  # the script's default
    settings = served_by([], environment, tmp_path)
    assert (settings.model_name, settings.model_base_path) == ("model", Path("/models/model"))


def test_model_base_path_is_the_parent_directory_as_in_tf_serving(tmp_path: Path):
    environment = {**image_environment(), "MODEL_BASE_PATH": "/mnt/store", "MODEL_NAME": "resnet"}
    settings = served_by([], environment, tmp_path)
    assert (settings.model_name, settings.model_base_path) == ("resnet", Path("/mnt/store/resnet"))


def test_flags_after_the_image_name_are_added_to_the_defaults(tmp_path: Path):
    """A timeout given after the image name must not turn batching off (it did when arguments replaced CMD)."""
    settings = served_by(["--rest_api_timeout_in_ms=5000", "--max_batch_size=8"], image_environment(), tmp_path)
    assert settings.rest_api_timeout_in_ms == 5000 and settings.batching.max_batch_size == 8
    assert settings.enable_batching is True and (settings.port, settings.rest_api_port) == (8500, 8501)
    assert settings.model_name == "inception"


def test_a_later_flag_overrides_the_images_default(tmp_path: Path):
    settings = served_by(["--enable_batching=false", "--rest_api_port=8080", "--model_name=other"],
                         image_environment(), tmp_path)
    assert (settings.enable_batching, settings.rest_api_port, settings.model_name) == (False, 8080, "other")


def test_a_model_config_file_takes_over_from_model_name_and_base_path(tmp_path: Path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "a" base_path: "/models/a" model_platform: "tensorflow" } '
                      'config { name: "b" base_path: "/models/b" model_platform: "tensorflow" } }')
    settings = served_by([f"--model_config_file={config}"], image_environment(), tmp_path)
    assert [source.name for source in settings.model_sources] == ["a", "b"]


def test_arguments_keep_spaces_and_quotes(tmp_path: Path):
    argv = entrypoint_argv(["--admin_header=key=a b 'c'"], image_environment(), tmp_path)
    assert argv[-1] == "--admin_header=key=a b 'c'"


def test_a_command_instead_of_flags_is_run_as_it_is(tmp_path: Path):
    result = subprocess.run([str(ENTRYPOINT), "echo", "hello", "world"], capture_output=True, text=True,
                            env={**image_environment(), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and result.stdout == "hello world\n"


def test_kserve_runtime_command_line_needs_only_the_image_changed():
    """KServe runs /usr/bin/tensorflow_model_server itself (no entrypoint) with TF Serving's flags."""
    for dockerfile in DOCKERFILES:
        server = dockerfile_stages(REPO_ROOT / dockerfile)["server"]
        runs = " ".join(value for kind, value in server["instructions"] if kind == "RUN")
        assert f"ln -s /opt/venv/bin/tensorflow_model_server {KSERVE_COMMAND}" in runs, dockerfile
    settings = load_settings(list(KSERVE_ARGS), environ=image_environment())
    assert (settings.port, settings.rest_api_port, settings.rest_api_timeout_in_ms) == (9000, 8080, 60000)
    assert (settings.model_name, settings.model_base_path) == ("half_plus_two", Path("/mnt/models"))
    assert settings.enable_batching is False  # as TF Serving runs it


def test_the_build_warns_at_the_end_when_the_baked_weights_are_seeded(tmp_path: Path):
    script = REPO_ROOT / "docker" / "seeded_weights_warning.py"
    assets = tmp_path / "inception" / "1" / "assets"
    assets.mkdir(parents=True)
    metadata = {"model": "inception_v3", "weights": "random", "seed": 0,
                "weights_fallback_reason": "cannot resolve storage.googleapis.com"}
    (assets / "export_metadata.json").write_text(json.dumps(metadata))
    warned = subprocess.run(["python3", str(script), str(tmp_path / "inception")], capture_output=True, text=True)
    assert warned.returncode == 0
    (line,) = warned.stdout.splitlines()
    assert line.startswith("WARNING: ") and "SEEDED RANDOM WEIGHTS" in line and str(tmp_path / "inception" / "1") in line
    assert "cannot resolve storage.googleapis.com" in line and "WEIGHTS=imagenet" in line and "docs/models.md" in line
    (assets / "export_metadata.json").write_text(json.dumps({**metadata, "weights": "file"}))
    quiet = subprocess.run(["python3", str(script), str(tmp_path / "inception")], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout == ""
    for dockerfile in DOCKERFILES:  # the last command of the model stage
        kind, command = dockerfile_stages(REPO_ROOT / dockerfile)["model"]["instructions"][-1]
        assert kind == "RUN" and command.endswith('&& python docker/seeded_weights_warning.py "/models/${MODEL_NAME}"')


# --- with podman -------------------------------------------------------------------------------------------

PODMAN_IMAGE = os.environ.get("BATCHSERVE_TEST_IMAGE", "localhost/batchserve:cpu-nomodel")
STOP_TIMEOUT_S = 10  # docker stop's and podman stop's default


def _podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def podman_image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: the image itself is not run (the entrypoint is tested without it)")
    if _podman("image", "exists", PODMAN_IMAGE, check=False).returncode != 0:
        pytest.skip(f"image {PODMAN_IMAGE} is not built: podman build -f Dockerfile.cpu --target server "
                    f"-t batchserve:cpu-nomodel . (or set BATCHSERVE_TEST_IMAGE)")
    # An engine that cannot start any container here (rootless limits, a sandbox) is no engine for this test;
    # overriding the entrypoint with `true` leaves nothing of the image's own to fail.
    probe = _podman("run", "--rm", "--entrypoint", "true", PODMAN_IMAGE, check=False)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"podman cannot start a container on this machine (check its containers.conf): {reason}")
    return PODMAN_IMAGE


@pytest.fixture(scope="module")
def half_plus_two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_corpus import write_half_plus_two_tf1

    base = tmp_path_factory.mktemp("mounted") / "half_plus_two"
    write_half_plus_two_tf1(base)
    for path in [base, *base.rglob("*")]:  # the container's user (uid 10001) reads the mount
        path.chmod(0o755 if path.is_dir() else 0o644)
    return base


class Container:
    """A detached container, removed at exit; `stop()` returns its exit code and how long stopping took."""

    def __init__(self) -> None:
        self.name = f"batchserve-test-{uuid.uuid4().hex[:8]}"

    def start(self, run_args: Sequence[str]) -> None:
        _podman("run", "-d", "--name", self.name, *run_args)

    def logs(self) -> str:
        result = _podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_ready(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = self.logs()
            if '"message": "ready: ' in logs:
                return next(line for line in logs.splitlines() if '"message": "ready: ' in line)
            state = _podman("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()
            if state == "exited":
                raise AssertionError(f"the container exited before it was ready:\n{logs[-4000:]}")
            time.sleep(1)
        raise AssertionError(f"not ready after {timeout:.0f} s:\n{self.logs()[-4000:]}")

    def stop(self) -> tuple[int, float]:
        started = time.monotonic()
        _podman("stop", self.name, timeout=STOP_TIMEOUT_S + 30)
        took = time.monotonic() - started
        code = _podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip()
        return int(code), took

    def remove(self) -> None:
        _podman("rm", "-f", self.name, check=False)


@pytest.fixture
def container() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for each in started:
        each.remove()


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("how", ["tf_serving_docs", "kserve_runtime"])
def test_the_image_serves_a_mounted_model_and_stops_cleanly(podman_image: str, half_plus_two: Path,
                                                           container: list[Container], how: str):
    port = free_port()
    if how == "tf_serving_docs":  # docker run -p 8501:8501 -e MODEL_NAME=half_plus_two -v ...:/models/half_plus_two
        run_args = ["-p", f"127.0.0.1:{port}:8501", "-e", "MODEL_NAME=half_plus_two",
                    "-v", f"{half_plus_two}:/models/half_plus_two:ro", podman_image]
        model = "half_plus_two"
    else:
        run_args = ["-p", f"127.0.0.1:{port}:8080", "-v", f"{half_plus_two}:/mnt/models:ro",
                    "--entrypoint", KSERVE_COMMAND, podman_image, *KSERVE_ARGS]
        model = "half_plus_two"
    running = Container()
    container.append(running)  # removed at the end even if it never starts
    running.start(run_args)
    ready = running.wait_ready()
    assert f"models={model}@1" in ready
    assert ("batching=on" in ready) == (how == "tf_serving_docs")
    status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}", timeout=30).read())
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    answer = _post(f"http://127.0.0.1:{port}/v1/models/{model}:predict", {"instances": [[1.0], [2.0], [5.0]]})
    assert answer == {"predictions": [[2.5], [3.0], [4.5]]}
    code, took = running.stop()
    logs = running.logs()
    assert code == 0, f"exit code {code} after {took:.1f} s (137: killed at the stop timeout)\n{logs[-3000:]}"
    assert took < STOP_TIMEOUT_S and '"message": "stopped"' in logs, logs[-3000:]
