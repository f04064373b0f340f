"""`--max_batch_size=auto` times its batch-size ladder in a child process, so the server never runs it.

Timed in the serving process, the ladder's large batches would leave oneDNN cache and allocator state behind
that a server started with the chosen size fixed never has, so auto could not be compared with fixed sizes
like for like. A child that loads the model, times it and exits leaves nothing behind; the cost is a
second load of the model at start-up. On a GPU a second process would contend for the device's memory, so
there the ladder runs in the serving process, as it does if the child fails (said in a warning).
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from service.models.batch_size_tuning import BatchSizeChoice, choose_batch_size
from service.runtime.model_runtime import ModelRuntime, configure_tensorflow, runs_on_gpu, tensorflow_threads

_log = logging.getLogger(__name__)


def time_batch_sizes(runtime: ModelRuntime, tags: Sequence[str], latency_budget_seconds: float) -> BatchSizeChoice:
    """The batch size `choose_batch_size` picks for the image model `runtime` serves, timed in a child process of
    its own on a CPU (`runtime` itself runs no batch), in this process on a GPU."""
    if runs_on_gpu():
        return _ladder(runtime, latency_budget_seconds)
    context = multiprocessing.get_context("spawn")  # a fork would copy this process's TensorFlow state
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as child:
            return child.submit(_time_in_child, str(runtime.version_dir), tuple(tags), latency_budget_seconds,
                                tensorflow_threads()).result()
    except Exception as error:  # noqa: BLE001 - the child is an optimisation: time here rather than fail the load
        _log.warning("%s: timing batch sizes in a child process failed (%s: %s); timing them in the server "
                     "instead", runtime.version_dir, type(error).__name__, error)
        return _ladder(runtime, latency_budget_seconds)


def _time_in_child(version_dir: str, tags: tuple[str, ...], latency_budget_seconds: float,
                   threads: tuple[int, int]) -> BatchSizeChoice:
    configure_tensorflow(*threads)  # the same thread pools as the server, or the timings would not be its own
    return _ladder(ModelRuntime(Path(version_dir), tags), latency_budget_seconds)


def _ladder(runtime: ModelRuntime, latency_budget_seconds: float) -> BatchSizeChoice:
    blank = np.zeros(runtime.input_shape, dtype=np.float32)  # type: ignore[arg-type]
    return choose_batch_size(lambda size: runtime.run_batch([blank] * size, size),
                             latency_budget_seconds=latency_budget_seconds)
