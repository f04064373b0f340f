"""The protocol-neutral data plane: one call per request kind, from a request's tensors (or tf.Examples) to
its answer. Adapters import `DataPlane` and the request and result types from here."""

from service.dataplane.dataplane import DataPlane
from service.runtime.signatures import DEFAULT_SIGNATURE
from service.dataplane.types import (
    ClassifyResult,
    ExamplesRequest,
    InferenceTask,
    ModelDescription,
    MultiInferenceRequest,
    PredictRequest,
    PredictResult,
    RegressResult,
    RequestInputs,
    Version,
    VersionStatus,
)

__all__ = [
    "DEFAULT_SIGNATURE",
    "ClassifyResult",
    "DataPlane",
    "ExamplesRequest",
    "InferenceTask",
    "ModelDescription",
    "MultiInferenceRequest",
    "PredictRequest",
    "PredictResult",
    "RegressResult",
    "RequestInputs",
    "Version",
    "VersionStatus",
]
