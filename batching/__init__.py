"""Dynamic batching for model serving: pure asyncio, no knowledge of gRPC or TensorFlow.

Typical use::

    batcher = Batcher(runtime.run_batch, BatchingParameters(max_batch_size=16), name="inception")
    results = await batcher.submit(images, deadline=loop.time() + 5.0)
    ...
    await batcher.close()

See :class:`Batcher` for the full contract.
"""

from .batcher import Batcher, Reservation
from .errors import (
    BatcherClosedError,
    BatchingError,
    BatchTimeoutError,
    DeadlineExceededError,
    ItemError,
    QueueFullError,
    UnmeetableDeadlineError,
)
from .deadlines import BatchTimeEstimator, DeadlinePolicy
from .listener import BatchInfo, BatchListener, ListenerGroup
from .parameters import BatchingParameters

__all__ = [
    "Batcher",
    "Reservation",
    "BatchingParameters",
    "DeadlinePolicy",
    "BatchTimeEstimator",
    "BatchListener",
    "BatchInfo",
    "ListenerGroup",
    "BatchingError",
    "QueueFullError",
    "BatcherClosedError",
    "BatchTimeoutError",
    "DeadlineExceededError",
    "UnmeetableDeadlineError",
    "ItemError",
]
