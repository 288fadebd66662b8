"""The no-LLM answer mode: recognize the intent, run the same tools, compose a cited answer.

Used when `LLM_MODEL` is unset, and as the fallback when the LLM errors or times out. Answers
follow the question's language (not the page's), so their wording is kept here per language
rather than in the gettext catalogue. Every fact comes from a tool result whose citation was
emitted; numbers like [1] refer to the citations in emission order.
"""

from __future__ import annotations

from typing import Any

from chat.agent import sources, validation
from chat.agent.intents import Intent, Recognized, recognize
from chat.agent.tools import ToolContext, ToolResult, tool_run

T: dict[str, dict[str, str]] = {
    "fallback_note": {
        "pt": "_O modelo de linguagem não respondeu ({reason}); respondo no modo sem LLM._\n\n",
        "en": "_The language model did not answer ({reason}); answering in no-LLM mode._\n\n",
    },
    "greeting": {
        "pt": "Olá! Pergunte sobre o plano: \"status do FOLHA_PAGAMENTO\", \"o que abendou hoje à noite?\", "
              "\"por que o CARGA_DW falhou?\", \"como resolver AWSBHT001E?\", ou peça \"reexecutar X\".",
        "en": "Hello! Ask about the plan: \"status of FOLHA_PAGAMENTO\", \"what failed tonight?\", "
              "\"why did CARGA_DW fail?\", \"how do I fix AWSBHT001E?\", or ask to \"rerun X\".",
    },
    "job_status": {
        "pt": "**{job}** (stream {stream}, workstation {ws}): status **{status}**{common}{rc}{times}.",
        "en": "**{job}** (stream {stream}, workstation {ws}): status **{status}**{common}{rc}{times}.",
    },
    "rc": {"pt": ", código de retorno {rc}", "en": ", return code {rc}"},
    "started": {"pt": ", iniciou {t}", "en": ", started {t}"},
    "ended": {"pt": ", terminou {t}", "en": ", ended {t}"},
    "critical": {"pt": " Job **crítico**.", "en": " **Critical** job."},
    "late": {"pt": " Está **atrasado**.", "en": " It is **late**."},
    "not_found": {
        "pt": "Não encontrei o job **{job}** no plano atual.",
        "en": "I could not find job **{job}** in the current plan.",
    },
    "ambiguous": {
        "pt": "Há {n} jobs chamados **{job}**; diga o stream (STREAM.JOB): {names}.",
        "en": "There are {n} jobs named **{job}**; say which stream (STREAM.JOB): {names}.",
    },
    "ambiguous_folders": {
        "pt": "**{job}** existe em {n} pastas: {names}. De qual delas você fala? Diga com a pasta, por exemplo **{example}**.",
        "en": "**{job}** is in {n} folders: {names}. Which one do you mean? Say it with the folder, for example **{example}**.",
    },
    "folder": {"pt": "_Pasta: {folder} (sem as subpastas)._", "en": "_Folder: {folder} (not its sub-folders)._"},
    "folder_head": {"pt": "{n} job(s) na pasta:", "en": "{n} job(s) in the folder:"},
    "folder_none": {"pt": "Nenhum job nessa pasta no plano atual.", "en": "No jobs in that folder in the current plan."},
    "which_job": {
        "pt": "De qual job você fala? Diga o nome (por exemplo FOLHA_PAGAMENTO).",
        "en": "Which job do you mean? Give its name (for example FOLHA_PAGAMENTO).",
    },
    "failures_none": {
        "pt": "Nenhum job com falha no plano atual.",
        "en": "No failed jobs in the current plan.",
    },
    "failures_head": {
        "pt": "{n} job(s) com falha no plano atual:",
        "en": "{n} failed job(s) in the current plan:",
    },
    "failures_more": {"pt": "… e mais {n}.", "en": "… and {n} more."},
    "window": {"pt": "_Período: de {since} a {until}._", "en": "_Time window: {since} to {until}._"},
    "stream_window_none": {
        "pt": "Nenhum job do stream **{stream}** começou ou terminou nesse período.",
        "en": "No job of stream **{stream}** started or ended in that window.",
    },
    "failures_tip": {
        "pt": "Pergunte \"por que o {job} falhou?\" para ver o log e a solução.",
        "en": "Ask \"why did {job} fail?\" to see its log and the fix.",
    },
    "running_none": {"pt": "Nenhum job em execução agora.", "en": "No jobs are running right now."},
    "running_head": {"pt": "{n} job(s) em execução:", "en": "{n} job(s) running:"},
    "stuck_none": {
        "pt": "Não vejo jobs parados (HOLD, READY esperando, STUCK ou atrasados) no plano atual.",
        "en": "I see no stuck jobs (HOLD, READY waiting, STUCK or late) in the current plan.",
    },
    "stuck_head": {"pt": "Jobs que não estão andando:", "en": "Jobs that are not moving:"},
    "log_head": {"pt": "Trecho do log de **{job}** (linhas {a}-{b}) [{n}]:", "en": "Log of **{job}** (lines {a}-{b}) [{n}]:"},
    "cached_age": {"pt": " _(lido do HWA há {s} s)_", "en": " _(read from HWA {s} s ago)_"},
    "log_empty": {"pt": "O log de **{job}** não está disponível: {why}.", "en": "The log of **{job}** is not available: {why}."},
    "codes_in_log": {"pt": "Códigos no log: {codes}.", "en": "Codes in the log: {codes}."},
    "kb_head": {"pt": "Na base de conhecimento, **{id}** — {title} [{n}]:", "en": "In the knowledge base, **{id}**: {title} [{n}]:"},
    "kb_cause": {"pt": "**Causa:** {text}", "en": "**Cause:** {text}"},
    "kb_solution": {"pt": "**Solução:**\n{text}", "en": "**Solution:**\n{text}"},
    "kb_also": {"pt": "Veja também: {ids}.", "en": "See also: {ids}."},
    "kb_flagged": {
        "pt": "⚠ A entrada **{id}** contém texto dirigido a um assistente (instruções, pedido de segredos ou link "
              "externo): ele foi trocado por [instruction removed] e não foi seguido. Peça a um revisor que corrija a entrada.",
        "en": "⚠ Entry **{id}** contains text aimed at an assistant (instructions, a request for secrets or an outside "
              "link): it was replaced by [instruction removed] and not followed. Ask a reviewer to fix the entry.",
    },
    "verified_head": {
        "pt": "**Resposta verificada** pela equipe para esta pergunta: **{id}**: {title} [{n}]",
        "en": "**Verified answer** from the team for this question: **{id}**: {title} [{n}]",
    },
    "kb_none": {
        "pt": "Não encontrei nada na base de conhecimento sobre isso.",
        "en": "I found nothing in the knowledge base about this.",
    },
    "kb_unavailable": {"pt": "A base de conhecimento não está disponível: {why}.", "en": "The knowledge base is unavailable: {why}."},
    "not_failed": {
        "pt": "**{job}** não falhou: está em **{status}**.",
        "en": "**{job}** did not fail: it is **{status}**.",
    },
    "deps_pred": {"pt": "**Predecessores:**", "en": "**Predecessors:**"},
    "deps_succ": {"pt": "**Sucessores:**", "en": "**Successors:**"},
    "deps_none": {"pt": "nenhum", "en": "none"},
    "deps_waiting": {
        "pt": "Sucessores esperando por ele: {names}.",
        "en": "Successors waiting for it: {names}.",
    },
    "deps_critical": {"pt": "Sucessores críticos: {names}.", "en": "Critical successors: {names}."},
    "satisfied": {"pt": "satisfeito", "en": "satisfied"},
    "unsatisfied": {"pt": "pendente", "en": "not satisfied"},
    "ws_head": {"pt": "Workstations:", "en": "Workstations:"},
    "ws_line": {
        "pt": "**{name}** ({type}): {link}, {run}, limite {limit}, fence {fence}",
        "en": "**{name}** ({type}): {link}, {run}, limit {limit}, fence {fence}",
    },
    "linked": {"pt": "conectada", "en": "linked"},
    "unlinked": {"pt": "**desconectada**", "en": "**unlinked**"},
    "ws_running": {"pt": "rodando", "en": "running"},
    "ws_stopped": {"pt": "**parada**", "en": "**stopped**"},
    "ws_limit0": {
        "pt": "Com limite 0, os jobs ficam em READY sem iniciar.",
        "en": "With limit 0, jobs stay READY and never start.",
    },
    "refused": {"pt": "Pedido recusado pela validação: {why}", "en": "Request refused by validation: {why}"},
    "plan_stale": {
        "pt": "⚠ Dados desatualizados: do último plano lido do HWA, há {minutes} min (não consegui ler o plano desde então).",
        "en": "⚠ Stale data: from the last plan read from HWA, {minutes} min ago (I could not read the plan since).",
    },
    "plan_stale_never": {
        "pt": "⚠ Dados desatualizados: não consegui ler o plano do HWA.",
        "en": "⚠ Stale data: I could not read the plan from HWA.",
    },
    "plan_unavailable": {
        "pt": "Não consegui ler o plano agora: {why}.",
        "en": "I could not read the plan right now: {why}.",
    },
    "proposal_made": {
        "pt": "Preparei uma proposta para **{action}** {jobs}. Nada foi executado: confira o impacto no cartão "
              "abaixo e confirme com uma justificativa.{second}",
        "en": "I prepared a proposal to **{action}** {jobs}. Nothing was executed: review the impact on the card "
              "below and confirm it with a justification.{second}",
    },
    "proposal_second": {
        "pt": " Por ser de alto risco, um supervisor também precisa aprovar.",
        "en": " It is high-risk, so a supervisor must also approve it.",
    },
    "proposal_refused": {"pt": "Não posso propor essa ação: {why}.", "en": "I cannot propose that action: {why}."},
    "action_which": {
        "pt": "Em qual job? Diga o nome, por exemplo \"reexecutar FOLHA_PAGAMENTO\".",
        "en": "On which job? Give its name, for example \"rerun FOLHA_PAGAMENTO\".",
    },
    "stream_head": {"pt": "Jobs do stream **{stream}** [{n}]:", "en": "Jobs of stream **{stream}** [{n}]:"},
    "no_data": {
        "pt": "Não encontrei informação sobre isso no plano nem na base de conhecimento. Tente citar o nome do job ou o código do erro.",
        "en": "I found nothing about this in the plan or the knowledge base. Try naming the job or the error code.",
    },
}

