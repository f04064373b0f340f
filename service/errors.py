"""Protocol-neutral serving errors; each protocol adapter maps them to its own status codes."""

from __future__ import annotations


class ServingError(Exception):
    """Base: the message is written for the client and names the problem."""


class ModelNotFoundError(ServingError):
    """No such model, or no such version of it."""


class InvalidInputError(ServingError):
    """The request itself is wrong: retrying it unchanged cannot succeed."""


class ResourceExhaustedError(ServingError):
    """The server is full right now: back off and retry."""


class UnavailableError(ServingError):
    """The model is not ready (loading, or shutting down): retry elsewhere or later."""


class DeadlineExceededError(ServingError):
    """The request's deadline passed before its result was ready."""


class ModelExecutionError(ServingError):
    """The model failed while running a batch: a server-side fault, not the client's."""
