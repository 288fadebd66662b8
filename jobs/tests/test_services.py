"""Job actions: roles, justification, live state guard, impact, audit trail, HWA call, snapshot refresh."""

from __future__ import annotations

import pytest

from audit.models import AuditAction, AuditEvent, AuditOutcome
from jobs import services
from jobs.models import JobInstance, StatusChange
from jobs.poll import plan_poll
from jobs.tests.conftest import control, find_job
from jobs.tws.errors import HwaUnavailable
from resync_site.lib.errors import ApplicationError, ConflictError, ForbiddenError

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(hwa_settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        plan_poll()
    return hwa_settings


def test_user_without_the_role_is_refused_and_audited(plan, outsider, reviewer):
    calc = JobInstance.objects.get(name="FP_CALC_FOLHA")
    for user in (outsider, reviewer):
        with pytest.raises(ForbiddenError):
            services.job_rerun(acting_user=user, job=calc, justification="tentativa")
    refused = AuditEvent.objects.filter(action=AuditAction.JOB_ACTION_REFUSED)
    assert [(e.actor_label, e.outcome, e.details["reason"]) for e in refused] == [
        ("otto", AuditOutcome.REFUSED, "role"), ("renata", AuditOutcome.REFUSED, "role")]
    assert plan.sim.action_log == []  # HWA was never called


def test_operator_rerun_is_audited_sent_to_hwa_and_refreshed(plan, operator, django_capture_on_commit_callbacks, status_listener):
    calc = JobInstance.objects.get(name="FP_CALC_FOLHA")
    with django_capture_on_commit_callbacks(execute=True):
        result = services.job_rerun(acting_user=operator, job=calc, justification="RH liberou a competência", ticket="INC-77")
    assert result.status_after == "INTRO"
    events = AuditEvent.objects.filter(action=AuditAction.JOB_ACTION).order_by("sequence")
    assert [e.outcome for e in events] == [AuditOutcome.PENDING, AuditOutcome.SUCCESS]
    pending = events[0]
    assert pending.actor_label == "olivia" and pending.target_label == "PRD_LNX01#FOLHA_PAGAMENTO.FP_CALC_FOLHA"
    assert pending.details["status_before"] == "ABEND" and pending.details["will_run"] == ["FP_GERA_CNAB_PAGTO"]
    assert pending.details["ticket"] == "INC-77"
    assert plan.sim.action_log[-1]["justification"]["Justification-Description"] == "RH liberou a competência"
    calc.refresh_from_db()
    assert calc.status == "INTRO" and calc.run_count == 2
    assert StatusChange.objects.filter(job_name="FP_CALC_FOLHA", from_status="ABEND", to_status="INTRO").exists()
    pushed = [c for e in status_listener.receive_all() for c in e.get("changes", [])]
    assert any(c["name"] == "FP_CALC_FOLHA" and c["status"] == "INTRO" for c in pushed)


def test_state_guard_uses_hwa_live_state_and_refusals_are_audited(plan, operator):
    calc = JobInstance.objects.get(name="FP_CALC_FOLHA")
    with pytest.raises(ConflictError) as caught:
        services.job_kill(acting_user=operator, job=calc, justification="parar")
    assert "ABEND" in caught.value.message
    # The snapshot may be behind: the guard reads HWA, not the snapshot.
    JobInstance.objects.filter(pk=calc.pk).update(status="EXEC")
    with pytest.raises(ConflictError):
        services.job_kill(acting_user=operator, job=calc, justification="parar")
    refused = AuditEvent.objects.filter(action=AuditAction.JOB_ACTION_REFUSED)
    assert [e.details["reason"] for e in refused] == ["state", "state"]
    assert plan.sim.action_log == []


def test_each_service_acts_where_hwa_allows(plan, supervisor):
    def act(fn, name, **kw):
        return fn(acting_user=supervisor, job=JobInstance.objects.get(name=name), justification="turno da noite", **kw)

    assert act(services.job_hold, "ETL_EST_EXTRAI").status_after == "HOLD"
    assert act(services.job_release, "ETL_EST_EXTRAI").status_after == "READY"
    assert act(services.job_kill, "DWV_CARGA_FATO").status_after == "EXEC"  # asynchronous in HWA
    assert act(services.job_confirm, "HK_VERIFICA_PLANO", success=True).status_after == "SUCC"
    assert act(services.job_cancel, "CBR0300").status_after == "CANCL"
    assert act(services.job_release_dependencies, "DWV_VALIDA_ARQ").status_after in ("READY", "INTRO")
    assert act(services.job_update_priority, "HK_COMPACTA_DB", priority=50).status_after == "INTRO"
    assert [a["action"] for a in plan.sim.action_log] == [
        "hold", "release", "kill", "confirm-succ", "cancel", "release-all-dependencies", "update-priority"]


def test_preview_shows_impact_before_confirmation(plan):
    rerun = services.job_action_preview(job=JobInstance.objects.get(name="FP_CALC_FOLHA"), action="rerun")
    assert rerun.allowed and [n.name for n in rerun.will_run] == ["FP_GERA_CNAB_PAGTO"]
    assert [n.name for n in rerun.stay_blocked] == ["FP_ENVIA_BANCO"]
    assert {n.name for n in rerun.critical_affected} == {"FP_CALC_FOLHA", "FP_ENVIA_BANCO"} and not rerun.high_risk
    kill = services.job_action_preview(job=JobInstance.objects.get(name="DWV_CARGA_FATO"), action=services.JobAction.KILL)
    assert kill.allowed and kill.high_risk and "DWV_PUBLICA" in {n.name for n in kill.stay_blocked}
    hold = services.job_action_preview(job=JobInstance.objects.get(name="CP_ENVIA_REMESSA"), action="hold")
    assert not hold.allowed and "SUCC" in hold.reason
    assert plan.sim.action_log == []


def test_justification_is_required_and_hwa_outage_is_audited(plan, operator):
    calc = JobInstance.objects.get(name="FP_CALC_FOLHA")
    with pytest.raises(ApplicationError) as caught:
        services.job_rerun(acting_user=operator, job=calc, justification="   ")
    assert caught.value.code == "justification_required"
    control(plan, "faults", {"outage_seconds": 60})
    with pytest.raises(HwaUnavailable):
        services.job_rerun(acting_user=operator, job=calc, justification="tentar de novo")
    failed = AuditEvent.objects.filter(action=AuditAction.JOB_ACTION, outcome=AuditOutcome.FAILURE).get()
    assert failed.details["error"] in ("hwa_unavailable", "hwa_circuit_open")
    control(plan, "faults/clear")
    assert find_job(plan, "FP_CALC_FOLHA").status == "ABEND"
