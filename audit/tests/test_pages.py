from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.exports import export_request
from audit.models import AuditAction, AuditEvent, AuditExport, AuditReport
from audit.selectors import EventFilters
from audit.services import audit_record


def _pages(sequence: int, export_id: int, report_id: int) -> list[str]:
    return [
        reverse("audit:events"),
        reverse("audit:event_detail", args=[sequence]),
        reverse("audit:exports"),
        reverse("audit:export_detail", args=[export_id]),
        reverse("audit:export_download", args=[export_id]),
        reverse("audit:export_manifest", args=[export_id]),
        reverse("audit:reports"),
        reverse("audit:report_download", args=[report_id]),
    ]


def _done_report() -> AuditReport:
    from audit.reports import report_build

    report = AuditReport.objects.create(period_start="2026-01-01", period_end="2026-01-31", language="en")
    report_build(report_id=report.pk)
    return report


@pytest.mark.django_db
def test_permission_matrix(client_for: Any, operator: Any, supervisor: Any, reviewer: Any, outsider: Any,
                           compliance: Any, admin_user: Any) -> None:
    event = audit_record(action=AuditAction.ADMIN_CHANGE, actor_label="system:test")
    export = export_request(acting_user=compliance, filters=EventFilters(), fmt="csv")
    admin_export = export_request(acting_user=admin_user, filters=EventFilters(), fmt="jsonl")
    report = _done_report()

    for url in _pages(event.sequence, export.pk, report.pk):
        anonymous = Client().get(url)
        assert anonymous.status_code == 302 and "/account/signin/" in anonymous["Location"], url
        for user in (operator, supervisor, reviewer, outsider):
            assert client_for(user).get(url).status_code == 403, (url, user.username)
        assert client_for(compliance).get(url).status_code == 200, url

    # Administrators read the trail and reports, but another person's export stays theirs alone.
    admin = client_for(admin_user)
    for url in _pages(event.sequence, admin_export.pk, report.pk):
        assert admin.get(url).status_code == 200, url
    for url in _pages(event.sequence, export.pk, report.pk)[3:6]:
        assert admin.get(url).status_code == 404, url
    assert client_for(compliance).get(reverse("audit:export_detail", args=[admin_export.pk])).status_code == 404

    for user in (operator, reviewer, outsider):
        response = client_for(user).post(reverse("audit:exports"), {"format": "csv"})
        assert response.status_code == 403
        response = client_for(user).post(reverse("audit:reports"),
                                         {"period_start": "2026-01-01", "period_end": "2026-01-31", "language": "en"})
        assert response.status_code == 403
    assert AuditExport.objects.count() == 2 and AuditReport.objects.count() == 1


@pytest.mark.django_db
def test_nav_link_only_for_compliance_and_admin(client_for: Any, operator: Any, compliance: Any, admin_user: Any) -> None:
    url = reverse("audit:events")
    assert url not in client_for(operator).get(reverse("home")).content.decode()
    assert f'href="{url}"' in client_for(compliance).get(reverse("home")).content.decode()
    assert f'href="{url}"' in client_for(admin_user).get(reverse("home")).content.decode()


