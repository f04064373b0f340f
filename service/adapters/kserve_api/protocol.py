"""What KServe v2 means the same way over gRPC and over HTTP: the server's name, versions as strings, and an
unknown model in Triton's words, which tritonclient users match on."""

from __future__ import annotations

import contextlib
from importlib import metadata
from typing import Iterator

from service.errors import InvalidInputError, ModelNotFoundError

PLATFORM = "tensorflow_savedmodel"
SERVER_NAME = "batchserve"


def server_version() -> str:
    try:
        return metadata.version(SERVER_NAME)
    except metadata.PackageNotFoundError:
        return "0"


def parse_version(text: str) -> int | None:
    """KServe versions are strings; "" means the server's choice (the highest available)."""
    if not text:
        return None
    # ASCII digits only ("²" and "١" are digits to str.isdigit), within int64 as versions are
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > 2**63 - 1:
        raise InvalidInputError(f"model_version must be a version number or empty, got '{text[:40]}'")
    return int(text)


@contextlib.contextmanager
def worded_for_triton() -> Iterator[None]:
    """An unknown model or version in Triton's words."""
    try:
        yield
    except ModelNotFoundError as error:
        version = f" version {error.version}" if error.version is not None else ""
        raise ModelNotFoundError(
            f"Request for unknown model: '{error.model_name}'{version} is not found",
            model_name=error.model_name, version=error.version,
        ) from None
