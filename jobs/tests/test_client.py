"""The HWA client against the mock HWA over real HTTP: reads, paging, OQL, auth, faults, actions."""

from __future__ import annotations

import time

import httpx
import pytest

from jobs.tests.conftest import control, find_job
from jobs.tws import oql
from jobs.tws.breaker import BreakerState, CircuitBreaker
from jobs.tws.client import HwaClient, Justification
from jobs.tws.errors import (
    HwaAuthError,
    HwaBadRequest,
    HwaCircuitOpen,
    HwaNotFound,
    HwaProtocolError,
    HwaRefused,
    HwaUnavailable,
)
from jobs.tws.mock.auth import MOCK_API_KEY, MOCK_USERNAME, READONLY_API_KEY
from jobs.tws.mock.server import MockHwaServer


def test_every_read_call_returns_typed_plan_objects(hwa, mock_hwa):
    assert "mock" in (hwa.engine_info().display_version or "")
    jobs = hwa.jobs()
    assert len(jobs) == len(mock_hwa.sim.jobs)
    calc = next(j for j in jobs if j.name == "FP_CALC_FOLHA")
    assert (calc.status, calc.last_run_common_status, calc.last_run.return_code, calc.critical) == ("ABEND", "ERROR", 12, True)
    assert calc.dependencies == []  # lists carry no dependencies, as in HWA
    detail = hwa.job(calc.id)
    assert [d.label for d in detail.dependencies] == ["FOLHA_PAGAMENTO.FP_EXTRAI_PONTO"]
    assert hwa.jobs_page(limit=5, offset=0).count == len(jobs)
    counts = hwa.job_count(grouping="status")
    assert counts.count == len(jobs) and counts.grouped_count["ABEND"] >= 5
    assert [n.name for n in hwa.job_successors(calc.id, depth=3)] == ["FP_GERA_CNAB_PAGTO", "FP_ENVIA_BANCO"]
    assert [n.name for n in hwa.job_predecessors(calc.id)] == ["FP_EXTRAI_PONTO"]
    log = hwa.job_log(calc.last_run.id)
    assert "FOL-0012" in log and "Exit Status           : 12" in log
    assert hwa.job_log(calc.last_run.id, from_line=2, to_line=3).splitlines()[0].startswith("= JOB")
    streams = hwa.job_streams()
    folha = next(s for s in streams if s.name == "FOLHA_PAGAMENTO")
    assert folha.status == "STUCK" and folha.common_status == "BLOCKED"
    assert hwa.job_stream(folha.id).name == "FOLHA_PAGAMENTO"
    assert hwa.job_stream_count(grouping="status").count == len(streams)
    stations = {w.name: w for w in hwa.workstations()}
    assert not stations["PRD_WIN02"].linked and stations["PRD_LNX01"].linked
    assert hwa.workstation(stations["PRD_LNX02"].id).limit == 1


def test_failing_demo_jobs_logs_carry_the_knowledge_base_codes(hwa):
    jobs = {j.name: j for j in hwa.jobs(oql=oql.in_("name", ["BKP_RMAN_FULL", "CBR0150", "HK_ROTACIONA_LOGS", "CB_IMPORTA_RETORNO"]))}
    assert "ORA-19502" in hwa.job_log(jobs["BKP_RMAN_FULL"].last_run.id)
    assert "S0C7" in hwa.job_log(jobs["CBR0150"].last_run.id)
    assert "AWSBHT001E" not in hwa.job_log(jobs["HK_ROTACIONA_LOGS"].last_run.id) or jobs["HK_ROTACIONA_LOGS"].status == "FAIL"
    assert jobs["HK_ROTACIONA_LOGS"].status == "FAIL"
    assert "RC=12" in hwa.job_log(jobs["CB_IMPORTA_RETORNO"].last_run.id)


