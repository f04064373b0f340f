"""TF Serving's MultiInference rules (multi_inference.cc): several classify and regress signatures of one model
on the same examples, each signature once."""

from __future__ import annotations

from typing import Sequence

from service.errors import InvalidInputError
from service.tensors.spec import CLASSIFY_METHOD, REGRESS_METHOD

from service.dataplane.types import InferenceTask


def check_tasks(tasks: Sequence[InferenceTask]) -> str:
    """The one model every task names; TF Serving's wording for each fault."""
    if not tasks:
        raise InvalidInputError("Tasks is empty")
    model_name = tasks[0].model
    signatures: set[str] = set()
    for task in tasks:
        if task.model != model_name:
            raise InvalidInputError("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        if task.signature in signatures:
            raise InvalidInputError(f"Duplicate evaluation of signature: {task.signature}")
        signatures.add(task.signature)
        if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
            raise InvalidInputError(f"Unsupported signature method_name: {task.method_name}")
    return model_name