@pytest.mark.django_db
def test_browsing_filters_and_search(client_for: Any, compliance: Any, django_assert_max_num_queries: Any) -> None:
    audit_record(action=AuditAction.JOB_ACTION, actor_label="olivia", target_type="job", target_id="PAYROLL",
                 details={"verb": "rerun", "motivo": "falha na conexão"})
    audit_record(action=AuditAction.KB_ENTRY_APPROVED, actor_label="renata", target_type="entry", target_id="12",
                 target_label="Restart procedure")
    for n in range(60):
        audit_record(action=AuditAction.AI_ANSWER, actor_label="olivia", details={"sources": [], "n": n})
    client = client_for(compliance)

    with django_assert_max_num_queries(12):
        page = client.get(reverse("audit:events"), {"q": "CONEXÃO"}).content.decode()
    assert "PAYROLL" in page and "Restart procedure" not in page

    page = client.get(reverse("audit:events"), {"actor": "renata"}).content.decode()
    assert "Restart procedure" in page and "PAYROLL" not in page

    page = client.get(reverse("audit:events"), {"action": AuditAction.AI_ANSWER}).content.decode()
    assert len(re.findall(r'href="/audit/events/\d+/"', page)) == 50  # one page...
    older = re.search(r'href="(\?[^"]*before=\d+)"', page)
    assert older is not None  # ...and a link to the older ones
    page = client.get(reverse("audit:events") + older.group(1).replace("&amp;", "&")).content.decode()
    assert len(re.findall(r'href="/audit/events/\d+/"', page)) == 10

    page = client.get(reverse("audit:events"), {"date_from": "2026-02-10", "date_to": "2026-02-01"}).content.decode()
    assert "The period ends before it starts." in page or "O período termina antes de começar." in page


@pytest.mark.django_db
def test_event_detail_shows_before_and_after_and_links(client_for: Any, compliance: Any) -> None:
    event = audit_record(action=AuditAction.KB_ENTRY_CHANGED, actor_label="renata", target_type="entry",
                         target_id="12", target_label="Restart procedure", request_id="req-abc",
                         details={"before": {"title": "Old title", "tags": ["a"]},
                                  "after": {"title": "New title", "tags": ["a", "b"]}})
    page = client_for(compliance).get(reverse("audit:event_detail", args=[event.sequence])).content.decode()
    assert re.search(r"<th scope=\"row\">title</th><td class=\"before\">Old title</td><td class=\"after\">New title</td>", page)
    assert "[&quot;a&quot;, &quot;b&quot;]" in page
    assert "target_type=entry&amp;target_id=12" in page  # all events for the same entry
    assert "?q=req-abc" in page or "q=req-abc" in page
    assert event.hash in page
    assert client_for(compliance).get(reverse("audit:event_detail", args=[9999])).status_code == 404


@pytest.mark.django_db
def test_pages_have_no_inline_script_or_style(client_for: Any, compliance: Any) -> None:
    event = audit_record(action=AuditAction.ADMIN_CHANGE, actor_label="system:test")
    client = client_for(compliance)
    for url in (reverse("audit:events"), reverse("audit:event_detail", args=[event.sequence]),
                reverse("audit:exports"), reverse("audit:reports")):
        page = client.get(url).content.decode()
        assert "<script" not in page and "style=" not in page and "<style" not in page, url


@pytest.mark.django_db
def test_export_through_the_page_downloads_for_the_requester_only(client_for: Any, compliance: Any, make_user: Any) -> None:
    audit_record(action=AuditAction.JOB_ACTION, actor_label="olivia", target_type="job", target_id="PAYROLL")
    audit_record(action=AuditAction.JOB_ACTION, actor_label="sergio", target_type="job", target_id="BILLING")
    client = client_for(compliance)
    response = client.post(reverse("audit:exports"), {"actor": "sergio", "format": "csv"})
    export = AuditExport.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("audit:export_detail", args=[export.pk])
    assert export.filters["actor"] == "sergio" and export.status == "done"

    download = client.get(reverse("audit:export_download", args=[export.pk]))
    assert download.status_code == 200 and download["Cache-Control"] == "private, no-store"
    body = b"".join(download.streaming_content).decode()
    assert "BILLING" in body and "PAYROLL" not in body
    assert 'attachment; filename="audit-export-' in download["Content-Disposition"]
    manifest = client.get(reverse("audit:export_manifest", args=[export.pk]))
    assert b'"row_count": 1' in b"".join(manifest.streaming_content)

    colleague = make_user("clara", "compliance")
    assert client_for(colleague).get(reverse("audit:export_download", args=[export.pk])).status_code == 404
    steps = list(AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORT).values_list("details__step", flat=True))
    assert steps == ["requested", "finished", "downloaded", "downloaded"]