def test_paging_reads_every_page(hwa, mock_hwa):
    before = mock_hwa.request_count
    jobs = hwa.jobs(page_size=7)
    assert len(jobs) == 40 and len({j.id for j in jobs}) == 40
    assert mock_hwa.request_count - before == 6  # 40 jobs in pages of 7
    page = httpx.get(f"{mock_hwa.url}/twsd/api/v2/plan/job", params={"limit": 7, "offset": 7},
                     auth=(MOCK_USERNAME, "resync-mock-password")).json()
    assert page["count"] == 40 and "offset=14" in page["next"] and "offset=0" in page["previous"]


def test_oql_values_are_escaped_against_hostile_job_names(mock_hwa):
    scenario = {
        "name": "hostile", "seed": 1, "plan_start": "2026-11-24T21:00:00-03:00",
        "workstations": [{"name": "WS1"}],
        "streams": [{"name": "S1", "workstation": "WS1", "at": "21:00", "jobs": [
            {"name": "D'AVILA_JOB", "duration": 60}, {"name": "PLAIN_JOB", "duration": 60},
            {"name": "X' OR name LIKE '@", "duration": 60},
        ]}],
    }
    with MockHwaServer(scenario=scenario) as server:
        client = HwaClient(base_url=server.url, api_key=MOCK_API_KEY, retries=0)
        assert [j.name for j in client.jobs(oql=oql.eq("name", "D'AVILA_JOB"))] == ["D'AVILA_JOB"]
        # Text a person typed stays one literal: it matches the one job of that odd name, never everything.
        assert [j.name for j in client.jobs(oql=oql.eq("name", "X' OR name LIKE '@"))] == ["X' OR name LIKE '@"]
        assert client.jobs(oql=oql.eq("name", "PLAIN_JOB' OR name != '")) == []
        assert [j.name for j in client.jobs(oql=oql.like("name", "PLAIN*") | oql.eq("name", "D'AVILA_JOB"))] == ["D'AVILA_JOB", "PLAIN_JOB"]
        ordered = client.jobs(oql=oql.order_by(oql.ne("name", "nothing"), "name", descending=True))
        assert ordered[0].name == "X' OR name LIKE '@"
    with pytest.raises(oql.OqlError):
        oql.eq("name) OR (1", "x")
    with pytest.raises(oql.OqlError):
        oql.eq("name", "line\nbreak")


def test_bad_oql_is_a_typed_bad_request(hwa):
    with pytest.raises(HwaBadRequest) as caught:
        hwa.jobs_page(oql="name === 'X'")
    assert caught.value.message_ids == ["OQL_FILTER_SYNTAX_ERROR"] and caught.value.status_code == 400


def test_basic_and_bearer_auth_and_wrong_credentials(mock_hwa, hwa):
    assert hwa.engine_info().full_version
    with HwaClient(base_url=mock_hwa.url + "/twsd/api/v2/", api_key=MOCK_API_KEY) as bearer:
        assert len(bearer.workstations()) == 7
    with HwaClient(base_url=mock_hwa.url, username=MOCK_USERNAME, password="wrong", retries=0) as wrong, pytest.raises(HwaAuthError) as caught:
        wrong.jobs()
    assert caught.value.status_code == 401
    with HwaClient(base_url=mock_hwa.url, api_key="expired-key", retries=0) as expired, pytest.raises(HwaAuthError):
        expired.engine_info()
    calc = find_job(mock_hwa, "FP_CALC_FOLHA")
    with HwaClient(base_url=mock_hwa.url, api_key=READONLY_API_KEY) as viewer:
        assert viewer.job(calc.id).status == "ABEND"
        with pytest.raises(HwaAuthError) as caught:
            viewer.job_rerun(calc.id)
    assert caught.value.status_code == 403 and mock_hwa.sim.action_log == []


def test_reads_are_retried_with_backoff_but_actions_are_not(hwa, mock_hwa):
    control(mock_hwa, "faults", {"fail_next": 2, "error_status": 503})
    assert len(hwa.workstations()) == 7  # two failures, then the third try answers
    control(mock_hwa, "faults", {"fail_next": 1, "error_status": 503})
    before = mock_hwa.request_count
    with pytest.raises(HwaUnavailable) as caught:
        hwa.job_hold(find_job(mock_hwa, "ETL_EST_EXTRAI").id)
    assert mock_hwa.request_count - before == 1 and caught.value.message_ids == ["AWSJSY404E", "AWSBIN091E"]
    control(mock_hwa, "faults", {"fail_next": 5})
    with pytest.raises(HwaUnavailable):
        hwa.engine_info()


