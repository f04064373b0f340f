"""One table of the tensor element types the server speaks, in each protocol's own name for them.

numpy has no bfloat16; `ml_dtypes` (a TensorFlow dependency) supplies the one TensorFlow itself uses.
Strings are numpy object arrays of `bytes`, the form `tf.constant` takes and `Tensor.numpy()` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
from tensorflow.core.framework import types_pb2


@dataclass(frozen=True, slots=True)
class DType:
    tf_enum: int  # tensorflow.DataType
    numpy: np.dtype
    v2_name: str | None  # KServe v2 datatype; None: v2 has no such type
    proto_field: str  # the TensorProto field for typed values

    @property
    def tf_name(self) -> str:
        return types_pb2.DataType.Name(self.tf_enum)

    @property
    def is_string(self) -> bool:
        return self.tf_enum == types_pb2.DT_STRING


_ALL = (
    DType(types_pb2.DT_FLOAT, np.dtype(np.float32), "FP32", "float_val"),
    DType(types_pb2.DT_DOUBLE, np.dtype(np.float64), "FP64", "double_val"),
    DType(types_pb2.DT_HALF, np.dtype(np.float16), "FP16", "half_val"),
    DType(types_pb2.DT_BFLOAT16, np.dtype(ml_dtypes.bfloat16), "BF16", "half_val"),
    DType(types_pb2.DT_INT8, np.dtype(np.int8), "INT8", "int_val"),
    DType(types_pb2.DT_INT16, np.dtype(np.int16), "INT16", "int_val"),
    DType(types_pb2.DT_INT32, np.dtype(np.int32), "INT32", "int_val"),
    DType(types_pb2.DT_INT64, np.dtype(np.int64), "INT64", "int64_val"),
    DType(types_pb2.DT_UINT8, np.dtype(np.uint8), "UINT8", "int_val"),
    DType(types_pb2.DT_UINT16, np.dtype(np.uint16), "UINT16", "int_val"),
    DType(types_pb2.DT_UINT32, np.dtype(np.uint32), "UINT32", "uint32_val"),
    DType(types_pb2.DT_UINT64, np.dtype(np.uint64), "UINT64", "uint64_val"),
    DType(types_pb2.DT_BOOL, np.dtype(np.bool_), "BOOL", "bool_val"),
    DType(types_pb2.DT_STRING, np.dtype(object), "BYTES", "string_val"),
    DType(types_pb2.DT_COMPLEX64, np.dtype(np.complex64), None, "scomplex_val"),
    DType(types_pb2.DT_COMPLEX128, np.dtype(np.complex128), None, "dcomplex_val"),
)

BY_TF_ENUM: dict[int, DType] = {dtype.tf_enum: dtype for dtype in _ALL}
BY_V2_NAME: dict[str, DType] = {dtype.v2_name: dtype for dtype in _ALL if dtype.v2_name}
BY_NUMPY: dict[np.dtype, DType] = {dtype.numpy: dtype for dtype in _ALL}
STRING = BY_TF_ENUM[types_pb2.DT_STRING]


def tf_type_name(tf_enum: int) -> str:
    """DT_FLOAT, ...; the number itself for a value no DataType names (a hostile request)."""
    try:
        return types_pb2.DataType.Name(tf_enum)
    except ValueError:
        return str(tf_enum)


def of_array(array: np.ndarray) -> DType:
    """The table entry of an array's element type (object arrays are strings)."""
    try:
        return BY_NUMPY[array.dtype]
    except KeyError:
        raise TypeError(f"no tensor type for numpy dtype {array.dtype}") from None
