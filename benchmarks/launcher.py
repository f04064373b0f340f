"""Start a server process on loopback, wait for its ready line, stop it with SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent
_GRPC_PORT = re.compile(r"ready: .*grpc=[^\s\"]+:(\d+)")
_METRICS_PORT = re.compile(r"metrics=[^\s\"]+:(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LaunchedServer:
    """A server subprocess; its log is kept so a failure (or a test) can read it."""

    def __init__(
        self,
        command: list[str],
        *,
        start_timeout: float = 300,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
        grpc_port: int = 0,
        own_process_group: bool = False,
    ) -> None:
        # A server that starts processes of its own (Triton's, MLServer's workers) gets a process group, so
        # `stop` can end whatever of it outlives the main process.
        self.own_process_group = own_process_group
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=own_process_group,
        )
        self.log_lines: list[str] = []
        self.grpc_port = grpc_port
        self.metrics_port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()
        if wait:
            self.wait_ready(start_timeout)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("server did not become ready:\n" + "".join(self.log_lines[-60:]))

    def _read_log(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log_lines.append(line)
            match = _GRPC_PORT.search(line)
            if match and not self._ready.is_set():
                self.grpc_port = int(match.group(1))
                metrics = _METRICS_PORT.search(line)
                self.metrics_port = int(metrics.group(1)) if metrics and int(metrics.group(1)) else None
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_target(self) -> str | None:
        """HOST:PORT of the REST API (the port that also serves /metrics)."""
        return f"127.0.0.1:{self.metrics_port}" if self.metrics_port else None

    @property
    def metrics_url(self) -> str | None:
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else None

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.own_process_group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def __enter__(self) -> "LaunchedServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def our_server(model_base_path: Path, model_name: str, *flags: str) -> LaunchedServer:
    return LaunchedServer(
        [sys.executable, "-m", "service", "--host=127.0.0.1", "--port=0", f"--rest_api_port={free_port()}",
         f"--model_name={model_name}", f"--model_base_path={model_base_path}", *flags]
    )


def floor_server() -> LaunchedServer:
    return LaunchedServer([sys.executable, "-m", "benchmarks", "floor-server", "--port=0"])
