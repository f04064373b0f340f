"""The tensor path: any signature on named tensors, its requests cut into rows that share batches.

TF Serving's batching rule (service/models/signature_batching.py): a batchable signature's rows join the
batcher of their (signature, non-batch shapes); a signature that is not batchable runs each request alone
through a batcher of size 1, so queue bounds, deadlines and metrics apply to it too.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import numpy as np

from service.errors import ResourceExhaustedError
from service.dataplane.predict import checked_inputs, row_count
from service.dataplane.submission import submit
from service.models.served_version import ServedVersion
from service.models.signature_batching import WHOLE_REQUEST, RequestTensors, Row, SignatureRunner, gather
from service.tensors.spec import SignatureSpec


def rows_of(spec: SignatureSpec, inputs: Mapping[str, np.ndarray], max_rows: int) -> tuple[Any, list[Row], str]:
    """The request's batch items, the key of the batcher they join and its label for metrics."""
    arrays = checked_inputs(spec, inputs)
    request = RequestTensors(arrays)
    if not spec.batchable:
        return (spec.name,), [Row(request, WHOLE_REQUEST)], spec.name
    rows = row_count(spec, arrays, max_rows)
    shapes = tuple(array.shape[1:] for array in arrays)
    label = f"{spec.name}{''.join(str(list(shape)) for shape in shapes)}"
    return (spec.name, shapes), [Row(request, index) for index in range(rows)], label


async def run_rows(
    served: ServedVersion, spec: SignatureSpec, key: Any, items: list[Row], label: str, deadline: float | None,
    context: object,
) -> dict[str, np.ndarray]:
    """Run the rows through their batcher and join the request's outputs again."""
    runtime = served.runtime
    batcher = served.signature_batchers.get(  # type: ignore[union-attr]
        key, label,
        lambda: SignatureRunner(partial(runtime.run_signature, spec.name),  # type: ignore[union-attr]
                                tuple(spec.inputs), tuple(spec.outputs), batched=spec.batchable),
        batched=spec.batchable,
    )
    if batcher is None:
        raise ResourceExhaustedError(
            f"model '{served.name}' is batching too many different input shapes at once: retry later"
        )
    results = await submit(served, batcher, items, f"signature '{spec.name}' input row", deadline, context)
    return dict(zip(spec.outputs, gather(results, len(spec.outputs))))
