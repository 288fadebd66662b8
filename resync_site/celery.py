"""The Celery app, configured from Django settings (CELERY_* names).

Without REDIS_URL tasks run eagerly in the calling process (the embedded default); with it they go
to Redis and a worker picks them up (`celery -A resync_site worker`).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resync_site.settings")

app = Celery("resync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def recover_abandoned_work(sender: Any, **kwargs: Any) -> None:
    """A worker (re)starting first recovers the imports and exports of its queues a dead worker left
    running (resync_site/lib/work.py), instead of waiting for beat's next sweep."""
    from django.db import connections

    from resync_site.lib.work import recover_for_queues

    queues = {queue.name for queue in getattr(sender.task_consumer, "queues", [])}
    try:
        recover_for_queues(sender.app, queues, worker=sender.hostname)
    finally:
        connections.close_all()  # the main process runs no task: it keeps no database connection
