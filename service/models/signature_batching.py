"""Batching for any signature: requests' rows merged along dimension 0, TF Serving's rule, with one queue per
signature and input shape.

A request's inputs are cut into rows (one batch item per row, so max_batch_size, padding to
allowed_batch_sizes, splitting a large request over several batches, deadlines and admission all work as for
images). Requests whose rows have other shapes (other non-batch dimensions) never share a batch: each
distinct (signature, row shapes) gets its own batcher, created on first use. A signature that is not
batchable (some input or output lacks a batch dimension) runs each request alone, through a batcher of
size 1, so queue bounds, deadlines and metrics still apply.

TensorFlow-free: the signature call itself is a callable given by the runtime.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

import numpy as np

from batching import Batcher, BatchingParameters

from service.runtime.errors import BatchInputError

_log = logging.getLogger(__name__)

WHOLE_REQUEST = -1  # a Row that stands for all of an unbatched request


class MisbatchedOutputError(RuntimeError):
    """A signature declared a batch dimension but returned another number of rows than it was given."""


@dataclass(slots=True, eq=False)
class RequestTensors:
    """One request's inputs, in the signature's input order; its batch items are its rows."""

    arrays: tuple[np.ndarray, ...]


@dataclass(slots=True)
class Row:
    """A batch item: row `index` of a request (WHOLE_REQUEST for an unbatched signature)."""

    request: RequestTensors
    index: int


@dataclass(slots=True)
class RowResult:
    """A row's answer: a view into its batch's outputs (`outputs[i][row]`), copied only when gathered."""

    outputs: tuple[np.ndarray, ...]
    row: int


class SignatureRunner:
    """The batch function of one signature's batcher: stack rows, run once, hand each row its outputs.

    Padding repeats the batch's first row rather than zeros: a signature that parses or decodes its input
    (serialized tf.Examples, encoded images) would fail on zeros or empty strings.
    """

    def __init__(
        self, call: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        input_names: Sequence[str], output_names: Sequence[str], *, batched: bool,
    ) -> None:
        self._call = call
        self._input_names = tuple(input_names)
        self._output_names = tuple(output_names)
        self._batched = batched

    def run_batch(self, items: Sequence[Row], padded_size: int) -> list[RowResult | BaseException]:
        if not self._batched:
            return [self._run_whole(item) for item in items]
        runs = _runs(items)
        try:
            outputs = self._run_rows(runs, padded_size)
        except BatchInputError as error:
            if len(runs) == 1:
                raise
            _log.info("a batch of %d requests was refused by the model (%s); re-running them one by one",
                      len(runs), error)
            return self._run_each(runs)
        return [RowResult(outputs, row) for row in range(len(items))]

    def _run_whole(self, item: Row) -> RowResult | BaseException:
        try:
            outputs = self._call(dict(zip(self._input_names, item.request.arrays)))
        except BatchInputError as error:
            return error
        return RowResult(tuple(outputs[name] for name in self._output_names), WHOLE_REQUEST)

    def _run_rows(self, runs: list[tuple[RequestTensors, int, int]], padded_size: int) -> tuple[np.ndarray, ...]:
        count = sum(stop - start for _, start, stop in runs)
        inputs = {}
        for position, name in enumerate(self._input_names):
            parts = [request.arrays[position][start:stop] for request, start, stop in runs]
            batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
            if padded_size > count:
                batch = np.concatenate([batch, np.repeat(batch[:1], padded_size - count, axis=0)])
            inputs[name] = batch
        outputs = self._call(inputs)
        checked = []
        for name in self._output_names:
            value = outputs[name]
            if value.ndim == 0 or value.shape[0] != padded_size:
                raise MisbatchedOutputError(
                    f"output '{name}' has shape {list(value.shape)} for a batch of {padded_size}: the signature "
                    "does not keep the batch dimension its SignatureDef declares"
                )
            checked.append(value)
        return tuple(checked)

    def _run_each(self, runs: list[tuple[RequestTensors, int, int]]) -> list[RowResult | BaseException]:
        results: list[RowResult | BaseException] = []
        for run in runs:
            rows = run[2] - run[1]
            try:
                outputs = self._run_rows([run], rows)
            except BatchInputError as error:
                results.extend([error] * rows)
            else:
                results.extend(RowResult(outputs, row) for row in range(rows))
        return results


Owner = TypeVar("Owner")


def _spans(rows: Iterable[tuple[Owner, int]]) -> list[tuple[Owner, int, int]]:
    """(owner, row) pairs as (owner, first row, end row) spans of consecutive rows of the same owner."""
    spans: list[tuple[Owner, int, int]] = []
    for owner, row in rows:
        if spans and spans[-1][0] is owner and spans[-1][2] == row:
            spans[-1] = (owner, spans[-1][1], row + 1)
        else:
            spans.append((owner, row, row + 1))
    return spans


def _runs(items: Sequence[Row]) -> list[tuple[RequestTensors, int, int]]:
    """The batch as (request, first row, end row) runs: a request's rows arrive consecutive and in order."""
    return _spans((item.request, item.index) for item in items)


