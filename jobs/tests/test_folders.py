"""HWA folders: the naming rules, the mock's folders (OQL, counts, keys, plan_filter) over real HTTP,
the client's parsing of the folder fields, and the snapshot's folders after a poll."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from jobs import selectors
from jobs.models import JobInstance, JobStream, StatusChange, Workstation
from jobs.poll import plan_poll
from jobs.tests.conftest import control, find_job
from jobs.tws import oql
from jobs.tws.client import HwaClient
from jobs.tws.errors import HwaBadRequest
from jobs.tws.folders import FolderError, folder_canonical, folder_parse
from jobs.tws.mock.auth import MOCK_API_KEY, MOCK_PASSWORD, MOCK_USERNAME
from jobs.tws.mock.server import MockHwaServer

# The demo night's folders (job streams by line of business), and how many jobs each holds.
DEMO_FOLDERS = {"/": 13, "/FINANCEIRO/": 13, "/FINANCEIRO/TESOURARIA/": 3, "/RH/": 4, "/TI/": 7}


def _get(server: MockHwaServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/twsd/api/v2{path}", params=params, auth=(MOCK_USERNAME, MOCK_PASSWORD), timeout=5)


def _folders(server: MockHwaServer, query: str, path: str = "/plan/job") -> dict[str, set[str]]:
    response = _get(server, path, oql=query)
    assert response.status_code == 200, response.text
    found: dict[str, set[str]] = {}
    for item in response.json()["results"]:
        found.setdefault(item["folder"], set()).add(item["name"])
    return found


# --- naming rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "canonical"), [
    ("/", "/"), ("RH", "/RH/"), ("/RH", "/RH/"), ("RH/", "/RH/"), (" /FINANCEIRO/TESOURARIA/ ", "/FINANCEIRO/TESOURARIA/"),
    ("/fin_2026-a/", "/fin_2026-a/"), ("_X", "/_X/"), ("A" * 256, "/" + "A" * 256 + "/"),
])
def test_valid_folder_paths_come_out_in_one_spelling(typed: str, canonical: str) -> None:
    assert folder_parse(typed) == canonical


@pytest.mark.parametrize(("typed", "code"), [
    ("", "invalid"), ("//", "invalid"), ("/RH//FOLHA/", "invalid"), ("/-RH/", "invalid"), ("/RH/-X/", "invalid"),
    ("/R H/", "invalid"), ("/FIN@/", "invalid"), ("/FIN*/", "invalid"), ("/RH#/", "invalid"), ("/RH.X/", "invalid"),
    ("/FINANÇAS/", "invalid"), ("/RH/\x00", "invalid"), ("\\RH\\", "invalid"),
    ("/" + "A" * 257 + "/", "name_too_long"), ("/" + "/".join(["ABCDEFGHIJ"] * 80) + "/", "too_long"),
])
def test_folder_paths_breaking_hwa_naming_rules_are_refused(typed: str, code: str) -> None:
    with pytest.raises(FolderError) as caught:
        folder_parse(typed)
    assert caught.value.code == code


def test_folders_as_hwa_reports_them_are_kept_whatever_their_slashes() -> None:
    assert [folder_canonical(v) for v in (None, "", "/", "/RH", "RH/", "/A/B/")] == ["/", "/", "/", "/RH/", "/RH/", "/A/B/"]


# --- the mock: folders in the plan ----------------------------------------------------------------


def test_demo_jobs_carry_their_job_streams_folder(mock_hwa: MockHwaServer) -> None:
    jobs = _get(mock_hwa, "/plan/job").json()["results"]
    streams = {s["id"]: s for s in _get(mock_hwa, "/plan/jobstream").json()["results"]}
    per_folder: dict[str, int] = {}
    for job in jobs:
        stream = streams[job["jobStreamId"]]
        assert (job["folder"], job["folderId"]) == (stream["folder"], stream["folderId"]), job["name"]
        per_folder[job["folder"]] = per_folder.get(job["folder"], 0) + 1
    assert per_folder == DEMO_FOLDERS
    calc = next(j for j in jobs if j["name"] == "FP_CALC_FOLHA")
    assert calc["folder"] == "/RH/" and calc["key"] == "/PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA"
    assert calc["jobruns"][0]["compositeStatus"]["status"] == "ABEND"
    root = next(j for j in jobs if j["name"] == "DWV_CARGA_FATO")
    assert root["folder"] == "/" and root["key"] == "/PRD_LNX02#/CARGA_DW_VENDAS.DWV_CARGA_FATO"
    detail = _get(mock_hwa, f"/plan/job/{calc['id']}").json()
    assert (detail["folder"], detail["folderId"]) == ("/RH/", calc["folderId"]) and detail["cpuFolderId"]
    assert len({s["folderId"] for s in streams.values()}) == len(DEMO_FOLDERS), "one id per folder"
    folha = next(s for s in streams.values() if s["name"] == "FOLHA_PAGAMENTO")
    assert folha["key"] == "/PRD_LNX01#/RH/FOLHA_PAGAMENTO"


def test_oql_folder_equality_like_and_in(mock_hwa: MockHwaServer) -> None:
    assert _folders(mock_hwa, "folder = '/RH/'") == {"/RH/": {"FP_EXTRAI_PONTO", "FP_CALC_FOLHA", "FP_GERA_CNAB_PAGTO", "FP_ENVIA_BANCO"}}
    assert _folders(mock_hwa, "folder = '/RH'") == _folders(mock_hwa, "folder = '/RH/'"), "the spec's own spelling, without the last slash"
    assert set(_folders(mock_hwa, "folder LIKE '/FIN@'")) == {"/FINANCEIRO/", "/FINANCEIRO/TESOURARIA/"}
    assert set(_folders(mock_hwa, "folder LIKE '/FINANCEIRO/@/'")) == {"/FINANCEIRO/TESOURARIA/"}
    assert set(_folders(mock_hwa, "folder IN ['/TI/','/RH']")) == {"/TI/", "/RH/"}
    assert set(_folders(mock_hwa, "folder != '/'")) == set(DEMO_FOLDERS) - {"/"}
    assert {n for names in _folders(mock_hwa, "folder = '/' AND name LIKE 'DWV@'").values() for n in names} == {
        "DWV_EXTRAI_PDV", "DWV_CARGA_FATO", "DWV_VALIDA_ARQ", "DWV_PUBLICA"}
    assert _folders(mock_hwa, "folder = '/NAO_EXISTE/'") == {}
    ordered = [j["folder"] for j in _get(mock_hwa, "/plan/job", oql="folder != '/' ORDER BY folder DESC").json()["results"]]
    assert ordered == sorted(ordered, reverse=True) and ordered[0] == "/TI/"
    streams = _folders(mock_hwa, "folder = '/FINANCEIRO/TESOURARIA/'", "/plan/jobstream")
    assert streams == {"/FINANCEIRO/TESOURARIA/": {"CONCILIACAO_BANCARIA"}}
    assert _get(mock_hwa, "/plan/workstation", oql="folder = '/'").json()["count"] == 7


def test_counts_group_by_folder(mock_hwa: MockHwaServer, hwa: HwaClient) -> None:
    by_folder = hwa.job_count(grouping="folder")
    assert by_folder.count == 40 and by_folder.grouped_count == DEMO_FOLDERS
    streams = hwa.job_stream_count(grouping="folder")
    assert streams.count == 13 and streams.grouped_count == {"/": 4, "/FINANCEIRO/": 4, "/FINANCEIRO/TESOURARIA/": 1, "/RH/": 1, "/TI/": 3}
    # Grouping counts what the filter selected, and several fields make one key per combination.
    finance = hwa.job_count(plan_filter="/@/@#/FINANCEIRO/@.@", grouping="folder")
    assert finance.grouped_count == {"/FINANCEIRO/": 13}
    both = hwa.job_count(grouping="folder,status")
    assert sum(both.grouped_count.values()) == 40 and both.grouped_count["/RH/,ABEND"] == 1
    assert sum(n for k, n in both.grouped_count.items() if k.startswith("/TI/,")) == 7
    with pytest.raises(HwaBadRequest):
        hwa.job_count(grouping="folder,owner")


def test_keys_and_plan_filters_with_folder_paths_resolve(mock_hwa: MockHwaServer, hwa: HwaClient) -> None:
    calc = find_job(mock_hwa, "FP_CALC_FOLHA")
    for spelling in ("/PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA", "PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA",
                     "PRD_LNX01#RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA"):
        assert [j.id for j in hwa.jobs(oql=oql.eq("key", spelling))] == [calc.id], spelling
    assert hwa.jobs(oql=oql.eq("key", "PRD_LNX01#FOLHA_PAGAMENTO.FP_CALC_FOLHA")) == [], "no folder means the root folder"
    assert [j.name for j in hwa.jobs(oql=oql.eq("key", "PRD_LNX02#CARGA_DW_VENDAS.DWV_CARGA_FATO"))] == ["DWV_CARGA_FATO"]
    assert [j.id for j in hwa.jobs(plan_filter="/PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA")] == [calc.id]
    assert {j.name for j in hwa.jobs(plan_filter="/@/@#/RH/@.FP_@")} == {"FP_EXTRAI_PONTO", "FP_CALC_FOLHA", "FP_GERA_CNAB_PAGTO", "FP_ENVIA_BANCO"}
    assert hwa.jobs(plan_filter="PRD_LNX01#FOLHA_PAGAMENTO.@") == [], "a relative stream path is in the root folder"
    assert {j.folder for j in hwa.jobs(plan_filter="/@/PRD_LNX01#/FIN@/@.@")} == {"/FINANCEIRO/", "/FINANCEIRO/TESOURARIA/"}
    assert [s.name for s in hwa.job_streams(oql=oql.eq("key", "/PRD_LNX01#/RH/FOLHA_PAGAMENTO"))] == ["FOLHA_PAGAMENTO"]
    assert [s.name for s in hwa.job_streams(plan_filter="/@/@#/FINANCEIRO/TESOURARIA/@")] == ["CONCILIACAO_BANCARIA"]
    # A predecessor named with its folder in the scenario (`/FINANCEIRO/INTEGRACAO_SAP_FI.SAPFI_CARGA_RAZAO`).
    abre = hwa.job(find_job(mock_hwa, "FC_ABRE_PERIODO").id)
    assert [(d.job_name, d.job_stream_folder) for d in abre.dependencies] == [("SAPFI_CARGA_RAZAO", "/FINANCEIRO/")]


def test_the_client_parses_every_folder_field(mock_hwa: MockHwaServer, hwa: HwaClient) -> None:
    jobs = {j.name: j for j in hwa.jobs()}
    assert (jobs["FP_CALC_FOLHA"].folder, jobs["CB_CONCILIA"].folder, jobs["ETL_EST_CARGA"].folder) == ("/RH/", "/FINANCEIRO/TESOURARIA/", "/")
    assert all(j.folder_id for j in jobs.values()), "lists carry folderId too"
    assert jobs["FP_CALC_FOLHA"].key == "/PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA"
    streams = {s.name: s for s in hwa.job_streams()}
    assert (streams["HOUSEKEEPING_TWS"].folder, streams["HOUSEKEEPING_TWS"].folder_id) == ("/TI/", jobs["HK_COMPACTA_DB"].folder_id)
    assert {w.folder for w in hwa.workstations()} == {"/"} and all(w.folder_id for w in hwa.workstations())
    successors = hwa.job_successors(jobs["FP_CALC_FOLHA"].id)
    assert [(n.name, n.folder) for n in successors] == [("FP_GERA_CNAB_PAGTO", "/RH/")]


def test_same_job_stream_name_in_two_folders_stays_two_streams() -> None:
    scenario = {
        "name": "folders", "seed": 3, "plan_start": "2026-11-24T21:00:00-03:00",
        "workstations": [{"name": "WS1"}, {"name": "AGT9", "folder": "/AGENTES/"}],
        "streams": [
            {"name": "FECHAMENTO", "folder": "/FILIAL_SP/", "workstation": "WS1", "at": "21:00", "jobs": [{"name": "FECHA", "duration": 60}]},
            {"name": "FECHAMENTO", "folder": "/FILIAL_RJ/", "workstation": "AGT9", "at": "21:00", "jobs": [
                {"name": "FECHA", "duration": 60, "follows": ["/FILIAL_SP/FECHAMENTO.FECHA"]}]},
        ],
    }
    with MockHwaServer(scenario=scenario) as server, HwaClient(base_url=server.url, api_key=MOCK_API_KEY, retries=0) as client:
        jobs = client.jobs(oql=oql.eq("name", "FECHA"))
        assert sorted(j.key or "" for j in jobs) == ["/AGENTES/AGT9#/FILIAL_RJ/FECHAMENTO.FECHA", "/WS1#/FILIAL_SP/FECHAMENTO.FECHA"]
        rj = client.jobs(oql=oql.eq("folder", "/FILIAL_RJ/"))
        assert len(rj) == 1 and rj[0].workstation == "AGT9"
        assert [d.job_stream_folder for d in client.job(rj[0].id).dependencies] == ["/FILIAL_SP/"]
        assert [j.folder for j in client.jobs(plan_filter="/AGENTES/@#/@/@.@")] == ["/FILIAL_RJ/"]
        assert client.job_count(grouping="folder").grouped_count == {"/FILIAL_SP/": 1, "/FILIAL_RJ/": 1}
        assert {w.name: w.folder for w in client.workstations()} == {"WS1": "/", "AGT9": "/AGENTES/"}


def test_a_job_follows_its_own_streams_predecessor_when_a_same_named_stream_is_in_another_folder() -> None:
    streams = [{"name": "FOLHA", "folder": folder, "workstation": "WS1", "at": "21:00",
                "jobs": [{"name": "EXTRAI", "duration": 60}, {"name": "CALCULA", "duration": 60, "follows": ["EXTRAI"]}]}
               for folder in ("/RH/", "/FILIAL_SUL/")]
    scenario = {"name": "twins", "seed": 5, "plan_start": "2026-11-24T21:00:00-03:00", "workstations": [{"name": "WS1"}],
                "streams": streams}
    with MockHwaServer(scenario=scenario) as server, HwaClient(base_url=server.url, api_key=MOCK_API_KEY, retries=0) as client:
        for job in client.jobs(oql=oql.eq("name", "CALCULA")):
            assert [d.job_stream_folder for d in client.job(job.id).dependencies] == [job.folder], job.key


# --- the snapshot ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_poll_stores_folders_and_keeps_them_current(mock_hwa: MockHwaServer, hwa: HwaClient,
                                                         django_capture_on_commit_callbacks: Any, status_listener: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert plan_poll(client=hwa).ok
    status_listener.receive_all()
    per_folder = {f: JobInstance.objects.filter(in_plan=True, folder=f).count() for f in DEMO_FOLDERS}
    assert per_folder == DEMO_FOLDERS
    assert JobInstance.objects.get(name="FP_CALC_FOLHA").folder == "/RH/"
    assert JobStream.objects.get(name="CONCILIACAO_BANCARIA").folder == "/FINANCEIRO/TESOURARIA/"
    assert set(Workstation.objects.values_list("folder", flat=True)) == {"/"}
    # What the chat and the dashboard ask: one folder (not its sub-folders), whatever the case and slashes.
    assert {j.name for j in selectors.jobs_search(folder="rh")} == {"FP_EXTRAI_PONTO", "FP_CALC_FOLHA", "FP_GERA_CNAB_PAGTO", "FP_ENVIA_BANCO"}
    assert {j.name for j in selectors.jobs_search(folder="/financeiro/", failed=True)} == {"SAPFI_EXTRAI_LANCTOS", "CBR0150"}
    assert [s.name for s in selectors.job_streams_list(folder="/FINANCEIRO/TESOURARIA")] == ["CONCILIACAO_BANCARIA"]

    # A status change records the job's folder, and the live event carries it.
    calc = find_job(mock_hwa, "FP_CALC_FOLHA")
    hwa.job_rerun(calc.id)
    control(mock_hwa, "advance", {"seconds": 10})
    with django_capture_on_commit_callbacks(execute=True):
        plan_poll(client=hwa)
    change = StatusChange.objects.filter(job_name="FP_CALC_FOLHA").latest("id")
    assert (change.from_status, change.to_status, change.folder) == ("ABEND", "EXEC", "/RH/")
    moved = [c for e in status_listener.receive_all() if e["type"] == "jobs.diff" for c in e["changes"]]
    assert {(c["name"], c["folder"]) for c in moved} >= {("FP_CALC_FOLHA", "/RH/")}

    # The stream is moved to another folder in HWA: the next poll follows it, with no status change.
    folha = next(s for s in mock_hwa.sim.streams if s.name == "FOLHA_PAGAMENTO")
    folha.folder = "/RH/FOLHA/"
    for job in folha.jobs:
        job.version += 1  # the mock serves list items from a per-version cache
    changes_before = StatusChange.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        result = plan_poll(client=hwa)
    assert result.changed >= 4 and result.status_changes == 0 and StatusChange.objects.count() == changes_before
    assert set(JobInstance.objects.filter(stream_name="FOLHA_PAGAMENTO").values_list("folder", flat=True)) == {"/RH/FOLHA/"}
    assert JobStream.objects.get(name="FOLHA_PAGAMENTO").folder == "/RH/FOLHA/"
    events = [c for e in status_listener.receive_all() if e["type"] == "jobs.diff" for c in e["changes"]]
    assert {c["folder"] for c in events if c["stream"] == "FOLHA_PAGAMENTO"} == {"/RH/FOLHA/"}
