"""Verified answers: a question the team already answered and approved is answered with that entry,
marked "verified", whether or not an LLM is configured."""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import ChatEvent
from chat.tests.conftest import answer_of, citations_of, tools_of

VERIFIED_QUESTION = "o FP_CALC_FOLHA abendou com RC=12 logo no início, o que fazer?"


@pytest.fixture
def verified(kb: str, operator: Any) -> Any:
    from knowledge.learning import verified_answer_create
    from knowledge.models import EntryStatus, KnowledgeEntry

    entry = KnowledgeEntry.objects.get(external_id="KB-0003")
    assert entry.status == EntryStatus.APPROVED
    return verified_answer_create(acting_user=operator, entry=entry, question=VERIFIED_QUESTION)


def _events(turn: Any, kind: str) -> list[dict[str, Any]]:
    return [e.payload for e in ChatEvent.objects.filter(turn=turn, type=kind).order_by("id")]


def test_a_matching_question_gets_the_verified_answer_without_an_llm(hwa, verified, ask) -> None:
    turn = ask("FP_CALC_FOLHA abendou com RC=12 logo no início: o que faço?")
    text = answer_of(turn)
    assert text.startswith("**Resposta verificada**") and "KB-0003" in text and verified.entry.solution[:40] in text
    assert tools_of(turn) == [] and citations_of(turn) == ["KB-0003"]
    citation = _events(turn, "citation")[0]
    assert citation["verified"] is True and citation["n"] == 1 and citation["url"] == verified.entry.get_absolute_url()
    done = _events(turn, "done")[0]
    assert done["verified"] is True and done["model"] == "verified" and done["status"] == "done"
    verified.refresh_from_db()
    assert verified.hit_count == 1


def test_the_llm_is_not_asked_when_a_verified_answer_matches(hwa, verified, ask, fake_llm) -> None:
    turn = ask("FP_CALC_FOLHA abendou com RC=12 logo no início: o que faço?")
    assert fake_llm.requests == []
    assert "KB-0003" in answer_of(turn) and _events(turn, "done")[0]["verified"] is True


def test_other_questions_take_the_normal_path(hwa, verified, ask, fake_llm) -> None:
    from chat.testing import Reply

    fake_llm.script = [Reply(text="Nada a dizer.")]
    turn = ask("quais workstations estão desconectadas?")
    assert _events(turn, "done")[0]["verified"] is False and len(fake_llm.requests) == 1
    verified.refresh_from_db()
    assert verified.hit_count == 0
