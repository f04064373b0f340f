"""TF Serving's Predict rules (predict_util.cc): a request's inputs against its signature, the output filter,
and the batch size every input agrees on; TF Serving's wording where clients match on it, ours naming the
input otherwise."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from service.errors import InvalidInputError
from service.tensors.dtypes import BY_NUMPY
from service.tensors.spec import SignatureSpec, TensorSpec


def check_input_names(spec: SignatureSpec, inputs: Mapping[str, object]) -> None:
    """Exactly the signature's inputs, each once."""
    if inputs.keys() == spec.inputs.keys():
        return
    for name in inputs:
        if name not in spec.inputs:
            raise InvalidInputError(
                f"input tensor alias not found in signature: {name}. Inputs expected to be in the set "
                f"{{{','.join(sorted(spec.inputs))}}}."
            )
    missing = sorted(set(spec.inputs) - set(inputs))
    raise InvalidInputError(
        f"input size does not match signature: {len(inputs)}!={len(spec.inputs)} "
        f"len({{{','.join(sorted(inputs))}}}) != len({{{','.join(sorted(spec.inputs))}}}). "
        f"Sent extra: {{}}. Missing but required: {{{','.join(missing)}}}."
    )


def check_dtype(spec: SignatureSpec, tensor: TensorSpec, array: np.ndarray) -> None:
    if array.dtype != tensor.dtype.numpy:
        known = BY_NUMPY.get(array.dtype)
        got = known.tf_name if known is not None else str(array.dtype)
        raise InvalidInputError(f"input '{tensor.name}' is {got}; signature '{spec.name}' takes {tensor.dtype.tf_name}")


def checked_inputs(spec: SignatureSpec, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The inputs in the signature's order, each of the signature's type and, where the model enforces them,
    its shape (TF would only report those from inside the graph)."""
    check_input_names(spec, inputs)
    arrays = []
    for name, tensor in spec.inputs.items():
        array = inputs[name]
        check_dtype(spec, tensor, array)
        if spec.shapes_enforced and tensor.shape is not None and (
            array.ndim != len(tensor.shape)
            or any(want >= 0 and want != got for want, got in zip(tensor.shape, array.shape))
        ):
            raise InvalidInputError(
                f"input '{name}' has shape {list(array.shape)}; signature '{spec.name}' takes {list(tensor.shape)} "
                "(-1: any size)"
            )
        arrays.append(array)
    return tuple(arrays)


def wanted_outputs(spec: SignatureSpec, output_filter: Sequence[str]) -> list[str]:
    """The outputs a request asks for (all by default), in its order."""
    if not output_filter:
        return list(spec.outputs)
    seen: set[str] = set()
    for name in output_filter:
        if name not in spec.outputs:
            raise InvalidInputError(
                f"output tensor alias not found in signature: {name} Outputs expected to be in the set "
                f"{{{','.join(sorted(spec.outputs))}}}."
            )
        if name in seen:
            raise InvalidInputError(f"duplicate output tensor alias: {name}")
        seen.add(name)
    return list(output_filter)


def row_count(spec: SignatureSpec, arrays: Sequence[np.ndarray], max_rows: int) -> int:
    """The batch size every input agrees on (dimension 0), within the per-request limit."""
    for name, array in zip(spec.inputs, arrays):
        if array.ndim == 0:  # TF Serving's batching session wording
            raise InvalidInputError(
                f"Batching session Run() input tensors must have at least one dimension: input '{name}' is a scalar"
            )
    sizes = {name: array.shape[0] for name, array in zip(spec.inputs, arrays)}
    rows = next(iter(sizes.values()))
    if any(size != rows for size in sizes.values()):
        raise InvalidInputError(
            f"inputs of signature '{spec.name}' must agree in dimension 0 (the batch), got sizes {sizes}"
        )
    if rows == 0:
        raise InvalidInputError(f"inputs of signature '{spec.name}' hold 0 rows: send at least one")
    if rows > max_rows:
        raise InvalidInputError(
            f"the request holds {rows} rows; this server accepts at most {max_rows} per request "
            "(--max_images_per_request)"
        )
    return rows
