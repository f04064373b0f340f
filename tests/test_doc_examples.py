"""Every fenced code block of README.md and docs/*.md runs or is checked, so the documentation cannot go stale.

The blocks are found at collection time (tests/doc_examples.py): a new page or block is picked up without
touching this file. Per language tag:

  python     run as a script (this interpreter) in a scratch directory holding `cat.jpg`, with
             localhost:8500/8501 pointed at a real server serving "inception"; must exit 0 within 60 s
  sh         split into commands; each must be one this module knows how to check (see check_sh), else it fails
  yaml/json  must parse
  textproto  must parse as ModelServerConfig, BatchingParameters, MonitoringConfig or SSLConfig, with the
             server's own parsers
  text       not executed
A block without a tag, or with another tag, fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from doc_examples import LANGUAGES, Block, ShellCommand, discover_blocks, expand_variables, shell_commands
from server_process import REPO_ROOT

BLOCKS = discover_blocks(REPO_ROOT)
README_MAX_LINES = 250
PYTHON_TIMEOUT_S = 60
CURL_TIMEOUT_S = 60

_ADDRESS = re.compile(r"(?<![\w.])(?:localhost|127\.0\.0\.1|0\.0\.0\.0):(8500|8501)\b")
_PYTHON = re.compile(r"^python(?:3(?:\.\d+)?)?$")


def test_readme_is_short() -> None:
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail into docs/"
    )


def test_blocks_were_found() -> None:
    assert any(block.path == "README.md" for block in BLOCKS), "no fenced code block found in README.md"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_block(block: Block, request: pytest.FixtureRequest, workdir: Path) -> None:
    assert block.closed, f"{block.where}: the code block is never closed"
    tags = ", ".join(LANGUAGES)
    if block.language is None:
        pytest.fail(f"{block.where}: fenced code block without a language tag (use one of {tags})", pytrace=False)
    if block.language not in LANGUAGES:
        pytest.fail(f"{block.where}: language tag {block.language!r} is not one of {tags}", pytrace=False)
    CHECKS[block.language](block, _Server(request), workdir)


# --- fixtures and shared helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cat_jpeg() -> bytes:
    from imaging import jpeg

    return jpeg(42, 500, 375)


@pytest.fixture
def workdir(tmp_path: Path, cat_jpeg: bytes) -> Path:
    (tmp_path / "cat.jpg").write_bytes(cat_jpeg)
    return tmp_path


class _Server:
    """The session's Inception server (tests/conftest.py), started only when a block needs it."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def get(self):
        return self._request.getfixturevalue("inception_server")

    def point_at(self, text: str) -> str:
        """localhost / 127.0.0.1 / 0.0.0.0 :8500 (gRPC) and :8501 (REST) → the test server's ports."""
        if not _ADDRESS.search(text):
            return text
        server = self.get()
        ports = {"8500": server.port, "8501": server.metrics_port}
        return _ADDRESS.sub(lambda match: f"127.0.0.1:{ports[match[1]]}", text)


def _environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1,localhost"]))
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_PROXY": no_proxy, "no_proxy": no_proxy, **(extra or {})}


def _tail(text: str | bytes | None, limit: int = 3000) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = text or ""
    return text if len(text) <= limit else "..." + text[-limit:]


