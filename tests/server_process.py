"""Start the real server (`python -m service`) on loopback for a test, and stop it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Mapping

import grpc

REPO_ROOT = Path(__file__).resolve().parent.parent
_READY = re.compile(r"ready: .*grpc=\S+:(\d+) metrics=\S+:(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A running server; its log is collected so tests can read it and failures show it."""

    def __init__(
        self,
        model_base_path: Path,
        *flags: str,
        model_name: str = "inception",
        port: int = 0,
        wait: bool = True,
        start_timeout: float = 240,
        env: Mapping[str, str] | None = None,
    ):
        self.metrics_port = free_port()
        command = [
            sys.executable, "-m", "service",
            "--host=127.0.0.1", f"--port={port}", f"--rest_api_port={self.metrics_port}",
            f"--model_name={model_name}", f"--model_base_path={model_base_path}", *flags,
        ]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.log_lines: list[str] = []
        self._ready = threading.Event()
        self.port = port
        self.address = f"127.0.0.1:{port}"
        threading.Thread(target=self._read_log, daemon=True).start()
        if wait:
            self.wait_ready(start_timeout)

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"server did not become ready; log:\n{self.log}")
        self.address = f"127.0.0.1:{self.port}"

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log_lines.append(line)
            match = _READY.search(line)
            if match:
                self.port = int(match.group(1))
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def metrics_text(self, path: str = "/metrics") -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=10) as response:
            return response.read().decode()

    def metric_value(self, name: str, labels: str = "") -> float:
        """Sum of the samples of `name` whose label text contains `labels`."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if labels in line:
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
