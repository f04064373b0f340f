"""A SavedModel signature as an MLServer model: the custom runtime a user writes, since MLServer ships none
for TensorFlow.

Loaded by MLServer in the MLServer peer's own virtualenv (mlserver + tensorflow), not in the project's.
model-settings.json names this class as `implementation`, the SavedModel version directory as
`parameters.uri` and the signature as `parameters.extra.signature`. MLServer's adaptive batching merges
requests along the first dimension before `predict`, which calls the signature once per merged request.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

_NUMPY_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.int32): "INT32",
                    np.dtype(np.int64): "INT64"}


class SavedModelRuntime(MLModel):
    """One signature of a SavedModel; inputs and outputs keep the signature's names."""

    async def load(self) -> bool:
        parameters = self.settings.parameters
        signature_name = (parameters.extra or {}).get("signature", "serving_default")
        self._signature = tf.saved_model.load(parameters.uri).signatures[signature_name]
        self._specs = self._signature.structured_input_signature[1]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {}
        for request_input in payload.inputs:
            spec = self._specs[request_input.name]
            data = getattr(request_input.data, "root", request_input.data)
            rows = int(request_input.shape[0])
            if spec.dtype == tf.string:  # BYTES: one encoded item per row ([N] or [N, 1] on the wire)
                inputs[request_input.name] = tf.constant(list(data))
            else:
                array = np.asarray(data, dtype=spec.dtype.as_numpy_dtype)
                inputs[request_input.name] = tf.constant(array.reshape([rows, *request_input.shape[1:]]))
        # A plain call: MLServer runs the model in its inference worker process (parallel_workers), one
        # merged request at a time, while its main process keeps receiving and batching.
        result = self._signature(**inputs)
        outputs = []
        for name, tensor in result.items():
            value = tensor.numpy()
            if value.dtype == object:
                outputs.append(ResponseOutput(name=name, shape=list(value.shape), datatype="BYTES",
                                              data=value.reshape(-1).tolist()))
            else:
                outputs.append(ResponseOutput(name=name, shape=list(value.shape),
                                              datatype=_NUMPY_DATATYPES[value.dtype],
                                              data=value.reshape(-1).tolist()))
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)
