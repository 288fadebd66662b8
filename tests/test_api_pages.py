"""The operators' pages built on the API: dashboard, job page, job log viewer, action confirmation
(server-rendered, no browser; the browser flows are in tests/browser/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditAction, AuditEvent, AuditOutcome
from jobs.models import JobInstance

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(settings: Any) -> Iterator[Any]:
    from jobs.poll import plan_poll
    from jobs.tws.mock.auth import MOCK_PASSWORD, MOCK_USERNAME
    from jobs.tws.mock.server import MockHwaServer

    server = MockHwaServer(scenario="demo", port=0, speed=0.0).start()
    settings.TWS_URL = server.url
    settings.TWS_USERNAME = MOCK_USERNAME
    settings.TWS_PASSWORD = MOCK_PASSWORD
    settings.TWS_API_KEY = ""
    assert plan_poll().ok
    yield server
    server.stop()


def _id(name: str) -> str:
    return JobInstance.objects.get(name=name).hwa_id


PAGES = ["/dashboard/", "/jobs/{job}/", "/jobs/{job}/log/", "/jobs/{job}/action/?action=rerun"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_admit_operations_roles_only(path: str, plan: Any, request: Any, client_for: Any) -> None:
    url = path.format(job=_id("FP_CALC_FOLHA"))
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/account/signin/?next=")
    for persona in ("outsider", "reviewer", "compliance"):
        assert client_for(request.getfixturevalue(persona)).get(url).status_code == 403, persona
    for persona in ("operator", "supervisor", "admin_user"):
        assert client_for(request.getfixturevalue(persona)).get(url).status_code == 200, persona


def test_nav_links_to_the_dashboard_for_operators_only(operator: Any, reviewer: Any, client_for: Any) -> None:
    assert 'href="/dashboard/"' in client_for(operator).get("/").content.decode()
    assert 'href="/dashboard/"' not in client_for(reviewer).get("/").content.decode()


def test_dashboard_page_carries_what_its_script_needs_and_no_inline_code(plan: Any, operator: Any, client_for: Any) -> None:
    html = client_for(operator).get("/dashboard/", headers={"Accept-Language": "en"}).content.decode()
    assert 'data-api="/api/dashboard/"' in html and 'data-ws="/ws/dashboard/"' in html
    assert '<option value="PRD_WIN02">' in html and '<option value="FOLHA_PAGAMENTO">' in html
    assert 'id="dashboard-i18n" type="application/json"' in html
    assert "<script>" not in html and "style=" not in html, "CSP: no inline script or style"
    assert '<label for="f-workstation">' in html, "every filter has a label"


def test_dashboard_offers_a_folder_filter_and_a_folder_column(plan: Any, operator: Any, client_for: Any) -> None:
    html = client_for(operator).get("/dashboard/", headers={"Accept-Language": "en"}).content.decode()
    assert '<label for="f-folder">Folder</label>' in html and '<select id="f-folder" name="folder">' in html
    folder_select = html.split('<select id="f-folder"', 1)[1].split("</select>", 1)[0]
    options = [part.split('"', 1)[0] for part in folder_select.split('<option value="')[1:]]
    assert options == ["", "/", "/FINANCEIRO/", "/FINANCEIRO/TESOURARIA/", "/RH/", "/TI/"], "every folder in the plan, once"
    assert html.index('id="f-folder"') < html.index('id="f-workstation"'), "beside the other filters"
    for table in ("failed-table", "late-table"):
        head = html.split(f'<tbody id="{table}">', 1)[0].rsplit("<thead>", 1)[1]
        assert '<th scope="col">Folder</th>' in head, table
    pt = client_for(operator)
    pt.post("/account/language/", {"language": "pt-br", "next": "/dashboard/"})
    assert '<label for="f-folder">Pasta</label>' in pt.get("/dashboard/").content.decode()


def test_job_page_names_the_jobs_folder(plan: Any, operator: Any, client_for: Any) -> None:
    html = client_for(operator).get(f"/jobs/{_id('FP_CALC_FOLHA')}/", headers={"Accept-Language": "en"}).content.decode()
    assert "PRD_LNX01#/RH/FOLHA_PAGAMENTO" in html, "HWA's notation, folder included"
    assert "<dt>Folder</dt><dd>/RH/</dd>" in html


def test_dashboard_speaks_portuguese_and_english(plan: Any, operator: Any, client_for: Any) -> None:
    client = client_for(operator)
    en = client.get("/dashboard/", headers={"Accept-Language": "en"}).content.decode()
    assert "Failed jobs" in en and "Abends per hour" in en
    client.post("/account/language/", {"language": "pt-br", "next": "/dashboard/"})
    pt = client.get("/dashboard/").content.decode()
    assert 'lang="pt-br"' in pt


def test_job_page_shows_state_history_neighbours_and_allowed_actions(plan: Any, operator: Any, client_for: Any) -> None:
    html = client_for(operator).get(f"/jobs/{_id('FP_CALC_FOLHA')}/", headers={"Accept-Language": "en"}).content.decode()
    assert "FP_CALC_FOLHA" in html and "ABEND" in html and "FOLHA_PAGAMENTO" in html
    assert '<svg class="graph"' in html, "predecessors and successors drawn"
    assert '<option value="rerun">' in html and '<option value="kill">' not in html, "only actions valid for ABEND"
    assert f'href="/jobs/{_id("FP_CALC_FOLHA")}/log/"' in html


def test_job_page_says_when_hwa_is_down_instead_of_failing(plan: Any, operator: Any, client_for: Any) -> None:
    import httpx

    httpx.post(f"{plan.url}/mock/control/faults", json={"outage_seconds": 30}, timeout=5)
    response = client_for(operator).get(f"/jobs/{_id('FP_CALC_FOLHA')}/", headers={"Accept-Language": "en"})
    assert response.status_code == 200 and "HWA did not answer" in response.content.decode()
    log = client_for(operator).get(f"/jobs/{_id('FP_CALC_FOLHA')}/log/")
    assert log.status_code == 200 and 'class="error"' in log.content.decode()


def test_log_viewer_anchors_every_line_and_highlights_failures_and_citations(plan: Any, operator: Any, client_for: Any) -> None:
    job = _id("FP_CALC_FOLHA")
    html = client_for(operator).get(f"/jobs/{job}/log/?from=3&to=4").content.decode()
    assert 'id="L1"' in html and 'href="#L1"' in html
    assert 'id="L3" class=" cited"' in html or 'id="L3" class="failure cited"' in html
    assert 'class="failure' in html, "the abend's lines are highlighted"
    assert "Exit Status" in html


def test_action_confirmation_previews_then_acts_with_a_justification(plan: Any, operator: Any, client_for: Any) -> None:
    client = client_for(operator)
    job = _id("FP_CALC_FOLHA")
    page = client.get(f"/jobs/{job}/action/?action=rerun", headers={"Accept-Language": "en"}).content.decode()
    assert "Successors that will run" in page and 'name="justification"' in page
    missing = client.post(f"/jobs/{job}/action/", {"action": "rerun", "justification": ""})
    assert missing.status_code == 400 and "justification" in missing.content.decode().lower()
    assert not plan.sim.action_log
    done = client.post(f"/jobs/{job}/action/", {"action": "rerun", "justification": "tablespace extended by the DBA"})
    assert done.status_code == 302 and done["Location"] == f"/jobs/{job}/"
    assert any(a.get("action") == "rerun" for a in plan.sim.action_log)
    assert AuditEvent.objects.filter(action=AuditAction.JOB_ACTION, outcome=AuditOutcome.SUCCESS, actor=operator).exists()
    assert client.get(f"/jobs/{job}/action/?action=nonsense").status_code == 302
