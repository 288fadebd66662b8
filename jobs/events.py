"""Live plan status events on the channel layer.

Group: ``STATUS_GROUP = "jobs.status"``. Every event is a dict whose ``type`` names the consumer
method Channels calls (``jobs.diff`` -> ``jobs_diff``, ``jobs.hwa_status`` -> ``jobs_hwa_status``).
Events are sent only after the transaction that recorded them commits.

``jobs.diff`` (after a poll or an action's refresh saw changes)::

    {"type": "jobs.diff", "seq": 42, "polled_at": "2026-11-25T05:31:00+00:00",
     "changes": [{"id": "<hwa job id>", "name": "FP_CALC_FOLHA", "stream": "FOLHA_PAGAMENTO",
                  "folder": "/RH/",         # the job stream's HWA folder, `/` or `/A/B/`
                  "workstation": "PRD_LNX01", "status": "ABEND", "previous_status": "EXEC",
                  "substatus": "", "common_status": "ERROR", "return_code": 12,
                  "critical": true, "late": false}],
     "removed": ["<hwa job id>", ...],      # jobs that left the plan
     "truncated": false,                    # true: too many changes to list, refetch the snapshot
     "counts": {"ABEND": 6, "SUCC": 120, ...}}  # jobs in the plan per status, after this poll

``jobs.hwa_status`` (HWA became unreachable, is still unreachable, or recovered)::

    {"type": "jobs.hwa_status", "seq": 43, "stale": true, "stale_since": "...", "age_seconds": 95,
     "last_success_at": "...", "code": "hwa_unavailable", "message": "HWA is unreachable (...)"}

``seq`` grows by one per event (PlanState.event_seq), so a dashboard can spot a gap and refetch.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

logger = logging.getLogger(__name__)

STATUS_GROUP = "jobs.status"
DIFF_EVENT = "jobs.diff"
HWA_STATUS_EVENT = "jobs.hwa_status"
MAX_CHANGES_PER_EVENT = 500


def _send(event: dict[str, Any]) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(STATUS_GROUP, event)
    except Exception:  # a dashboard push must never fail the poll that already committed
        logger.exception("could not publish %s", event.get("type"))


def publish_on_commit(event: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send(event))
