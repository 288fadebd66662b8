"""Role changes and admin edits leave audit events naming who did what."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditAction, AuditEvent
from audit.selectors import chain_verify
from resync_site.roles import Role
from resync_site.services import user_set_roles


@pytest.mark.django_db
def test_role_change_by_service_is_audited_once_with_before_and_after(operator, admin_user):
    user_set_roles(user=operator, roles=[Role.SUPERVISOR], acting_user=admin_user, reason="promoted to shift lead")
    events = AuditEvent.objects.filter(action=AuditAction.ROLE_CHANGED, target_id=str(operator.pk))
    last = events.last()
    assert last.actor_label == admin_user.username
    assert last.details == {"before": ["operator"], "after": ["supervisor"], "reason": "promoted to shift lead"}
    assert set(operator.groups.values_list("name", flat=True)) == {"supervisor"}
    assert not operator.is_staff  # supervisors work in chat and dashboard, not the admin


@pytest.mark.django_db
def test_role_change_in_the_admin_is_audited_with_the_admin_as_actor(admin_user, operator, client_for):
    client = client_for(admin_user)
    reviewer_group = Group.objects.get(name="reviewer")
    response = client.post(
        f"/admin/auth/user/{operator.pk}/change/",
        {
            "username": operator.username, "is_active": "on", "groups": [reviewer_group.pk],
            "last_login_0": "", "last_login_1": "", "date_joined_0": "2026-11-24", "date_joined_1": "10:00:00",
            "initial-date_joined_0": "2026-11-24", "initial-date_joined_1": "10:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    role_events = AuditEvent.objects.filter(action=AuditAction.ROLE_CHANGED, target_id=str(operator.pk),
                                            actor_label=admin_user.username)
    assert role_events.exists()
    assert role_events.last().details["roles_now"] == ["reviewer"]
    admin_event = AuditEvent.objects.filter(action=AuditAction.ADMIN_CHANGE, target_id=str(operator.pk)).last()
    assert admin_event.actor_label == admin_user.username
    assert admin_event.details["kind"] == "change"
    assert chain_verify().ok
