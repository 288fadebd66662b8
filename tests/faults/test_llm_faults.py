"""LLM down or timing out: the no-LLM mode answers, says so, and does it within the LLM timeout plus
a little. The LLM's 500 and slow-first-token cases are in chat/tests/test_llm.py; these are the
ones a network gives: nobody listening at all, and a model that stops halfway through its answer."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chat.testing import Reply
from chat.tests.conftest import answer_of, ask, fake_llm, hwa, hwa_scenario, kb, kb_index  # noqa: F401  (fixtures)
from tests.topology.stack import free_port


def test_nobody_listening_at_the_llm_address(hwa: Any, kb: Any, ask: Any, settings: Any) -> None:  # noqa: F811
    settings.LLM_MODEL = "openai/fake-model"
    settings.LLM_API_BASE = f"http://127.0.0.1:{free_port()}/v1"  # a closed port: connection refused
    settings.LLM_API_KEY = "test-key"
    settings.LLM_TIMEOUT_SECONDS = 2.0
    started = time.monotonic()
    turn = ask("why did BKP_RMAN_FULL fail?")
    elapsed = time.monotonic() - started
    assert turn.status == "done" and turn.fallback_reason
    text = answer_of(turn)
    assert "no-LLM mode" in text and "KB-0028" in text
    assert elapsed < 15, f"{elapsed:.1f} s"  # bounded (a refused connection should not wait for the timeout at all)


@pytest.mark.parametrize("language", ["pt", "en"])
def test_a_model_that_stops_streaming_halfway(language: str, hwa: Any, kb: Any, ask: Any, fake_llm: Any,  # noqa: F811
                                              settings: Any) -> None:
    settings.LLM_TIMEOUT_SECONDS = 0.5
    # The first words arrive, then the model stalls far beyond the timeout.
    fake_llm.script = [Reply(text="O job FP_CALC_FOLHA " + "..." * 40, chunk_chars=20, chunk_delay=3.0)]
    question = "o que abendou hoje à noite?" if language == "pt" else "what abended tonight?"
    started = time.monotonic()
    turn = ask(question)
    elapsed = time.monotonic() - started
    text = answer_of(turn)
    assert turn.status == "done", turn.status
    assert ("modo sem LLM" if language == "pt" else "no-LLM mode") in text, text
    assert "FP_CALC_FOLHA" in text
    assert elapsed < 8.0, f"{elapsed:.1f} s"