ACTION_NAMES = {
    "pt": {"rerun": "reexecutar", "hold": "segurar (hold)", "release": "liberar", "cancel": "cancelar", "kill": "matar (kill)",
           "confirm_succ": "confirmar como sucesso", "confirm_abend": "confirmar como abend"},
    "en": {"rerun": "rerun", "hold": "hold", "release": "release", "cancel": "cancel", "kill": "kill",
           "confirm_succ": "confirm as successful", "confirm_abend": "confirm as abended"},
}


class Composer:
    """Builds the answer text piece by piece, numbering citations as the tools emit them."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.lang = ctx.language if ctx.language in ("pt", "en") else "pt"
        self.parts: list[str] = []
        self.stale_said = False

    def t(self, key: str, **values: Any) -> str:
        return T[key][self.lang].format(**values)

    def say(self, text: str) -> None:
        self.parts.append(text)

    def run(self, name: str, args: dict[str, Any]) -> ToolResult:
        result = tool_run(name, args, self.ctx)
        stale = result.data.get("plan_stale")
        if stale and not self.stale_said:  # once per answer, before what was read from the stale plan
            self.stale_said = True
            minutes = stale.get("age_minutes")
            if minutes is None:
                self.say(self.t("plan_stale_never"))
            else:
                self.say(self.t("plan_stale", minutes=minutes or "< 1"))
        return result

    def ref(self, result: ToolResult, index: int = 0) -> int | str:
        return result.refs[index] if index < len(result.refs) else "?"

    @property
    def text(self) -> str:
        return "\n\n".join(p for p in self.parts if p)


def _fmt_time(value: str | None) -> str:
    if not value:
        return ""
    return value.replace("T", " ")[:16]


def _stream_of(job: dict[str, Any]) -> str:
    """The job's stream as answers show it: with its folder where another folder has a stream of that name."""
    label = job.get("ref") or ""
    if "/" in label:
        return label.rpartition(".")[0]
    return job.get("stream") or "-"


