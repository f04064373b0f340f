"""A server that cannot start says why in ONE log line and exits non-zero, never with a Python traceback: a
container's last log lines are all an operator sees of it. Each case starts the real process
(`python -m service`) and reads its stderr.

Tests here may run as root, who reads every file whatever its mode: an unreadable file is then simulated by
a saved_model.pb that is a link to /proc/self/mem (a regular file whose read fails with EIO), and the
chmod-based cases are skipped (they run for any other user, and for root without CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH, e.g. under `setpriv --bounding-set=-dac_override,-dac_read_search`).

An unwritable temporary directory needs a private mount namespace (`unshare`) to remount /tmp and /var/tmp
read-only; where that is not allowed, its test is skipped (the check itself is also
tested in-process).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import grpc
import pytest

from server_process import REPO_ROOT, free_port

TEXT_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+): (?P<message>.*)$")


@dataclass
class Failure:
    returncode: int
    stderr: str
    records: list[dict[str, Any]]  # our log lines, JSON or text, parsed; TensorFlow's native lines left out

    @property
    def errors(self) -> list[str]:
        return [r["message"] for r in self.records if r["level"] in ("ERROR", "CRITICAL")]


def run_server(*flags: str, env: Mapping[str, str] | None = None, cwd: Path = REPO_ROOT,
               prefix: Sequence[str] = ()) -> Failure:
    """Run the server to its exit (it must fail) and parse its log."""
    command = [*prefix, sys.executable, "-m", "service", "--host=127.0.0.1", *flags]
    result = subprocess.run(command, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
                            capture_output=True, text=True, timeout=240)
    records = []
    for line in result.stderr.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        elif match := TEXT_LINE.match(line):
            records.append(match.groupdict())
    return Failure(result.returncode, result.stderr, records)


def assert_one_line_failure(failure: Failure, *fragments: str) -> str:
    """Exit status 1, no traceback, exactly one ERROR line, and it names the problem; returns that line."""
    assert "Traceback" not in failure.stderr, failure.stderr
    assert failure.returncode == 1, failure.stderr
    assert len(failure.errors) == 1, failure.errors
    (message,) = failure.errors
    assert message.startswith("cannot start: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def model_flags(base_path: Path, name: str = "m") -> tuple[str, ...]:
    return (f"--model_name={name}", f"--model_base_path={base_path}", "--port=0", "--rest_api_port=0")


# -- no writable temporary directory -------------------------------------------------------------------


def read_only_temp_dirs_prefix() -> list[str] | None:
    """A command prefix that runs the rest with /tmp, /var/tmp and /usr/tmp made read-only (bind-mounted onto
    themselves, so what they hold, perhaps this checkout and its virtualenv, stays readable) and the working
    directory in one of them, or None where this machine allows no mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    mounts = ("for d in /tmp /var/tmp /usr/tmp; do [ -d $d ] || continue; "
              "mount --bind $d $d && mount -o remount,bind,ro $d || exit 97; done; cd /tmp || exit 97; ")
    as_root = [] if os.geteuid() == 0 else ["--map-root-user"]
    prefix = [unshare, *as_root, "--mount", "sh", "-c"]
    probe = subprocess.run([*prefix, mounts + "! touch /tmp/probe 2>/dev/null"], capture_output=True)
    if probe.returncode != 0:
        return None
    return [*prefix, mounts + 'exec "$@"', "sh"]


def test_no_writable_temp_directory_is_one_line_naming_the_fix_not_tensorflows_traceback() -> None:
    prefix = read_only_temp_dirs_prefix()
    if prefix is None:
        pytest.skip("needs a mount namespace (unshare) to make /tmp read-only; not allowed here")
    failure = run_server(*model_flags(Path("/models/none")), prefix=prefix, env={"TMPDIR": "/nonexistent/tmp"})
    message = assert_one_line_failure(failure, "no writable temporary directory", "/nonexistent/tmp", "TMPDIR",
                                      "/tmp", "emptyDir")
    assert "TensorFlow" in message


def test_the_temp_directory_check_explains_tempfiles_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check in-process, where no mount namespace is allowed: the message keeps tempfile's list."""
    import tempfile

    from service.__main__ import temp_dir_problem

    def no_usable_directory() -> str:
        raise FileNotFoundError(2, "No usable temporary directory found in ['/nonexistent', '/tmp']")

    monkeypatch.setattr(tempfile, "gettempdir", no_usable_directory)
    problem = temp_dir_problem()
    assert problem is not None and "['/nonexistent', '/tmp']" in problem and "TMPDIR" in problem
    monkeypatch.undo()
    assert temp_dir_problem() is None  # this machine has one


