"""Process-wide logging: one JSON object per line (default) or plain text, with the current trace ids.

Every record logged while a span is current carries `trace_id` and `span_id` (hex, as trace backends show
them), so a log line leads to its trace and back.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` / `span_id` of the span current where the record was logged (absent otherwise)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True


def json_formatter() -> logging.Formatter:
    """`{"time", "level", "logger", "message", ...extra fields, "exc_info"}`; time in UTC, ISO 8601."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        timestamp="time",
        rename_fields={"levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


def configure_logging(level: str = "INFO", log_format: str = "json", stream: TextIO | None = None) -> None:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # Python warnings (e.g. from TensorFlow) become log records too