def _path_of(job: dict[str, Any]) -> str:
    return f"{job.get('folder') or ''}{job.get('stream')}.{job['name']}" if job.get("stream") else job["name"]


def _ambiguous(c: Composer, name: str, data: dict[str, Any]) -> str:
    """Which job? A name in several folders lists each folder's job; otherwise each stream's."""
    candidates = data["candidates"]
    if data.get("folders"):
        paths = [_path_of(j) for j in candidates[:8]]
        return c.t("ambiguous_folders", job=name, n=len(data["folders"]), names=", ".join(f"**{p}**" for p in paths),
                   example=paths[0])
    return c.t("ambiguous", n=len(candidates), job=name, names=", ".join(j.get("ref") or f"{j.get('stream')}.{j['name']}"
                                                                          for j in candidates[:8]))


def _job_line(c: Composer, job: dict[str, Any], ref: int | None = None) -> str:
    common = f" ({job['common_status']})" if job.get("common_status") else ""
    rc = c.t("rc", rc=job["return_code"]) if job.get("return_code") is not None else ""
    times = ""
    if job.get("started_at"):
        times += c.t("started", t=_fmt_time(job["started_at"]))
    if job.get("ended_at"):
        times += c.t("ended", t=_fmt_time(job["ended_at"]))
    line = c.t("job_status", job=job["name"], stream=_stream_of(job), ws=job.get("workstation") or "-",
               status=job.get("status") or "?", common=common, rc=rc, times=times)
    if job.get("critical"):
        line += c.t("critical")
    if job.get("late"):
        line += c.t("late")
    if ref is not None:
        line += f" [{ref}]"
    return line


