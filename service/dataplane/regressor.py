"""TF Serving's Regress rules (regressor.cc): which signatures regress, and what their answer must be."""

from __future__ import annotations

import numpy as np

from service.errors import InvalidInputError, ModelExecutionError
from service.tensors.spec import REGRESS_METHOD, SignatureSpec

REGRESS_INPUT, REGRESS_OUTPUT = "inputs", "outputs"


def check_regress_signature(spec: SignatureSpec, method_name_check: bool) -> None:
    """PreProcessRegression's checks and wording (the method name as for classification)."""
    if method_name_check and spec.method_name != REGRESS_METHOD:
        raise InvalidInputError(
            f"Expected regression signature method_name to be {REGRESS_METHOD}. Was: {spec.method_name}"
        )
    if len(spec.inputs) != 1:
        raise InvalidInputError("Expected one input Tensor.")
    if len(spec.outputs) != 1:
        raise InvalidInputError("Expected one output Tensor.")
    if REGRESS_INPUT not in spec.inputs:
        raise InvalidInputError(f"No regression inputs found in SignatureDef '{spec.name}'")
    if REGRESS_OUTPUT not in spec.outputs:
        raise InvalidInputError(f"No regression outputs found in SignatureDef '{spec.name}'")


def regression_values(values: np.ndarray, examples: int) -> np.ndarray:
    """PostProcessRegressionResult's checks: one float per example, as [N] or [N, 1]; returned as [N]."""
    if values.dtype != np.float32:
        raise ModelExecutionError(f"Expected output Tensor of DT_FLOAT. Got: {values.dtype}")
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)) or values.shape[0] != examples:
        raise ModelExecutionError(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {list(values.shape)}"
        )
    return values.reshape(-1)
