"""Spans for a turn: one root span per turn with routing, tools, HWA, LLM and Qdrant calls as its
children, all carrying the turn id (in-memory exporter; no OTLP endpoint in tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chat.agent import tracing
from chat.testing import Reply


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)


def test_a_turn_emits_spans_with_parent_child_structure(hwa: Any, kb: Any, ask: Any, fake_llm: Any, spans: Any) -> None:
    from django.core.cache import cache

    cache.clear()  # the job log must be read from HWA (not the shared cache) to get its span
    fake_llm.script = [
        Reply(tool_calls=[("job_log", {"job": "FP_CALC_FOLHA"}), ("kb_search", {"question": "ORA-19502"})]),
        Reply(text="O job falhou com ORA-19502 [1]."),
    ]
    turn = ask("por que o FP_CALC_FOLHA falhou?")
    finished = spans.get_finished_spans()
    by_name = {s.name: s for s in finished}
    root = by_name["chat.turn"]
    assert root.parent is None and root.attributes["resync.turn_id"] == str(turn.id)
    for name in ("chat.route", "chat.tool job_log", "chat.tool kb_search", "llm.completion"):
        assert by_name[name].parent.span_id == root.context.span_id, name
        assert by_name[name].context.trace_id == root.context.trace_id
    assert by_name["chat.route"].attributes["resync.agent"] == "failure-analysis"
    assert by_name["hwa.job_log"].parent.span_id == by_name["chat.tool job_log"].context.span_id
    assert by_name["qdrant.search"].parent.span_id == by_name["chat.tool kb_search"].context.span_id
    assert len([s for s in finished if s.name == "llm.completion"]) == 2


def test_tracing_is_off_without_an_endpoint(monkeypatch: Any) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracing.use_provider(None)
    with tracing.span("chat.turn") as span:
        assert not span.is_recording()
