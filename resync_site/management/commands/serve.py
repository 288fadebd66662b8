"""Serves Resync with daphne, first starting the embedded services this configuration needs.

In the embedded default those are in-process helpers (the mock HWA, the plan poller, ...): each
entry of settings.EMBEDDED_SERVICES is a callable that starts one in the background, or does
nothing when the real service is configured instead.
"""

from __future__ import annotations

from typing import Any

from daphne.cli import CommandLineInterface
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string


class Command(BaseCommand):
    help = "Starts the embedded services (mock HWA, poller) and serves Resync over HTTP and websockets."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        for path in settings.EMBEDDED_SERVICES:
            description = import_string(path)()
            if description:
                self.stdout.write(f"  started {description}")
        self.stdout.write(self.style.SUCCESS(f"Resync is at http://{host}:{port}/  (Ctrl-C stops it)"))
        CommandLineInterface().run(["--bind", host, "--port", str(port), "--proxy-headers", "resync_site.asgi:application"])
