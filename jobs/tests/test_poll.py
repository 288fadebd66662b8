"""The plan poll over real HTTP against the mock: snapshot, status changes, events, staleness."""

from __future__ import annotations

import pytest

from audit.models import AuditAction, AuditEvent, AuditOutcome
from jobs import selectors
from jobs.models import JobInstance, PlanState, StatusChange
from jobs.poll import plan_poll
from jobs.tests.conftest import control, find_job
from jobs.tws.breaker import CircuitBreaker
from jobs.tws.client import HwaClient
from jobs.tws.mock.auth import MOCK_API_KEY

pytestmark = pytest.mark.django_db


def _client(mock_hwa):
    return HwaClient(base_url=mock_hwa.url, api_key=MOCK_API_KEY, retries=0, timeout=2,
                     breaker=CircuitBreaker(failure_threshold=100, reset_seconds=0.1))


def _diffs(events):
    return [e for e in events if e["type"] == "jobs.diff"]


def test_poll_builds_the_snapshot_the_chat_and_dashboard_query(mock_hwa, django_capture_on_commit_callbacks, status_listener):
    client = _client(mock_hwa)
    with django_capture_on_commit_callbacks(execute=True):
        result = plan_poll(client=client)
    assert result.ok and result.jobs == 40 and result.created == 40
    assert StatusChange.objects.count() == 0  # the first load is not a list of changes
    calc = selectors.job_get(name="fp_calc_folha")
    assert (calc.status, calc.return_code, calc.critical, calc.stream_name) == ("ABEND", 12, True, "FOLHA_PAGAMENTO")
    assert {j.name for j in selectors.jobs_search(failed=True)} >= {"FP_CALC_FOLHA", "CBR0150", "BKP_RMAN_FULL", "HK_ROTACIONA_LOGS"}
    assert {j.name for j in selectors.jobs_search(pattern="FP_*", status=["HOLD"])} == {"FP_GERA_CNAB_PAGTO", "FP_ENVIA_BANCO"}
    assert [j.name for j in selectors.jobs_search(late=True)] == ["DWV_CARGA_FATO"]
    assert {w.name for w in selectors.workstations_list(linked=False)} == {"PRD_WIN02"}
    assert selectors.job_streams_list(name="FOLHA_PAGAMENTO").get().status == "STUCK"
    assert not selectors.plan_freshness().stale
    diff = _diffs(status_listener.receive_all())
    assert len(diff) == 1 and diff[0]["counts"]["ABEND"] == 6  # dashboards refetch after the first load

    # A quiet second poll changes nothing and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        again = plan_poll(client=client)
    assert (again.created, again.changed, again.status_changes) == (0, 0, 0)
    assert status_listener.receive_all() == []


def test_poll_records_a_scripted_sequence_of_changes(mock_hwa, django_capture_on_commit_callbacks, status_listener):
    client = _client(mock_hwa)
    with django_capture_on_commit_callbacks(execute=True):
        plan_poll(client=client)
    status_listener.receive_all()
    calc = find_job(mock_hwa, "FP_CALC_FOLHA")
    client.job_rerun(calc.id)  # HWA's state changes outside Resync (e.g. from the console)
    control(mock_hwa, "advance", {"seconds": 10})
    with django_capture_on_commit_callbacks(execute=True):
        plan_poll(client=client)
    control(mock_hwa, "advance", {"seconds": 330})
    with django_capture_on_commit_callbacks(execute=True):
        plan_poll(client=client)

    history = [(c.from_status, c.to_status) for c in StatusChange.objects.filter(job_name="FP_CALC_FOLHA").order_by("id")]
    assert history == [("ABEND", "EXEC"), ("EXEC", "SUCC")]
    successor = [(c.from_status, c.to_status) for c in StatusChange.objects.filter(job_name="FP_GERA_CNAB_PAGTO").order_by("id")]
    assert successor == [("HOLD", "EXEC")]  # released by its predecessor's success, and launched
    events = _diffs(status_listener.receive_all())
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    moves = [(c["name"], c["previous_status"], c["status"]) for e in events for c in e["changes"]]
    assert ("FP_CALC_FOLHA", "ABEND", "EXEC") in moves and ("FP_CALC_FOLHA", "EXEC", "SUCC") in moves
    assert ("FP_GERA_CNAB_PAGTO", "HOLD", "EXEC") in moves
    final = next(c for e in events for c in e["changes"] if c["name"] == "FP_CALC_FOLHA" and c["status"] == "SUCC")
    assert final["return_code"] == 0 and final["stream"] == "FOLHA_PAGAMENTO"
    assert JobInstance.objects.get(name="FP_CALC_FOLHA").run_count == 2