def _unavailable(c: Composer, result: ToolResult) -> bool:
    if result.error == "refused":
        # The validation layer's reason, as the operator should read it (the refusal is audited).
        c.say(c.t("refused", why=result.data.get("error", result.summary)))
        return True
    if result.error in ("plan_unavailable", "unavailable", "hwa_unavailable"):
        c.say(c.t("plan_unavailable", why=result.data.get("error", result.summary)))
        return True
    return False


def _job_or_explain(c: Composer, name: str, tool: str = "job_details") -> ToolResult | None:
    result = c.run(tool, {"job": name})
    if _unavailable(c, result):
        return None
    if result.error == "not_found":
        c.say(c.t("not_found", job=name))
        return None
    if result.error == "ambiguous":
        c.say(_ambiguous(c, name, result.data))
        return None
    return result


def _kb(c: Composer, query: str, *, say_none: bool = True) -> bool:
    result = c.run("kb_search", {"question": query[:1000]})
    if result.error:
        c.say(c.t("kb_unavailable", why=result.data.get("error", result.summary)))
        return False
    entries = result.data.get("entries") or []
    if not entries:
        if say_none:
            c.say(c.t("kb_none"))
        return False
    top = entries[0]
    _say_entry(c, "kb_head", entry_id=top["id"], title=top["title"], cause=top.get("cause") or "",
               solution=top.get("solution") or "", n=c.ref(result))
    if len(entries) > 1:
        c.say(c.t("kb_also", ids=", ".join(f"{e['id']} [{c.ref(result, i + 1)}]" for i, e in enumerate(entries[1:]))))
    return True