def _run(argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str | None:
    """None when the command exits 0; else what went wrong, with its output."""
    try:
        result = subprocess.run(
            argv, cwd=cwd, env=_environment(env), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as expired:
        return f"timed out after {timeout:.0f} s" + _outputs(expired.stdout, expired.stderr)
    if result.returncode != 0:
        return f"exit status {result.returncode}" + _outputs(result.stdout, result.stderr)
    return None


def _outputs(stdout: str | bytes | None, stderr: str | bytes | None) -> str:
    return f"\n--- stdout\n{_tail(stdout)}\n--- stderr\n{_tail(stderr)}"


class _Refused(Exception):
    """A command that does not check out (the message says why)."""


class _Skipped(Exception):
    """A command that cannot be checked on this machine (the message says why)."""


def _parse_only(parse: Callable[[], object]) -> None:
    """Run an argparse-based parse; turn its SystemExit into a failure carrying argparse's message."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parse()
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            message = stderr.getvalue().strip()
            raise _Refused(message.splitlines()[-1] if message else f"exit status {exit_.code}") from None
    except Exception as error:  # noqa: BLE001  (whatever the parser raises is the docs' problem to report)
        raise _Refused(f"{type(error).__name__}: {error}") from None


# --- python, yaml, json, textproto, text ------------------------------------------------------------------


def check_python(block: Block, server: _Server, workdir: Path) -> None:
    script = workdir / "doc_example.py"
    script.write_text(server.point_at(block.text), encoding="utf-8")
    problem = _run([sys.executable, script.name], workdir, PYTHON_TIMEOUT_S)
    if problem:
        pytest.fail(f"{block.where}: the python block failed: {problem}", pytrace=False)


def check_yaml(block: Block, server: _Server, workdir: Path) -> None:
    import yaml

    try:
        list(yaml.safe_load_all(block.text))
    except yaml.YAMLError as error:
        pytest.fail(f"{block.where}: not valid YAML: {error}", pytrace=False)


def check_json(block: Block, server: _Server, workdir: Path) -> None:
    try:
        json.loads(block.text)
    except ValueError as error:
        pytest.fail(f"{block.where}: not valid JSON: {error}", pytrace=False)


def check_textproto(block: Block, server: _Server, workdir: Path) -> None:
    from service.models.batching_config import parse_batching_parameters
    from service.models.model_config import parse_model_config
    from service.process.monitoring_config import parse_monitoring_config
    from service.process.tls import parse_ssl_config

    parsers = {
        "ModelServerConfig": parse_model_config,
        "BatchingParameters": parse_batching_parameters,  # the server's parser: it accepts max_batch_size: auto
        "MonitoringConfig": parse_monitoring_config,
        "SSLConfig": parse_ssl_config,
    }
    errors = []
    for name, parse in parsers.items():
        try:
            parse(block.text)
            return
        except ValueError as error:
            errors.append(f"  as {name}: {error}")
    message = f"{block.where}: the textproto parses as none of the server's configs:\n" + "\n".join(errors)
    pytest.fail(message, pytrace=False)


def check_text(block: Block, server: _Server, workdir: Path) -> None:
    """Output and diagrams: not executed."""


# --- sh ---------------------------------------------------------------------------------------------------


def check_sh(block: Block, server: _Server, workdir: Path) -> None:
    """Each command in order, in one scratch directory (so a command can write a file a later one posts).

    curl                          run against the test server (ports rewritten, --fail-with-body -sS), exit 0
    tensorflow_model_server ARGS  parsed by the server's own settings builder (service.settings.load_settings);
                                  also `batchserve ARGS` and `python -m service ARGS`, the same program
    python -m model_export ARGS   parsed by model_export's argument parser
    python -m benchmarks SUB ARGS parsed by benchmarks' argument parser
    python FILE.py ARGS           a script in the repository: run against the test server, exit 0
    make TARGET [VAR=v]           `make -n` of it succeeds in the repository
    kubectl apply|delete -k DIR, kubectl kustomize DIR
                                  DIR renders with `kubectl kustomize`
    kubectl apply|delete -f FILE  FILE exists in the repository (URLs are not fetched)
    kubectl get|describe|logs|port-forward|scale|rollout|top|wait|exec|create|label|annotate|autoscale ...
                                  accepted when it names a resource (needs a cluster)
    docker build                  its -f file and context exist; --target names a stage, --build-arg an ARG
    docker run                    well-formed; for this server's image, the command line the image's entrypoint
                                  (docker/tf_serving_entrypoint.sh, run with a fake server) makes of the image's
                                  environment, -e and the arguments parses as server flags; with
                                  --entrypoint /usr/bin/tensorflow_model_server the arguments themselves do
    docker push IMAGE / docker tag SRC DST / docker stop [--time N] CONTAINER
                                  accepted when well-formed
    grpcurl                       the service / method it names exists, asked through the test server's
                                  reflection service (grpcurl itself is not needed); -d must fit the request type
    echo|printf ... > FILE        run in the scratch directory (FILE relative), so a later curl can post it
    export VAR=value, VAR=value   kept for the later commands of the block
    anything else                 fails: docs command not exercised by tests
    """
    env: dict[str, str] = {}
    errors: list[str] = []
    skipped: list[str] = []
    for command in shell_commands(block):
        where = f"{block.path}:{command.line}: {command.text}"
        try:
            if command.error:
                raise _Refused(command.error)
            _check_command(command, env, server, workdir)
        except _Refused as refused:
            errors.append(f"{where}\n    {refused}")
        except _Skipped as skip:
            skipped.append(f"{where}: {skip}")
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
    if skipped:
        pytest.skip("; ".join(skipped))


def _check_command(command: ShellCommand, env: dict[str, str], server: _Server, workdir: Path) -> None:
    assignments, words = command.split_assignments()
    if not words:
        env.update(assignments)
        return
    if words[0] == "export":
        for word in words[1:]:
            name, has_value, value = word.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise _Refused(f"export of a malformed variable: {word!r}")
            if has_value:
                env[name] = value
        return
    local_env = {**env, **assignments}
    program = os.path.basename(words[0])
    words = [words[0], *(expand_variables(word, local_env) for word in words[1:])]
    if program == "curl":
        return _run_curl(command, env, server, workdir)
    if program in ("echo", "printf"):
        return _write_file(command, words, env, workdir)
    if program in _SERVER_COMMANDS:
        return check_service_args(words[1:], local_env, workdir)
    if _PYTHON.match(program) and len(words) >= 3 and words[1] == "-m":
        module, args = words[2], words[3:]
        if module == "service":
            return check_service_args(args, local_env, workdir)
        if module == "model_export":
            from model_export.__main__ import build_parser

            return _parse_only(lambda: build_parser().parse_args(args))
        if module == "benchmarks":
            from benchmarks.cli import build_parser as build_benchmarks_parser

            return _parse_only(lambda: build_benchmarks_parser().parse_args(args))
    if _PYTHON.match(program) and len(words) >= 2 and words[1].endswith(".py") and (REPO_ROOT / words[1]).is_file():
        args = [server.point_at(word) for word in words[2:]]
        problem = _run([sys.executable, str(REPO_ROOT / words[1]), *args], workdir, PYTHON_TIMEOUT_S, local_env)
        if problem:
            raise _Refused(problem)
        return
    if program == "make":
        return _check_make(words[1:], local_env)
    if program == "kubectl":
        return _check_kubectl(words[1:])
    if program == "docker" and len(words) >= 2:
        if words[1] == "build":
            return _check_docker_build(words[2:])
        if words[1] == "run":
            return _check_docker_run(words[2:], local_env, workdir)
        if words[1] == "push" and len(words) == 3 and not words[2].startswith("-"):
            return
        if words[1] == "tag" and len(words) == 4 and not any(word.startswith("-") for word in words[2:]):
            return
        if words[1] == "stop" and _is_docker_stop(words[2:]):
            return
    if program == "grpcurl":
        return _check_grpcurl(words[1:], server)
    raise _Refused(f"docs command not exercised by tests: {command.text}")


def _run_curl(command: ShellCommand, env: dict[str, str], server: _Server, workdir: Path) -> None:
    if not shutil.which("curl"):
        raise _Skipped("curl is not installed")
    text = server.point_at(command.text)

    def repository_file(match: re.Match) -> str:  # -d @file: the scratch directory's, else the repository's
        name = match[1]
        if not Path(name).is_absolute() and not (workdir / name).exists() and (REPO_ROOT / name).exists():
            return "@" + str(REPO_ROOT / name)
        return match[0]

    text = re.sub(r"@([^\s\"'@]+)", repository_file, text)
    options = f"--fail-with-body -sS --max-time {CURL_TIMEOUT_S}"
    text = re.sub(r"(^|[\s/])curl(?=\s|$)", lambda match: f"{match[1]}curl {options}", text, count=1)
    problem = _run(["bash", "-c", text], workdir, CURL_TIMEOUT_S + 10, env)
    if problem:
        raise _Refused(f"curl failed: {problem}")


def _write_file(command: ShellCommand, words: list[str], env: dict[str, str], workdir: Path) -> None:
    """`echo ... > FILE` / `printf ... > FILE`: writes a file in the scratch directory for a later command."""
    if len(words) < 3 or words[-2] not in (">", ">>") or Path(words[-1]).is_absolute() or ".." in Path(words[-1]).parts:
        raise _Refused(f"{words[0]} is checked only as `{words[0]} ... > FILE` (FILE relative, for a later command)")
    problem = _run(["bash", "-c", command.text], workdir, 30, env)
    if problem:
        raise _Refused(f"{words[0]} failed: {problem}")


# tensorflow_model_server / python -m service ----------------------------------------------------------------

_SERVER_COMMANDS = ("tensorflow_model_server", "batchserve")

_SETTINGS_FILE_FLAGS = ("batching_parameters_file", "monitoring_config_file", "model_config_file")


def check_service_args(args: list[str], environ: dict[str, str], workdir: Path) -> None:
    """Parse as `python -m service` would (service.settings.load_settings). The config files it reads are read
    when they exist (in the scratch directory or the repository) and left out when they do not."""
    from service.process.settings import ENV_PREFIX, build_argument_parser, load_settings

    parser = build_argument_parser()
    _parse_only(lambda: parser.parse_args(args))  # every flag name and value type, files or not
    namespace = parser.parse_args(args)
    argv = list(args)
    environ = dict(environ)
    for name in _SETTINGS_FILE_FLAGS:
        value = getattr(namespace, name, None)
        if value:
            argv = _drop_flag(argv, name)
            found = _existing_file(str(value), workdir)
            if found:
                argv.append(f"--{name}={found}")
        variable = ENV_PREFIX + name.upper()
        if environ.get(variable):
            found = _existing_file(environ[variable], workdir)
            if found:
                environ[variable] = str(found)
            else:
                del environ[variable]
    _parse_only(lambda: load_settings(argv, environ))


def _drop_flag(argv: list[str], name: str) -> list[str]:
    kept, skip_next = [], False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg == f"--{name}":
            skip_next = True
        elif not arg.startswith(f"--{name}="):
            kept.append(arg)
    return kept


def _existing_file(value: str, workdir: Path) -> Path | None:
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [workdir / path, REPO_ROOT / path]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


# make, kubectl, docker -------------------------------------------------------------------------------------


def _check_make(args: list[str], env: dict[str, str]) -> None:
    if not shutil.which("make"):
        raise _Skipped("make is not installed")
    problem = _run(["make", "-n", "-C", str(REPO_ROOT), *args], REPO_ROOT, 60, env)
    if problem:
        raise _Refused(f"make -n failed: {problem}")


_KUBECTL_GLOBAL_OPTIONS = {"-n", "--namespace", "--context", "--kubeconfig", "--cluster", "--user"}
_KUBECTL_ACCEPTED = {
    "get", "describe", "logs", "port-forward", "scale", "rollout", "top", "wait", "exec", "create", "label",
    "annotate", "autoscale",
}


def _check_kubectl(args: list[str]) -> None:
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _KUBECTL_GLOBAL_OPTIONS:
            i += 2
            continue
        if arg.split("=", 1)[0] in _KUBECTL_GLOBAL_OPTIONS:
            i += 1
            continue
        words.append(arg)
        i += 1
    if not words:
        raise _Refused("kubectl without a subcommand")
    subcommand, rest = words[0], words[1:]
    if subcommand == "kustomize":
        directories = [word for word in rest if not word.startswith("-")]
        if len(directories) != 1:
            raise _Refused("kubectl kustomize takes one directory")
        return _kustomize(directories[0])
    if subcommand in ("apply", "delete"):
        for flag, value in _option_values(rest, ("-k", "--kustomize")):
            _kustomize(value)
        for flag, value in _option_values(rest, ("-f", "--filename")):
            if re.match(r"^https?://", value):
                continue
            if not (REPO_ROOT / value).exists():
                raise _Refused(f"kubectl {subcommand} {flag} {value}: no such file in the repository")
        if not _option_values(rest, ("-k", "--kustomize", "-f", "--filename")):
            raise _Refused(f"kubectl {subcommand} without -k or -f")
        return
    if subcommand in _KUBECTL_ACCEPTED:
        if not [word for word in rest if not word.startswith("-")]:
            raise _Refused(f"kubectl {subcommand} names no resource")
        return  # needs a cluster: accepted as written
    raise _Refused(f"docs command not exercised by tests: kubectl {subcommand}")


def _option_values(args: list[str], names: tuple[str, ...]) -> list[tuple[str, str]]:
    found = []
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            found.append((arg, args[i + 1]))
        elif "=" in arg and arg.split("=", 1)[0] in names:
            found.append(tuple(arg.split("=", 1)))
    return found


def _kustomize(directory: str) -> None:
    kubectl = REPO_ROOT / ".venv" / "bin" / "kubectl"
    binary = str(kubectl) if kubectl.exists() else shutil.which("kubectl")
    if not binary:
        raise _Skipped("kubectl is not installed (`make install` puts it in .venv/bin)")
    if not (REPO_ROOT / directory).is_dir():
        raise _Refused(f"{directory}: no such directory in the repository")
    problem = _run([binary, "kustomize", directory], REPO_ROOT, 60)
    if problem:
        raise _Refused(f"kubectl kustomize {directory} failed: {problem}")


_DOCKER_BUILD_VALUE_OPTIONS = {
    "-f", "--file", "-t", "--tag", "--build-arg", "--target", "--platform", "--progress", "--cache-from",
    "--cache-to", "--secret", "--network", "--label", "--output", "-o", "--ssh", "--iidfile",
}
_DOCKER_BUILD_FLAGS = {"--no-cache", "--pull", "-q", "--quiet", "--load", "--push", "--rm"}


def _check_docker_build(args: list[str]) -> None:
    options: list[tuple[str, str]] = []
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if arg in _DOCKER_BUILD_VALUE_OPTIONS and i + 1 < len(args):
            options.append((arg, args[i + 1]))
            i += 2
            continue
        if "=" in arg and name in _DOCKER_BUILD_VALUE_OPTIONS:
            options.append((name, arg.split("=", 1)[1]))
        elif arg.startswith("-") and arg not in _DOCKER_BUILD_FLAGS:
            raise _Refused(f"docker build option not known to the tests: {arg}")
        elif not arg.startswith("-"):
            positional.append(arg)
        i += 1
    if len(positional) != 1:
        raise _Refused(f"docker build needs exactly one build context, got {positional}")
    context = REPO_ROOT / positional[0]
    if not context.is_dir():
        raise _Refused(f"build context {positional[0]} is not a directory of the repository")
    files = [value for name, value in options if name in ("-f", "--file")]
    dockerfile = REPO_ROOT / files[-1] if files else context / "Dockerfile"
    if not dockerfile.is_file():
        raise _Refused(f"{dockerfile.relative_to(REPO_ROOT)}: no such Dockerfile")
    text = dockerfile.read_text(encoding="utf-8")
    for name, value in options:
        if name == "--target" and not re.search(rf"^FROM\s.*\s+AS\s+{re.escape(value)}\s*$", text, re.M | re.I):
            raise _Refused(f"--target {value}: no such stage in {dockerfile.name}")
        if name == "--build-arg":
            arg_name = value.split("=", 1)[0]
            if not re.search(rf"^ARG\s+{re.escape(arg_name)}\b", text, re.M):
                raise _Refused(f"--build-arg {arg_name}: {dockerfile.name} declares no such ARG")


_DOCKER_RUN_VALUE_OPTIONS = {
    "-p", "--publish", "-e", "--env", "-v", "--volume", "--name", "--gpus", "--mount", "--network", "--net",
    "--cpus", "--memory", "-m", "-w", "--workdir", "--entrypoint", "-u", "--user", "--shm-size", "--env-file",
    "--runtime", "--ulimit", "--restart", "-l", "--label", "--platform", "--cpuset-cpus", "--hostname", "-h",
    "--add-host", "--ipc", "--pid", "--memory-swap", "--cap-add", "--cap-drop", "--security-opt", "--tmpfs",
    "--stop-signal", "--stop-timeout", "--log-driver", "--log-opt", "--pull", "--expose",
}
_DOCKER_RUN_FLAGS = {"--rm", "--detach", "--interactive", "--tty", "--init", "--read-only", "--privileged", "-P",
                     "--publish-all"}


def _image_environment(image: str) -> dict[str, str]:
    """What our image's Dockerfile sets: the GPU Dockerfile for a tag naming gpu, the model-less `server` stage
    for one naming nomodel, else the `serving` stage (Inception inside)."""
    from test_image_entrypoint import image_environment

    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    dockerfile = "Dockerfile.gpu" if "gpu" in tag else "Dockerfile.cpu"
    return image_environment(dockerfile, "server" if "nomodel" in tag else "serving")


def _is_docker_stop(args: list[str]) -> bool:
    """`docker stop [--time N | -t N | --time=N] CONTAINER...`"""
    names: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in ("--time", "-t", "--timeout") and i + 1 < len(args) and args[i + 1].isdigit():
            i += 2
            continue
        if re.fullmatch(r"--(?:time|timeout)=\d+", args[i]):
            i += 1
            continue
        if args[i].startswith("-"):
            return False
        names.append(args[i])
        i += 1
    return bool(names)


def _check_docker_run(args: list[str], env: dict[str, str], workdir: Path) -> None:
    container_env: dict[str, str] = {}
    entrypoint = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        name, has_value, inline = arg.partition("=")
        if arg in _DOCKER_RUN_FLAGS or re.fullmatch(r"-[dit]+", arg):
            i += 1
            continue
        if name not in _DOCKER_RUN_VALUE_OPTIONS:
            raise _Refused(f"docker run option not known to the tests: {arg}")
        if has_value:
            value = inline
            i += 1
        elif i + 1 < len(args):
            value = args[i + 1]
            i += 2
        else:
            raise _Refused(f"docker run {arg} without a value")
        if name in ("-e", "--env"):
            variable, given, variable_value = value.partition("=")
            if given:
                container_env[variable] = variable_value
            elif variable in env:
                container_env[variable] = env[variable]
        if name == "--entrypoint":
            entrypoint = value
        if name in ("-p", "--publish") and not re.fullmatch(r"(?:[\d.]+:)?(?:\d+:)?\d+(?:/(?:tcp|udp))?", value):
            raise _Refused(f"docker run {name} {value}: not a port mapping")
    if i >= len(args):
        raise _Refused("docker run names no image")
    image, command = args[i], args[i + 1:]
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if re.search(r"(^|/)tensorflow/serving$", repository):
        return  # TF Serving's image: its own flags, not checked here
    if not re.search(r"(^|/)batchserve$", repository):
        raise _Refused(f"docker run of an image the tests do not know: {image}")
    container_env = {**_image_environment(image), **container_env}
    if entrypoint is None:
        from test_image_entrypoint import entrypoint_argv

        if command and not command[0].startswith("-"):
            raise _Refused(f"docker run of a command in the image is not checked: {' '.join(command)}")
        return check_service_args(entrypoint_argv(command, container_env, workdir), container_env, workdir)
    if os.path.basename(entrypoint) in _SERVER_COMMANDS:
        return check_service_args(command, container_env, workdir)
    raise _Refused(f"docker run --entrypoint {entrypoint}: not a program the tests know")


# grpcurl -------------------------------------------------------------------------------------------------

_GRPCURL_VALUE_OPTIONS = {
    "H", "d", "rpc-header", "reflect-header", "import-path", "proto", "protoset", "protoset-out", "cacert", "cert",
    "key", "authority", "servername", "max-time", "connect-timeout", "keepalive-time", "format", "user-agent",
    "max-msg-sz",
}
_GRPCURL_FLAGS = {
    "plaintext", "insecure", "v", "vv", "emit-defaults", "allow-unknown-fields", "format-error", "use-reflection",
    "unix", "msg-template", "expand-headers", "alts",
}


def _check_grpcurl(args: list[str], server: _Server) -> None:
    """The named service, method or symbol must exist on the test server (asked through its reflection
    service); the -d request, when given inline, must parse as the method's request message."""
    data = None
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            name, has_value, value = arg.lstrip("-").partition("=")
            if name in _GRPCURL_FLAGS:
                i += 1
                continue
            if name not in _GRPCURL_VALUE_OPTIONS:
                raise _Refused(f"grpcurl option not known to the tests: {arg}")
            if not has_value:
                if i + 1 >= len(args):
                    raise _Refused(f"grpcurl {arg} without a value")
                value = args[i + 1]
                i += 1
            if name == "d":
                data = value
            i += 1
            continue
        positional.append(arg)
        i += 1
    if not positional or not re.search(r":\d+$", positional[0]):
        raise _Refused("grpcurl needs host:port before the verb or method")
    rest = positional[1:]

    from google.protobuf import descriptor_pool, json_format, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with server.get().channel() as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        if not rest or rest[0] in ("list", "describe"):
            verb, symbols = (rest[0], rest[1:]) if rest else ("list", [])
            for symbol in symbols:
                if verb == "list" and symbol not in services:
                    raise _Refused(f"no service {symbol} on the server (it has {sorted(services)})")
                if verb == "describe" and not _find_symbol(pool, symbol):
                    raise _Refused(f"no symbol {symbol} on the server")
            return
        if len(rest) != 1:
            raise _Refused(f"grpcurl: unexpected words {rest[1:]}")
        service_name, _, method_name = rest[0].replace("/", ".").rpartition(".")
        if service_name not in services:
            raise _Refused(f"no service {service_name} on the server (it has {sorted(services)})")
        method = pool.FindServiceByName(service_name).methods_by_name.get(method_name)
        if method is None:
            raise _Refused(f"{service_name} has no method {method_name}")
        if data and data != "@":
            try:
                json_format.Parse(data, message_factory.GetMessageClass(method.input_type)())
            except json_format.ParseError as error:
                raise _Refused(f"-d is not a valid {method.input_type.full_name}: {error}") from None


def _find_symbol(pool, symbol: str) -> bool:
    for find in (pool.FindServiceByName, pool.FindMessageTypeByName, pool.FindEnumTypeByName):
        try:
            find(symbol)
            return True
        except KeyError:
            pass
    service_name, _, method_name = symbol.rpartition(".")
    try:
        return method_name in pool.FindServiceByName(service_name).methods_by_name
    except KeyError:
        return False


CHECKS: dict[str, Callable[[Block, _Server, Path], None]] = {
    "python": check_python,
    "sh": check_sh,
    "text": check_text,
    "yaml": check_yaml,
    "json": check_json,
    "textproto": check_textproto,
}


# --- the checker itself: it must refuse what is wrong, not only pass what is right ------------------------

_REFUSED_SH = {
    "unknown command": "rm -rf build",
    "unknown python module": "python -m pip install batchserve",
    "elided flags": "python -m service ... --port=8500",
    "unknown server flag": "python -m service --no_such_flag=1",
    "bad server flag value": "python -m service --max_batch_size=lots",
    "bad export flag": "python -m model_export --output models/x --no-such-flag",
    "bad benchmarks subcommand": "python -m benchmarks no-such-command",
    "missing make target": "make no_such_target",
    "missing overlay": "kubectl apply -k manifests/overlays/no-such",
    "missing manifest": "kubectl apply -f manifests/no-such.yaml",
    "missing Dockerfile": "docker build -f Dockerfile.none -t batchserve:x .",
    "bad server flag in docker run": "docker run --rm -p 8500:8500 batchserve:cpu --no_such_flag",
    "bad server flag after --entrypoint": (
        "docker run --rm --entrypoint /usr/bin/tensorflow_model_server batchserve:cpu --no_such_flag"
    ),
    "bad server flag of the command": "tensorflow_model_server --model_base_path=/m --max_batch_size=lots",
    "docker stop without a container": "docker stop --time 35",
    "HTTP error": "curl -s localhost:8501/v1/models/no_such_model",
    "pipeline": "curl -s localhost:8501/v1/models/inception | python -m json.tool",
    "echo to the terminal": "echo hello",
    "echo outside the scratch directory": "echo hello > /tmp/x.json",
    "missing method": "grpcurl -plaintext localhost:8500 tensorflow.serving.PredictionService/NoSuch",
    "bad grpcurl request": (
        "grpcurl -plaintext -d '{\"nope\": 1}' localhost:8500 tensorflow.serving.ModelService/GetModelStatus"
    ),
}
_ACCEPTED_SH = {
    "exported variable and a file written then posted": r"""
export MODEL=inception
curl -s localhost:8501/v1/models/$MODEL -o status.json
echo "{\"signature_name\": \"predict_images\", \"instances\": [{\"b64\": \"$(base64 -w0 cat.jpg)\"}]}" \
  > request.json
curl -s -d @request.json localhost:8501/v1/models/$MODEL:predict
curl -s -X POST localhost:8501/v1/models/$MODEL:predict \
  -d "{\"signature_name\": \"predict_images\", \"instances\": [{\"b64\": \"$(base64 -w0 cat.jpg)\"}]}"
""",
    "environment and a file flag whose file is elsewhere": (
        "BATCHSERVE_MAX_BATCH_SIZE=8 python -m service --model_name=inception \\\n"
        "    --model_base_path=/models/inception \\\n"
        "    --batching_parameters_file=/etc/batching.txt   # a comment\n"
    ),
    "grpcurl": (
        "grpcurl -plaintext localhost:8500 list\n"
        "grpcurl -plaintext -d '{\"model_spec\": {\"name\": \"inception\"}}' localhost:8500 "
        "tensorflow.serving.ModelService/GetModelStatus\n"
    ),
    "docker": "docker build -f Dockerfile.cpu --build-arg WEIGHTS=seeded -t batchserve:cpu .\n"
    "docker run --rm -p 8500:8500 -e MODEL_NAME=inception batchserve:cpu --enable_batching=true\n"
    "docker run --rm -p 8080:8080 --entrypoint /usr/bin/tensorflow_model_server batchserve:cpu-nomodel "
    "--model_name=x --port=9000 --rest_api_port=8080 --model_base_path=/mnt/models\n"
    "docker stop --time 35 batchserve\n",
    "the server's commands": "tensorflow_model_server --model_name=inception --model_base_path=/models/inception\n"
    "batchserve --port=9000 --model_config_file=models.config\n",
    "kubectl": "kubectl kustomize manifests/overlays/cpu\nkubectl -n batchserve get pods\n",
}


@pytest.mark.parametrize("text", _REFUSED_SH.values(), ids=_REFUSED_SH.keys())
def test_checker_refuses(text: str, request: pytest.FixtureRequest, workdir: Path) -> None:
    with pytest.raises(pytest.fail.Exception):
        check_sh(Block("self-test.md", 1, 1, "sh", text + "\n"), _Server(request), workdir)


@pytest.mark.parametrize("text", _ACCEPTED_SH.values(), ids=_ACCEPTED_SH.keys())
def test_checker_accepts(text: str, request: pytest.FixtureRequest, workdir: Path) -> None:
    check_sh(Block("self-test.md", 1, 1, "sh", text), _Server(request), workdir)


def test_checker_reads_batching_files_with_auto() -> None:
    check_textproto(Block("self-test.md", 1, 1, "textproto", "max_batch_size { value: auto }\n"), None, Path())


def test_extraction_finds_tags_lines_and_indented_fences() -> None:
    from doc_examples import extract_blocks

    text = "intro\n```\nplain\n```\n- item\n\n  ```sh\n  make test\n  ```\n````text\n```\n````\n~~~python\nx = 1\n"
    blocks = extract_blocks(text, "x.md")
    assert [(b.index, b.line, b.language, b.text, b.closed) for b in blocks] == [
        (1, 2, None, "plain\n", True),
        (2, 7, "sh", "make test\n", True),
        (3, 10, "text", "```\n", True),
        (4, 13, "python", "x = 1\n", False),
    ]
