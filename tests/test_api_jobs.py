"""The REST API: who may call what, filtering and pagination, flat query counts, token clients,
actions through the jobs services, the conversations API and a warning-free OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from audit.models import AuditAction, AuditEvent, AuditOutcome
from jobs.models import JobInstance

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(settings: Any) -> Iterator[Any]:
    """The mock HWA's demo night (clock frozen) polled into the snapshot."""
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


def _job_id(name: str) -> str:
    return JobInstance.objects.get(name=name).hwa_id


# --- permission matrix ----------------------------------------------------------------------------

READ_ENDPOINTS = [
    "/api/jobs/", "/api/jobs/{job}/", "/api/jobs/{job}/history/", "/api/job-streams/", "/api/workstations/",
    "/api/status-events/", "/api/dashboard/", "/api/conversations/",
]
GRANTED = ("operator", "supervisor", "admin_user")
REFUSED = ("outsider", "reviewer", "compliance")


@pytest.mark.parametrize("path", READ_ENDPOINTS)
def test_read_endpoints_admit_operations_roles_only(path: str, plan: Any, request: Any, client_for: Any) -> None:
    url = path.format(job=_job_id("FP_CALC_FOLHA"))
    anonymous = Client().get(url)
    assert anonymous.status_code in (401, 403) and "Location" not in anonymous, "the API never redirects to a form"
    for persona in REFUSED:
        response = client_for(request.getfixturevalue(persona)).get(url)
        assert response.status_code == 403, (persona, url, response.status_code)
        assert response.json()["detail"]
    for persona in GRANTED:
        response = client_for(request.getfixturevalue(persona)).get(url)
        assert response.status_code == 200, (persona, url, response.content[:200])


def test_actions_are_refused_to_other_roles_and_audited(plan: Any, reviewer: Any, client_for: Any) -> None:
    job = _job_id("FP_CALC_FOLHA")
    response = client_for(reviewer).post(f"/api/jobs/{job}/act/", {"action": "rerun", "justification": "x"},
                                         content_type="application/json")
    assert response.status_code == 403
    assert Client().post(f"/api/jobs/{job}/act/", {"action": "rerun", "justification": "x"}).status_code in (401, 403)
    assert not plan.sim.action_log, "nothing reached HWA"


def test_token_authentication_for_api_clients(plan: Any, operator: Any, reviewer: Any) -> None:
    token = Token.objects.create(user=operator)
    client = Client(headers={"Authorization": f"Token {token.key}"})
    body = client.get("/api/jobs/?failed=true").json()
    assert "FP_CALC_FOLHA" in {j["name"] for j in body["results"]}
    bad = Client(headers={"Authorization": "Token not-a-token"}).get("/api/jobs/")
    assert bad.status_code in (401, 403) and "token" in bad.json()["detail"].lower()
    other = Token.objects.create(user=reviewer)
    assert Client(headers={"Authorization": f"Token {other.key}"}).get("/api/jobs/").status_code == 403


# --- lists: filters, pagination, query counts -----------------------------------------------------


def test_job_list_filters_and_paginates(plan: Any, operator: Any, client_for: Any) -> None:
    client = client_for(operator)
    page = client.get("/api/jobs/?limit=5").json()
    assert page["count"] == 40 and len(page["results"]) == 5 and "offset=5" in page["next"]
    held = client.get("/api/jobs/?pattern=FP_*&status=HOLD").json()["results"]
    assert {j["name"] for j in held} == {"FP_GERA_CNAB_PAGTO", "FP_ENVIA_BANCO"}
    calc = client.get("/api/jobs/?name=fp_calc_folha").json()["results"][0]
    assert (calc["status"], calc["return_code"], calc["critical"], calc["stream"]) == ("ABEND", 12, True, "FOLHA_PAGAMENTO")
    assert calc["url"] == f"/jobs/{calc['id']}/"
    assert [j["name"] for j in client.get("/api/jobs/?late=true").json()["results"]] == ["DWV_CARGA_FATO"]
    assert {w["name"] for w in client.get("/api/workstations/?linked=false").json()["results"]} == {"PRD_WIN02"}
    assert client.get("/api/job-streams/?name=FOLHA_PAGAMENTO").json()["results"][0]["status"] == "STUCK"
    assert client.get("/api/jobs/?failed=maybe").status_code == 400, "a bad filter is a clear 400, not a 500"
    assert client.get("/api/jobs/no-such-job/").status_code == 404


