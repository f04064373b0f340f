"""Reads TF Serving's `--monitoring_config_file` (a text-format `MonitoringConfig` proto).

`tensorflow-serving-api` does not ship `monitoring_config_pb2`, so the two messages are declared here as a
descriptor (field names and numbers as in TF Serving's monitoring_config.proto) and protobuf's own text-format
parser reads the file: existing files work unchanged, typos are reported by name.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

# TF Serving's default when prometheus_config.path is empty.
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@cache
def _message_class() -> type:
    fd = descriptor_pb2.FileDescriptorProto(
        name="batchserve/monitoring_config.proto", package="batchserve.tfserving", syntax="proto3"
    )
    F = descriptor_pb2.FieldDescriptorProto
    prometheus = fd.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    monitoring = fd.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
        type_name=".batchserve.tfserving.PrometheusConfig",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("batchserve.tfserving.MonitoringConfig"))


def parse_monitoring_config(text: str) -> str | None:
    """The extra path Prometheus metrics are asked for at, or None when the file does not enable them.

    Raises ValueError naming the problem (TF Serving's words for a file that does not parse).
    """
    config = _message_class()()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"Error parsing text-format tensorflow.serving.MonitoringConfig: {error}") from None
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    path = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not path.startswith("/"):
        raise ValueError(f"prometheus_config.path must start with '/', got {path!r}")
    return path


def parse_monitoring_config_file(path: Path) -> str | None:
    return parse_monitoring_config(path.read_text(encoding="utf-8"))