def _window_note(c: Composer, result: ToolResult) -> str:
    """The list's scope as asked: its folder and its time window."""
    notes = [c.t("folder", folder=result.data["folder"])] if result.data.get("folder") else []
    window = result.data.get("window")
    if window:
        notes.append(c.t("window", since=_fmt_window(window["since"]), until=_fmt_window(window["until"])))
    return " ".join(notes)


def _fmt_window(value: str) -> str:
    from datetime import datetime

    return datetime.fromisoformat(value).strftime("%d/%m %H:%M")


def _say_entry(c: Composer, head: str, *, entry_id: str, title: str, cause: str, solution: str, n: int | str) -> None:
    """A knowledge entry's text, shown as data: instructions planted in it are replaced by the same
    `validation.neutralize` that cleans what the model reads, and the answer says so."""
    (title, cause, solution), found = validation.neutralize([title, cause, solution])
    c.say(c.t(head, id=entry_id, title=title, n=n))
    if found:
        c.say(c.t("kb_flagged", id=entry_id))
    if cause:
        c.say(c.t("kb_cause", text=cause))
    if solution:
        c.say(c.t("kb_solution", text=solution))


def _list_jobs(c: Composer, result: ToolResult, head: str, none: str) -> list[dict[str, Any]]:
    if _unavailable(c, result):
        return []
    jobs = result.data.get("jobs") or []
    note = _window_note(c, result)
    if not jobs:
        c.say(c.t(none) + (f" {note}" if note else ""))
        return []
    if note:
        c.say(note)
    lines = [c.t(head, n=result.data.get("total", len(jobs)))]
    for i, job in enumerate(jobs):
        rc = f" RC={job['return_code']}" if job.get("return_code") is not None else ""
        extra = " ⚠" if job.get("critical") else ""
        ref = f" [{c.ref(result, i)}]" if i < len(result.refs) else ""
        lines.append(f"- **{job['name']}** ({_stream_of(job)}): {job.get('status')}{rc}{extra}{ref}")
    more = result.data.get("total", len(jobs)) - len(jobs)
    if more > 0:
        lines.append(c.t("failures_more", n=more))
    c.say("\n".join(lines))
    return jobs


def _why_failed(c: Composer, name: str, question: str) -> None:
    details = _job_or_explain(c, name)
    if details is None:
        return
    job = details.data["job"]
    c.say(_job_line(c, job, c.ref(details)))
    log = c.run("job_log", {"job": name})
    codes: list[str] = []
    if log.error:
        c.say(c.t("log_empty", job=job["name"], why=log.data.get("error") or log.summary))
    else:
        numbered = "\n".join(f"{row['n']:>5}  {row['text']}" for row in log.data["lines"])
        c.say(c.t("log_head", job=job["name"], a=log.data["from"], b=log.data["to"], n=c.ref(log))
              + (c.t("cached_age", s=log.data["age_seconds"]) if log.data.get("cached") else "") + "\n```\n" + numbered + "\n```")
        codes = log.data.get("codes") or []
        if codes:
            c.say(c.t("codes_in_log", codes=", ".join(codes)))
    rc = [f"RC={job['return_code']}"] if job.get("return_code") not in (None, 0) and not codes else []
    query = " ".join([*codes, *rc, job["name"], job.get("stream") or ""]).strip() or question
    if not _kb(c, query, say_none=False) and not (codes and _kb(c, question, say_none=False)):
        c.say(c.t("kb_none"))