@pytest.mark.parametrize("path", ["/api/jobs/", "/api/job-streams/", "/api/workstations/", "/api/status-events/"])
def test_list_query_count_does_not_grow_with_the_page(path: str, plan: Any, operator: Any, client_for: Any) -> None:
    from jobs.tests.conftest import control

    control(plan, "advance", {"seconds": 3600})  # a night's worth of status changes for the events list
    from jobs.poll import plan_poll

    plan_poll()
    client = client_for(operator)
    client.get(path)  # warm the session and role caches
    counts = []
    for limit in (1, 40):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{path}?limit={limit}")
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], f"{path}: {counts[0]} queries for 1 row, {counts[1]} for 40"
    assert counts[1] <= 6


def test_dashboard_snapshot_query_count_is_flat(plan: Any, operator: Any, client_for: Any) -> None:
    client = client_for(operator)
    client.get("/api/dashboard/")
    with CaptureQueriesContext(connection) as first:
        snapshot = client.get("/api/dashboard/").json()
    from jobs.poll import plan_poll
    from jobs.tests.conftest import control

    control(plan, "advance", {"seconds": 7200})
    plan_poll()
    with CaptureQueriesContext(connection) as second:
        client.get("/api/dashboard/")
    assert len(first) == len(second) <= 16
    assert sum(snapshot["counts"].values()) == 40
    assert "FP_CALC_FOLHA" in {j["name"] for j in snapshot["failed"]}
    assert [j["name"] for j in snapshot["late"]] == ["DWV_CARGA_FATO"]
    assert snapshot["workstation_health"]["unlinked"] == 1
    assert len(snapshot["abends_per_hour"]) == 24 and sum(b["count"] for b in snapshot["abends_per_hour"]) >= 1
    folha = next(s for s in snapshot["streams"] if s["name"] == "FOLHA_PAGAMENTO")
    assert folha["failed"] >= 1 and folha["total"] >= folha["done"]
    filtered = client.get("/api/dashboard/?workstation=PRD_WIN02").json()
    assert all(j["workstation"] == "PRD_WIN02" for j in filtered["timeline"] + filtered["failed"])
    assert snapshot["seq"] >= 0 and snapshot["freshness"]["stale"] is False


def test_status_events_list_the_poll_changes(plan: Any, operator: Any, client_for: Any) -> None:
    from jobs.poll import plan_poll
    from jobs.tests.conftest import control

    control(plan, "advance", {"seconds": 3600})
    plan_poll()
    events = client_for(operator).get("/api/status-events/?limit=200").json()
    assert events["count"] > 0
    first = events["results"][0]
    assert first["to_status"] and first["job_name"] and first["observed_at"]
    one_job = client_for(operator).get(f"/api/status-events/?job={first['job_id']}").json()["results"]
    assert {e["job_id"] for e in one_job} == {first["job_id"]}


# --- folders ------------------------------------------------------------------------------------


def test_every_list_filters_by_hwa_folder(plan: Any, operator: Any, client_for: Any) -> None:
    from jobs.poll import plan_poll
    from jobs.tests.conftest import control

    client = client_for(operator)
    rh = client.get("/api/jobs/?folder=/RH/").json()
    assert rh["count"] == 4 and {(j["folder"], j["stream"]) for j in rh["results"]} == {("/RH/", "FOLHA_PAGAMENTO")}
    assert client.get("/api/jobs/?folder=rh").json()["count"] == 4, "slashes may be left out and case is ignored"
    finance = client.get("/api/jobs/?folder=/FINANCEIRO/&limit=50").json()
    assert finance["count"] == 13 and {j["folder"] for j in finance["results"]} == {"/FINANCEIRO/"}, "that folder, not its sub-folders"
    failed_in_ti = client.get("/api/jobs/?folder=/TI/&failed=true").json()["results"]
    assert {j["name"] for j in failed_in_ti} == {"HK_LIMPA_STDLIST", "HK_ROTACIONA_LOGS", "BKP_RMAN_FULL"}
    assert client.get("/api/jobs/?folder=/&failed=true").json()["count"] == 0, "nothing failed in the root folder tonight"
    assert client.get("/api/jobs/?folder=/NAO_EXISTE/").json()["count"] == 0
    streams = client.get("/api/job-streams/?folder=/TI/").json()["results"]
    assert {(s["name"], s["folder"]) for s in streams} == {("HOUSEKEEPING_TWS", "/TI/"), ("BACKUP_FS", "/TI/"), ("BACKUP_NOTURNO_ORACLE", "/TI/")}
    assert client.get("/api/workstations/?folder=/").json()["count"] == 7
    assert client.get("/api/workstations/?folder=/RH/&linked=true").json()["count"] == 0

    control(plan, "advance", {"seconds": 3600})
    plan_poll()
    every = client.get("/api/status-events/?limit=500").json()
    ti = client.get("/api/status-events/?folder=/TI/&limit=500").json()
    expected = [e["id"] for e in every["results"] if e["folder"] == "/TI/"]
    assert expected and [e["id"] for e in ti["results"]] == expected and ti["count"] < every["count"]