def test_circuit_breaker_opens_under_an_outage_and_closes_after_it(mock_hwa):
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=0.3)
    client = HwaClient(base_url=mock_hwa.url, api_key=MOCK_API_KEY, retries=0, breaker=breaker, timeout=2)
    control(mock_hwa, "faults", {"outage_seconds": 30})
    for _ in range(3):
        with pytest.raises(HwaUnavailable):
            client.engine_info()
    assert breaker.state is BreakerState.OPEN
    before = mock_hwa.request_count
    started = time.monotonic()
    with pytest.raises(HwaCircuitOpen):
        client.engine_info()
    assert time.monotonic() - started < 0.1 and mock_hwa.request_count == before  # not even attempted
    control(mock_hwa, "faults/clear")
    time.sleep(0.35)
    assert breaker.state is BreakerState.HALF_OPEN
    assert client.engine_info().full_version
    assert breaker.state is BreakerState.CLOSED


def test_slow_hwa_times_out_as_unavailable(mock_hwa):
    control(mock_hwa, "faults", {"latency_ms": 600})
    with HwaClient(base_url=mock_hwa.url, api_key=MOCK_API_KEY, retries=0, timeout=0.2) as client, pytest.raises(HwaUnavailable) as caught:
        client.engine_info()
    assert "in time" in caught.value.message


@pytest.mark.parametrize("mode", ["html", "truncated", "wrong_types", "missing_fields", "empty"])
def test_malformed_bodies_become_protocol_errors(mock_hwa, hwa, mode):
    control(mock_hwa, "faults", {"malformed": mode})
    with pytest.raises(HwaProtocolError):
        hwa.jobs()
    with pytest.raises(HwaProtocolError):
        hwa.job("any-id")


def test_not_found_and_unsupported_media_type(mock_hwa, hwa):
    with pytest.raises(HwaNotFound) as caught:
        hwa.job("no-such-job")
    assert caught.value.message_ids == ["AWSBIO006E"]
    job = find_job(mock_hwa, "ETL_EST_EXTRAI")
    raw = httpx.put(f"{mock_hwa.url}/twsd/api/v2/plan/job/{job.id}/action/hold", content=b"{}",
                    headers={"Authorization": f"Bearer {MOCK_API_KEY}"})
    assert raw.status_code == 415 and job.status == "READY"


def test_each_action_guard_refuses_the_way_hwa_does(mock_hwa, hwa):
    abended = find_job(mock_hwa, "FP_CALC_FOLHA")
    waiting = find_job(mock_hwa, "FP_GERA_CNAB_PAGTO")
    running = find_job(mock_hwa, "DWV_CARGA_FATO")
    refused = [
        ("kill", abended), ("hold", abended), ("cancel", abended), ("confirm-abend", abended),
        ("release", waiting),  # waiting for a predecessor, not held
        ("rerun", running), ("hold", running), ("confirm-succ", find_job(mock_hwa, "CP_ENVIA_REMESSA")),
    ]
    for action, job in refused:
        with pytest.raises(HwaRefused) as caught:
            hwa.job_action(job.id, action) if action != "rerun" else hwa.job_rerun(job.id)
        assert caught.value.message_ids == ["AWSBIN076E"], action
    with pytest.raises(HwaRefused):
        hwa.job_release_dependencies(find_job(mock_hwa, "CP_ENVIA_REMESSA").id)
    assert mock_hwa.sim.action_log == []


