"""Metrics, request observation and tracing, written once for every protocol."""
