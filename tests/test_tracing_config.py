"""Tracing is configured by the standard OTEL_* variables only, and is off unless an endpoint is set."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

from service.observability.tracing import configure_tracing

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}


@pytest.mark.parametrize(
    "environ",
    [{}, {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}],
    ids=["no endpoint", "sdk disabled", "exporter none"],
)
def test_tracing_is_off_by_default_and_when_disabled(environ):
    tracing = configure_tracing(environ)
    assert not tracing.enabled
    with tracing.tracer.start_as_current_span("anything") as span:
        assert not span.is_recording()
    tracing.shutdown()


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_an_endpoint_turns_tracing_on_with_the_sampler_and_service_name_from_the_environment(monkeypatch, variable):
    environ = {
        variable: "http://127.0.0.1:4317",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    for name, value in environ.items():  # the SDK reads sampler and resource from os.environ itself
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    tracing = configure_tracing(environ)
    try:
        assert tracing.enabled
        assert "127.0.0.1:4317" in tracing.description
        sampler = tracing.provider.sampler
        assert isinstance(sampler, ParentBasedTraceIdRatio)
        assert "0.25" in sampler.get_description()
        assert tracing.provider.resource.attributes["service.name"] == "batchserve"
    finally:
        tracing.shutdown()