def test_dashboard_snapshot_filters_by_folder(plan: Any, operator: Any, client_for: Any) -> None:
    client = client_for(operator)
    ti = client.get("/api/dashboard/?folder=/TI/").json()
    assert ti["filters"]["folder"] == "/TI/"
    assert sum(ti["counts"].values()) == 7
    assert {j["name"] for j in ti["failed"]} == {"HK_LIMPA_STDLIST", "HK_ROTACIONA_LOGS", "BKP_RMAN_FULL"}
    assert {j["folder"] for j in ti["failed"] + ti["timeline"]} == {"/TI/"}
    assert {s["name"] for s in ti["streams"]} == {"HOUSEKEEPING_TWS", "BACKUP_FS", "BACKUP_NOTURNO_ORACLE"}
    assert all(s["folder"] == "/TI/" for s in ti["streams"])
    both = client.get("/api/dashboard/?folder=ti&workstation=PRD_ORA01").json()
    assert {j["name"] for j in both["failed"]} == {"BKP_RMAN_FULL"} and sum(both["counts"].values()) == 3
    everything = client.get("/api/dashboard/").json()
    assert sum(everything["counts"].values()) == 40 and everything["filters"]["folder"] == ""
    calc = next(j for j in everything["failed"] if j["name"] == "FP_CALC_FOLHA")
    assert calc["folder"] == "/RH/"


BAD_FOLDERS = {
    "/R H/": "Not a valid HWA folder", "/-RH/": "Not a valid HWA folder", "/FIN@/": "Not a valid HWA folder",
    "//": "Not a valid HWA folder", "/RH//FOLHA/": "Not a valid HWA folder", "/RH/\x00": "Not a valid HWA folder",
    "/FINANÇAS/": "Not a valid HWA folder", "/" + "A" * 257 + "/": "at most 256 characters",
    "/".join(["ABCDEFGHIJ"] * 81): "at most 800 characters",
}


@pytest.mark.parametrize("path", ["/api/jobs/", "/api/job-streams/", "/api/workstations/", "/api/status-events/", "/api/dashboard/"])
def test_a_bad_folder_is_a_clear_400(path: str, operator: Any, client_for: Any) -> None:
    client = client_for(operator)
    for bad, message in BAD_FOLDERS.items():
        response = client.get(path, {"folder": bad}, headers={"Accept-Language": "en"})
        assert response.status_code == 400, (path, bad, response.status_code)
        assert message in " ".join(response.json()["folder"]), (path, bad, response.json())
    assert client.get(path, {"folder": ""}).status_code == 200, "an empty filter is no filter"
    pt = client.get(path, {"folder": "/R H/"}, headers={"Accept-Language": "pt-br"}).json()["folder"][0]
    assert "Not a valid" not in pt, "the message is translated"


def test_the_openapi_schema_documents_the_folder_filter(operator: Any, client_for: Any) -> None:
    schema = client_for(operator).get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).json()
    for path in ("/api/jobs/", "/api/job-streams/", "/api/workstations/", "/api/status-events/", "/api/dashboard/"):
        folder = next(p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "folder")
        assert folder["in"] == "query" and not folder.get("required"), path
        # The rule as a pattern, or empty (no filter): spectacular's `oneOf` for a blank-allowed field.
        rule = next(v for v in folder["schema"].get("oneOf", [folder["schema"]]) if "pattern" in v)
        assert rule["maxLength"] == 800 and rule["pattern"].startswith("^(/|"), path
        assert "folder" in folder["description"].lower(), path
    for component in ("Job", "JobStream", "Workstation", "StatusEvent"):
        assert "folder" in schema["components"]["schemas"][component]["properties"], component


# --- live reads and actions -----------------------------------------------------------------------