def test_actions_move_jobs_and_carry_the_justification(mock_hwa, hwa):
    why = Justification("Reexecução liberada pelo RH", ticket="INC-4711")
    calc = find_job(mock_hwa, "FP_CALC_FOLHA")
    hwa.job_rerun(calc.id, justification=why)
    rerun = hwa.job(calc.id)
    assert rerun.status == "INTRO" and len(rerun.jobruns) == 2 and rerun.last_run.rerun_type == "RERUN"
    logged = mock_hwa.sim.action_log[-1]
    assert logged["justification"] == {"Justification-Category": "Resync", "Justification-Description": "Reexecução liberada pelo RH",
                                       "Justification-Ticket-Num": "INC-4711"}
    control(mock_hwa, "advance", {"seconds": 400})
    assert hwa.job(calc.id).status == "SUCC" and hwa.job(calc.id).last_run.return_code == 0

    ready = find_job(mock_hwa, "ETL_EST_EXTRAI")
    hwa.job_hold(ready.id)
    held = hwa.job(ready.id)
    assert (held.status, held.substatus, held.priority, held.last_run_common_status) == ("HOLD", "HOLD_PRIORITY_ZERO", 0, "HELD")
    hwa.job_release(ready.id)
    assert hwa.job(ready.id).status == "READY"  # back behind the workstation's limit of 1

    fato = find_job(mock_hwa, "DWV_CARGA_FATO")
    hwa.job_kill(fato.id)
    assert hwa.job(fato.id).status == "EXEC"  # kill is asynchronous
    control(mock_hwa, "advance", {"seconds": 5})
    assert hwa.job(fato.id).status == "ABEND"
    assert hwa.job(ready.id).status in ("INTRO", "EXEC")  # the freed slot launched the waiting job

    arquivo = find_job(mock_hwa, "DWV_VALIDA_ARQ")
    hwa.job_release_dependencies(arquivo.id)
    released = hwa.job(arquivo.id)  # no longer waits for the file; now waits for the workstation's one slot
    assert (released.status, released.substatus) == ("READY", "READY_WAITING_FOR_LIMIT")

    pend = find_job(mock_hwa, "HK_VERIFICA_PLANO")
    hwa.job_confirm_abend(pend.id)
    assert hwa.job(pend.id).status == "ABEND"
    hwa.job_confirm_succ(pend.id)
    assert hwa.job(pend.id).status == "SUCC"

    blocked = find_job(mock_hwa, "CBR0300")
    hwa.job_cancel(blocked.id)
    cancelled = hwa.job(blocked.id)
    assert cancelled.canceled and cancelled.last_run_common_status == "CANCELED"
    hwa.job_update_priority(find_job(mock_hwa, "HK_COMPACTA_DB").id, priority=50)
    assert hwa.job(find_job(mock_hwa, "HK_COMPACTA_DB").id).status == "INTRO"  # above the fence now


def test_v1_sample_calls_work_unchanged(mock_hwa):
    headers = {"Content-Type": "application/json", "Accept": "application/json", "How-Many": "2"}
    auth = (MOCK_USERNAME, "resync-mock-password")
    found = httpx.post(f"{mock_hwa.url}/twsd/plan/current/job/query", headers=headers, auth=auth,
                       json={"filters": {"jobInPlanFilter": {"jobStreamName": "FOLHA_PAGAMENTO", "jobName": "@", "lastInRerunChain": True}}}).json()
    assert len(found) == 2 and found[0]["jobStreamInPlan"]["name"] == "FOLHA_PAGAMENTO"
    streams = httpx.post(f"{mock_hwa.url}/twsd/plan/current/jobstream/query", headers={**headers, "How-Many": "500"}, auth=auth,
                         json={"filters": {"jobStreamInPlanFilter": {"jobStreamName": "CARGA@"}}}).json()
    assert [s["key"]["name"] for s in streams] == ["CARGA_DW_VENDAS"]
    calc = find_job(mock_hwa, "FP_CALC_FOLHA")
    rerun = httpx.put(f"{mock_hwa.url}/twsd/plan/current/job/{calc.v1_id.replace(';', '%3B')}/action/rerun", headers=headers, auth=auth, json={})
    assert rerun.status_code == 202 and calc.status == "INTRO"