def gather(results: Sequence[RowResult], output_count: int) -> list[np.ndarray]:
    """A request's outputs from its rows' results: one slice per batch it rode in, joined."""
    if len(results) == 1 and results[0].row == WHOLE_REQUEST:
        return list(results[0].outputs)
    spans = _spans((result.outputs, result.row) for result in results)
    gathered = []
    for position in range(output_count):
        parts = [outputs[position][start:stop] for outputs, start, stop in spans]
        gathered.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
    return gathered


BatcherFactory = Callable[[str, Callable[[Sequence[Row], int], Sequence[object]], BatchingParameters], Batcher]


class SignatureBatchers:
    """The batchers of one model version's signatures, one per (signature, row shapes), made on first use.

    At most `max_batchers` exist at once: when a new shape arrives at the limit, an idle batcher is retired
    (a client sweeping shapes cannot grow the server without bound); with none idle, None is returned and
    the caller refuses the request.
    """

    def __init__(self, factory: BatcherFactory, parameters: BatchingParameters, *, max_batchers: int = 64) -> None:
        self._factory = factory
        self._parameters = parameters
        self._unbatched = BatchingParameters.unbatched(
            num_batch_threads=parameters.num_batch_threads, max_enqueued_batches=parameters.max_enqueued_items,
        )
        self._max_batchers = max_batchers
        self._batchers: dict[Hashable, Batcher[Row, RowResult]] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def get(
        self, key: Hashable, label: str, runner: Callable[[], SignatureRunner], *, batched: bool
    ) -> Batcher[Row, RowResult] | None:
        batcher = self._batchers.get(key)
        if batcher is not None:
            return batcher
        if len(self._batchers) >= self._max_batchers and not self._retire_one_idle():
            return None
        parameters = self._parameters if batched else self._unbatched
        batcher = self._batchers[key] = self._factory(label, runner().run_batch, parameters)
        return batcher

    def _retire_one_idle(self) -> bool:
        for key, batcher in self._batchers.items():
            if batcher.queue_depth == 0 and batcher.running_batches == 0 and batcher.reserved == 0:
                del self._batchers[key]
                task = asyncio.get_running_loop().create_task(batcher.close(drain=True))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
                return True
        return False

    @property
    def queue_depth(self) -> int:
        return sum(batcher.queue_depth for batcher in self._batchers.values())

    @property
    def running_items(self) -> int:
        return sum(batcher.running_items for batcher in self._batchers.values())

    async def close(self) -> None:
        """Finish what is queued and running, then release every batcher."""
        batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            await batcher.close(drain=True)
        if self._retiring:
            await asyncio.wait(list(self._retiring))
