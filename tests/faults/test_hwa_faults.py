"""HWA down, slow (beyond the client's timeout), answering 500 or 401: the chat still answers within
2 s and says what is stale or unavailable, the dashboard's data carries the stale banner, the
circuit breaker opens and closes by itself, and no action is reported as done when it was not.

The mock HWA runs on a real socket (chat/tests/conftest.py's `hwa`), with its fault switches
(`/mock/control/faults`, docs/hwa.md) turned on after a good first poll.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from audit.models import AuditAction, AuditEvent
from chat import services
from chat.models import ActionProposal, ProposalStatus
from chat.tests.conftest import answer_of, ask, hwa, hwa_scenario, kb, kb_index  # noqa: F401  (fixtures)
from jobs.poll import plan_poll
from jobs.tws.breaker import BreakerState
from jobs.tws.client import get_client

FAULTS = {
    "down": {"outage_seconds": 3600},
    "slow": {"latency_ms": 1500},  # the client's timeout is set to 0.5 s below
    "error 500": {"error_rate": 1.0, "error_status": 500},
    "401": {"unauthorized": True},
}
STALE_WORDS = ("não consegui ler", "não está disponível", "could not read", "indispon", "unavailable", "not available", "desatualizad",
               "stale", "último plano", "last plan", "could not")


def _fault(server: Any, fault: dict[str, Any]) -> None:
    response = httpx.post(f"{server.url}/mock/control/faults", json=fault, timeout=5)
    assert response.status_code == 200, response.text


@pytest.fixture
def hwa_tight(hwa: Any, settings: Any) -> Any:  # noqa: F811
    """HWA with a short client timeout, so a slow HWA is a fast failure for the test too."""
    settings.TWS_TIMEOUT_SECONDS = 0.5
    return hwa


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_chat_answers_fast_and_says_what_is_unavailable(fault: str, hwa_tight: Any, kb: Any, ask: Any,  # noqa: F811
                                                        operator: Any, client_for: Any) -> None:
    _fault(hwa_tight, FAULTS[fault])
    assert plan_poll().ok is False

    # The dashboard's data says the plan shown is stale, and why (the page shows it as a banner).
    client = client_for(operator)
    snapshot = client.get("/api/dashboard/").json()
    freshness = snapshot.get("freshness", snapshot)
    assert freshness["stale"] is True, snapshot.keys()
    assert 'id="stale-banner"' in client.get("/dashboard/").content.decode()

    started = time.monotonic()
    turn = ask("por que o BKP_RMAN_FULL falhou?")
    elapsed = time.monotonic() - started
    text = answer_of(turn)
    assert elapsed < 2.0, f"the answer took {elapsed:.2f} s"
    assert turn.status == "done"
    assert "BKP_RMAN_FULL" in text and "ABEND" in text  # the last plan read still answers the status...
    assert any(word in text.lower() for word in STALE_WORDS), text  # ...and says what it could not read


def test_a_status_answer_from_a_stale_snapshot_says_so(hwa_tight: Any, kb: Any, ask: Any) -> None:  # noqa: F811
    _fault(hwa_tight, FAULTS["down"])
    assert plan_poll().ok is False
    # Answered from the last plan read (HWA is down), so the answer must say it is not live.
    status = answer_of(ask("qual o status do FP_CALC_FOLHA?"))
    assert "ABEND" in status and any(word in status.lower() for word in STALE_WORDS), status
    assert " min" in status, status  # ...and how old it is


@pytest.mark.parametrize("fault", ["down", "error 500"])
def test_breaker_opens_under_a_fault_and_closes_by_itself(fault: str, hwa_tight: Any) -> None:
    client = get_client()
    client.breaker.reset_seconds = 3.0  # the production 30 s, shortened for the test
    _fault(hwa_tight, FAULTS[fault])
    for _ in range(client.breaker.failure_threshold):
        plan_poll()
    assert client.breaker.state is BreakerState.OPEN
    started = time.monotonic()
    plan_poll()  # fails at once: no call goes out while the breaker is open
    assert time.monotonic() - started < 0.3

    httpx.post(f"{hwa_tight.url}/mock/control/faults/clear", timeout=5)
    time.sleep(3.1)
    plan_poll()  # the half-open trial call succeeds and closes it
    assert client.breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_no_action_is_reported_done_when_hwa_did_not_do_it(fault: str, hwa_tight: Any, kb: Any, ask: Any,  # noqa: F811
                                                           operator: Any) -> None:
    proposal = ActionProposal.objects.get(turn=ask("reexecutar FP_CALC_FOLHA"))
    services.proposal_confirm(proposal_id=proposal.id, acting_user=operator, justification="teste de falha do HWA")
    _fault(hwa_tight, FAULTS[fault])
    services.proposal_execute(proposal_id=proposal.id)
    proposal.refresh_from_db()

    assert proposal.status == ProposalStatus.FAILED and proposal.result["ok"] is False, proposal.result
    assert not AuditEvent.objects.filter(action=AuditAction.JOB_ACTION, outcome="success").exists()
    httpx.post(f"{hwa_tight.url}/mock/control/faults/clear", timeout=5)
    actions = httpx.get(f"{hwa_tight.url}/mock/control/state", timeout=5).json()["actions"]
    if fault != "slow":  # a slow HWA may still act after the client gave up; it is then reported as unknown, not done
        assert not [a for a in actions if a["action"] == "rerun"], actions