def _dependencies(c: Composer, name: str) -> None:
    result = _job_or_explain(c, name, "job_dependencies")
    if result is None:
        return
    job = result.data["job"]
    c.say(_job_line(c, job, c.ref(result)))
    preds = result.data["predecessors"]
    none = c.t("deps_none")
    pred_lines = [c.t("deps_pred")] + [
        f"- {p['name']} ({p['kind']}): {c.t('satisfied') if p['satisfied'] else c.t('unsatisfied')}"
        + (f", {p['status']}" if p.get("status") else "")
        for p in preds
    ]
    c.say("\n".join(pred_lines) if preds else f"{c.t('deps_pred')} {none}")
    succs = result.data["successors"]
    succ_lines = [c.t("deps_succ")] + [
        f"- **{s['name']}** ({_stream_of(s)}): {s.get('status')}" + (" ⚠" if s.get("critical") else "")
        for s in succs
    ]
    c.say("\n".join(succ_lines) if succs else f"{c.t('deps_succ')} {none}")
    if result.data["waiting_successors"]:
        c.say(c.t("deps_waiting", names=", ".join(result.data["waiting_successors"])))
    if result.data["critical_successors"]:
        c.say(c.t("deps_critical", names=", ".join(result.data["critical_successors"])))


def _workstations(c: Composer, name: str | None) -> None:
    result = c.run("workstation_status", {"workstation": name})
    if _unavailable(c, result):
        return
    rows = result.data.get("workstations") or []
    if not rows:
        c.say(c.t("not_found", job=name or "?"))
        return
    # Problems first: an unlinked or stopped agent, or a limit of 0, is what people ask about.
    rows.sort(key=lambda w: (w["linked"] and w["running"] and w.get("limit") != 0, w["name"]))
    lines = [c.t("ws_head") + (f" [{c.ref(result)}]" if result.refs else "")]
    for w in rows:
        line = c.t("ws_line", name=w["name"], type=w.get("type") or "-",
                   link=c.t("linked") if w["linked"] else c.t("unlinked"),
                   run=c.t("ws_running") if w["running"] else c.t("ws_stopped"),
                   limit=w.get("limit") if w.get("limit") is not None else "-",
                   fence=w.get("fence") if w.get("fence") is not None else "-")
        lines.append(f"- {line}")
    c.say("\n".join(lines))
    if any(w.get("limit") == 0 for w in rows):
        c.say(c.t("ws_limit0"))


def _action(c: Composer, rec: Recognized) -> None:
    targets = [rec.qualified(t) for t in rec.jobs or ([rec.pattern] if rec.pattern else []) or rec.streams]
    if not targets:
        c.say(c.t("action_which"))
        return
    result = c.run("propose_action", {"action": rec.action, "jobs": targets, "reason": c.ctx.question[:500]})
    if result.data.get("created"):
        c.say(c.t("proposal_made", action=ACTION_NAMES[c.lang][rec.action or ""],
                  jobs=", ".join(f"**{n}**" for n in result.data["jobs"][:10]),
                  second=c.t("proposal_second") if result.data["needs_second_approver"] else ""))
        return
    if result.error in ("not_found", "ambiguous"):
        c.say(c.t("not_found", job=targets[0]) if result.error == "not_found" else _ambiguous(c, targets[0], result.data))
        return
    c.say(c.t("proposal_refused", why=result.data.get("reason") or result.data.get("error") or result.summary))


