"""Benchmark: many operators asking about the same failure at once, with and without the shared
live-read cache. HWA answers job logs with 200 ms latency (the mock's fault injection).

    BENCH_DATABASE_URL=postgres://... REDIS_URL=redis://127.0.0.1:6379/11 .venv/bin/python bench/agent_cache.py [--operators 50]

Prints how many HWA calls the burst cost and the median / p95 tool latency, cold then warm.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from _setup import django_setup, ensure_database, percentile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=200)
    args = parser.parse_args()
    django_setup(default_database="postgres://postgres@127.0.0.1:5432/resync_bench_agents")
    ensure_database()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.cache import cache
    from django.db import connections

    from chat.agent import sources
    from chat.agent.tools import ToolContext, tool_run
    from chat.models import Conversation, Turn
    from jobs.poll import plan_poll
    from jobs.tws.mock.auth import MOCK_PASSWORD, MOCK_USERNAME
    from jobs.tws.mock.server import MockHwaServer
    from resync_site.roles import Role

    user, _ = get_user_model().objects.get_or_create(username="bench-operator")
    user.groups.add(Group.objects.get_or_create(name=Role.OPERATOR)[0])
    with MockHwaServer(scenario="demo", port=0, speed=0.0) as mock:
        settings.TWS_URL, settings.TWS_USERNAME, settings.TWS_PASSWORD = mock.url, MOCK_USERNAME, MOCK_PASSWORD
        plan_poll()
        sources.forget_names()
        mock.faults.latency_ms = args.latency_ms
        conversation = Conversation.objects.create(user=user)

        def ask(_: int) -> float:
            turn = Turn.objects.create(conversation=conversation, user=user, question="log", status="done")
            ctx = ToolContext(user=user, conversation_id=conversation.id, turn_id=turn.id, question="log", language="pt")
            started = time.perf_counter()
            result = tool_run("job_log", {"job": "FP_CALC_FOLHA"}, ctx)
            elapsed = time.perf_counter() - started
            connections.close_all()
            assert not result.error, result.summary
            return elapsed

        for label in ("cold (empty cache)", "warm (cached)"):
            if label.startswith("cold"):
                cache.clear()
            before = mock.request_count
            with ThreadPoolExecutor(max_workers=min(args.operators, 16)) as pool:
                times = list(pool.map(ask, range(args.operators)))
            calls = mock.request_count - before
            print(f"{label}: {args.operators} operators, HWA calls {calls}, "
                  f"median {statistics.median(times) * 1000:.0f} ms, p95 {percentile(times, 95) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
