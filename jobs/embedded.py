"""Helpers `manage.py serve` starts in the embedded default (settings.EMBEDDED_SERVICES).

Both do nothing when TWS_URL is set: then Resync talks to a real HWA and Celery beat polls it.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

DEMO_SPEED = 10.0  # ten simulated seconds per real second: the night visibly moves during a demo

_mock = None
_poller: threading.Thread | None = None
_stop = threading.Event()


def start_mock_hwa() -> str | None:
    global _mock
    if settings.TWS_URL or _mock is not None:
        return None
    from jobs.tws.mock.server import MockHwaServer

    try:
        _mock = MockHwaServer(scenario=settings.MOCK_TWS_SCENARIO, port=settings.MOCK_TWS_PORT, speed=DEMO_SPEED).start()
    except OSError as exc:  # e.g. `manage.py mock_tws` already runs on that port: use it
        logger.warning("mock HWA not started on port %s (%s); using whatever listens there", settings.MOCK_TWS_PORT, exc)
        return f"nothing: port {settings.MOCK_TWS_PORT} is taken, assuming a mock HWA already listens there"
    return f"mock HWA ({settings.MOCK_TWS_SCENARIO} scenario, x{DEMO_SPEED:g} speed) at {_mock.url}"


def _poll_forever(interval: float) -> None:
    from jobs.poll import plan_poll

    while not _stop.is_set():
        try:
            plan_poll()
        except Exception:  # the poller thread must survive anything one poll does
            logger.exception("plan poll crashed")
        finally:
            close_old_connections()
        _stop.wait(interval)


def start_poller() -> str | None:
    global _poller
    if settings.TWS_URL or _poller is not None:
        return None
    interval = float(settings.TWS_POLL_SECONDS)
    _stop.clear()
    _poller = threading.Thread(target=_poll_forever, args=(interval,), name="plan-poller", daemon=True)
    _poller.start()
    return f"plan poller (every {interval:g} s)"


def stop_poller() -> None:
    _stop.set()
