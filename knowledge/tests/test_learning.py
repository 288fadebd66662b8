"""Learning from conversations: drafts (template and LLM), feedback, the unanswered queue, verified answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from audit.models import AuditAction, AuditEvent
from chat.models import (
    ActionProposal,
    Citation,
    Conversation,
    Feedback,
    Message,
    ProposalStatus,
    ToolCall,
    Turn,
    TurnStatus,
)
from chat.testing import FakeLlmServer, Reply
from knowledge import services
from knowledge.learning import (
    conversation_learn,
    feedback_learn,
    verified_answer_create,
    verified_answer_match,
)
from knowledge.models import (
    EntrySource,
    EntryStatus,
    Finding,
    FindingType,
    KnowledgeEntry,
    ReviewItem,
    ReviewKind,
    UnansweredQuestion,
)
from knowledge.retrieval import search
from knowledge.tests.test_auditor import BASE, make

pytestmark = pytest.mark.django_db

QUESTION = "por que o CBR0150 abendou?"
NOTE = "O arquivo das filiais veio com campo compactado inválido; pedimos o reenvio ao time de Cobrança e fizemos rerun."
LOG = [{"n": 3, "text": "STEP020 ABEND=S0C7 (data exception: campo compactado invalido no arquivo das filiais)"},
       {"n": 4, "text": "IEF404I CBR0150 - ENDED - ABEND=S0C7"}]


def conversation(user: Any, *, question: str = QUESTION, kb: str | None = None) -> Conversation:
    """A finished no-LLM turn about CBR0150, as the chat records it."""
    conv = Conversation.objects.create(user=user, title=question)
    turn = Turn.objects.create(conversation=conv, user=user, question=question, status=TurnStatus.DONE)
    Message.objects.create(conversation=conv, turn=turn, role="user", content=question)
    Message.objects.create(conversation=conv, turn=turn, role="assistant", content="**CBR0150** … ABEND S0C7")
    ToolCall.objects.create(turn=turn, name="job_details", arguments={"job": "CBR0150"},
                            result={"job": {"name": "CBR0150", "stream": "COBRANCA_DIARIA", "status": "ABEND"}})
    ToolCall.objects.create(turn=turn, name="job_log", arguments={"job": "CBR0150"},
                            result={"job": "COBRANCA_DIARIA.CBR0150", "from": 3, "to": 4, "lines": LOG, "codes": ["S0C7"]})
    Citation.objects.create(turn=turn, kind="joblog", ref="joblog:j1:3-4", title="COBRANCA_DIARIA.CBR0150 log, lines 3-4",
                            url="/jobs/j1/?from=3&to=4#L3", line_start=3, line_end=4)
    if kb:
        Citation.objects.create(turn=turn, kind="kb", ref=kb, title=kb)
    return conv


def test_a_resolved_conversation_becomes_a_pending_draft_with_provenance(operator: Any) -> None:
    conv = conversation(operator)
    item = conversation_learn(conversation_id=conv.pk, acting_user=operator, note=NOTE)
    entry = item.entry
    assert (entry.status, entry.source) == (EntryStatus.PENDING_REVIEW, EntrySource.LEARNED)
    assert entry.external_id.startswith("LRN-") and entry.error_codes == ["S0C7"] and entry.job_patterns == ["CBR0150"]
    assert entry.symptom.startswith(QUESTION) and "ABEND=S0C7" in entry.symptom and entry.solution == NOTE
    assert item.kind == ReviewKind.LEARNED and item.conversation_id == conv.pk
    prov = item.provenance
    assert prov["operator"] == "olivia" and prov["conversation_id"] == str(conv.pk) and prov["note"] == NOTE
    assert prov["log_citations"][0]["lines"] == [3, 4] and prov["log_lines"] == LOG and prov["written_by"] == "template"
    created = AuditEvent.objects.get(action=AuditAction.KB_ENTRY_CREATED, target_id=entry.external_id)
    assert created.actor == operator and created.details["status"] == "pending_review"
    # Never searchable before approval.
    services.entries_index(entry_ids=[entry.pk])
    assert entry.external_id not in [h.external_id for h in search("CBR0150 S0C7 campo compactado").hits]
    # Once per conversation.
    assert conversation_learn(conversation_id=conv.pk, acting_user=operator, note=NOTE) is None
    assert KnowledgeEntry.objects.filter(source=EntrySource.LEARNED).count() == 1


def test_nothing_said_about_the_fix_means_no_draft(operator: Any) -> None:
    assert conversation_learn(conversation_id=conversation(operator).pk, acting_user=operator, note="") is None
    assert not KnowledgeEntry.objects.exists()


def test_the_cited_entry_gives_the_cause(operator: Any) -> None:
    make(status=EntryStatus.APPROVED, **BASE)
    item = conversation_learn(conversation_id=conversation(operator, kb="KB-0003").pk, acting_user=operator, note=NOTE)
    assert "KB-0003" in item.entry.cause and BASE["cause"] in item.entry.cause


def test_with_an_llm_the_model_writes_the_draft(operator: Any, settings: Any) -> None:
    draft = {"title": "CBR0150 abend S0C7 por arquivo de filiais inválido",
             "symptom": "CBR0150 termina em ABEND=S0C7 no STEP020 (data exception).",
             "cause": "Campo compactado inválido no arquivo das filiais.",
             "solution": "Pedir reenvio do arquivo à Cobrança e fazer rerun do CBR0150.",
             "error_codes": ["S0C7"], "jobs": ["CBR0150"]}
    with FakeLlmServer(default=Reply(text="Aqui está:\n" + json.dumps(draft))) as llm:
        settings.LLM_MODEL, settings.LLM_API_BASE, settings.LLM_API_KEY = "openai/fake-model", llm.url, "k"
        item = conversation_learn(conversation_id=conversation(operator).pk, acting_user=operator, note=NOTE)
        sent = llm.requests[0]["body"]["messages"][1]["content"]
    assert "ABEND=S0C7" in sent and NOTE in sent and "untrusted" in llm.requests[0]["body"]["messages"][0]["content"]
    entry = item.entry
    assert (entry.title, entry.cause, entry.solution) == (draft["title"], draft["cause"], draft["solution"])
    assert entry.status == EntryStatus.PENDING_REVIEW and item.provenance["written_by"] == "llm"


def test_llm_down_falls_back_to_the_template(operator: Any, settings: Any) -> None:
    with FakeLlmServer(default=Reply(status=503)) as llm:
        settings.LLM_MODEL, settings.LLM_API_BASE, settings.LLM_API_KEY = "openai/fake-model", llm.url, "k"
        item = conversation_learn(conversation_id=conversation(operator).pk, acting_user=operator, note=NOTE)
    assert item.provenance["written_by"] == "template" and item.entry.solution == NOTE


def _answer(conv: Conversation) -> Message:
    return conv.messages.get(role="assistant")


def test_thumbs_up_after_a_successful_action_drafts_an_entry(operator: Any) -> None:
    conv = conversation(operator, kb="KB-0003")
    make(status=EntryStatus.APPROVED, **BASE)
    ActionProposal.objects.create(conversation=conv, proposed_by=operator, action="rerun", status=ProposalStatus.EXECUTED,
                                  jobs=[{"id": "j1", "name": "CBR0150"}], justification="arquivo reenviado",
                                  expires_at="2030-01-01T00:00:00Z")
    feedback = Feedback.objects.create(message=_answer(conv), user=operator, rating="up", reason="resolveu")
    item = feedback_learn(feedback_id=feedback.pk)
    assert isinstance(item, ReviewItem) and item.provenance["trigger"] == "thumbs_up_after_action"
    assert "rerun" in item.entry.solution and "arquivo reenviado" in item.entry.solution
    assert KnowledgeEntry.objects.get(external_id="KB-0003").helpful_count == 1


def test_thumbs_up_without_an_action_only_counts(operator: Any) -> None:
    conv = conversation(operator, kb="KB-0003")
    make(status=EntryStatus.APPROVED, **BASE)
    assert feedback_learn(feedback_id=Feedback.objects.create(message=_answer(conv), user=operator, rating="up").pk) is None
    assert not ReviewItem.objects.exists()


def test_thumbs_down_queues_the_question_and_repeated_ones_raise_a_finding(make_user: Any) -> None:
    entry = make(status=EntryStatus.APPROVED, **BASE)
    for i in range(3):
        user = make_user(f"op{i}", "operator")
        conv = conversation(user, kb="KB-0003")
        feedback_learn(feedback_id=Feedback.objects.create(message=_answer(conv), user=user, rating="down").pk)
    queued = UnansweredQuestion.objects.get()
    assert queued.question == QUESTION and queued.reason == "thumbs_down" and queued.times_asked == 3
    entry.refresh_from_db()
    assert entry.unhelpful_count == 3
    finding = Finding.objects.get(entry=entry, type=FindingType.THUMBS_DOWN)
    assert "3 thumbs-down" in finding.reason


def test_verified_answers_match_the_same_question_and_count_hits(operator: Any) -> None:
    entry = make(status=EntryStatus.APPROVED, **BASE)
    verified_answer_create(acting_user=operator, entry=entry,
                           question="o FP_CALC_FOLHA abendou com RC=12 logo no início, o que fazer?")
    match = verified_answer_match("FP_CALC_FOLHA abendou com RC=12 logo no início: o que faço?")
    assert match is not None and match.entry.external_id == "KB-0003" and match.similarity >= 0.85
    assert verified_answer_match("quais workstations estão desconectadas?") is None
    entry.refresh_from_db()
    assert match.answer.__class__.objects.get().hit_count == 1 and entry.hit_count == 1 and entry.last_hit_at
    services.entry_retire(acting_user=None, entry=entry, reason="obsoleta")
    assert verified_answer_match("o FP_CALC_FOLHA abendou com RC=12 logo no início, o que fazer?") is None
