"""Runs the mock HWA server in the foreground: `manage.py mock_tws --port 31116 --scenario demo`."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from jobs.tws.mock.server import Faults, MockHwaServer


class Command(BaseCommand):
    help = "Serves a mock HCL Workload Automation REST API (v2, plus the v1 sample calls) with a simulated plan."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=31116)
        parser.add_argument("--scenario", default="demo", help="demo, large, or a path to a scenario JSON file")
        parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (0 freezes the clock)")
        parser.add_argument("--latency-ms", type=int, default=0)
        parser.add_argument("--error-rate", type=float, default=0.0)
        parser.add_argument("--error-status", type=int, default=503)
        parser.add_argument("--unauthorized", action="store_true", help="answer every call with 401 (an expired key)")
        parser.add_argument("--outage-seconds", type=float, default=0.0, help="drop connections for this long after start")
        parser.add_argument("--malformed", default="", choices=["", "html", "truncated", "wrong_types", "missing_fields", "empty"])
        parser.add_argument("--refusal-status", type=int, default=500)
        parser.add_argument("--require-justification", action="store_true")
        parser.add_argument("--duration", type=float, default=0.0, help="stop by itself after this many seconds (0: run until Ctrl-C)")
        parser.add_argument("--verbose", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        faults = Faults(latency_ms=o["latency_ms"], error_rate=o["error_rate"], error_status=o["error_status"],
                        unauthorized=o["unauthorized"], malformed=o["malformed"], refusal_status=o["refusal_status"],
                        require_justification=o["require_justification"])
        if o["outage_seconds"]:
            faults.update({"outage_seconds": o["outage_seconds"]})
        server = MockHwaServer(scenario=o["scenario"], host=o["host"], port=o["port"], speed=o["speed"], faults=faults,
                               verbose=o["verbose"])
        server.warm()
        server.start()
        self.stdout.write(self.style.SUCCESS(
            f"mock HWA: {len(server.sim.jobs)} jobs ({server.sim.name}) at {server.url}/twsd/api/v2  "
            f"(control: {server.url}/mock/control/state)"))
        try:
            deadline = time.monotonic() + o["duration"] if o["duration"] else None
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
