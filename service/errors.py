"""Protocol-neutral serving errors; each protocol adapter maps them to its own status codes."""

from __future__ import annotations

from typing import Mapping, TypeVar

Code = TypeVar("Code")


def one_line(error: BaseException) -> str:
    """An error's own words on one line (TensorFlow's run to many), for a log line or a status message."""
    return " ".join(str(error).split()) or type(error).__name__


class ServingError(Exception):
    """Base: the message is written for the client and names the problem."""


class ModelNotFoundError(ServingError):
    """No such model, or no such version of it.

    The message is TF Serving's, which its clients match on; ``model_name`` and ``version`` (None: the
    latest was asked for) let another protocol word it as its own clients expect.
    """

    def __init__(self, message: str, *, model_name: str = "", version: int | None = None) -> None:
        super().__init__(message)
        self.model_name = model_name
        self.version = version


def servable_not_found(model_name: str, version: int | None) -> ModelNotFoundError:
    """TF Serving's NOT_FOUND for a request naming a model or version it does not serve (ServableRequest's
    DebugString: ``Latest(name)`` or ``Specific(name, version)``)."""
    request = f"Latest({model_name})" if version is None else f"Specific({model_name}, {version})"
    return ModelNotFoundError(f"Servable not found for request: {request}", model_name=model_name, version=version)


class InvalidInputError(ServingError):
    """The request itself is wrong: retrying it unchanged cannot succeed."""


class FailedPreconditionError(ServingError):
    """The request asks for something the model does not have (a signature it lacks): TF Serving's
    FAILED_PRECONDITION."""


class PermissionDeniedError(ServingError):
    """The call is not allowed on this server (an administrative call not enabled by its operator)."""


class ResourceExhaustedError(ServingError):
    """The server is full right now: back off and retry."""


class UnavailableError(ServingError):
    """The model is not ready (loading, or shutting down): retry elsewhere or later."""


class DeadlineExceededError(ServingError):
    """The request's deadline passed before its result was ready."""


class ModelExecutionError(ServingError):
    """The model failed while running a batch: a server-side fault, not the client's."""


# The canonical status of each error (gRPC's code names, which every protocol's metrics and logs use, so one
# dashboard query covers gRPC, KServe v2 and REST).
CANONICAL_CODES: dict[type[ServingError], str] = {
    ModelNotFoundError: "NOT_FOUND",
    InvalidInputError: "INVALID_ARGUMENT",
    FailedPreconditionError: "FAILED_PRECONDITION",
    ResourceExhaustedError: "RESOURCE_EXHAUSTED",
    PermissionDeniedError: "PERMISSION_DENIED",
    UnavailableError: "UNAVAILABLE",
    DeadlineExceededError: "DEADLINE_EXCEEDED",
    ModelExecutionError: "INTERNAL",
}


def canonical_code(error: ServingError) -> str:
    return code_for(error, CANONICAL_CODES, "INTERNAL")


def code_for(error: ServingError, codes: Mapping[type[ServingError], Code], default: Code) -> Code:
    """A protocol's code for `error`: that of its most specific class listed in `codes`, else `default`."""
    for error_type in type(error).__mro__:
        if error_type in codes:
            return codes[error_type]  # type: ignore[index]
    return default