# -- models that cannot be read ---------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_base_path_that_does_not_exist(tmp_path: Path, log_format: str) -> None:
    missing = tmp_path / "no-such-model"
    failure = run_server(*model_flags(missing), f"--log_format={log_format}")
    assert_one_line_failure(failure, "model 'm'", f"base path {missing} does not exist")


def test_a_corrupt_saved_model_pb(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"\x08\x01this is not a SavedModel\xff\xff")
    failure = run_server(*model_flags(tmp_path / "m"))
    assert_one_line_failure(failure, "model 'm' version 1", "saved_model.pb is not a SavedModel")
    assert not any("refused model" in r["message"] for r in failure.records)  # said once, not twice


def test_a_saved_model_pb_that_cannot_be_read(tmp_path: Path) -> None:
    """Reading /proc/self/mem from offset 0 fails with EIO, for root too."""
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").symlink_to("/proc/self/mem")
    failure = run_server(*model_flags(tmp_path / "m"))
    assert_one_line_failure(failure, "model 'm' version 1", f"cannot read {tmp_path / 'm' / '1'}", "Input/output error")


def reads_whatever_the_mode(directory: Path) -> bool:
    """Root does (CAP_DAC_OVERRIDE), unless the capability was dropped."""
    probe = directory / "mode-000"
    probe.write_bytes(b"")
    probe.chmod(0)
    try:
        probe.read_bytes()
    except PermissionError:
        return False
    finally:
        probe.unlink()
    return True


@pytest.fixture
def unreadable(tmp_path: Path) -> Iterator[Path]:
    if reads_whatever_the_mode(tmp_path):
        pytest.skip("this user (root) reads files whatever their mode; "
                    "test_a_saved_model_pb_that_cannot_be_read covers an unreadable file")
    yield tmp_path
    for path in tmp_path.rglob("*"):
        path.chmod(0o755)
    tmp_path.chmod(0o755)


def test_a_version_directory_without_read_permission(unreadable: Path) -> None:
    version = unreadable / "m" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    version.chmod(0)
    failure = run_server(*model_flags(unreadable / "m"))
    assert_one_line_failure(failure, "model 'm' version 1", f"cannot read {version / 'saved_model.pb'}",
                            "Permission denied", f"user id {os.geteuid()}")


def test_a_base_path_without_read_permission(unreadable: Path) -> None:
    base = unreadable / "m"
    (base / "1").mkdir(parents=True)
    base.chmod(0o300)  # may enter, may not list
    failure = run_server(*model_flags(base))
    assert_one_line_failure(failure, f"model 'm': cannot list base path {base}", "Permission denied")


# -- ports in use -------------------------------------------------------------------------------------


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port another process (here, this test) listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_the_grpc_port_already_in_use(listening_port: int) -> None:
    failure = run_server("--model_name=m", "--model_base_path=/models/none", f"--port={listening_port}",
                         "--rest_api_port=0")
    assert_one_line_failure(failure, f"gRPC port 127.0.0.1:{listening_port} (--port) is already in use")


def test_the_grpc_port_of_another_grpc_server() -> None:
    """gRPC servers bind with SO_REUSEPORT by default, where a second one would start and share the port."""
    other = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    try:
        failure = run_server("--model_name=m", "--model_base_path=/models/none", f"--port={port}",
                             "--rest_api_port=0")
    finally:
        other.stop(None)
    assert_one_line_failure(failure, f"gRPC port 127.0.0.1:{port} (--port) is already in use")


def test_the_rest_port_already_in_use(listening_port: int) -> None:
    failure = run_server("--model_name=m", "--model_base_path=/models/none", "--port=0",
                         f"--rest_api_port={listening_port}")
    assert_one_line_failure(failure, f"REST port 127.0.0.1:{listening_port} (--rest_api_port) is already in use")


# -- flags ----------------------------------------------------------------------------------------------


def test_an_invalid_flag_value_is_argparses_usage_error() -> None:
    failure = run_server("--model_name=m", "--model_base_path=/models/none", f"--port={free_port()}",
                         "--max_batch_size=-3")
    assert failure.returncode == 2
    assert "Traceback" not in failure.stderr
    assert "usage:" in failure.stderr and "--max_batch_size" in failure.stderr
