"""The five roles and what each may do.

Roles are Django groups (created by a data migration); the helpers here are the one place views,
the API, websockets and services ask "may this person do that?".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    OPERATOR = "operator", _("Operator")
    SUPERVISOR = "supervisor", _("Supervisor")
    REVIEWER = "reviewer", _("Reviewer")
    COMPLIANCE = "compliance", _("Compliance officer")
    ADMIN = "admin", _("Administrator")


# Who may use what. The admin role may do everything.
OPERATIONS = (Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)
APPROVERS = (Role.SUPERVISOR, Role.ADMIN)
KNOWLEDGE_READERS = (Role.OPERATOR, Role.SUPERVISOR, Role.REVIEWER, Role.ADMIN)
KNOWLEDGE_CURATORS = (Role.REVIEWER, Role.ADMIN)
AUDIT_READERS = (Role.COMPLIANCE, Role.ADMIN)
STAFF_ROLES = (Role.REVIEWER, Role.COMPLIANCE, Role.ADMIN)  # may open the Django admin

# Model permissions each role's group holds, as "app_label.codename" (used by the admin).
ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.OPERATOR: ("knowledge.view_knowledgeentry",),
    Role.SUPERVISOR: ("knowledge.view_knowledgeentry",),
    Role.REVIEWER: (
        "knowledge.view_knowledgeentry",
        "knowledge.add_knowledgeentry",
        "knowledge.change_knowledgeentry",
        # the review queue, auditor findings, unanswered questions and verified answers (issue 7)
        "knowledge.view_reviewitem",
        "knowledge.change_reviewitem",
        "knowledge.view_finding",
        "knowledge.view_unansweredquestion",
        "knowledge.change_unansweredquestion",
        "knowledge.view_verifiedanswer",
        "knowledge.change_verifiedanswer",
    ),
    Role.COMPLIANCE: ("audit.view_auditevent",),
    Role.ADMIN: ("*",),
}


UserLike = AbstractBaseUser | AnonymousUser


def user_roles(user: UserLike | Any) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return frozenset()
    cached = getattr(user, "_resync_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        if getattr(user, "is_superuser", False):
            cached = cached | {Role.ADMIN.value}
        user._resync_roles = cached
    return cached


def has_role(user: UserLike | Any, roles: Iterable[str]) -> bool:
    return bool(user_roles(user) & {str(role) for role in roles})


def role_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """View decorator: anonymous users go to sign-in, signed-in users without the role get 403."""
    from django.contrib.auth.views import redirect_to_login
    from django.core.exceptions import PermissionDenied

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def role_permission(*roles: str) -> type:
    """A DRF permission class admitting signed-in users holding one of `roles`."""
    from rest_framework.permissions import BasePermission

    class HasRole(BasePermission):
        message = "Your role does not allow this."

        def has_permission(self, request: Any, view: Any) -> bool:
            return has_role(request.user, roles)

    HasRole.__name__ = "HasRole_" + "_".join(str(r) for r in roles)
    return HasRole
