"""OpenTelemetry spans for chat turns: the turn, routing, each tool, HWA reads, LLM calls, Qdrant.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set: then spans are exported over OTLP/HTTP in
batches (the exporter reads the endpoint and headers from the standard OTEL_* variables). With no
provider configured the OpenTelemetry API hands out no-op spans, which cost next to nothing.
Tests install their own provider (an in-memory exporter) with `use_provider`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

TRACER_NAME = "resync.chat"
_lock = threading.Lock()
_provider: Any = None
_configured = False


def _configure() -> None:
    global _configured, _provider
    with _lock:
        if _configured:
            return
        _configured = True
        if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "resync")}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _provider = provider


def use_provider(provider: Any) -> None:
    """Sends this module's spans to `provider` (None: back to the configured one). For tests."""
    global _provider, _configured
    with _lock:
        _provider = provider
        _configured = provider is not None


def tracer() -> trace.Tracer:
    if not _configured:
        _configure()
    if _provider is not None:
        return _provider.get_tracer(TRACER_NAME)
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A child of the current span (the turn's, in a turn); attributes with None values are dropped."""
    with tracer().start_as_current_span(name) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(key, value if isinstance(value, (str, bool, int, float)) else str(value))
        yield current
