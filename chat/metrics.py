"""Per-agent figures for `/metrics` (turns, errors, latency, tokens, thumbs), read at scrape time.

A collector like knowledge/metrics.py: several processes answer turns, the database is the one
place that has every agent's totals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)


class AgentCollector(Collector):
    def describe(self) -> Iterator[Any]:
        return iter(())  # registering must not read the database at start-up

    def collect(self) -> Iterator[Any]:
        from chat.selectors import agents_with_metrics

        try:
            agents = list(agents_with_metrics().select_related("current_version"))
        except Exception:  # a scrape must not fail because the database hiccupped
            logger.exception("could not read the agent metrics")
            return
        labels = ["agent"]
        turns = CounterMetricFamily("resync_agent_turns", "Chat turns answered by each agent", labels=labels)
        errors = CounterMetricFamily("resync_agent_errors", "Chat turns of each agent that failed", labels=labels)
        tokens = CounterMetricFamily("resync_agent_tokens", "LLM tokens used by each agent", labels=labels)
        latency = GaugeMetricFamily("resync_agent_latency_avg_seconds", "Average turn latency of each agent", labels=labels)
        thumbs = CounterMetricFamily("resync_agent_feedback", "Thumbs on each agent's answers", labels=["agent", "rating"])
        enabled = GaugeMetricFamily("resync_agent_enabled", "1 when the agent is enabled", labels=["agent", "prompt_version"])
        for a in agents:
            turns.add_metric([a.slug], a.m_turns)
            errors.add_metric([a.slug], a.m_errors)
            tokens.add_metric([a.slug], a.m_tokens or 0)
            latency.add_metric([a.slug], a.m_latency.total_seconds() if a.m_latency else 0.0)
            thumbs.add_metric([a.slug, "up"], a.m_up)
            thumbs.add_metric([a.slug, "down"], a.m_down)
            enabled.add_metric([a.slug, a.current_version.label if a.current_version else ""], 1 if a.enabled else 0)
        yield from (turns, errors, tokens, latency, thumbs, enabled)


_registered = False


def register() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(AgentCollector())
        _registered = True
