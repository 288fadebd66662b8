"""The chat page in a real browser: a streamed, cited answer, then an action confirmed in the dialog.

The server is daphne in its own process and turns run on a Celery worker, as in production (the
same fixtures as tests/test_chat_e2e.py; no fork of this multi-threaded test process).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_chat_e2e import celery_worker_running, live_server_url  # noqa: F401  (fixtures)

from conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chat_page(browser: Any, hwa: Any, live_server_url: str, celery_worker_running: None) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(base_url=f"http://{live_server_url}", locale="en-US", viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.js_errors = errors
    yield page
    context.close()


def test_an_operator_asks_reads_cited_sources_and_confirms_a_rerun(chat_page: Any, sign_in: Any, operator: Any,
                                                                   screenshots: Path) -> None:
    page = chat_page
    sign_in(page, operator, PASSWORD)
    page.goto("/chat/")
    page.fill("#chat-input", "what failed tonight?")
    page.press("#chat-input", "Enter")
    page.wait_for_selector(".msg-assistant[aria-busy=false]")
    body = page.locator(".msg-body").first.inner_text()
    assert "FP_CALC_FOLHA" in body and "CBR0150" in body
    # Tool activity, clickable citations into the jobs pages, feedback buttons.
    assert "plan_query" in page.locator(".msg-tools").first.inner_text()
    cite = page.locator(".msg-body a.cite-ref").first
    assert cite.get_attribute("href").startswith("/jobs/")
    assert page.locator(".feedback button").count() == 2
    assert "?c=" in page.url  # a reload comes back to this conversation
    page.screenshot(path=str(screenshots / "chat-01-answer.png"), full_page=True)

    page.fill("#chat-input", "reexecutar FP_CALC_FOLHA")
    page.press("#chat-input", "Enter")
    page.wait_for_selector(".action-card .card-buttons button.danger")
    page.click(".action-card .card-buttons button.danger")
    page.fill("#confirm-justification", "RH liberou a competência")
    page.click("#confirm-ok")
    page.wait_for_selector(".action-card p.ok", timeout=20000)
    assert "FP_CALC_FOLHA" in page.locator(".action-card").first.inner_text()
    page.screenshot(path=str(screenshots / "chat-02-action.png"), full_page=True)

    # Reload: the conversation is rebuilt from the stored events.
    page.reload()
    page.wait_for_selector(".msg-assistant[aria-busy=false]")
    assert page.locator(".turn").count() == 2
    cite_href = page.locator(".msg-body a.cite-ref").first.get_attribute("href")
    page.goto(cite_href)  # the cited job's page in the jobs app
    assert page.locator("h1").inner_text().split()[0] in body
    assert page.js_errors == []


@pytest.fixture
def shipped_agents(transactional_db: Any) -> None:
    """The shipped agents, which an earlier transactional test may have emptied from their table."""
    from chat.tests.conftest import restore_shipped_agents

    restore_shipped_agents()


def test_an_operator_picks_an_agent_and_sees_the_answer_attributed_to_it(chat_page: Any, shipped_agents: None, sign_in: Any,
                                                                         operator: Any, admin_user: Any, screenshots: Path) -> None:
    from chat.agent.manager import agent_save
    from chat.models import Agent

    page = chat_page
    sign_in(page, operator, PASSWORD)
    page.goto("/chat/")
    picker = page.locator("#chat-agent")
    assert picker.input_value() == ""  # Automatic
    assert page.locator("#chat-agent option").all_inner_texts() == ["Automatic", "Operations", "Failure analysis", "Knowledge"]
    assert "picks the agent" in page.locator("#chat-agent-purpose").inner_text()
    picker.select_option("failure-analysis")
    assert page.locator("#chat-agent-purpose").inner_text().startswith("Why a job failed")

    # A list question the router would give the operations agent: the pick answers it instead.
    page.fill("#chat-input", "what failed tonight?")
    page.press("#chat-input", "Enter")
    page.wait_for_selector(".msg-assistant[aria-busy=false] .msg-agent")
    agent = page.locator(".msg-agent").first
    assert agent.inner_text() == "Agent: Failure analysis (chosen by you)"
    assert agent.get_attribute("data-agent") == "failure-analysis"
    assert "FP_CALC_FOLHA" in page.locator(".msg-body").first.inner_text()
    page.screenshot(path=str(screenshots / "chat-03-agent-picked.png"), full_page=True)

    # A reload keeps the conversation's pick, and the replayed answer keeps its attribution.
    page.reload()
    page.wait_for_selector(".msg-agent")
    assert page.locator("#chat-agent").input_value() == "failure-analysis"
    assert page.locator(".msg-agent").first.inner_text() == "Agent: Failure analysis (chosen by you)"

    # Back to Automatic: the router's choice is named, without "chosen by you".
    page.locator("#chat-agent").select_option("")
    page.fill("#chat-input", "what failed tonight?")
    page.press("#chat-input", "Enter")
    page.locator(".msg-assistant[aria-busy=false] .msg-agent").nth(1).wait_for()  # (the CSP forbids wait_for_function)
    assert page.locator(".msg-agent").nth(1).inner_text() == "Agent: Operations"

    # An agent disabled after the page loaded: a clear error, the page is not left busy, the question is kept.
    knowledge = Agent.objects.get(slug="knowledge")
    knowledge.enabled = False
    agent_save(acting_user=admin_user, agent=knowledge)
    page.locator("#chat-agent").select_option("knowledge")
    page.fill("#chat-input", "how do I fix AWSBHT001E?")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-status:has-text('disabled')")
    assert "The agent Knowledge is disabled" in page.locator("#chat-status").inner_text()
    assert page.locator("#chat-send").is_enabled() and page.locator("#chat-input").input_value() == "how do I fix AWSBHT001E?"
    assert page.locator(".turn").count() == 2
    assert page.js_errors == []
