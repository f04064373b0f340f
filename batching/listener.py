"""Observation hooks, so metrics and tracing live outside the batcher.

The batcher imports no Prometheus or OpenTelemetry: the service subclasses
:class:`BatchListener` and passes an instance in. Every hook is called on the event loop
thread, so it must be quick and must not block. An exception raised by a hook is logged
and otherwise ignored: observing batching must never break it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["BatchInfo", "BatchListener", "ListenerGroup"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchInfo:
    """What a listener may want to know about one batch."""

    batch_id: int
    """Increasing per batcher, starting at 1; pairs ``on_batch_started`` with ``on_batch_finished``."""
    size: int
    """Items in the batch (never 0)."""
    padded_size: int
    """Size the model was asked to pad to (see ``BatchingParameters.padded_size``)."""
    queue_waits: tuple[float, ...]
    """Seconds each item waited in the queue, in batch order."""
    contexts: tuple[object, ...] = ()
    """The ``context`` its request was submitted with, for each item in batch order (None if none)."""


HOOKS = (
    "on_enqueued", "on_rejected", "on_batch_started", "on_batch_timed_out", "on_batch_finished", "on_finished_late",
)


class BatchListener:
    """Base class with no-op hooks; override the ones you need."""

    def listens_to(self, hook: str) -> bool:
        """Whether ``hook`` does anything; the batcher does not call hooks that are left as no-ops."""
        overridden = getattr(type(self), hook) is not getattr(BatchListener, hook)
        return overridden or hook in getattr(self, "__dict__", {})

    def on_enqueued(self, count: int, queue_depth: int) -> None:
        """``count`` items were accepted; ``queue_depth`` is the depth after enqueueing."""

    def on_rejected(self, count: int, reason: str) -> None:
        """``count`` items will never run.

        ``reason`` is ``"queue_full"`` (refused at submit), ``"deadline"`` (deadline passed),
        ``"deadline_unmeetable"`` (refused on arrival: predicted to finish after its deadline),
        ``"deadline_unmeetable_at_batch"`` (dropped when its batch formed: less time left than the batch
        takes), ``"cancelled"`` (the caller went away or a sibling item failed) or ``"closed"``
        (the batcher was closed without draining, or a submit came after close).
        """

    def on_batch_started(self, batch: BatchInfo) -> None:
        """A batch was formed and handed to a batch thread."""

    def on_batch_timed_out(self, batch: BatchInfo, seconds: float) -> None:
        """A batch ran past the execution timeout (``seconds``); its items were failed.

        The call itself cannot be interrupted: it keeps its batch thread until it returns, and
        ``on_batch_finished`` follows then.
        """

    def on_batch_finished(self, batch: BatchInfo, seconds: float, error: BaseException | None) -> None:
        """A batch returned after ``seconds``; ``error`` is set when the whole batch failed."""

    def on_finished_late(self, batch: BatchInfo, count: int) -> None:
        """``count`` items of ``batch`` were computed but their request's deadline passed before the batch
        returned: work done for nobody. Called after ``on_batch_finished``, only when ``count`` > 0."""


class ListenerGroup(BatchListener):
    """Several listeners behind one (e.g. metrics and tracing); each hook reaches every member.

    A member that raises is logged and skipped, so one broken observer never silences another.
    """

    def __init__(self, *listeners: BatchListener) -> None:
        self.listeners = listeners
        # Per hook, only the members that listen to it: the batcher calls some hooks per request.
        self._members = {hook: [l for l in listeners if l.listens_to(hook)] for hook in HOOKS}

    def listens_to(self, hook: str) -> bool:
        return bool(self._members[hook])

    def _each(self, hook: str, *args: object) -> None:
        for listener in self._members[hook]:
            try:
                getattr(listener, hook)(*args)
            except Exception:
                _log.exception("listener %s.%s failed", type(listener).__name__, hook)

    def on_enqueued(self, count: int, queue_depth: int) -> None:
        self._each("on_enqueued", count, queue_depth)

    def on_rejected(self, count: int, reason: str) -> None:
        self._each("on_rejected", count, reason)

    def on_batch_started(self, batch: BatchInfo) -> None:
        self._each("on_batch_started", batch)

    def on_batch_timed_out(self, batch: BatchInfo, seconds: float) -> None:
        self._each("on_batch_timed_out", batch, seconds)

    def on_batch_finished(self, batch: BatchInfo, seconds: float, error: BaseException | None) -> None:
        self._each("on_batch_finished", batch, seconds, error)

    def on_finished_late(self, batch: BatchInfo, count: int) -> None:
        self._each("on_finished_late", batch, count)
