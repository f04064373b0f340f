"""The ImageNet weights download against a local HTTP server: never the real internet.

Each test serves a small stand-in file whose sha256 it computes itself, and points the
Keras cache at a temporary directory, so no test reads or writes the user's real cache.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from model_export.__main__ import main as model_export_main
from model_export.weights_download import (
    KERAS_WEIGHTS_URL,
    WEIGHTS_URL_ENV,
    WeightsDownloadError,
    fetch_imagenet_weights,
    keras_cache_dir,
    select_weights,
    weights_url,
)
from server_process import REPO_ROOT

FAKE_WEIGHTS = bytes(range(256)) * 4000  # ~1 MB: several read chunks, so progress is reported
FAKE_SHA256 = hashlib.sha256(FAKE_WEIGHTS).hexdigest()
FILENAME = "fake_weights.h5"


@dataclass
class Route:
    body: bytes
    status: int = 200
    declared_length: int | None = None  # a Content-Length larger than the body: the transfer breaks off
    stall_s: float = 0.0  # pause after the first half of the body


@dataclass
class LocalServer:
    port: int
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not intercept requests to the loopback server."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.delenv(WEIGHTS_URL_ENV, raising=False)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    state = LocalServer(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404, "no such file")
                return
            self.send_response(route.status)
            self.send_header("Content-Length", str(route.declared_length or len(route.body)))
            self.end_headers()
            half = len(route.body) // 2
            self.wfile.write(route.body[:half])
            self.wfile.flush()
            time.sleep(route.stall_s)
            self.wfile.write(route.body[half:])
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test output
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{FILENAME}"


def fetch(url: str, cache: Path, logs: list[str] | None = None, **options) -> Path:
    return fetch_imagenet_weights(
        url, expected_sha256=FAKE_SHA256, filename=FILENAME, cache_dir=cache,
        log=(logs.append if logs is not None else lambda _: None), progress_stream=None, **options,
    )


def test_good_file_is_downloaded_verified_and_then_reused_without_network(server, tmp_path):
    server.routes["/w.h5"] = Route(FAKE_WEIGHTS)
    cache = tmp_path / "cache"
    logs: list[str] = []
    path = fetch(server.url("/w.h5"), cache, logs)
    assert path == cache / FILENAME and path.read_bytes() == FAKE_WEIGHTS
    assert sorted(p.name for p in cache.iterdir()) == [FILENAME]  # no temporary file left beside it
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert any("100%" in line for line in logs) and "sha256 verified" in logs[-1]
    # Second call: served from the cache, even with the server gone.
    server.routes.clear()
    assert fetch(server.url("/w.h5"), cache) == path
    assert server.requests == ["/w.h5"]


def test_wrong_checksum_fails_and_leaves_nothing_in_the_cache(server, tmp_path):
    server.routes["/w.h5"] = Route(b"x" + FAKE_WEIGHTS[1:])
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError, match=f"sha256 .* expected {FAKE_SHA256}"):
        fetch(server.url("/w.h5"), cache)
    assert list(cache.iterdir()) == []


def test_unreachable_host_fails_with_a_clear_reason(closed_port_url, tmp_path):
    cache = tmp_path / "cache"
    started = time.monotonic()
    with pytest.raises(WeightsDownloadError, match=r"connection to 127\.0\.0\.1:\d+ refused"):
        fetch(closed_port_url, cache)
    assert time.monotonic() - started < 5
    assert list(cache.iterdir()) == []


def test_http_error_names_the_status(server, tmp_path):
    with pytest.raises(WeightsDownloadError, match="answered HTTP 404"):
        fetch(server.url("/missing.h5"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_leaves_no_partial_file(server, tmp_path):
    server.routes["/w.h5"] = Route(FAKE_WEIGHTS[:1000], declared_length=len(FAKE_WEIGHTS))
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError, match=f"broke off after 1000 of {len(FAKE_WEIGHTS)} bytes"):
        fetch(server.url("/w.h5"), cache)
    assert list(cache.iterdir()) == []


def test_stalled_transfer_times_out_and_leaves_no_partial_file(server, tmp_path):
    server.routes["/w.h5"] = Route(FAKE_WEIGHTS, stall_s=1.5)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.3 s"):
        fetch(server.url("/w.h5"), cache, timeout_s=0.3)
    assert list(cache.iterdir()) == []


def test_corrupt_cached_file_is_never_used(server, closed_port_url, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FILENAME).write_bytes(FAKE_WEIGHTS[:-1])
    # Offline: the corrupt file is not returned.
    with pytest.raises(WeightsDownloadError, match="refused"):
        fetch(closed_port_url, cache)
    # Online: it is replaced by a verified download.
    server.routes["/w.h5"] = Route(FAKE_WEIGHTS)
    logs: list[str] = []
    assert fetch(server.url("/w.h5"), cache, logs).read_bytes() == FAKE_WEIGHTS
    assert any(f"expected {FAKE_SHA256}: downloading it again" in line for line in logs)
    assert sorted(p.name for p in cache.iterdir()) == [FILENAME]


def test_progress_is_one_rewritten_line_on_a_terminal(server, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    server.routes["/w.h5"] = Route(FAKE_WEIGHTS)
    terminal, logs = Terminal(), []
    fetch_imagenet_weights(server.url("/w.h5"), expected_sha256=FAKE_SHA256, filename=FILENAME,
                           cache_dir=tmp_path, log=logs.append, progress_stream=terminal)
    shown = terminal.getvalue()
    assert shown.startswith("\rdownloading") and shown.endswith("100% (1.0 of 1.0 MB)\n")
    assert shown.count("\n") == 1
    assert not any("%" in line for line in logs)  # the terminal line replaces the periodic log lines


def test_select_weights_falls_back_only_when_asked(closed_port_url, tmp_path):
    options = {"expected_sha256": FAKE_SHA256, "filename": FILENAME, "cache_dir": tmp_path, "progress_stream": None}
    logs: list[str] = []
    selection = select_weights("imagenet-or-seeded", url=closed_port_url, log=logs.append, **options)
    assert selection.file is None and "refused" in selection.fallback_reason
    warnings = [line for line in logs if "could not download" in line]
    assert warnings == [
        f"warning: could not download the ImageNet weights ({selection.fallback_reason}); "
        "exporting with seeded random weights instead: predictions will be meaningless"
    ]
    with pytest.raises(WeightsDownloadError, match="refused"):
        select_weights("imagenet", url=closed_port_url, log=logs.append, **options)
    assert select_weights("seeded", url=closed_port_url).file is None
    assert select_weights("/some/file.h5").file == Path("/some/file.h5")


def test_url_and_cache_follow_keras(monkeypatch, tmp_path):
    assert weights_url() == KERAS_WEIGHTS_URL
    assert KERAS_WEIGHTS_URL.startswith("https://storage.googleapis.com/tensorflow/keras-applications/")
    monkeypatch.setenv(WEIGHTS_URL_ENV, "http://mirror.invalid/w.h5")
    assert weights_url() == "http://mirror.invalid/w.h5"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    assert keras_cache_dir() == tmp_path / "keras_home" / "models"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert keras_cache_dir() == tmp_path / ".keras" / "models"


def test_cli_falls_back_to_seeded_weights_and_records_why(closed_port_url, tmp_path, monkeypatch, capsys):
    """The `make serve` default end to end, offline: one clear line, and the metadata says so."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # never the user's cache: it may hold the file
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    result = subprocess.run(
        [sys.executable, "-m", "model_export", "--output", str(tmp_path / "inception"),
         "--weights", "imagenet-or-seeded", "--weights-url", closed_port_url],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    fallback_lines = [line for line in result.stdout.splitlines() if "could not download the ImageNet weights" in line]
    assert len(fallback_lines) == 1 and "refused" in fallback_lines[0], result.stdout
    assert "seeded random weights instead: predictions will be meaningless" in fallback_lines[0]
    metadata = json.loads((tmp_path / "inception" / "1" / "assets" / "export_metadata.json").read_text())
    assert metadata["weights"] == "random" and metadata["seed"] == 0
    assert "refused" in metadata["weights_fallback_reason"]
    assert metadata["weights_file"] is None

    # --weights imagenet never falls back: one error line, nothing exported (in-process: TF is loaded already).
    assert model_export_main(["--output", str(tmp_path / "strict"), "--weights", "imagenet",
                              "--weights-url", closed_port_url]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: could not download the ImageNet weights: connection to")
    assert not (tmp_path / "strict" / "1").exists()
