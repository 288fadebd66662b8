"""Review-queue and auditor figures for `/metrics`, read from the database at scrape time.

A collector rather than gauges updated by the code: several processes (web, workers) would each
hold their own gauge values; the database is the one place that knows the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)


class ReviewQueueCollector(Collector):
    def describe(self) -> Iterator[Any]:
        return iter(())  # without this, registering would call collect() and read the DB at start-up

    def collect(self) -> Iterator[Any]:
        from knowledge.selectors import review_metrics

        try:
            m = review_metrics()
        except Exception:  # a scrape must not fail (or 500) because the database hiccupped
            logger.exception("could not read the review metrics")
            return
        yield GaugeMetricFamily("resync_kb_review_queue_size", "Knowledge review items waiting for a decision",
                                value=m.queue_size)
        yield GaugeMetricFamily("resync_kb_review_oldest_age_seconds", "Age of the oldest open review item",
                                value=m.oldest_age_seconds)
        yield GaugeMetricFamily("resync_kb_review_time_median_seconds",
                                "Median time from queued to decided, items decided in the last 30 days",
                                value=m.median_review_seconds or 0.0)
        yield GaugeMetricFamily("resync_kb_review_decided_30d", "Review items decided in the last 30 days",
                                value=m.reviewed_30d)
        yield GaugeMetricFamily("resync_kb_review_approval_rate",
                                "Share of review decisions in the last 30 days that approved or merged",
                                value=m.approval_rate or 0.0)
        yield GaugeMetricFamily("resync_kb_unanswered_open", "Open questions the knowledge base could not answer",
                                value=m.unanswered_open)
        findings = GaugeMetricFamily("resync_kb_findings_open", "Open AI auditor findings by type", labels=["type"])
        for kind, count in m.findings_open.items():
            findings.add_metric([kind], count)
        yield findings


_registered = False


def register() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(ReviewQueueCollector())
        _registered = True
