"""The poll's fast path (it remembers what its last poll wrote and skips unchanged jobs) must give
the same snapshot, history and events as comparing everything with the database."""

from __future__ import annotations

import pytest

from jobs import poll
from jobs.models import JobInstance, StatusChange
from jobs.poll import job_refresh, plan_poll
from jobs.tests.conftest import control, find_job
from jobs.tws.client import HwaClient
from jobs.tws.mock.auth import MOCK_API_KEY

pytestmark = pytest.mark.django_db


def _client(mock_hwa):
    return HwaClient(base_url=mock_hwa.url, api_key=MOCK_API_KEY, retries=0, timeout=5)


def _poll(client, capture):
    with capture(execute=True):  # runs the on-commit hooks, so the next poll uses its memory
        return plan_poll(client=client)


def test_small_changes_and_a_job_back_in_the_plan_keep_their_history(mock_hwa, django_capture_on_commit_callbacks, status_listener):
    client = _client(mock_hwa)
    _poll(client, django_capture_on_commit_callbacks)
    assert poll._memory_get() is not None  # the polls below take the fast path
    status_listener.receive_all()
    held = JobInstance.objects.get(name="FP_ENVIA_BANCO")
    assert held.status == "HOLD"

    # Only the priority moves: the row is updated, "in this status since" is not, no status change.
    client.job_update_priority(held.hwa_id, priority=77)
    result = _poll(client, django_capture_on_commit_callbacks)
    assert (result.changed, result.status_changes, result.created) == (1, 0, 0)
    after = JobInstance.objects.get(pk=held.pk)
    assert after.priority == 77 and after.status_changed_at == held.status_changed_at
    events = [c for e in status_listener.receive_all() for c in e.get("changes", [])]
    assert [(c["name"], c["previous_status"], c["status"]) for c in events] == [("FP_ENVIA_BANCO", "HOLD", "HOLD")]

    # A job that leaves the plan and comes back is the same row, with its status known.
    sim_job = find_job(mock_hwa, "FP_ENVIA_BANCO")
    mock_hwa.sim.jobs.remove(sim_job)
    assert _poll(client, django_capture_on_commit_callbacks).removed == 1
    assert not JobInstance.objects.get(pk=held.pk).in_plan
    mock_hwa.sim.jobs.append(sim_job)
    back = _poll(client, django_capture_on_commit_callbacks)
    assert (back.created, back.changed, back.status_changes) == (0, 1, 0)
    assert JobInstance.objects.get(pk=held.pk).in_plan
    assert not StatusChange.objects.filter(job_name="FP_ENVIA_BANCO").exists()

    # A quiet poll after all that writes nothing.
    quiet = _poll(client, django_capture_on_commit_callbacks)
    assert (quiet.created, quiet.changed, quiet.removed, quiet.status_changes) == (0, 0, 0, 0)

    # A new process (no memory) compares with the database and finds the same.
    poll._memory_set(None)
    client.job_update_priority(held.hwa_id, priority=78)
    fresh = _poll(client, django_capture_on_commit_callbacks)
    assert (fresh.created, fresh.changed, fresh.removed, fresh.status_changes) == (0, 1, 0, 0)
    assert JobInstance.objects.get(pk=held.pk).priority == 78


def test_a_refresh_between_polls_is_not_recorded_twice(mock_hwa, django_capture_on_commit_callbacks, status_listener):
    client = _client(mock_hwa)
    _poll(client, django_capture_on_commit_callbacks)
    calc = find_job(mock_hwa, "FP_CALC_FOLHA")
    client.job_rerun(calc.id)
    control(mock_hwa, "advance", {"seconds": 10})
    with django_capture_on_commit_callbacks(execute=True):
        refreshed = job_refresh(hwa_id=calc.id, client=client)
    assert refreshed is not None and refreshed.status == "EXEC"
    result = _poll(client, django_capture_on_commit_callbacks)
    history = [(c.from_status, c.to_status) for c in StatusChange.objects.filter(job_name="FP_CALC_FOLHA").order_by("id")]
    assert history == [("ABEND", "EXEC")]
    assert result.ok and not any(c.job_name == "FP_CALC_FOLHA" for c in StatusChange.objects.filter(observed_at__gt=refreshed.updated_at))

    # The job finishing later is still seen by the poll (the refresh did not leave a stale memory behind).
    control(mock_hwa, "advance", {"seconds": 330})
    _poll(client, django_capture_on_commit_callbacks)
    history = [(c.from_status, c.to_status) for c in StatusChange.objects.filter(job_name="FP_CALC_FOLHA").order_by("id")]
    assert history == [("ABEND", "EXEC"), ("EXEC", "SUCC")]
    assert JobInstance.objects.get(hwa_id=calc.id).status == "SUCC"


def test_a_new_process_skips_unchanged_jobs_by_their_stored_item_keys(mock_hwa, django_capture_on_commit_callbacks, monkeypatch):
    client = _client(mock_hwa)
    _poll(client, django_capture_on_commit_callbacks)
    assert not JobInstance.objects.filter(item_key__isnull=True).exists()
    held = JobInstance.objects.get(name="FP_ENVIA_BANCO")
    client.job_update_priority(held.hwa_id, priority=55)

    # A new process: no memory. Only the one changed item is decoded; the rest match their row's key.
    poll._memory_set(None)
    decoded: list[int] = []
    original = client.jobs_from_items
    monkeypatch.setattr(client, "jobs_from_items", lambda items: decoded.append(len(items)) or original(items))
    fresh = _poll(client, django_capture_on_commit_callbacks)
    assert (fresh.created, fresh.changed, fresh.removed) == (0, 1, 0)
    assert sum(decoded) == 1
    assert JobInstance.objects.get(pk=held.pk).priority == 55
    assert fresh.jobs == JobInstance.objects.filter(in_plan=True).count()

    # A single job's refresh does not know the raw listed item: its row loses the key, so the next
    # new process reads that job again instead of trusting a key written before the refresh.
    with django_capture_on_commit_callbacks(execute=True):
        client.job_update_priority(held.hwa_id, priority=56)
        job_refresh(hwa_id=held.hwa_id, client=client)
    assert JobInstance.objects.get(pk=held.pk).item_key is None
    poll._memory_set(None)
    decoded.clear()
    again = _poll(client, django_capture_on_commit_callbacks)
    assert sum(decoded) == 1 and again.changed == 0 and JobInstance.objects.get(pk=held.pk).priority == 56
