"""Reads TF Serving's `--batching_parameters_file` (a text-format `BatchingParameters` proto).

`tensorflow-serving-api` does not ship `session_bundle_config_pb2`, so the message is declared here as a
descriptor (field names as in TF Serving's session_bundle_config.proto) and protobuf's own text-format
parser reads the file: existing TF Serving batching files work unchanged, typos are reported by name.
"""

from __future__ import annotations

import logging
import re
from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2  # noqa: F401  (registers wrappers.proto in the default pool)

from batching import BatchingParameters

_log = logging.getLogger(__name__)

_INT64_WRAPPED = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
# Accepted so TF Serving files parse, but without effect here (logged when set).
_IGNORED_FIELDS = {
    "thread_pool_name": ".google.protobuf.StringValue",
    "pad_variable_length_inputs": None,
    "enable_large_batch_splitting": ".google.protobuf.BoolValue",
    "max_execution_batch_size": ".google.protobuf.Int64Value",
}


@cache
def _message_class() -> type:
    fd = descriptor_pb2.FileDescriptorProto(
        name="batchserve/batching_parameters.proto",
        package="batchserve.tfserving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = fd.message_type.add(name="BatchingParameters")
    F = descriptor_pb2.FieldDescriptorProto
    number = 0
    for name in _INT64_WRAPPED:
        number += 1
        message.field.add(
            name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
            type_name=".google.protobuf.Int64Value",
        )
    number += 1
    message.field.add(name="allowed_batch_sizes", number=number, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    for name, type_name in _IGNORED_FIELDS.items():
        number += 1
        if type_name:
            message.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE, type_name=type_name)
        else:
            message.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("batchserve.tfserving.BatchingParameters"))


# Our extension of the text format: `max_batch_size { value: auto }` (or `max_batch_size: auto`) asks for the
# batch size to be measured at load (models/batch_size_tuning.py).
_AUTO_BATCH_SIZE = re.compile(r"max_batch_size\s*(?::\s*auto\b|:?\s*\{\s*value\s*:\s*auto\s*\})")


def asks_for_auto_batch_size(text: str) -> bool:
    return _AUTO_BATCH_SIZE.search(text) is not None


def parse_batching_parameters(text: str, defaults: BatchingParameters | None = None) -> BatchingParameters:
    """Parse the text proto; fields not set keep `defaults` (`max_batch_size: auto` too: the caller asks
    `asks_for_auto_batch_size`). Raises ValueError naming the problem."""
    text = _AUTO_BATCH_SIZE.sub("", text)
    proto = _message_class()()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as error:
        raise ValueError(f"not a valid BatchingParameters text proto: {error}") from None
    values: dict[str, object] = {}
    for name in _INT64_WRAPPED:
        if proto.HasField(name):
            values[name] = getattr(proto, name).value
    if proto.allowed_batch_sizes:
        values["allowed_batch_sizes"] = tuple(proto.allowed_batch_sizes)
    for name in _IGNORED_FIELDS:
        field_set = proto.HasField(name) if _IGNORED_FIELDS[name] else getattr(proto, name)
        if field_set:
            _log.warning("batching parameter %s is accepted for compatibility but has no effect here", name)
    base = defaults or BatchingParameters()
    merged = {**{f: getattr(base, f) for f in base.__dataclass_fields__}, **values}
    return BatchingParameters(**merged)


