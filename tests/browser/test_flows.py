"""What an operator does in a real browser: sign in, watch the dashboard change live (and catch up
after a network blip), open a job, read its log, confirm an action. Screenshots of every page are
saved to test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from browser.helpers import off_loop
from conftest import PASSWORD
from jobs.models import JobInstance

pytestmark = pytest.mark.django_db(transaction=True)


def _poll() -> Any:
    from jobs.poll import plan_poll

    return off_loop(plan_poll)


def _rerun_in_hwa(hwa: Any, name: str) -> str:
    """Someone else reruns a job straight in HWA; the next poll sees it."""
    from jobs.tws.client import Justification, get_client

    job = off_loop(JobInstance.objects.get, name=name)
    get_client().job_rerun(job.hwa_id, justification=Justification(description="rerun from the console", ticket=""))
    return job.hwa_id


def _open_dashboard(page: Any) -> None:
    page.goto("/dashboard/")
    page.wait_for_selector("#dashboard[data-ready=true][data-conn=live]")


def test_dashboard_updates_live_and_catches_up_after_a_blip(page: Any, sign_in: Any, hwa: Any, operator: Any, screenshots: Path) -> None:
    sign_in(page, operator, PASSWORD)
    _open_dashboard(page)
    calc = JobInstance.objects.get(name="FP_CALC_FOLHA").hwa_id
    assert page.locator(f"#failed-table tr[data-job='{calc}']").count() == 1
    assert page.locator("#ws-unlinked").inner_text() == "1"
    assert page.locator("#stale-banner").is_hidden()
    page.screenshot(path=str(screenshots / "01-dashboard.png"), full_page=True)

    # A job changes state in the mock; the poll sees it; the open page shows it without a reload.
    seq = int(page.locator("#dashboard").get_attribute("data-seq") or -1)
    _rerun_in_hwa(hwa, "FP_CALC_FOLHA")
    assert _poll().status_changes >= 1
    page.wait_for_selector(f"#failed-table tr[data-job='{calc}']", state="detached")
    assert "FP_CALC_FOLHA" in page.locator("#last-event").inner_text()
    assert int(page.locator("#dashboard").get_attribute("data-seq")) > seq
    page.screenshot(path=str(screenshots / "02-dashboard-live-update.png"), full_page=True)

    # A network blip: the socket drops, a change happens meanwhile, the page catches up by itself.
    page.context.set_offline(True)
    page.wait_for_selector("#dashboard[data-conn=offline]", timeout=20000)
    bkp = _rerun_in_hwa(hwa, "BKP_RMAN_FULL")
    assert _poll().status_changes >= 1
    page.context.set_offline(False)
    page.wait_for_selector("#dashboard[data-conn=live]", timeout=30000)
    page.wait_for_selector(f"#failed-table tr[data-job='{bkp}']", state="detached")

    # HWA unreachable: the stale banner appears; it goes away when HWA answers again.
    httpx.post(f"{hwa.url}/mock/control/faults", json={"outage_seconds": 60}, timeout=5).raise_for_status()
    assert not _poll().ok
    page.wait_for_selector("#stale-banner", state="visible")
    page.screenshot(path=str(screenshots / "03-dashboard-stale.png"), full_page=True)
    httpx.post(f"{hwa.url}/mock/control/faults/clear", json={}, timeout=5).raise_for_status()
    from jobs.tws.client import get_client

    get_client().breaker.reset()
    assert _poll().ok
    page.wait_for_selector("#stale-banner", state="hidden")
    assert not page.js_errors, page.js_errors


def test_filters_narrow_the_dashboard(page: Any, sign_in: Any, hwa: Any, operator: Any) -> None:
    sign_in(page, operator, PASSWORD)
    _open_dashboard(page)
    page.select_option("#f-workstation", "PRD_ORA01")
    page.wait_for_url("**/dashboard/?workstation=PRD_ORA01")
    page.wait_for_selector("#dashboard[data-ready=true]")
    page.wait_for_function("() => [...document.querySelectorAll('#failed-table tr[data-job]')].every(r => r.children[3].textContent === 'PRD_ORA01')")
    names = page.locator("#failed-table tr[data-job] td:first-child a").all_inner_texts()
    assert "BKP_RMAN_FULL" in names and "FP_CALC_FOLHA" not in names
    # Keyboard only: the filters are reachable and labelled.
    page.focus("#f-status")
    assert page.evaluate("document.activeElement.labels[0].textContent") == "Status"


def _abends(page: Any) -> int:
    cell = page.locator("#counts-table tr[data-status=ABEND] td.num")
    return int(cell.inner_text()) if cell.count() else 0


def test_folder_filter_narrows_the_dashboard_and_live_changes_follow_it(page: Any, sign_in: Any, hwa: Any, operator: Any,
                                                                         screenshots: Path) -> None:
    sign_in(page, operator, PASSWORD)
    _open_dashboard(page)
    page.select_option("#f-folder", "/TI/")
    page.wait_for_url("**/dashboard/?folder=%2FTI%2F")
    page.wait_for_selector("#dashboard[data-ready=true]")
    page.wait_for_function("() => { const rows = [...document.querySelectorAll('#failed-table tr[data-job]')];"
                           " return rows.length === 3 && rows.every(r => r.children[1].textContent === '/TI/'); }")
    names = set(page.locator("#failed-table tr[data-job] td:first-child a").all_inner_texts())
    assert names == {"HK_LIMPA_STDLIST", "HK_ROTACIONA_LOGS", "BKP_RMAN_FULL"}
    assert sum(int(n) for n in page.locator("#counts-table td.num").all_inner_texts()) == 7
    assert _abends(page) == 2
    assert "PRD_ORA01#/TI/BACKUP_NOTURNO_ORACLE" in page.locator("#stream-list").inner_text()
    page.screenshot(path=str(screenshots / "07-dashboard-folder-filter.png"), full_page=True)

    # A change in another folder reaches the page but leaves this view alone...
    seq = int(page.locator("#dashboard").get_attribute("data-seq") or -1)
    _rerun_in_hwa(hwa, "FP_CALC_FOLHA")  # in /RH/
    assert _poll().status_changes >= 1
    page.wait_for_function(f"() => Number(document.getElementById('dashboard').dataset.seq) > {seq}")
    assert _abends(page) == 2 and page.locator("#failed-table tr[data-job]").count() == 3
    # ...and a change in this folder updates it live.
    bkp = _rerun_in_hwa(hwa, "BKP_RMAN_FULL")  # in /TI/
    assert _poll().status_changes >= 1
    page.wait_for_selector(f"#failed-table tr[data-job='{bkp}']", state="detached")
    page.wait_for_function("() => document.querySelector('#counts-table tr[data-status=ABEND] td.num').textContent === '1'")

    # The filter is in the address: a reload (or a shared link) opens the same view.
    page.reload()
    page.wait_for_selector("#dashboard[data-ready=true]")
    assert page.eval_on_selector("#f-folder", "el => el.value") == "/TI/"
    assert page.locator("#failed-table tr[data-job]").count() == 2
    assert not page.js_errors, page.js_errors


def test_job_page_log_and_action_confirmation(page: Any, sign_in: Any, hwa: Any, operator: Any, screenshots: Path) -> None:
    sign_in(page, operator, PASSWORD)
    _open_dashboard(page)
    page.click("#failed-table a:text-is('FP_CALC_FOLHA')")
    page.wait_for_selector("h1:has-text('FP_CALC_FOLHA')")
    assert page.locator("svg.graph").count() == 1
    assert page.locator("#job-status").inner_text() == "ABEND"
    page.screenshot(path=str(screenshots / "04-job-detail.png"), full_page=True)

    page.click("text=Open the job log")
    page.wait_for_selector("table.log tr#L1")
    assert page.locator("table.log tr.failure").count() >= 1, "the failure lines are highlighted"
    page.screenshot(path=str(screenshots / "05-job-log.png"), full_page=True)
    # A citation link opens the log at the cited lines.
    page.goto(page.url.split("#")[0] + "?from=10&to=12#L10-L12")
    page.wait_for_selector("tr#L11.anchored")
    assert page.locator("tr.cited").count() == 3

    page.go_back()
    page.goto(page.url.split("/log/")[0] + "/")
    page.select_option("#action-select", "rerun")
    page.click("text=Preview the impact")
    page.wait_for_selector("text=Successors that will run")
    page.fill("#justification", "Tablespace extended by the DBA (INC-4711)")
    page.screenshot(path=str(screenshots / "06-action-confirm.png"), full_page=True)
    page.click("#confirm-form button.danger")
    page.wait_for_selector(".messages li")
    assert "sent to HWA" in page.locator(".messages").inner_text()
    assert any(a.get("action") == "rerun" for a in hwa.sim.action_log)
    assert not page.js_errors, page.js_errors
