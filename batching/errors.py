"""Errors a caller of :meth:`Batcher.submit` can see.

They are protocol-neutral on purpose: the service layer maps each one to a status code
(``QueueFullError`` -> RESOURCE_EXHAUSTED, ``DeadlineExceededError`` -> DEADLINE_EXCEEDED, ...).
"""

from __future__ import annotations

__all__ = [
    "BatchingError",
    "QueueFullError",
    "BatcherClosedError",
    "DeadlineExceededError",
    "UnmeetableDeadlineError",
    "BatchTimeoutError",
    "ItemError",
]


class BatchingError(Exception):
    """Base class, so callers can catch every batching failure in one clause."""


class QueueFullError(BatchingError):
    """The queue cannot take the request; nothing was enqueued (refuse fast, don't block)."""


class BatcherClosedError(BatchingError):
    """The batcher was closed before the request was accepted or before its items ran."""


class DeadlineExceededError(BatchingError):
    """The request's deadline passed before all of its items were computed."""


class UnmeetableDeadlineError(BatchingError):
    """The request would finish after its deadline: refused on arrival, or dropped when its batch formed,
    before any of its remaining items were computed. The deadline has not passed yet, so the caller may
    still retry elsewhere; the estimate came from the batch times measured on this model."""


class BatchTimeoutError(BatchingError):
    """The batch function ran longer than the batcher's execution timeout; its items failed."""


class ItemError(BatchingError):
    """One item of a request failed; ``index`` says which, ``cause`` says why.

    The request fails as a whole (a caller wants all its results or an error), but the
    index lets the caller tell its client which input was bad.
    """

    def __init__(self, index: int, cause: BaseException) -> None:
        # Both values go to args so that the exception pickles and reprs faithfully.
        super().__init__(index, cause)
        self.index = index
        self.cause = cause
        self.__cause__ = cause

    def __str__(self) -> str:
        reason = str(self.cause) or type(self.cause).__name__
        return f"item {self.index}: {reason}"
