"""Which model versions exist, loading them off the event loop, and their state for status and health.

Each served version owns its runtime and its batcher, so versions (and, later, models) never share a queue.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from batching import Batcher, BatchingParameters, BatchListener

from .errors import ModelNotFoundError, UnavailableError
from .runtime import ModelLoadError, ModelRuntime, Prediction

_log = logging.getLogger(__name__)


class VersionState(enum.Enum):
    """Names and order follow TF Serving's ModelVersionStatus.State."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclass
class ServedVersion:
    name: str
    version: int
    path: Path
    state: VersionState = VersionState.START
    error: str = ""
    runtime: ModelRuntime | None = None
    batcher: Batcher[object, Prediction] | None = None
    loaded_seconds: float = 0.0


@dataclass
class _Model:
    name: str
    base_path: Path
    versions: dict[int, ServedVersion] = field(default_factory=dict)


def find_versions(base_path: Path) -> list[int]:
    """Numeric subdirectories holding a saved_model.pb, ascending (TF Serving's layout)."""
    if not base_path.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in base_path.iterdir()
        if entry.is_dir() and entry.name.isdigit() and (entry / "saved_model.pb").is_file()
    )


class ModelManager:
    def __init__(
        self,
        batching: BatchingParameters,
        listener_factory: Callable[[str, int], BatchListener] | None = None,
        *,
        batch_execution_timeout: float | None = None,
    ) -> None:
        self._batching = batching
        self._batch_execution_timeout = batch_execution_timeout
        self._listener_factory = listener_factory
        self._models: dict[str, _Model] = {}

    async def load_latest(self, name: str, base_path: Path) -> ServedVersion:
        """Load and warm up the highest version under `base_path`; raises ModelLoadError if none loads."""
        model = self._models.setdefault(name, _Model(name=name, base_path=base_path))
        versions = find_versions(base_path)
        if not versions:
            raise ModelLoadError(f"no version directory with a saved_model.pb under {base_path}")
        served = ServedVersion(name=name, version=versions[-1], path=base_path / str(versions[-1]))
        model.versions[served.version] = served
        served.state = VersionState.LOADING
        started = time.perf_counter()
        try:
            served.runtime = await asyncio.to_thread(self._load_and_warm, served.path)
        except ModelLoadError as error:
            served.state, served.error = VersionState.END, str(error)
            raise
        listener = self._listener_factory(name, served.version) if self._listener_factory else None
        served.batcher = Batcher(
            served.runtime.run_batch, self._batching, name=f"{name}-v{served.version}", listener=listener,
            execution_timeout=self._batch_execution_timeout,
        )
        served.loaded_seconds = time.perf_counter() - started
        served.state = VersionState.AVAILABLE
        _log.info("loaded model %s version %d in %.1f s", name, served.version, served.loaded_seconds)
        return served

    def _load_and_warm(self, path: Path) -> ModelRuntime:
        runtime = ModelRuntime(path)
        sizes = self._batching.allowed_batch_sizes or (1, self._batching.max_batch_size)
        runtime.warm_up(sizes)
        return runtime

    def get(self, name: str, version: int | None = None) -> ServedVersion:
        """The version to serve a request with: the given one, or the highest AVAILABLE one."""
        model = self._models.get(name)
        if model is None:
            raise ModelNotFoundError(f"model '{name}' is not served here (served: {sorted(self._models)})")
        if version is not None:
            served = model.versions.get(version)
            if served is None:
                raise ModelNotFoundError(
                    f"model '{name}' has no version {version} (versions: {sorted(model.versions)})"
                )
            if served.state is not VersionState.AVAILABLE:
                raise UnavailableError(f"model '{name}' version {version} is {served.state.value}")
            return served
        available = [v for v in model.versions.values() if v.state is VersionState.AVAILABLE]
        if not available:
            raise UnavailableError(f"model '{name}' has no version ready yet")
        return max(available, key=lambda v: v.version)

    def versions(self, name: str) -> list[ServedVersion]:
        model = self._models.get(name)
        if model is None:
            raise ModelNotFoundError(f"model '{name}' is not served here (served: {sorted(self._models)})")
        return [model.versions[v] for v in sorted(model.versions)]

    @property
    def model_names(self) -> list[str]:
        return sorted(self._models)

    def all_available(self) -> bool:
        return bool(self._models) and all(
            any(v.state is VersionState.AVAILABLE for v in m.versions.values()) for m in self._models.values()
        )

    async def close(self) -> None:
        """Finish queued and running batches of every version, then release them."""
        for model in self._models.values():
            for served in model.versions.values():
                if served.batcher is not None and served.state is VersionState.AVAILABLE:
                    served.state = VersionState.UNLOADING
                    await served.batcher.close(drain=True)
                    served.state = VersionState.END
