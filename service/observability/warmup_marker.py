"""The mark of the server's own warm-up requests, for every layer that must leave them out of its records.

Protocol- and TensorFlow-free (it imports no gRPC), so the data plane and the metrics can use it without
depending on a client: the loopback request is sent by service/process/self_warmup.py with METADATA_KEY in
its metadata; the gRPC adapter recognises it (service/adapters/grpc_api/rpc_observer.py, `is_warmup_call`),
leaves it out of the request metrics, traces and access log, and runs the handler inside `mark_warmup()`;
the data plane gives that request's batch items BATCH_ITEM_CONTEXT when `in_warmup()`; the batch listeners
leave a batch out of the batch metrics when `is_warmup_batch(batch)`.
"""

from __future__ import annotations

import contextvars

from batching import BatchInfo

METADATA_KEY = "batchserve-self-warmup"  # the request metadata key that marks a warm-up request
BATCH_ITEM_CONTEXT = object()  # the opaque batcher context of a warm-up item
_in_warmup = contextvars.ContextVar("batchserve_self_warmup", default=False)


def mark_warmup() -> contextvars.Token[bool]:
    """From here on in this context (the handler of a warm-up request), `in_warmup()` is true."""
    return _in_warmup.set(True)


def reset_warmup(token: contextvars.Token[bool]) -> None:
    _in_warmup.reset(token)


def in_warmup() -> bool:
    """Whether the current request is the server's own warm-up request."""
    return _in_warmup.get()


def is_warmup_batch(batch: BatchInfo) -> bool:
    """Whether every item of `batch` came from a warm-up request."""
    return bool(batch.contexts) and all(context is BATCH_ITEM_CONTEXT for context in batch.contexts)