def test_job_log_and_dependencies_come_live_from_hwa(plan: Any, operator: Any, client_for: Any) -> None:
    client = client_for(operator)
    job = _job_id("FP_CALC_FOLHA")
    log = client.get(f"/api/jobs/{job}/log/").json()
    assert log["lines"] and any("FP_CALC_FOLHA" in line for line in log["lines"])
    deps = client.get(f"/api/jobs/{job}/dependencies/").json()
    assert deps["successors"] and all(n["id"] and n["status"] for n in deps["successors"])
    httpx.post(f"{plan.url}/mock/control/faults", json={"outage_seconds": 30}, timeout=5)
    down = client.get(f"/api/jobs/{job}/log/")
    assert down.status_code in (502, 503) and down.json()["code"].startswith("hwa_"), "HWA down: a clear code, not a 500"


def test_action_preview_then_act_goes_through_the_jobs_services(plan: Any, operator: Any, client_for: Any) -> None:
    client = client_for(operator)
    job = _job_id("FP_CALC_FOLHA")
    preview = client.get(f"/api/jobs/{job}/preview/?action=rerun").json()
    assert preview["allowed"] is True and preview["job"]["status"] == "ABEND"
    assert client.post(f"/api/jobs/{job}/act/", {"action": "rerun", "justification": ""},
                       content_type="application/json").status_code == 400
    done = client.post(f"/api/jobs/{job}/act/", {"action": "rerun", "justification": "DBA fixed the tablespace", "ticket": "INC-1"},
                       content_type="application/json")
    assert done.status_code == 200, done.content
    assert done.json()["status_after"] != "ABEND"
    assert any(a.get("action") == "rerun" for a in plan.sim.action_log)
    event = AuditEvent.objects.filter(action=AuditAction.JOB_ACTION, outcome=AuditOutcome.SUCCESS).latest("sequence")
    assert event.actor_id == operator.pk and event.details["justification"] == "DBA fixed the tablespace"
    wrong = client.post(f"/api/jobs/{_job_id('HK_LIMPA_STDLIST')}/act/", {"action": "release", "justification": "try"},
                        content_type="application/json")
    assert wrong.status_code == 409 and wrong.json()["code"] == "action_not_allowed"


def test_high_risk_action_needs_the_chats_four_eyes(plan: Any, supervisor: Any, client_for: Any) -> None:
    client = client_for(supervisor)
    critical = JobInstance.objects.filter(critical=True, status__in=["HOLD", "READY", "WAIT", "EXEC"]).first()
    assert critical is not None, "the demo night has a critical job that can still be cancelled"
    response = client.post(f"/api/jobs/{critical.hwa_id}/act/", {"action": "cancel", "justification": "stop it now"},
                           content_type="application/json")
    assert response.status_code == 409 and response.json()["code"] == "second_approver_required"
    assert not plan.sim.action_log


# --- conversations --------------------------------------------------------------------------------


def test_conversations_api_shows_only_your_own(operator: Any, supervisor: Any, client_for: Any) -> None:
    from chat.models import Conversation, Message, Turn

    mine = Conversation.objects.create(user=operator, title="FOLHA abend")
    turn = Turn.objects.create(conversation=mine, user=operator, question="status of FP_CALC_FOLHA?")
    Message.objects.create(conversation=mine, turn=turn, role="user", content="status of FP_CALC_FOLHA?")
    theirs = Conversation.objects.create(user=supervisor, title="not yours")
    client = client_for(operator)
    listed = client.get("/api/conversations/").json()
    assert [c["title"] for c in listed["results"]] == ["FOLHA abend"]
    detail = client.get(f"/api/conversations/{mine.pk}/").json()
    assert detail["messages"][0]["content"] == "status of FP_CALC_FOLHA?"
    assert client.get(f"/api/conversations/{theirs.pk}/").status_code == 404


# --- schema ---------------------------------------------------------------------------------------


def test_openapi_schema_generates_without_warnings_and_docs_page_is_served(operator: Any, client_for: Any, capsys: Any) -> None:
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--file", "/dev/null")
    captured = capsys.readouterr()
    problems = [line for line in (captured.err + captured.out).splitlines() if "Warning [" in line or "Error [" in line]
    assert not problems, "\n".join(problems)
    client = client_for(operator)
    schema = client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/jobs/", "/api/jobs/{hwa_id}/log/", "/api/dashboard/", "/api/status-events/", "/api/conversations/",
                 "/api/workstations/", "/api/job-streams/", "/api/kb/search/"):
        assert path in paths, path
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower(), "the docs page loads nothing from a CDN"
