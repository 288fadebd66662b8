"""The review queue in the admin: approve, edit and approve, merge, reject, bulk actions, assignment,
filters, the side-by-side diff, metrics, the unanswered queue, and who may decide."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from knowledge.models import (
    EntryStatus,
    Finding,
    FindingType,
    KnowledgeEntry,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    UnansweredQuestion,
    UnansweredStatus,
    VerifiedAnswer,
)
from knowledge.retrieval import search
from knowledge.review import review_approve
from knowledge.tests.test_auditor import BASE, OTHER, make
from resync_site.lib.errors import ForbiddenError

pytestmark = pytest.mark.django_db

QUESTION = "o job FP_CALC_FOLHA abendou com RC=12 logo depois de iniciar, o que faço?"
DRAFT = {
    "external_id": "LRN-0001",
    "title": "FP_CALC_FOLHA em ABEND RC=12 na competência fechada",
    "symptom": "FP_CALC_FOLHA terminou em ABEND com RC=12 e a mensagem FOL-0012 competência fechada.",
    "cause": "O RH fechou a competência antes do cálculo.",
    "solution": "Pedir ao RH a reabertura da competência no sistema da folha e fazer rerun do FP_CALC_FOLHA.",
    "error_codes": ["RC=12", "FOL-0012"],
    "job_patterns": ["FP_CALC_FOLHA"],
}
URL = "/admin/knowledge/reviewitem/"


@pytest.fixture
def base(db: Any) -> list[KnowledgeEntry]:
    return [make(status=EntryStatus.APPROVED, **BASE), make(status=EntryStatus.APPROVED, **OTHER)]


@pytest.fixture
def item(base: list[KnowledgeEntry]) -> ReviewItem:
    entry = make(**DRAFT)
    return ReviewItem.objects.create(entry=entry, kind=ReviewKind.LEARNED, similar_entry=base[0], similarity=0.71,
                                     provenance={"question": QUESTION, "operator": "olivia", "jobs": ["FP_CALC_FOLHA"]})


def _post(client: Client, item: ReviewItem, capture: Any, **data: Any) -> Any:
    with capture(execute=True):
        return client.post(f"{URL}{item.pk}/change/", data)


# --- who may decide ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "page", "decides"),
    [("reviewer", 200, True), ("admin_user", 200, True), ("compliance", 403, False), ("operator", 302, False),
     ("supervisor", 302, False), ("outsider", 302, False), (None, 302, False)],
)
def test_only_reviewers_and_admins_see_and_decide_the_queue(
    request: Any, client_for: Callable[..., Client], item: ReviewItem, persona: str | None, page: int, decides: bool,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(request.getfixturevalue(persona)) if persona else Client()
    for url in (URL, f"{URL}{item.pk}/change/", "/admin/knowledge/finding/", "/admin/knowledge/unansweredquestion/"):
        assert client.get(url).status_code == page, url
    _post(client, item, django_capture_on_commit_callbacks, decision="approve", reason="ok")
    item.refresh_from_db()
    assert (item.status == ReviewStatus.APPROVED) is decides
    assert KnowledgeEntry.objects.get(pk=item.entry_id).status == (EntryStatus.APPROVED if decides else EntryStatus.PENDING_REVIEW)


def test_the_services_refuse_anyone_but_curators(item: ReviewItem, operator: Any, compliance: Any) -> None:
    for person in (operator, compliance, None):
        with pytest.raises(ForbiddenError):
            review_approve(acting_user=person, item=item)


# --- decisions ---------------------------------------------------------------------------------


def test_approve_in_the_admin_makes_the_entry_searchable_at_once(
    reviewer: Any, client_for: Callable[..., Client], item: ReviewItem, django_capture_on_commit_callbacks: Any,
) -> None:
    assert "LRN-0001" not in [h.external_id for h in search("FOL-0012 competência fechada").hits]
    response = _post(client_for(reviewer), item, django_capture_on_commit_callbacks, decision="approve",
                     reason="conferido com o RH")
    assert response.status_code == 302
    result = search("FOL-0012 competência fechada")
    assert result.confident and result.hits[0].external_id == "LRN-0001"
    event = AuditEvent.objects.filter(action=AuditAction.KB_ENTRY_APPROVED, target_id="LRN-0001").get()
    assert event.actor == reviewer and event.details["reason"] == "conferido com o RH"
    item.refresh_from_db()
    assert (item.status, item.decided_by, item.decision_reason) == (ReviewStatus.APPROVED, reviewer, "conferido com o RH")
    # The conversation's question now has a verified answer pointing at the entry.
    assert VerifiedAnswer.objects.get(entry__external_id="LRN-0001").question == QUESTION


def test_edit_and_approve(reviewer: Any, client_for: Callable[..., Client], item: ReviewItem,
                          django_capture_on_commit_callbacks: Any) -> None:
    _post(client_for(reviewer), item, django_capture_on_commit_callbacks, decision="edit_approve", reason="texto revisto",
          title="Competência fechada: FP_CALC_FOLHA RC=12", symptom=DRAFT["symptom"], cause=DRAFT["cause"],
          solution="Abrir chamado para o RH reabrir a competência; depois fazer rerun.", error_codes="RC=12\nFOL-0012",
          job_patterns="FP_CALC_FOLHA")
    entry = KnowledgeEntry.objects.get(external_id="LRN-0001")
    assert entry.status == EntryStatus.APPROVED and entry.solution.startswith("Abrir chamado")
    assert entry.history.first().history_change_reason == "approved in review" or entry.history.filter(
        history_change_reason="texto revisto").exists()
    changed = AuditEvent.objects.get(action=AuditAction.KB_ENTRY_CHANGED, target_id="LRN-0001")
    assert changed.actor == reviewer and "solution" in changed.details["fields"]


def test_merge_into_the_existing_entry(reviewer: Any, client_for: Callable[..., Client], item: ReviewItem,
                                       django_capture_on_commit_callbacks: Any) -> None:
    _post(client_for(reviewer), item, django_capture_on_commit_callbacks, decision="merge", target="KB-0003",
          take=["cause"], reason="mesmo problema")
    target = KnowledgeEntry.objects.get(external_id="KB-0003")
    draft = KnowledgeEntry.objects.get(external_id="LRN-0001")
    assert target.cause == DRAFT["cause"] and "FOL-0012" in target.error_codes and "RC=12" in target.error_codes
    assert target.solution == BASE["solution"]  # not picked: kept
    assert draft.status == EntryStatus.REJECTED
    item.refresh_from_db()
    assert item.status == ReviewStatus.MERGED and item.merged_into == target
    merged = AuditEvent.objects.get(action=AuditAction.KB_ENTRY_MERGED, target_id="LRN-0001")
    assert merged.actor == reviewer and merged.details["into"] == "KB-0003" and merged.details["reason"] == "mesmo problema"
    # The merged entry answers the new code; the draft never does.
    assert search("erro FOL-0012").hits[0].external_id == "KB-0003"


def test_reject_needs_a_reason_and_keeps_the_entry_out_of_search(
    reviewer: Any, client_for: Callable[..., Client], item: ReviewItem, django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(reviewer)
    _post(client, item, django_capture_on_commit_callbacks, decision="reject", reason="")
    item.refresh_from_db()
    assert item.status == ReviewStatus.OPEN
    _post(client, item, django_capture_on_commit_callbacks, decision="reject", reason="duplicado do KB-0003")
    item.refresh_from_db()
    assert item.status == ReviewStatus.REJECTED
    assert KnowledgeEntry.objects.get(external_id="LRN-0001").status == EntryStatus.REJECTED
    assert "LRN-0001" not in [h.external_id for h in search("FOL-0012 competência fechada").hits]
    event = AuditEvent.objects.get(action=AuditAction.KB_ENTRY_REJECTED, target_id="LRN-0001")
    assert event.actor == reviewer and event.details["reason"] == "duplicado do KB-0003"


def test_a_decided_item_cannot_be_decided_again(reviewer: Any, admin_user: Any, item: ReviewItem,
                                                client_for: Callable[..., Client],
                                                django_capture_on_commit_callbacks: Any) -> None:
    _post(client_for(reviewer), item, django_capture_on_commit_callbacks, decision="reject", reason="não")
    response = _post(client_for(admin_user), item, django_capture_on_commit_callbacks, decision="approve")
    assert response.status_code == 302
    assert KnowledgeEntry.objects.get(external_id="LRN-0001").status == EntryStatus.REJECTED


# --- the page, bulk actions, assignment, filters -----------------------------------------------


def test_the_item_page_shows_the_proposal_beside_the_most_similar_entry(
    reviewer: Any, client_for: Callable[..., Client], item: ReviewItem,
) -> None:
    Finding.objects.create(type=FindingType.NEAR_DUPLICATE, severity="low", confidence=0.7, reason="Similar to KB-0003",
                           entry=item.entry, other_entry=item.similar_entry, fingerprint="f1")
    page = client_for(reviewer).get(f"{URL}{item.pk}/change/").content.decode()
    assert "LRN-0001" in page and "KB-0003" in page
    assert DRAFT["solution"] in page and BASE["solution"] in page
    assert "<ins>FOL-0012</ins>" in page  # the code only the proposal has
    assert 'data-type="near_duplicate"' in page and "olivia" in page


def test_bulk_approve_reject_and_assign(reviewer: Any, admin_user: Any, client_for: Callable[..., Client],
                                        base: list[KnowledgeEntry], django_capture_on_commit_callbacks: Any) -> None:
    items = [ReviewItem.objects.create(entry=make(**{**DRAFT, "external_id": f"LRN-00{i}"}), kind=ReviewKind.LEARNED)
             for i in range(4)]
    client = client_for(reviewer)
    response = client.post(URL, {"action": "assign_selected", "_selected_action": [i.pk for i in items],
                                 "assignee": admin_user.pk})
    assert response.status_code == 302
    assert set(ReviewItem.objects.values_list("assignee", flat=True)) == {admin_user.pk}
    mine = client_for(admin_user).get(URL, {"assignee": "me"}).content.decode()
    assert all(f"LRN-00{i}" in mine for i in range(4))

    client.post(URL, {"action": "reject_selected", "_selected_action": [items[0].pk], "reason": ""})
    assert ReviewItem.objects.get(pk=items[0].pk).status == ReviewStatus.OPEN  # no reason, no rejection
    client.post(URL, {"action": "reject_selected", "_selected_action": [items[0].pk, items[1].pk], "reason": "fora do escopo"})
    with django_capture_on_commit_callbacks(execute=True):
        client.post(URL, {"action": "approve_selected", "_selected_action": [items[2].pk, items[3].pk], "reason": "lote ok"})
    statuses = dict(ReviewItem.objects.values_list("entry__external_id", "status"))
    assert statuses == {"LRN-000": "rejected", "LRN-001": "rejected", "LRN-002": "approved", "LRN-003": "approved"}
    assert AuditEvent.objects.filter(action=AuditAction.KB_ENTRY_REJECTED, details__reason="fora do escopo").count() == 2


def test_queue_filters(reviewer: Any, client_for: Callable[..., Client], base: list[KnowledgeEntry]) -> None:
    secret = ReviewItem.objects.create(entry=make(**{**DRAFT, "external_id": "LRN-S"}), kind=ReviewKind.LEARNED,
                                       assignee=reviewer)
    Finding.objects.create(type=FindingType.SECRET, severity="high", confidence=0.9, reason="password",
                           entry=secret.entry, fingerprint="s1")
    old = ReviewItem.objects.create(entry=make(**{**DRAFT, "external_id": "LRN-OLD"}), kind=ReviewKind.SUBMITTED)
    ReviewItem.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=40))
    flagged = ReviewItem.objects.create(entry=base[1], kind=ReviewKind.FINDING)
    client = client_for(reviewer)

    def listed(**params: str) -> set[str]:
        page = client.get(URL, params).content.decode()
        return {eid for eid in ("LRN-S", "LRN-OLD", "KB-0028") if f">{eid}<" in page}

    assert listed() == {"LRN-S", "LRN-OLD", "KB-0028"}
    assert listed(finding="secret") == {"LRN-S"}
    assert listed(severity="high") == {"LRN-S"}
    assert listed(entry__source__exact="import") == set()
    assert listed(entry__source__exact="learned") == {"LRN-S", "LRN-OLD", "KB-0028"}
    assert listed(age="old") == {"LRN-OLD"}
    assert listed(age="1d") == {"LRN-S", "KB-0028"}
    assert listed(assignee="me") == {"LRN-S"}
    assert listed(assignee="none") == {"LRN-OLD", "KB-0028"}
    assert flagged.pk


def test_the_queue_list_runs_a_fixed_number_of_queries(reviewer: Any, client_for: Callable[..., Client],
                                                       base: list[KnowledgeEntry], django_assert_max_num_queries: Any) -> None:
    for i in range(12):
        entry = make(**{**DRAFT, "external_id": f"LRN-Q{i}"})
        ReviewItem.objects.create(entry=entry, kind=ReviewKind.LEARNED, similar_entry=base[0], assignee=reviewer)
        Finding.objects.create(type=FindingType.SECRET, severity="high", confidence=0.9, reason="x", entry=entry,
                               fingerprint=f"q{i}")
    client = client_for(reviewer)
    client.get(URL)
    with django_assert_max_num_queries(30):
        assert client.get(URL).status_code == 200


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_in_the_admin_and_on_metrics(reviewer: Any, client_for: Callable[..., Client], item: ReviewItem,
                                             settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    other = ReviewItem.objects.create(entry=make(**{**DRAFT, "external_id": "LRN-0002"}), kind=ReviewKind.LEARNED)
    ReviewItem.objects.filter(pk=other.pk).update(created_at=timezone.now() - dt.timedelta(hours=2))
    Finding.objects.create(type=FindingType.DANGEROUS, severity="high", confidence=0.8, reason="rm -rf",
                           entry=item.entry, fingerprint="m1")
    client = client_for(reviewer)
    page = client.get(URL).content.decode()
    assert '<td data-metric="queue_size">2</td>' in page
    assert 'data-finding="dangerous">dangerous: 1<' in page
    _post(client, item, django_capture_on_commit_callbacks, decision="approve", reason="ok")

    settings.METRICS_TOKEN = "t" * 32
    body = Client().get("/metrics", headers={"Authorization": "Bearer " + "t" * 32}).content.decode()
    assert "resync_kb_review_queue_size 1.0" in body
    oldest = float(next(line for line in body.splitlines() if line.startswith("resync_kb_review_oldest_age_seconds ")).split()[1])
    assert 7000 < oldest < 7400
    assert "resync_kb_review_approval_rate 1.0" in body
    assert 'resync_kb_findings_open{type="dangerous"} 0.0' in body  # resolved by the approval
    assert "resync_kb_review_decided_30d 1.0" in body


# --- the unanswered queue --------------------------------------------------------------------


def test_an_unanswered_question_becomes_an_entry_in_the_review_queue(
    reviewer: Any, client_for: Callable[..., Client], base: list[KnowledgeEntry],
) -> None:
    from knowledge.learning import unanswered_record

    question = unanswered_record(question="como destravar o agente PRD_WIN02 desconectado?", reason="no_answer")
    again = unanswered_record(question="Como destravar o agente PRD_WIN02 desconectado", reason="no_answer")
    assert again.pk == question.pk and UnansweredQuestion.objects.get().times_asked == 2
    client = client_for(reviewer)
    assert "PRD_WIN02" in client.get("/admin/knowledge/unansweredquestion/").content.decode()
    response = client.post(f"/admin/knowledge/unansweredquestion/{question.pk}/change/", {
        "title": "Agente PRD_WIN02 desconectado", "symptom": question.question,
        "solution": "Reiniciar o serviço do agente no servidor e rodar conman link PRD_WIN02.",
        "error_codes": "", "job_patterns": "", "cause": ""})
    item = ReviewItem.objects.get(entry__title="Agente PRD_WIN02 desconectado")
    assert response.status_code == 302 and response["Location"].endswith(f"/{item.pk}/change/")
    assert item.entry.status == EntryStatus.PENDING_REVIEW and item.provenance["question"] == question.question
    question.refresh_from_db()
    assert question.status == UnansweredStatus.CONVERTED and question.entry == item.entry
