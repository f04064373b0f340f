"""What a signature takes and returns, read from its SignatureDef: names, element types, shapes, batchability.

Adapters use it to convert a request (JSON numbers take the input's type; KServe metadata names the v2
types) and the data plane to decide how a signature is batched (TF Serving's rule, `SignatureSpec.batchable`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tensorflow.core.protobuf import meta_graph_pb2

from service.tensors.dtypes import BY_TF_ENUM, DType, tf_type_name

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


class UnsupportedSignatureError(ValueError):
    """A signature uses an element type the server cannot carry (a resource or variant tensor, ...)."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str  # the signature's key for it (what requests use), not the graph's tensor name
    dtype: DType
    shape: tuple[int, ...] | None  # -1 for an unknown dimension; None for an unknown rank

    @property
    def has_batch_dimension(self) -> bool:
        """TF Serving batches along dimension 0; a tensor of unknown rank may not have one."""
        return self.shape is not None and len(self.shape) >= 1 and self.shape[0] == -1


@dataclass(frozen=True, slots=True)
class SignatureSpec:
    name: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    # False for a TF1 graph: its tensors are fed whatever their declared shapes (a Session does not check)
    shapes_enforced: bool = True

    @property
    def batchable(self) -> bool:
        """TF Serving's rule: requests are merged along dimension 0 only when every input and output of the
        signature has a batch dimension; otherwise each request runs alone."""
        tensors = (*self.inputs.values(), *self.outputs.values())
        return bool(self.inputs) and all(spec.has_batch_dimension for spec in tensors)


def tensor_spec(name: str, info: meta_graph_pb2.TensorInfo, where: str) -> TensorSpec:
    dtype = BY_TF_ENUM.get(info.dtype)
    if dtype is None:
        raise UnsupportedSignatureError(f"{where} '{name}' has type {tf_type_name(info.dtype)}, which requests cannot carry")
    shape = None if info.tensor_shape.unknown_rank else tuple(int(dim.size) for dim in info.tensor_shape.dim)
    return TensorSpec(name, dtype, shape)


def signature_spec(
    name: str, signature_def: meta_graph_pb2.SignatureDef, *, shapes_enforced: bool = True
) -> SignatureSpec:
    """Raises UnsupportedSignatureError for a tensor type requests cannot carry."""
    return SignatureSpec(
        name=name,
        method_name=signature_def.method_name,
        inputs={key: tensor_spec(key, info, f"signature '{name}' input") for key, info in signature_def.inputs.items()},
        outputs={key: tensor_spec(key, info, f"signature '{name}' output") for key, info in signature_def.outputs.items()},
        shapes_enforced=shapes_enforced,
    )
