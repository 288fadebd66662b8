"""Writing to the audit trail: `audit_record` is the only way in."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.chain import GENESIS_HASH, content_hash, event_hash, normalize_details
from audit.models import AuditAction, AuditChainHead, AuditEvent, AuditOutcome
from resync_site.lib.logging import request_id_var


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _current_request_id(explicit: str | None) -> str:
    value = explicit or request_id_var.get()
    return "" if not value or value == "-" else value[:64]


def audit_record(
    *,
    action: AuditAction | str,
    actor: Any = None,
    actor_label: str = "",
    target_type: str = "",
    target_id: str | int = "",
    target_label: str = "",
    details: dict[str, Any] | None = None,
    outcome: AuditOutcome | str = AuditOutcome.SUCCESS,
    request: HttpRequest | None = None,
    ip_address: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Appends one event to the chain, inside the caller's transaction when there is one.

    Writers serialize on one lock (an advisory lock inside `audit_append()` on PostgreSQL,
    the database-wide write lock on SQLite), so sequence numbers and prev_hash links stay gapless
    under any number of concurrent writers. Call it last in a service's transaction: the head
    stays locked until that transaction ends. The event becomes visible only if the caller's
    transaction commits: an action that rolls back leaves no trace claiming it happened.
    """
    if request is not None:
        actor = actor if actor is not None else getattr(request, "user", None)
        ip_address = ip_address or client_ip(request)
        request_id = request_id or getattr(request, "request_id", None)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    fields: dict[str, Any] = {
        "actor_id": actor.pk if actor is not None else None,
        "actor_label": (actor_label or (actor.get_username() if actor is not None else "anonymous"))[:150],
        "ip_address": ip_address,
        "request_id": _current_request_id(request_id),
        "action": str(action),
        "target_type": target_type[:64],
        "target_id": str(target_id)[:255],
        "target_label": str(target_label)[:255],
        "details": normalize_details(details),
        "outcome": str(outcome),
    }
    if connection.vendor == "postgresql":
        return _append_postgresql(fields)
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:  # the migration creates it; this only guards a hand-truncated table
            head = AuditChainHead.objects.create(pk=1, sequence=0, hash=GENESIS_HASH)
        fields["sequence"] = head.sequence + 1
        fields["prev_hash"] = head.hash
        fields["timestamp"] = timezone.now()
        fields["hash"] = event_hash(fields)
        event = AuditEvent.objects.create(**fields)
        AuditChainHead.objects.filter(pk=1).update(sequence=event.sequence, hash=event.hash)
    return event


def _append_postgresql(fields: dict[str, Any]) -> AuditEvent:
    """One round trip: `audit_append()` locks the head, links and inserts (migration 0002).

    Outside a transaction the statement commits on its own, so the head lock lasts one round trip.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM audit_append(%s, %s, %s::inet, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
            [
                fields["actor_id"], fields["actor_label"], fields["ip_address"], fields["request_id"], fields["action"],
                fields["target_type"], fields["target_id"], fields["target_label"],
                json.dumps(fields["details"], ensure_ascii=False), fields["outcome"], content_hash(fields),
            ],
        )
        event_id, sequence, timestamp, prev_hash, hash_ = cursor.fetchone()
    event = AuditEvent(id=event_id, sequence=sequence, timestamp=timestamp, prev_hash=prev_hash, hash=hash_, **fields)
    event._state.adding = False
    event._state.db = connection.alias
    return event
