"""A served model version: its runtime, its batchers, its state, and the leases that keep it loaded.

A request leases the version it picked until it has its answer; the leases are also the server's count of
inference requests in flight, what --max_inflight_requests limits and the inference_inflight_requests
metric shows.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from batching import Batcher, BatchInfo, BatchingParameters, BatchListener

from service.errors import UnavailableError
from service.models.batch_size_tuning import BatchSizeChoice
from service.models.signature_batching import SignatureBatchers
from service.runtime.model_runtime import ModelRuntime, Prediction

_log = logging.getLogger(__name__)


# The stages of an admitted item, in the order it passes them: ServedVersion.backlog()'s keys, the `stage`
# label of the inference_backlog metric and the words docs use.
BACKLOG_STAGES = ("decoding", "queued", "running")


class VersionState(enum.Enum):
    """Names and order follow TF Serving's ModelVersionStatus.State."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


class LeaseCount:
    """Leases held now over every version of one ModelManager: its in-flight inference requests."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0


@dataclass
class ServedVersion:
    name: str
    version: int
    path: Path
    state: VersionState = VersionState.START
    error: str = ""
    runtime: ModelRuntime | None = None
    batcher: Batcher[object, Prediction] | None = None  # the image fast path's (models with the image contract)
    signature_batchers: SignatureBatchers | None = None  # every other signature's, by signature and row shapes
    loaded_seconds: float = 0.0
    batching: BatchingParameters | None = None  # this version's (with --max_batch_size=auto, its measured size)
    batch_size_choice: BatchSizeChoice | None = None  # how --max_batch_size=auto chose, with the curve
    # time.monotonic() when a batch first ran past --batch_execution_timeout_seconds, until a batch completes
    stuck_since: float | None = None
    # Inference requests that hold a lease on this version (picked it and have not had their answer yet).
    in_flight: int = 0
    # The manager's count of every lease held now (ModelManager.in_flight_requests), kept by the leases.
    leases: LeaseCount = field(default_factory=LeaseCount, repr=False)
    # Its export_metadata.json says "weights": "random": the export had no trained weights, so its labels mean
    # nothing. Kept here (not read from the runtime) so metrics can read it from the scrape thread.
    seeded_weights: bool = False
    _idle: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def queue_depth(self) -> int:
        """Items waiting for a batch in any of this version's batchers."""
        depth = self.batcher.queue_depth if self.batcher is not None else 0
        return depth + (self.signature_batchers.queue_depth if self.signature_batchers is not None else 0)

    def backlog(self) -> dict[str, int]:
        """Items admitted and not yet answered, by stage: decoding (images admitted, waiting for or in the
        decode pool), queued (waiting for a batch), running (in a batch being computed).

        The stage names are BACKLOG_STAGES, the same in metrics and docs. Decoding is the image batcher's
        `reserved` count: the data plane reserves queue room for a request's images before decoding them
        (batching/ knows nothing of images, so it names the mechanism, not the stage)."""
        image, signatures = self.batcher, self.signature_batchers
        return {
            "decoding": image.reserved if image is not None else 0,
            "queued": self.queue_depth,
            "running": (image.running_items if image is not None else 0)
            + (signatures.running_items if signatures is not None else 0),
        }

    def lease(self) -> _Lease:
        """Keep this version from unloading until the block exits (the request has its answer); the request
        counts in `in_flight` and in ModelManager.in_flight_requests meanwhile."""
        if self.state is not VersionState.AVAILABLE:  # picked, then an adapter awaited before leasing
            raise UnavailableError(f"model '{self.name}' version {self.version} is {self.state.value}: retry")
        return _Lease(self)

    async def _wait_idle(self) -> None:
        if self.in_flight:
            await self._idle.wait()


class _Lease:
    """A class, not a generator context manager: one is taken per request."""

    __slots__ = ("_served",)

    def __init__(self, served: ServedVersion) -> None:
        self._served = served

    def __enter__(self) -> ServedVersion:
        served = self._served
        if served.in_flight == 0:
            served._idle.clear()
        served.in_flight += 1
        served.leases.held += 1
        return served

    def __exit__(self, *exc_info: object) -> None:
        served = self._served
        served.in_flight -= 1
        served.leases.held -= 1
        if served.in_flight == 0:
            served._idle.set()


class StuckWatch(BatchListener):
    """Marks a version stuck when a batch runs past the execution timeout, and well again when a batch
    completes (the stuck call itself returning, or another batch thread getting through)."""

    def __init__(self, served: ServedVersion) -> None:
        self._served = served

    def on_batch_timed_out(self, batch: BatchInfo, seconds: float) -> None:
        if self._served.stuck_since is None:
            self._served.stuck_since = time.monotonic()
            _log.error("model %s version %d is stuck: a batch ran past %g s; reporting it not ready",
                       self._served.name, self._served.version, seconds)

    def on_batch_finished(self, batch: BatchInfo, seconds: float, error: BaseException | None) -> None:
        if self._served.stuck_since is not None:
            self._served.stuck_since = None
            _log.info("model %s version %d completed a batch again: ready", self._served.name, self._served.version)


async def close_batchers(served: ServedVersion) -> None:
    """Finish every queued and running batch of the version."""
    if served.batcher is not None:
        await served.batcher.close(drain=True)
    if served.signature_batchers is not None:
        await served.signature_batchers.close()


def seeded_weights_warning(served: ServedVersion, metadata: Mapping[str, Any]) -> str:
    """The one line that says a version's labels are meaningless, and how to get a version that means
    something: the same advice docs/models.md gives."""
    reason = metadata.get("weights_fallback_reason")
    cause = f" (its export could not download the ImageNet weights: {reason})" if reason else ""
    if metadata.get("model", "inception_v3") == "inception_v3":
        remedy = ("export it again with real weights, 'python -m model_export --weights imagenet' on a machine "
                  "with network access or '--weights PATH' to a Keras .h5 weights file, as a new version")
    else:
        remedy = "export it again with trained weights, as a new version"
    return (f"model {served.name} version {served.version} has seeded random weights{cause}: it serves every "
            f"API, but its predictions are meaningless. To serve real predictions, {remedy}")
