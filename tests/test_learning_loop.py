"""The learning loop end to end, in no-LLM mode against the mock HWA's demo night:

a chat about a failure the knowledge base cannot answer → the operator resolves it saying what fixed
it → a pending draft → the auditor's findings → a reviewer edits and approves it in the admin → the
next operator's question is answered from it, with a citation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditAction, AuditEvent
from chat.tests.conftest import answer_of, citations_of, hwa, hwa_scenario  # noqa: F401  (fixtures)
from knowledge.models import (
    EntrySource,
    EntryStatus,
    Finding,
    FindingType,
    KnowledgeEntry,
    ReviewItem,
    ReviewStatus,
    UnansweredQuestion,
)

pytestmark = pytest.mark.django_db

NOTE = ("O arquivo das filiais veio com campo compactado inválido. Apagamos a entrada com "
        "rm -rf /dados/cbr/entrada/*, pedimos o reenvio à Cobrança e fizemos rerun do CBR0150.")


@pytest.fixture
def small_kb(settings: Any, db: Any) -> Iterator[None]:
    """Its own collection with two entries that know nothing about CBR0150's S0C7."""
    from knowledge import services
    from knowledge.index import drop_collection

    settings.QDRANT_COLLECTION = f"loop_{uuid.uuid4().hex[:10]}"
    ids = [
        services.entry_create(acting_user=None, external_id="KB-0003", status=EntryStatus.APPROVED,
                              symptom="O job FP_CALC_FOLHA termina em ABEND com RC=12.", error_codes=["RC=12"],
                              job_patterns=["FP_CALC_FOLHA"],
                              solution="Acionar o RH para liberar a competência e fazer rerun.").pk,
        services.entry_create(acting_user=None, external_id="KB-0028", status=EntryStatus.APPROVED,
                              symptom="BKP_RMAN_FULL falha com ORA-19502: sem espaço no destino do backup.",
                              error_codes=["ORA-19502"], job_patterns=["BKP_RMAN_FULL"],
                              solution="Liberar espaço apagando backups expirados pelo RMAN e reexecutar.").pk,
    ]
    services.entries_index(entry_ids=ids)
    yield
    drop_collection(settings.QDRANT_COLLECTION)


@pytest.fixture
def eager() -> Iterator[None]:
    from resync_site.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def _ask(user: Any, question: str) -> Any:
    """One turn through the chat's own services (as its websocket consumer does), run in-process."""
    from chat import services
    from chat.models import Conversation, Turn

    conversation = Conversation.objects.create(user=user)
    turn = Turn.objects.create(conversation=conversation, user=user, question=question)
    services.turn_execute(turn_id=turn.id)
    turn.refresh_from_db()
    return turn


def test_a_resolved_chat_becomes_knowledge_the_next_operator_is_answered_from(
    hwa: Any, small_kb: None, eager: None, operator: Any, reviewer: Any, make_user: Any,  # noqa: F811
    client_for: Callable[..., Client], django_capture_on_commit_callbacks: Any,
) -> None:
    from chat import services as chat_services
    from knowledge.retrieval import search

    # 1. A chat about a failure the base cannot answer: the question joins the unanswered queue.
    first = _ask(operator, "por que o CBR0150 falhou?")
    assert "S0C7" in answer_of(first)
    assert not any(ref.startswith(("KB-", "LRN-")) for ref in citations_of(first))
    assert UnansweredQuestion.objects.filter(turn_id=first.id, reason="no_answer").exists()

    # 2. The operator marks it resolved and says what fixed it: a draft, pending review, not searchable.
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.conversation_resolve(acting_user=operator, conversation_id=first.conversation_id, note=NOTE)
    item = ReviewItem.objects.get(conversation_id=first.conversation_id)
    draft = item.entry
    assert (draft.status, draft.source) == (EntryStatus.PENDING_REVIEW, EntrySource.LEARNED)
    assert "S0C7" in draft.error_codes and "CBR0150" in draft.job_patterns
    assert item.provenance["operator"] == operator.get_username()
    assert item.provenance["log_citations"] and "ABEND=S0C7" in draft.symptom
    assert draft.external_id not in [h.external_id for h in search("CBR0150 S0C7").hits]
    assert AuditEvent.objects.filter(action=AuditAction.CONVERSATION_RESOLVED, actor=operator).exists()

    # 3. The auditor ran on the new entry: the unguarded rm -rf is flagged and audited.
    finding = Finding.objects.get(entry=draft, type=FindingType.DANGEROUS)
    assert AuditEvent.objects.filter(action=AuditAction.KB_FINDING, target_id=draft.external_id,
                                     details__finding=finding.pk).exists()

    # 4. A reviewer sees it in the queue, edits the dangerous step out and approves it.
    client = client_for(reviewer)
    assert draft.external_id in client.get("/admin/knowledge/reviewitem/", {"finding": "dangerous"}).content.decode()
    page = client.get(f"/admin/knowledge/reviewitem/{item.pk}/change/").content.decode()
    assert "rm -rf" in page and 'data-type="dangerous"' in page
    solution = ("O arquivo das filiais veio com campo compactado inválido (S0C7). Pedir o reenvio do arquivo à "
                "Cobrança e fazer rerun do CBR0150.")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/knowledge/reviewitem/{item.pk}/change/", {
            "decision": "edit_approve", "reason": "sem o rm -rf", "title": "CBR0150 ABEND S0C7: arquivo das filiais",
            "symptom": draft.symptom, "cause": "Campo compactado inválido no arquivo das filiais.",
            "solution": solution, "error_codes": "S0C7", "job_patterns": "CBR0150"})
    assert response.status_code == 302
    item.refresh_from_db()
    draft.refresh_from_db()
    assert item.status == ReviewStatus.APPROVED and draft.status == EntryStatus.APPROVED
    assert not Finding.objects.filter(entry=draft, status="open").exists()
    approved = AuditEvent.objects.get(action=AuditAction.KB_ENTRY_APPROVED, target_id=draft.external_id)
    assert approved.actor == reviewer

    # 5. The next operator asks: the answer comes from the learned entry, with its citation.
    second = _ask(make_user("otavio", "operator"), "o CBR0150 caiu de novo, e agora?")
    assert draft.external_id in citations_of(second)
    assert "Cobrança" in answer_of(second) and "rm -rf" not in answer_of(second)


def test_rejected_draft_is_never_an_answer(
    hwa: Any, small_kb: None, eager: None, operator: Any, reviewer: Any,  # noqa: F811
    client_for: Callable[..., Client], django_capture_on_commit_callbacks: Any,
) -> None:
    from chat import services as chat_services

    first = _ask(operator, "por que o CBR0150 falhou?")
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.conversation_resolve(acting_user=operator, conversation_id=first.conversation_id,
                                           note="Fizemos rerun e passou.")
    item = ReviewItem.objects.get(conversation_id=first.conversation_id)
    with django_capture_on_commit_callbacks(execute=True):
        client_for(reviewer).post(f"/admin/knowledge/reviewitem/{item.pk}/change/",
                                  {"decision": "reject", "reason": "não explica a causa"})
    assert KnowledgeEntry.objects.get(pk=item.entry_id).status == EntryStatus.REJECTED
    again = _ask(operator, "por que o CBR0150 falhou?")
    assert item.entry.external_id not in citations_of(again)
