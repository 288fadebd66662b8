"""Generic capture of events that happen outside Resync's services: sign-in, roles, admin edits.

Everything Resync itself does is audited by the service doing it; these receivers cover what
Django and its add-ons do on their own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from axes.signals import user_locked_out
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from audit.models import AuditAction, AuditOutcome
from audit.services import audit_record

User = get_user_model()

_service_writing = contextvars.ContextVar("audit_service_writing", default=False)


@contextmanager
def audited_by_caller() -> Iterator[None]:
    """For services that audit a role change themselves (with who and why): skip the generic capture."""
    token = _service_writing.set(True)
    try:
        yield
    finally:
        _service_writing.reset(token)


@receiver(user_logged_in)
def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    backend = getattr(user, "backend", "") or ""
    method = "oidc" if "oidc" in backend.lower() else "password"
    audit_record(action=AuditAction.SIGNIN, actor=user, request=request, target_type="user", target_id=user.pk,
                 target_label=user.get_username(), details={"method": method})


@receiver(user_logged_out)
def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(action=AuditAction.SIGNOUT, actor=user, request=request, target_type="user", target_id=user.pk,
                     target_label=user.get_username())


@receiver(user_login_failed)
def _signin_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Only the username: Django has already masked the password, and we never store it anyway.
    username = str(credentials.get("username", ""))[:150]
    audit_record(action=AuditAction.SIGNIN_FAILED, actor_label="anonymous", request=request, target_type="user",
                 target_label=username, outcome=AuditOutcome.FAILURE, details={"username": username})


@receiver(user_locked_out)
def _locked_out(sender: Any, request: Any = None, username: str | None = None, ip_address: str | None = None, **kwargs: Any) -> None:
    audit_record(action=AuditAction.LOCKED_OUT, actor_label="system:lockout", request=request, ip_address=ip_address,
                 target_type="user", target_label=(username or "")[:150], outcome=AuditOutcome.REFUSED,
                 details={"username": username or ""})


@receiver(m2m_changed, sender=User.groups.through)
def _roles_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any) -> None:
    if action not in {"post_add", "post_remove", "post_clear"} or _service_writing.get():
        return
    from resync_site.lib.current import current_request

    request = current_request()
    groups = sorted(Group.objects.filter(pk__in=pk_set or []).values_list("name", flat=True))
    users = [instance] if not reverse else list(User.objects.filter(pk__in=pk_set or []))
    if reverse:
        groups = [instance.name]
    for user in users:
        user.__dict__.pop("_resync_roles", None)
        audit_record(
            action=AuditAction.ROLE_CHANGED,
            request=request,
            actor_label="" if request else "system",
            target_type="user",
            target_id=user.pk,
            target_label=user.get_username(),
            details={"change": action.removeprefix("post_"), "roles": groups,
                     "roles_now": sorted(user.groups.values_list("name", flat=True))},
        )


@receiver(post_save, sender=LogEntry)
def _admin_change(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    if not created:
        return
    from resync_site.lib.current import current_request

    kind = {1: "add", 2: "change", 3: "delete"}.get(instance.action_flag, "other")
    audit_record(
        action=AuditAction.ADMIN_CHANGE,
        actor=instance.user,
        request=current_request(),
        target_type=instance.content_type.model if instance.content_type else "",
        target_id=instance.object_id or "",
        target_label=instance.object_repr,
        details={"kind": kind, "change": instance.get_change_message()},
    )