def test_outage_marks_the_snapshot_stale_and_polling_recovers(mock_hwa, django_capture_on_commit_callbacks, status_listener):
    client = _client(mock_hwa)
    with django_capture_on_commit_callbacks(execute=True):
        plan_poll(client=client)
    status_listener.receive_all()
    control(mock_hwa, "faults", {"outage_seconds": 60})
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            result = plan_poll(client=client)
        assert not result.ok and result.stale
    freshness = selectors.plan_freshness()
    assert freshness.stale and freshness.error_code == "hwa_unavailable" and freshness.age_seconds is not None
    assert JobInstance.objects.filter(in_plan=True).count() == 40  # the last known plan is kept
    events = status_listener.receive_all()
    assert [e["type"] for e in events] == ["jobs.hwa_status", "jobs.hwa_status"]
    assert events[0]["stale"] is True and events[0]["code"] == "hwa_unavailable" and events[1]["age_seconds"] >= 0
    audit = AuditEvent.objects.filter(action=AuditAction.HWA_STATUS)
    assert [e.outcome for e in audit] == [AuditOutcome.FAILURE]  # once per outage, not per poll

    control(mock_hwa, "faults/clear")
    with django_capture_on_commit_callbacks(execute=True):
        result = plan_poll(client=client)
    assert result.ok and not PlanState.objects.get().stale
    recovered = [e for e in status_listener.receive_all() if e["type"] == "jobs.hwa_status"]
    assert recovered and recovered[-1]["stale"] is False
    assert [e.details["state"] for e in AuditEvent.objects.filter(action=AuditAction.HWA_STATUS)] == ["unreachable", "recovered"]


def test_jobs_leaving_the_plan_are_marked_and_reported(mock_hwa, django_capture_on_commit_callbacks, status_listener):
    client = _client(mock_hwa)
    with django_capture_on_commit_callbacks(execute=True):
        plan_poll(client=client)
    status_listener.receive_all()
    gone = mock_hwa.sim.jobs.pop()  # the plan was extended and this job dropped out
    with django_capture_on_commit_callbacks(execute=True):
        result = plan_poll(client=client)
    assert result.removed == 1 and not JobInstance.objects.get(hwa_id=gone.id).in_plan
    assert _diffs(status_listener.receive_all())[0]["removed"] == [gone.id]


def test_a_first_load_that_fails_part_way_leaves_no_half_snapshot(mock_hwa, django_capture_on_commit_callbacks, status_listener):
    client = HwaClient(base_url=mock_hwa.url, api_key=MOCK_API_KEY, retries=0, timeout=2, page_size=10)
    broken = mock_hwa.sim.jobs[-1]  # on the last page: the pages before it are already being written
    name, broken.name = broken.name, None
    broken.version += 1
    with django_capture_on_commit_callbacks(execute=True):
        result = plan_poll(client=client)
    assert not result.ok and result.stale
    assert not JobInstance.objects.exists() and selectors.plan_freshness().stale
    assert [e["type"] for e in status_listener.receive_all()] == ["jobs.hwa_status"]

    broken.name = name
    broken.version += 1
    with django_capture_on_commit_callbacks(execute=True):
        result = plan_poll(client=client)
    assert result.ok and result.created == 40 and JobInstance.objects.count() == 40
    assert StatusChange.objects.count() == 0 and not selectors.plan_freshness().stale
    diff = _diffs(status_listener.receive_all())
    assert len(diff) == 1 and diff[0]["changes"] == [] and diff[0]["counts"] == selectors.status_counts()


def test_live_dependencies_and_job_log_selectors(hwa_settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        plan_poll()
    publica = selectors.job_get(name="DWV_PUBLICA")
    deps = selectors.job_dependencies(job=publica, depth=2)
    assert {d.job_name: d.satisfied for d in deps.dependencies} == {"DWV_CARGA_FATO": False, "DWV_VALIDA_ARQ": False}
    assert {n.name for n in deps.predecessors} == {"DWV_CARGA_FATO", "DWV_VALIDA_ARQ", "DWV_EXTRAI_PDV"}
    assert {n.name for n in deps.successors} == {"EXT_GERA_PDF", "EXT_ENVIA_EMAIL"}
    bkp = selectors.job_get(name="BKP_RMAN_FULL")
    log = selectors.job_log_text(job=bkp, from_line=1, to_line=40)
    assert any("ORA-19502" in line for line in log.lines) and log.from_line == 1
    with pytest.raises(Exception) as never_ran:
        selectors.job_log_text(job=selectors.job_get(name="CBR0300"))
    assert getattr(never_ran.value, "code", "") == "joblog_not_found"
