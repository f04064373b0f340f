"""TF Serving's model layout on disk: numbered version directories under a base path, and why one offers
nothing to load, in an operator's terms."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from service.errors import one_line
from service.runtime.model_runtime import ModelLoadError

_log = logging.getLogger(__name__)


def find_versions(base_path: Path) -> dict[int, Path]:
    """Version number -> directory, for the subdirectories named by a number that hold a saved_model.pb
    (TF Serving's layout). Zero-padded names count (`00000123/` is version 123); other names are ignored.
    Should two names give one number (`7/` and `007/`), the shorter wins, and the choice is logged.

    A version directory the server may not look into counts as a version, so that its load fails and says
    why, instead of the version silently not existing. Raises ModelLoadError when the base path cannot be
    listed."""
    if not base_path.is_dir():
        return {}
    found: dict[int, Path] = {}
    try:
        entries = sorted(base_path.iterdir(), key=lambda path: (len(path.name), path.name))
    except OSError as error:
        raise ModelLoadError(f"cannot list base path {base_path}: {_os_error_reason(error)}") from None
    for entry in entries:
        name = entry.name
        if not (name.isascii() and name.isdigit() and entry.is_dir() and _may_hold_saved_model(entry)):
            continue
        version = int(name)
        if version in found:
            _log.warning("%s: %s and %s are both version %d; serving %s", base_path, found[version].name, name,
                         version, found[version].name)
            continue
        found[version] = entry
    return found


def _may_hold_saved_model(version_dir: Path) -> bool:
    try:
        return (version_dir / "saved_model.pb").is_file()
    except PermissionError:  # not ours to look into: its load will say so
        return True


def _os_error_reason(error: OSError) -> str:
    """`Permission denied (the server runs as user id 1000)`: what an operator needs to fix file modes."""
    reason = error.strerror or str(error)
    if isinstance(error, PermissionError) and hasattr(os, "getuid"):
        reason += f" (the server runs as user id {os.getuid()})"
    return reason


def describe_load_failure(error: BaseException, version_dir: Path) -> str:
    """One line for why a version did not load (logs and GetModelStatus show it): a file that cannot be read
    names the file; other errors keep their words, on one line (TensorFlow's can run to many)."""
    if isinstance(error, OSError):
        return f"cannot read {error.filename or version_dir}: {_os_error_reason(error)}"
    return one_line(error)


def describe_base_path(base_path: Path) -> str:
    """Why a base path offers no version to load, in the operator's terms."""
    if not base_path.exists():
        return f"base path {base_path} does not exist"
    if not base_path.is_dir():
        return f"base path {base_path} is not a directory"
    return f"no version directory with a saved_model.pb under {base_path}"