def verified_answer(ctx: ToolContext) -> str | None:
    """The team's verified answer when the question matches one (both modes answer with it directly).

    Emits its citation, marked `verified`, and returns the text (tokens not sent); None when nothing
    matches. Requests for an action never take this path: they must reach the confirmation flow.
    """
    import logging

    from chat.models import Citation

    if ctx.requested_action:
        return None
    try:
        found = sources.verified_answer(ctx.question)
    except Exception:  # a broken match must not cost the person their answer: the normal path follows
        logging.getLogger(__name__).exception("verified-answer match failed")
        return None
    if found is None:
        return None
    hit = found.entry
    citation = {"kind": "kb", "id": hit.id, "title": f"{hit.id}: {hit.title}", "url": hit.url, "verified": True,
                "similarity": round(found.similarity, 3)}
    n = ctx.cited.setdefault(hit.id, len(ctx.cited) + 1)
    ctx.sources_used.append(f"kb:{hit.id}")
    Citation.objects.create(turn_id=ctx.turn_id, kind="kb", ref=hit.id[:200], title=citation["title"][:300], url=hit.url[:500])
    if ctx.emitter is not None:
        ctx.emitter.emit_many("citation", [{**citation, "n": n}])
    c = Composer(ctx)
    _say_entry(c, "verified_head", entry_id=hit.id, title=hit.title, cause=hit.cause, solution=hit.solution, n=n)
    return c.text


def _window_args(rec: Recognized) -> dict[str, Any]:
    """plan_query's time window for what the person said ("nas últimas 6 horas", "tonight", "desde as 22h")."""
    if rec.window is None:
        return {}
    if rec.window.kind == "last":
        return {"last_hours": rec.window.hours}
    from django.utils import timezone

    window = rec.window.resolve(sources.plan_now())
    return {"since": timezone.localtime(window.since).isoformat(), "until": timezone.localtime(window.until).isoformat()}


def compose(ctx: ToolContext) -> str:
    """Answers ctx.question with tools and templates; returns the Markdown text (tokens not sent)."""
    jobs, streams, stations = sources.known_names()
    rec = recognize(ctx.question, job_names=jobs, stream_names=streams, workstation_names=stations,
                    folder_names=sources.known_folders())
    c = Composer(ctx)
    # Lists only: a single job's status has no window (its folder goes into its reference instead).
    window = _window_args(rec) | ({"folder": rec.folder} if rec.folder else {})
    target = rec.qualified(rec.jobs[0]) if rec.jobs else (rec.qualified(rec.streams[0]) if rec.streams else None)
    intent = rec.intent
    if intent is Intent.STATUS and not rec.jobs and rec.streams:
        _stream_status(c, rec.streams[0], ctx.question, window)
        return c.text
    if rec.folder and not target and not rec.pattern and intent in (Intent.STATUS, Intent.KNOWLEDGE, Intent.UNKNOWN):
        _list_jobs(c, c.run("plan_query", {"limit": 25, **window}), "folder_head", "folder_none")
        return c.text
    if intent is Intent.GREETING:
        c.say(c.t("greeting"))
    elif intent is Intent.ACTION:
        _action(c, rec)
    elif intent is Intent.HOW_FIX:
        if target and not rec.codes:
            _why_failed(c, target, ctx.question)
        else:
            _kb(c, ctx.question)
    elif intent is Intent.WHY_FAILED:
        if target:
            _why_failed(c, target, ctx.question)
        else:
            c.say(c.t("which_job"))
    elif intent is Intent.DEPENDENCIES and target:
        _dependencies(c, target)
    elif intent is Intent.LOG and target:
        _why_failed(c, target, ctx.question)
    elif intent is Intent.WORKSTATION:
        _workstations(c, rec.workstations[0] if rec.workstations else None)
    elif intent is Intent.FAILURES:
        result = c.run("plan_query", {"failed_only": True, "limit": 20, **window})
        shown = _list_jobs(c, result, "failures_head", "failures_none")
        if shown:
            ref = shown[0].get("ref") or ""
            c.say(c.t("failures_tip", job=ref if "/" in ref else shown[0]["name"]))
    elif intent is Intent.RUNNING:
        _list_jobs(c, c.run("plan_query", {"status": ["EXEC"], "limit": 20, **window}), "running_head", "running_none")
    elif intent is Intent.STUCK:
        if target:
            _dependencies(c, target)
        else:
            _list_jobs(c, c.run("plan_query", {"status": ["HOLD", "STUCK", "SUSP", "READY", "WAIT", "PEND"], "limit": 20,
                                               **window}),
                       "stuck_head", "stuck_none")
    elif intent is Intent.STATUS and (target or rec.pattern):
        if rec.pattern and not target:
            _list_jobs(c, c.run("plan_query", {"name": rec.pattern, "limit": 20, **window}), "failures_head", "failures_none")
        else:
            details = _job_or_explain(c, target or "")
            if details is not None:
                job = details.data["job"]
                c.say(_job_line(c, job, c.ref(details)))
                if job.get("status") in ("ABEND", "FAIL", "ERROR", "STUCK"):
                    _why_failed_tail(c, job, ctx.question)
    elif rec.streams:
        result = c.run("plan_query", {**_stream_scope(rec.streams[0], window), "limit": 20})
        if not _unavailable(c, result):
            _list_jobs(c, result, "running_head", "failures_none")
    elif rec.codes or intent in (Intent.KNOWLEDGE, Intent.UNKNOWN):
        if not _kb(c, ctx.question, say_none=False):
            c.say(c.t("no_data"))
    else:
        c.say(c.t("which_job"))
    return c.text


