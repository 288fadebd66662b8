from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.core.servers.basehttp import run
from django.core.wsgi import get_wsgi_application


class Command(BaseCommand):
    help = "Migrates, then serves the test provider on 127.0.0.1 (port 0 = any free port, printed on stdout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--max-seconds", type=float, default=300.0,
                            help="exit after this long even if nobody stops the process")

    def handle(self, *args: Any, port: int, max_seconds: float, **options: Any) -> None:
        call_command("migrate", verbosity=0, interactive=False)
        parent = os.getppid()

        def watchdog() -> None:
            # Never outlive the test that started us, even if it was killed without cleaning up.
            deadline = time.monotonic() + max_seconds
            while time.monotonic() < deadline and os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)

        threading.Thread(target=watchdog, daemon=True).start()

        def on_bind(bound_port: int) -> None:
            sys.stdout.write(f"listening http://127.0.0.1:{bound_port}\n")
            sys.stdout.flush()

        run("127.0.0.1", port, get_wsgi_application(), threading=True, on_bind=on_bind)
