"""Fetch Keras' published Inception-v3 ImageNet weights into Keras' own cache, verified and atomically.

Our own small downloader rather than ``keras.utils.get_file``: a failure must be one clear
reason (so ``make serve`` can fall back to seeded weights and say why), and a half-written
or corrupt file must never land where a later run would load it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from model_export.inception import STANDARD_WEIGHTS_FILENAME, STANDARD_WEIGHTS_SHA256

KERAS_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + STANDARD_WEIGHTS_FILENAME
)
"""Where Keras itself downloads these weights from (keras.applications.inception_v3.WEIGHTS_PATH)."""

WEIGHTS_URL_ENV = "BATCHSERVE_WEIGHTS_URL"
"""Overrides KERAS_WEIGHTS_URL, e.g. for a mirror inside a network without internet access."""

DEFAULT_TIMEOUT_S = 30.0
"""Per connect and per read: a dead network fails in seconds rather than hanging an export."""

WEIGHTS_IMAGENET = "imagenet"
WEIGHTS_SEEDED = "seeded"
WEIGHTS_IMAGENET_OR_SEEDED = "imagenet-or-seeded"
WEIGHTS_CHOICES: tuple[str, ...] = (WEIGHTS_IMAGENET, WEIGHTS_IMAGENET_OR_SEEDED, WEIGHTS_SEEDED)

_CHUNK_BYTES = 1 << 20
_MB = 1_000_000


class WeightsDownloadError(RuntimeError):
    """The ImageNet weights could not be obtained; the message is the reason, fit for one log line."""


def keras_cache_dir() -> Path:
    """The directory Keras caches application weights in, by Keras' own rule.

    ``$KERAS_HOME`` if set, else ``~/.keras`` (``/tmp/.keras`` when the home directory is not
    writable); then, as ``keras.utils.get_file`` does, ``/tmp/.keras`` when that base is not
    writable; weights go in its ``models`` subdirectory.
    """
    if "KERAS_HOME" in os.environ:
        base = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(base)
    if not os.path.isdir(base):
        try:
            os.makedirs(base, exist_ok=True)
        except OSError:
            pass
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "models"


def weights_url() -> str:
    return os.environ.get(WEIGHTS_URL_ENV) or KERAS_WEIGHTS_URL


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Progress:
    """One line rewritten in place on a terminal; otherwise a log line every 10% (or 10 MB if size unknown)."""

    def __init__(self, label: str, total: int | None, log: Callable[[str], None], stream: TextIO | None):
        self.label, self.total, self.log = label, total, log
        self.stream = stream if stream is not None and _is_tty(stream) else None
        self.step = total // 10 if total and total >= 10 else 10 * _MB
        self.next_report = self.step
        self.last_draw = 0.0

    def _text(self, done: int) -> str:
        if self.total:
            return f"{self.label}: {100 * done // self.total:3d}% ({done / _MB:.1f} of {self.total / _MB:.1f} MB)"
        return f"{self.label}: {done / _MB:.1f} MB"

    def update(self, done: int) -> None:
        if self.stream is not None:
            now = time.monotonic()
            if now - self.last_draw >= 0.1 or done == self.total:
                self.stream.write("\r" + self._text(done))
                self.stream.flush()
                self.last_draw = now
            return
        if done >= self.next_report:
            self.log(self._text(done))
            while self.next_report <= done:
                self.next_report += self.step

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _describe_failure(error: BaseException, url: str, timeout_s: float) -> str:
    host = urllib.parse.urlsplit(url).netloc or url
    if isinstance(error, urllib.error.HTTPError):
        return f"{url} answered HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        if not isinstance(error.reason, BaseException):
            return f"cannot reach {host}: {error.reason}"
        error = error.reason
    if isinstance(error, (TimeoutError, socket.timeout)):
        return f"no answer from {host} within {timeout_s:g} s"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {host} (no network or DNS?): {error.strerror or error}"
    if isinstance(error, ConnectionRefusedError):
        return f"connection to {host} refused"
    if isinstance(error, http.client.HTTPException | ConnectionError):
        return f"transfer from {host} broke off: {type(error).__name__}: {error}"
    if isinstance(error, ValueError):
        return f"bad weights URL {url!r}: {error}"
    return f"download from {host} failed: {type(error).__name__}: {error}"


def fetch_imagenet_weights(
    url: str | None = None,
    *,
    expected_sha256: str = STANDARD_WEIGHTS_SHA256,
    filename: str = STANDARD_WEIGHTS_FILENAME,
    cache_dir: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    log: Callable[[str], None] = print,
    progress_stream: TextIO | None = sys.stderr,
) -> Path:
    """Return the cached weights file, downloading it first unless a file with the right sha256 is there.

    The download goes to a temporary file in the cache directory and is renamed into place
    only after its length and sha256 check out, so an interrupted or corrupt transfer never
    leaves a file that a later run would load. Raises WeightsDownloadError naming the reason.
    """
    url = url or weights_url()
    cache = Path(cache_dir) if cache_dir is not None else keras_cache_dir()
    target = cache / filename
    if target.is_file():
        cached_sha256 = _sha256_of(target)
        if cached_sha256 == expected_sha256:
            log(f"using cached ImageNet weights {target} (sha256 verified)")
            return target
        log(f"cached {target} has sha256 {cached_sha256}, expected {expected_sha256}: downloading it again")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WeightsDownloadError(f"cannot create the weights cache directory {cache}: {error}") from error

    log(f"downloading {url} to {target}")
    try:
        handle = tempfile.NamedTemporaryFile(dir=cache, prefix=f".{filename}.", suffix=".part", delete=False)
    except OSError as error:
        raise WeightsDownloadError(f"cannot write to the weights cache directory {cache}: {error}") from error
    temporary: Path | None = Path(handle.name)
    try:
        with handle:
            request = urllib.request.Request(url, headers={"User-Agent": "batchserve-model-export"})
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                length_header = response.headers.get("Content-Length")
                total = int(length_header) if length_header and length_header.isdigit() else None
                progress = _Progress(f"downloading {filename}", total, log, progress_stream)
                digest, received = hashlib.sha256(), 0
                try:
                    while chunk := response.read(_CHUNK_BYTES):
                        handle.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        progress.update(received)
                finally:
                    progress.finish()
        if total is not None and received != total:
            raise WeightsDownloadError(
                f"transfer from {urllib.parse.urlsplit(url).netloc} broke off after {received} of {total} bytes"
            )
        if digest.hexdigest() != expected_sha256:
            raise WeightsDownloadError(
                f"downloaded file has sha256 {digest.hexdigest()}, expected {expected_sha256} "
                f"({received} bytes from {url})"
            )
        os.chmod(temporary, 0o644)  # a temporary file is private (0600); the cache is not
        os.replace(temporary, target)
        temporary = None
    except WeightsDownloadError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise WeightsDownloadError(_describe_failure(error, url, timeout_s)) from error
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    log(f"downloaded {target} ({received / _MB:.1f} MB, sha256 verified)")
    return target


@dataclass(frozen=True)
class WeightsSelection:
    """What the export should load: a weights file, or seeded weights (and why, when that was a fallback)."""

    file: Path | None
    fallback_reason: str | None = None


def fallback_message(reason: str) -> str:
    return (
        f"could not download the ImageNet weights ({reason}); exporting with seeded random weights instead: "
        "predictions will be meaningless"
    )


def select_weights(
    choice: str | None,
    *,
    url: str | None = None,
    log: Callable[[str], None] = print,
    **fetch_options: Any,
) -> WeightsSelection:
    """Turn ``--weights`` into a file or seeded weights; only ``imagenet-or-seeded`` swallows a download failure.

    ``choice`` is ``imagenet``, ``imagenet-or-seeded``, ``seeded`` (or None, the same), or a path
    to a Keras .h5 file. ``fetch_options`` go to fetch_imagenet_weights.
    """
    if choice is None or choice == WEIGHTS_SEEDED:
        return WeightsSelection(file=None)
    if choice == WEIGHTS_IMAGENET:
        return WeightsSelection(file=fetch_imagenet_weights(url, log=log, **fetch_options))
    if choice == WEIGHTS_IMAGENET_OR_SEEDED:
        try:
            return WeightsSelection(file=fetch_imagenet_weights(url, log=log, **fetch_options))
        except WeightsDownloadError as error:
            log(f"warning: {fallback_message(str(error))}")
            return WeightsSelection(file=None, fallback_reason=str(error))
    return WeightsSelection(file=Path(choice))
