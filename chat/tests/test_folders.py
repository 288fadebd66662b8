"""HWA folders in the chat: plan_query's `folder` (a tool parameter for the LLM, read from Portuguese
and English questions without one), job references written with a folder, all checked by the one
validation service through jobs.tws.folders (each rule with an accepted and a refused case, refusals
clear and audited), folders shown where they tell two jobs apart, and a name found in two folders
answered with a question instead of a guess.

The demo night has streams in /FINANCEIRO/, /FINANCEIRO/TESOURARIA/, /RH/, /TI/ and /; the tests of
ambiguity run on a night with a second FOLHA_PAGAMENTO in /FILIAL_SUL/ whose FP_CALC_FOLHA succeeds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from audit.models import AuditAction, AuditEvent
from chat.agent import validation
from chat.agent.intents import Intent, recognize
from chat.agent.tools import ToolContext, tool_run, tool_schemas
from chat.models import ActionProposal, Conversation, Turn
from chat.testing import Reply
from chat.tests.conftest import answer_of, citations_of, tools_of

JOBS = frozenset({"FP_CALC_FOLHA", "FP_ENVIA_BANCO", "CB_CONCILIA", "BKP_RMAN_FULL"})
STREAMS = frozenset({"FOLHA_PAGAMENTO", "CONCILIACAO_BANCARIA"})
STATIONS = frozenset({"PRD_LNX01"})
FOLDERS = frozenset({"/", "/RH/", "/FINANCEIRO/", "/FINANCEIRO/TESOURARIA/", "/TI/"})
RH_JOB = "/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA"


def _refused(check: Any, *args: Any, **kwargs: Any) -> validation.ValidationRefused:
    with pytest.raises(validation.ValidationRefused) as refused:
        check(*args, **kwargs)
    return refused.value


# --- the naming rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("/RH/", "/RH/"),
        ("RH", "/RH/"),  # the slashes around a path are optional
        ("/FINANCEIRO/TESOURARIA", "/FINANCEIRO/TESOURARIA/"),
        ("/", "/"),  # the root folder
        ("/2026_FECHAMENTO/", "/2026_FECHAMENTO/"),  # folder names may start with a digit (job names may not)
        ("/" + "A" * 256 + "/", "/" + "A" * 256 + "/"),
    ],
)
def test_folder_paths_hwa_accepts(value: str, canonical: str) -> None:
    assert validation.check_folder(value) == canonical
    validation.check_name("folder", value)


@pytest.mark.parametrize(
    ("value", "rule", "words"),
    [
        ("/RH//", "syntax.folder", "not a valid HWA folder path"),  # an empty name between slashes
        ("/R H/", "syntax.folder", "no spaces"),
        ("/../RH/", "syntax.folder", "separated by single"),
        ("/-RH/", "syntax.folder", "not starting with"),
        ("/RH';DROP/", "syntax.folder", "for example /FINANCEIRO/TESOURARIA/"),
        ("/RH/*", "syntax.wildcard", "Wildcards are not allowed in a folder path"),
        ("/FIN@/", "syntax.wildcard", "name one folder"),
        ("/" + "A" * 257 + "/", "syntax.folder_name_too_long", "longer than 256 characters"),
        ("/" + "/".join(["ABCDEFGHIJ" * 10] * 9) + "/", "syntax.folder_too_long", "longer than 800 characters"),
    ],
)
def test_folder_paths_hwa_refuses_with_a_clear_message(value: str, rule: str, words: str) -> None:
    refused = _refused(validation.check_folder, value)
    assert refused.rule == rule and words in refused.message, refused.message
    assert _refused(validation.check_name, "folder", value).rule == rule


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA", ("PRD_LNX01", "/RH/", "FOLHA_PAGAMENTO", "FP_CALC_FOLHA")),
        (RH_JOB, ("", "/RH/", "FOLHA_PAGAMENTO", "FP_CALC_FOLHA")),
        ("RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA", ("", "/RH/", "FOLHA_PAGAMENTO", "FP_CALC_FOLHA")),  # relative to the root
        ("/CARGA_DW_VENDAS.DWV_PUBLICA", ("", "/", "CARGA_DW_VENDAS", "DWV_PUBLICA")),  # in the root folder
        ("/FINANCEIRO/TESOURARIA/CB_CONCILIA", ("", "/FINANCEIRO/TESOURARIA/", "", "CB_CONCILIA")),  # folder and a name
        ("/LINUX/PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA", ("PRD_LNX01", "/RH/", "FOLHA_PAGAMENTO", "FP_CALC_FOLHA")),
        ("FOLHA_PAGAMENTO.FP_CALC_FOLHA", ("", None, "FOLHA_PAGAMENTO", "FP_CALC_FOLHA")),  # no folder: any folder
    ],
)
def test_job_references_with_folders_are_accepted(ref: str, parts: tuple[str, str | None, str, str]) -> None:
    got = validation.check_job_ref(ref)
    assert (got.workstation, got.canonical_folder, got.stream, got.name) == parts


@pytest.mark.parametrize(
    ("ref", "rule", "words"),
    [
        ("/RH//FOLHA_PAGAMENTO.FP_CALC_FOLHA", "syntax.folder", "'/RH//' is not a valid HWA folder path"),
        ("PRD_LNX01#/R H/FOLHA_PAGAMENTO.FP_CALC_FOLHA", "syntax.folder", "not a valid HWA folder path"),
        ("/L-/../PRD_LNX01#/RH/FOLHA.FP", "syntax.folder", "not a valid HWA folder path"),  # the workstation's folder too
        ("/RH/", "syntax.job_ref", "names no job after its folder"),
        ("PRD_LNX01#", "syntax.job_ref", "names no job after its workstation"),
        ("FOLHA_PAGAMENTO.", "syntax.job_ref", "names no job after its job stream"),
        ("#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA", "syntax.job_ref", "no workstation"),
        ("/RH/.FP_CALC_FOLHA", "syntax.job_ref", "no job stream"),
        ("/R*/FOLHA_PAGAMENTO.FP_CALC_FOLHA", "syntax.wildcard", "folder path"),
        ("/RH/FOLHA PAGAMENTO.FP_CALC_FOLHA", "syntax.job_stream", "not a valid HWA job stream name"),
        ("/RH/FOLHA_PAGAMENTO.FP'--", "syntax.job", "not a valid HWA job name"),
        ("PRD_LNX01_TOO_LONG_NAME#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA", "syntax.workstation", "workstation"),
    ],
)
def test_malformed_job_references_are_refused_with_a_clear_message(ref: str, rule: str, words: str) -> None:
    refused = _refused(validation.check_job_ref, ref, wildcards=True)
    assert refused.rule == rule and words in refused.message, refused.message


def test_patterns_may_carry_a_folder_where_wildcards_are_allowed() -> None:
    assert validation.check_job_ref("/RH/FP_*", wildcards=True).canonical_folder == "/RH/"
    assert _refused(validation.check_job_ref, "/RH/FP_*").rule == "syntax.wildcard"


# --- the intent parser -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "intent", "folder", "jobs", "streams"),
    [
        ("o que falhou na pasta /RH/?", Intent.FAILURES, "/RH/", [], []),
        ("what failed in folder /FINANCEIRO/?", Intent.FAILURES, "/FINANCEIRO/", [], []),
        ("jobs in folder RH", Intent.KNOWLEDGE, "/RH/", [], []),
        ("status da pasta rh", Intent.STATUS, "/RH/", [], []),  # a folder of the plan, in any case
        ("o que está rodando na pasta FINANCEIRO/TESOURARIA?", Intent.RUNNING, "FINANCEIRO/TESOURARIA", [], []),
        ("what is running in the /FINANCEIRO/TESOURARIA/ folder?", Intent.RUNNING, "/FINANCEIRO/TESOURARIA/", [], []),
        ("o que falhou em /TI/?", Intent.FAILURES, "/TI/", [], []),
        ("o que falhou em /ti/?", Intent.FAILURES, "/ti/", [], []),  # lower case: a folder of the plan
        ("what failed in the root folder?", Intent.FAILURES, "/", [], []),
        ("status do PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA", Intent.STATUS, None, ["PRD_LNX01#" + RH_JOB], []),
        ("por que o /RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA falhou?", Intent.WHY_FAILED, None, [RH_JOB], []),
        ("status do FP_CALC_FOLHA na pasta /RH/", Intent.STATUS, "/RH/", ["FP_CALC_FOLHA"], []),
        ("status do /RH/FOLHA_PAGAMENTO", Intent.STATUS, None, [], ["/RH/FOLHA_PAGAMENTO"]),
        ("o que falhou na pasta /RH//X/?", Intent.FAILURES, "/RH//X/", [], []),  # as typed: validation refuses it
    ],
)
def test_recognizer_reads_folders_and_folder_references(question: str, intent: Intent, folder: str | None, jobs: list[str],
                                                        streams: list[str]) -> None:
    rec = recognize(question, job_names=JOBS, stream_names=STREAMS, workstation_names=STATIONS, folder_names=FOLDERS)
    assert (rec.intent, rec.folder, rec.jobs, rec.streams) == (intent, folder, jobs, streams)


@pytest.mark.parametrize("question", ["abra a pasta de trabalho do Excel", "o que falhou desde 20/11?", "the disk /backup is full",
                                      "see https://example.com/a.b for the fix", "o diretório /dados/folha/saida/ encheu",
                                      "sumiu o /dados/folha/saida/sem_conta.txt"])
def test_no_folder_where_none_was_named(question: str) -> None:
    rec = recognize(question, job_names=JOBS, stream_names=STREAMS, folder_names=FOLDERS)
    assert rec.folder is None and not any("/" in j for j in rec.jobs)


def test_a_job_named_with_the_questions_folder_is_that_folders_job() -> None:
    rec = recognize("reexecutar FP_CALC_FOLHA na pasta /RH/", job_names=JOBS, folder_names=FOLDERS)
    assert rec.action == "rerun" and rec.qualified(rec.jobs[0]) == "/RH/FP_CALC_FOLHA"
    root = recognize("status do FP_CALC_FOLHA na pasta raiz", job_names=JOBS)
    assert root.qualified(root.jobs[0]) == "/FP_CALC_FOLHA"


# --- tools against the demo night -------------------------------------------------------------------------


def _ctx(user: Any, question: str = "status") -> ToolContext:
    conversation = Conversation.objects.create(user=user)
    turn = Turn.objects.create(conversation=conversation, user=user, question=question)
    return ToolContext(user=user, conversation_id=conversation.id, turn_id=turn.id, question=question, language="pt")


def _streams(result: Any) -> set[str]:
    return {j["stream"] for j in result.data["jobs"]}


def test_plan_query_lists_one_folder(hwa: Any, operator: Any) -> None:
    rh = tool_run("plan_query", {"folder": "/RH/"}, _ctx(operator))
    assert not rh.error and _streams(rh) == {"FOLHA_PAGAMENTO"} and rh.data["folder"] == "/RH/"
    assert {j["folder"] for j in rh.data["jobs"]} == {"/RH/"} and "in folder /RH/" in rh.summary
    assert _streams(tool_run("plan_query", {"folder": "rh"}, _ctx(operator))) == {"FOLHA_PAGAMENTO"}
    # That folder only: /FINANCEIRO/TESOURARIA/ is a folder of its own.
    finance = tool_run("plan_query", {"folder": "/FINANCEIRO/", "limit": 25}, _ctx(operator))
    assert "CONCILIACAO_BANCARIA" not in _streams(finance) and "CONTAS_PAGAR" in _streams(finance)
    treasury = tool_run("plan_query", {"folder": "/FINANCEIRO/TESOURARIA/"}, _ctx(operator))
    assert _streams(treasury) == {"CONCILIACAO_BANCARIA"}
    root = tool_run("plan_query", {"folder": "/", "limit": 25}, _ctx(operator))
    assert "CARGA_DW_VENDAS" in _streams(root) and "FOLHA_PAGAMENTO" not in _streams(root)
    # With other filters, and a folder in the name itself.
    failed = tool_run("plan_query", {"folder": "/TI/", "failed_only": True}, _ctx(operator))
    assert "BKP_RMAN_FULL" in {j["name"] for j in failed.data["jobs"]} and _streams(failed) <= {
        "HOUSEKEEPING_TWS", "BACKUP_FS", "BACKUP_NOTURNO_ORACLE"}
    assert {j["name"] for j in tool_run("plan_query", {"name": "/RH/FP_*"}, _ctx(operator)).data["jobs"]} >= {"FP_CALC_FOLHA"}
    assert tool_run("plan_query", {"name": "/TI/FP_*"}, _ctx(operator)).data["total"] == 0
    assert tool_run("plan_query", {"name": "/RH/FP_*", "folder": "/TI/"}, _ctx(operator)).data["total"] == 0


def test_a_refused_folder_is_audited_and_lists_nothing(hwa: Any, operator: Any) -> None:
    ctx = _ctx(operator)
    result = tool_run("plan_query", {"folder": "/RH//", "failed_only": True}, ctx)
    assert result.error == "refused" and "not a valid HWA folder path" in result.data["error"] and "jobs" not in result.data
    event = AuditEvent.objects.get(action=AuditAction.VALIDATION_REFUSED)
    assert event.actor_id == operator.pk and event.outcome == "refused" and event.details["rule"] == "syntax.folder"
    assert event.details["arguments"]["folder"] == "/RH//" and event.details["turn_id"] == str(ctx.turn_id)
    too_long = tool_run("plan_query", {"folder": "/" + "A" * 300 + "/"}, ctx)
    assert too_long.error == "refused" and "256 characters" in too_long.data["error"]
    assert AuditEvent.objects.filter(action=AuditAction.VALIDATION_REFUSED).latest("id").details["rule"] == "syntax.folder_name_too_long"


def test_job_tools_resolve_references_with_folders(hwa: Any, operator: Any) -> None:
    for ref in ("PRD_LNX01#" + RH_JOB, RH_JOB, "RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA", "/RH/FP_CALC_FOLHA", "/RH/FOLHA_PAGAMENTO"):
        result = tool_run("job_details", {"job": ref}, _ctx(operator))
        assert not result.error, (ref, result.summary)
        assert (result.data["job"]["name"], result.data["job"]["folder"]) == ("FP_CALC_FOLHA", "/RH/"), ref
    # The folder, the stream and the workstation all count: the same name elsewhere is no match.
    for ref in ("/TI/FOLHA_PAGAMENTO.FP_CALC_FOLHA", "/FOLHA_PAGAMENTO.FP_CALC_FOLHA", "PRD_ORA01#" + RH_JOB):
        assert tool_run("job_details", {"job": ref}, _ctx(operator)).error == "not_found", ref
    log = tool_run("job_log", {"job": RH_JOB}, _ctx(operator))
    assert not log.error and any("FOL-0012" in line["text"] for line in log.data["lines"])


def test_a_malformed_reference_never_reaches_hwa_and_is_audited(hwa: Any, operator: Any) -> None:
    before = hwa.request_count
    result = tool_run("job_log", {"job": "/RH//FOLHA_PAGAMENTO.FP_CALC_FOLHA"}, _ctx(operator))
    assert result.error == "refused" and "'/RH//' is not a valid HWA folder path" in result.data["error"]
    assert hwa.request_count == before
    assert AuditEvent.objects.get(action=AuditAction.VALIDATION_REFUSED).details["rule"] == "syntax.folder"


def test_labels_show_no_folder_where_it_tells_nothing_apart(hwa: Any, operator: Any) -> None:
    result = tool_run("job_details", {"job": RH_JOB}, _ctx(operator))
    assert result.citations[0]["title"] == "FOLHA_PAGAMENTO.FP_CALC_FOLHA (ABEND)"
    assert result.data["job"]["ref"] == "FOLHA_PAGAMENTO.FP_CALC_FOLHA" and result.data["job"]["folder"] == "/RH/"


# --- no-LLM answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "folder", "present", "absent", "note"),
    [
        ("o que falhou na pasta /RH/?", "/RH/", ["FP_CALC_FOLHA"], ["BKP_RMAN_FULL", "CBR0150"], "Pasta: /RH/ (sem as subpastas)"),
        ("what failed in folder /TI/?", "/TI/", ["BKP_RMAN_FULL"], ["FP_CALC_FOLHA"], "Folder: /TI/ (not its sub-folders)"),
        ("quais jobs caíram na pasta FINANCEIRO?", "/FINANCEIRO/", ["CBR0150"], ["FP_CALC_FOLHA", "BKP_RMAN_FULL"], "Pasta: /FINANCEIRO/"),
        ("jobs in folder RH", "/RH/", ["FP_EXTRAI_PONTO", "FP_ENVIA_BANCO"], ["CB_CONCILIA"], "Folder: /RH/"),
        ("status da pasta /FINANCEIRO/TESOURARIA/", "/FINANCEIRO/TESOURARIA/", ["CB_CONCILIA"], ["FP_CALC_FOLHA"],
         "Pasta: /FINANCEIRO/TESOURARIA/"),
    ],
)
def test_no_llm_lists_the_folder_the_person_asked_about(hwa: Any, kb: Any, ask: Any, question: str, folder: str,
                                                        present: list[str], absent: list[str], note: str) -> None:
    turn = ask(question)
    (name, args), = tools_of(turn)
    assert name == "plan_query" and args["folder"] == folder, args
    answer = answer_of(turn)
    assert note in answer, answer
    assert all(job in answer for job in present) and not any(job in answer for job in absent), answer


def test_no_llm_answers_about_a_job_named_with_its_folder(hwa: Any, kb: Any, ask: Any) -> None:
    turn = ask("por que o /RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA falhou?")
    assert [n for n, _ in tools_of(turn)] == ["job_details", "job_log", "kb_search"]
    assert tools_of(turn)[0][1] == {"job": RH_JOB}
    assert "FOL-0012" in answer_of(turn) and "KB-0003" in citations_of(turn)
    en = ask("status of PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA")
    assert tools_of(en)[0] == ("job_details", {"job": "PRD_LNX01#" + RH_JOB}) and "ABEND" in answer_of(en)
    scoped = ask("status do FP_CALC_FOLHA na pasta /RH/")
    assert tools_of(scoped)[0] == ("job_details", {"job": "/RH/FP_CALC_FOLHA"}) and "ABEND" in answer_of(scoped)
    elsewhere = ask("status do FP_CALC_FOLHA na pasta /TI/")
    assert "Não encontrei o job **/TI/FP_CALC_FOLHA**" in answer_of(elsewhere)


@pytest.mark.parametrize(
    ("question", "words"),
    [
        ("o que falhou na pasta /RH//X/?", ["Pedido recusado pela validação", "'/RH//X/' is not a valid HWA folder path"]),
        ("what failed in folder /FIN@/?", ["Request refused by validation", "Wildcards are not allowed in a folder path"]),
        ("status do /RH//FOLHA_PAGAMENTO.FP_CALC_FOLHA", ["Pedido recusado pela validação", "'/RH//' is not a valid HWA folder"]),
    ],
)
def test_no_llm_says_why_a_folder_is_refused(hwa: Any, kb: Any, ask: Any, question: str, words: list[str]) -> None:
    turn = ask(question)
    for word in words:
        assert word in answer_of(turn), answer_of(turn)
    event = AuditEvent.objects.get(action=AuditAction.VALIDATION_REFUSED)
    assert event.details["rule"] in ("syntax.folder", "syntax.wildcard") and event.details["turn_id"] == str(turn.id)


# --- the LLM's tool -------------------------------------------------------------------------------------


def test_the_llm_gets_the_folder_as_a_tool_parameter(hwa: Any, kb: Any, ask: Any, fake_llm: Any) -> None:
    parameters = next(t for t in tool_schemas() if t["function"]["name"] == "plan_query")["function"]["parameters"]
    assert "sub-folders" in parameters["properties"]["folder"]["description"]
    fake_llm.script = [Reply(tool_calls=[("plan_query", {"folder": "/FINANCEIRO/TESOURARIA/"}),
                                         ("plan_query", {"folder": "/FINANCEIRO /TESOURARIA/"})]),
                       Reply(text="CB_CONCILIA [1].")]
    turn = ask("o que tem na pasta /FINANCEIRO/TESOURARIA/?")
    good, bad = turn.tool_calls.order_by("id")
    assert not good.error and {j["stream"] for j in good.result["jobs"]} == {"CONCILIACAO_BANCARIA"}
    assert bad.error == "refused"
    tool_messages = [json.loads(m["content"]) for m in fake_llm.requests[1]["body"]["messages"] if m["role"] == "tool"]
    assert tool_messages[0]["data"]["folder"] == "/FINANCEIRO/TESOURARIA/"
    assert all(j["folder"] == "/FINANCEIRO/TESOURARIA/" for j in tool_messages[0]["data"]["jobs"])
    assert "not a valid HWA folder path" in tool_messages[1]["data"]["error"]
    assert AuditEvent.objects.get(action=AuditAction.VALIDATION_REFUSED).details["arguments"]["folder"] == "/FINANCEIRO /TESOURARIA/"


# --- the same job stream in two folders -------------------------------------------------------------------


def two_payrolls() -> dict[str, Any]:
    """The demo night with a second FOLHA_PAGAMENTO in /FILIAL_SUL/, whose FP_CALC_FOLHA succeeds."""
    import copy

    from jobs.tws.mock.scenario import load_scenario

    scenario = load_scenario("demo")
    payroll = copy.deepcopy(next(s for s in scenario["streams"] if s["name"] == "FOLHA_PAGAMENTO"))
    payroll["folder"] = "/FILIAL_SUL/"
    for job in payroll["jobs"]:
        job.pop("rc", None)
    scenario["streams"].append(payroll)
    return scenario


SUL_JOB = "/FILIAL_SUL/FOLHA_PAGAMENTO.FP_CALC_FOLHA"


class TestTheSameStreamInTwoFolders:
    @pytest.fixture
    def hwa_scenario(self) -> dict[str, Any]:
        return two_payrolls()

    def test_a_bare_name_is_not_guessed(self, hwa: Any, operator: Any) -> None:
        # Only the /RH/ run failed; a failed run in one folder says nothing about which one the person meant.
        result = tool_run("job_details", {"job": "FP_CALC_FOLHA"}, _ctx(operator))
        assert result.error == "ambiguous" and result.data["folders"] == ["/FILIAL_SUL/", "/RH/"]
        assert {j["ref"] for j in result.data["candidates"]} == {RH_JOB, SUL_JOB}
        assert "ask the user which one" in result.data["ask"] and RH_JOB in result.summary and SUL_JOB in result.summary
        stream = tool_run("job_log", {"job": "FOLHA_PAGAMENTO"}, _ctx(operator))
        assert stream.error == "ambiguous" and len(stream.data["folders"]) == 2

    def test_a_reference_with_the_folder_is_that_folders_job(self, hwa: Any, operator: Any) -> None:
        rh = tool_run("job_details", {"job": RH_JOB}, _ctx(operator))
        sul = tool_run("job_details", {"job": "PRD_LNX01#" + SUL_JOB}, _ctx(operator))
        assert (rh.data["job"]["status"], sul.data["job"]["status"]) == ("ABEND", "SUCC")
        assert rh.data["job"]["id"] != sul.data["job"]["id"]
        # Here the folder tells them apart: labels and citations show it.
        assert rh.citations[0]["title"] == f"{RH_JOB} (ABEND)" and sul.data["job"]["ref"] == SUL_JOB
        listed = tool_run("plan_query", {"job_stream": "FOLHA_PAGAMENTO", "name": "FP_CALC_FOLHA"}, _ctx(operator))
        assert {j["ref"] for j in listed.data["jobs"]} == {RH_JOB, SUL_JOB}
        deps = tool_run("job_dependencies", {"job": RH_JOB}, _ctx(operator))
        assert deps.data["job"]["ref"] == RH_JOB
        assert all(p["name"].startswith("/") and p["name"].endswith("/FOLHA_PAGAMENTO.FP_EXTRAI_PONTO")
                   for p in deps.data["predecessors"]), deps.data["predecessors"]

    @pytest.mark.parametrize(
        ("question", "words"),
        [
            ("por que o FP_CALC_FOLHA falhou?", ["existe em 2 pastas", "De qual delas", RH_JOB, SUL_JOB]),
            ("status of FP_CALC_FOLHA", ["is in 2 folders", "Which one do you mean", RH_JOB, SUL_JOB]),
        ],
    )
    def test_no_llm_asks_which_folder(self, hwa: Any, kb: Any, ask: Any, question: str, words: list[str]) -> None:
        turn = ask(question)
        assert [n for n, _ in tools_of(turn)] == ["job_details"]  # no log read for a guessed job
        for word in words:
            assert word in answer_of(turn), answer_of(turn)

    def test_no_llm_answers_once_the_folder_is_given(self, hwa: Any, kb: Any, ask: Any) -> None:
        turn = ask(f"por que o {RH_JOB} falhou?")
        assert "FOL-0012" in answer_of(turn) and "(stream /RH/FOLHA_PAGAMENTO," in answer_of(turn)
        assert any(c.title.startswith(RH_JOB) for c in turn.citations.all())
        scoped = ask("status do FP_CALC_FOLHA na pasta /FILIAL_SUL/")
        assert "SUCC" in answer_of(scoped) and "/FILIAL_SUL/FOLHA_PAGAMENTO" in answer_of(scoped)
        # The stream's jobs in both folders, each marked with its folder.
        both = ask("status do FOLHA_PAGAMENTO")
        assert "(/RH/)" in answer_of(both) and "(/FILIAL_SUL/)" in answer_of(both)

    def test_an_action_on_a_name_in_two_folders_asks_first(self, hwa: Any, kb: Any, ask: Any) -> None:
        turn = ask("reexecutar FP_CALC_FOLHA")
        assert not ActionProposal.objects.exists() and "De qual delas" in answer_of(turn)
        made = ask(f"reexecutar {RH_JOB}")
        proposal = ActionProposal.objects.get()
        from jobs.models import JobInstance

        assert proposal.jobs[0]["id"] == JobInstance.objects.get(folder="/RH/", name="FP_CALC_FOLHA").hwa_id
        # What the person confirms says which folder's job it is.
        assert proposal.jobs[0]["label"] == RH_JOB and f"**{RH_JOB}**" in answer_of(made)

    def test_the_llm_is_told_to_ask_and_then_gives_the_folder(self, hwa: Any, kb: Any, ask: Any, fake_llm: Any) -> None:
        fake_llm.script = [Reply(tool_calls=[("job_details", {"job": "FP_CALC_FOLHA"})]),
                           Reply(tool_calls=[("job_details", {"job": RH_JOB})]), Reply(text="ABEND [2].")]
        turn = ask("status do FP_CALC_FOLHA")
        first, second = turn.tool_calls.order_by("id")
        assert first.error == "ambiguous" and not second.error and second.result["job"]["folder"] == "/RH/"
        data = json.loads([m for m in fake_llm.requests[1]["body"]["messages"] if m["role"] == "tool"][-1]["content"])["data"]
        assert data["folders"] == ["/FILIAL_SUL/", "/RH/"] and "do not pick one" in data["ask"]

    def test_a_proposal_stays_in_the_folder_the_person_named(self, hwa: Any, kb: Any, ask: Any, fake_llm: Any) -> None:
        fake_llm.script = [Reply(tool_calls=[("propose_action", {"action": "rerun", "jobs": [SUL_JOB]}),
                                             ("propose_action", {"action": "rerun", "jobs": [RH_JOB]})]),
                           Reply(text="Proposta criada.")]
        turn = ask("reexecutar FP_CALC_FOLHA na pasta /RH/")
        other, named = turn.tool_calls.order_by("id")
        assert other.error == "not_requested" and "/RH/FP_CALC_FOLHA" in other.result["error"]
        assert not named.error and named.result["created"]
        event = AuditEvent.objects.get(action=AuditAction.VALIDATION_REFUSED)
        assert event.details["rule"] == "security.not_named" and event.details["arguments"]["jobs"] == [SUL_JOB]
