"""Start the real server (`python -m service`) on loopback for a test, and stop it."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import Mapping

import grpc

from benchmarks.launcher import REPO_ROOT, LaunchedServer, free_port

__all__ = ["REPO_ROOT", "ServerProcess", "free_port"]


class ServerProcess(LaunchedServer):
    """Our server on 127.0.0.1 with a free metrics/REST port, plus the helpers tests read it with."""

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
        rest_port = free_port()
        super().__init__(
            [
                sys.executable, "-m", "service",
                "--host=127.0.0.1", f"--port={port}", f"--rest_api_port={rest_port}",
                f"--model_name={model_name}", f"--model_base_path={model_base_path}", *flags,
            ],
            start_timeout=start_timeout, env=env, wait=wait, grpc_port=port,
        )
        self.metrics_port = rest_port

    @property
    def port(self) -> int:
        return self.grpc_port

    @property
    def address(self) -> str:
        return self.target

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
