"""TF Serving's Classify rules (classifier.cc): which signatures classify, and what their answer must be."""

from __future__ import annotations

import numpy as np

from service.errors import InvalidInputError, ModelExecutionError
from service.tensors.spec import CLASSIFY_METHOD, SignatureSpec

CLASSIFY_INPUT = "inputs"


def check_classify_signature(spec: SignatureSpec, method_name_check: bool) -> None:
    """PreProcessClassification's checks and wording: the method name only when asked to
    (--enable_signature_method_name_check), since `tf.saved_model.save` names every signature predict."""
    if method_name_check and spec.method_name != CLASSIFY_METHOD:
        raise InvalidInputError(
            f"Expected classification signature method_name to be {CLASSIFY_METHOD}. Was: {spec.method_name}"
        )
    if len(spec.inputs) != 1:
        raise InvalidInputError("Expected one input Tensor.")
    if len(spec.outputs) not in (1, 2):
        raise InvalidInputError(f"Expected one or two output Tensors, found {len(spec.outputs)}")
    if CLASSIFY_INPUT not in spec.inputs:
        raise InvalidInputError(f"No classification inputs found in SignatureDef '{spec.name}'")
    if "classes" not in spec.outputs and "scores" not in spec.outputs:
        raise InvalidInputError(
            'Expected classification signature outputs to contain at least one of "classes" or "scores". '
            f"Signature was: '{spec.name}'"
        )


def check_classify_outputs(classes: np.ndarray | None, scores: np.ndarray | None, examples: int) -> None:
    """PostProcessClassificationResult's checks: what the model returned must be a classification."""
    for name, table in (("classes", classes), ("scores", scores)):
        if table is None:
            continue
        if table.ndim != 2:
            raise ModelExecutionError(f"Expected Tensor shape: [batch_size num_classes] but got {list(table.shape)}")
        if name == "classes" and table.dtype != object:
            raise ModelExecutionError(f"Expected classes Tensor of DT_STRING. Got: {table.dtype}")
        if name == "scores" and table.dtype != np.float32:
            raise ModelExecutionError(f"Expected scores Tensor of DT_FLOAT. Got: {table.dtype}")
        if table.shape[0] != examples:
            raise ModelExecutionError(f"Expected {name} output batch size of {examples}. Got: {table.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise ModelExecutionError(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