def _stream_scope(stream: str, window: dict[str, Any]) -> dict[str, Any]:
    """plan_query's arguments for a job stream: "/RH/FOLHA_PAGAMENTO" is the stream in that folder (a
    folder in the question's own words is already in `window`, with the time window)."""
    if "/" not in stream:
        return {**window, "job_stream": stream}
    folder, _, name = stream.rpartition("/")
    return {**window, "job_stream": name, "folder": folder + "/"}


def _stream_status(c: Composer, stream: str, question: str, window: dict[str, Any]) -> None:
    result = c.run("plan_query", {**_stream_scope(stream, window), "limit": 25})
    if _unavailable(c, result):
        return
    jobs = result.data.get("jobs") or []
    if not jobs:
        note = _window_note(c, result)
        c.say(f"{c.t('stream_window_none', stream=stream)} {note}" if note else c.t("not_found", job=stream))
        return
    if note := _window_note(c, result):
        c.say(note)
    lines = [c.t("stream_head", stream=stream, n=c.ref(result))]
    for i, job in enumerate(jobs):
        rc = f" RC={job['return_code']}" if job.get("return_code") is not None else ""
        where = f" ({job['folder']})" if "/" in (job.get("ref") or "") else ""  # the same stream in several folders
        lines.append(f"- **{job['name']}**{where}: {job.get('status')}{rc}" + (" ⚠" if job.get("critical") else "")
                     + f" [{c.ref(result, i)}]")
    c.say("\n".join(lines))
    for job in [j for j in jobs if j.get("status") in ("ABEND", "FAIL", "ERROR", "STUCK")][:2]:
        _why_failed_tail(c, job, question)


def _why_failed_tail(c: Composer, job: dict[str, Any], question: str) -> None:
    """A failed job's status answer also shows the failing log lines and the matching fix."""
    log = c.run("job_log", {"job": job.get("ref") or (f"{job['stream']}.{job['name']}" if job.get("stream") else job["name"])})
    codes: list[str] = []
    if not log.error:
        numbered = "\n".join(f"{row['n']:>5}  {row['text']}" for row in log.data["lines"])
        c.say(c.t("log_head", job=job["name"], a=log.data["from"], b=log.data["to"], n=c.ref(log))
              + (c.t("cached_age", s=log.data["age_seconds"]) if log.data.get("cached") else "") + "\n```\n" + numbered + "\n```")
        codes = log.data.get("codes") or []
    rc = [f"RC={job['return_code']}"] if job.get("return_code") not in (None, 0) and not codes else []
    query = " ".join([*codes, *rc, job["name"]])
    if not _kb(c, query, say_none=False):
        c.say(c.t("kb_none"))


def fallback_note(language: str, reason: str) -> str:
    return T["fallback_note"]["en" if language == "en" else "pt"].format(reason=reason)
