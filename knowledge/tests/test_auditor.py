"""The AI auditor: every finding type (one entry that triggers it, one that must not), and how
findings are recorded: audited, not repeated, resolved when gone, never changing an entry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from knowledge import services
from knowledge.auditor import audit_context, auditor_run, instructions
from knowledge.models import (
    EntryStatus,
    Finding,
    FindingStatus,
    FindingType,
    KnowledgeEntry,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
)

pytestmark = pytest.mark.django_db

BASE = {
    "external_id": "KB-0003",
    "title": "FP_CALC_FOLHA termina em ABEND com RC=12",
    "symptom": "O job FP_CALC_FOLHA termina em ABEND com RC=12 poucos minutos depois de iniciar.",
    "cause": "A competência da folha não foi liberada pelo RH.",
    "solution": "1) Não fazer confirm succ. 2) Acionar a Equipe RH Sistemas para liberar a competência. "
                "3) Com o ok do RH, fazer rerun do job.",
    "error_codes": ["RC=12"],
    "job_patterns": ["FOLHA_PAGAMENTO", "FP_CALC_FOLHA"],
}
OTHER = {
    "external_id": "KB-0028",
    "title": "Backup RMAN falha por falta de espaço",
    "symptom": "BKP_RMAN_FULL termina com ORA-19502 e No space left on device no destino do backup.",
    "cause": "A área de backup encheu.",
    "solution": "Liberar espaço na área de backup apagando backups antigos já expirados pelo RMAN e reexecutar o job.",
    "error_codes": ["ORA-19502"],
    "job_patterns": ["BKP_RMAN_FULL"],
}
UNRELATED = {
    "title": "Relatório de vendas sai com acentuação quebrada",
    "symptom": "O PDF do relatório diário de vendas mostra caracteres estranhos no lugar de acentos.",
    "solution": "Ajustar a codificação do arquivo de saída para UTF-8 no parâmetro do relatório e gerar de novo.",
    "error_codes": ["REL-UTF8"],
    "job_patterns": ["DWV_PUBLICA"],
}


def make(status: str = EntryStatus.PENDING_REVIEW, **fields: Any) -> KnowledgeEntry:
    fields.setdefault("external_id", f"T-{KnowledgeEntry.objects.count() + 1:04d}")
    entry = services.entry_create(acting_user=None, status=status, source="learned", **fields)
    services.entries_index(entry_ids=[entry.pk])
    return entry


@pytest.fixture
def base_entries(db: Any) -> list[KnowledgeEntry]:
    return [make(status=EntryStatus.APPROVED, **BASE), make(status=EntryStatus.APPROVED, **OTHER)]


@pytest.fixture
def plan(db: Any) -> None:
    """A polled plan (the demo night's names) so stale references can be judged."""
    from jobs.models import JobInstance, JobStream, PlanState, Workstation

    PlanState.objects.update_or_create(pk=1, defaults={"last_success_at": timezone.now()})
    Workstation.objects.create(hwa_id="ws1", name="PRD_LNX01")
    JobStream.objects.create(hwa_id="s1", name="FOLHA_PAGAMENTO", workstation="PRD_LNX01", status="EXEC")
    for i, name in enumerate(["FP_CALC_FOLHA", "BKP_RMAN_FULL", "DWV_PUBLICA"]):
        JobInstance.objects.create(hwa_id=f"j{i}", name=name, stream_name="FOLHA_PAGAMENTO", workstation="PRD_LNX01",
                                   status="SUCC", fingerprint="x")


def _old(entry: KnowledgeEntry, days: int = 120) -> KnowledgeEntry:
    KnowledgeEntry.objects.filter(pk=entry.pk).update(created_at=timezone.now() - dt.timedelta(days=days))
    entry.refresh_from_db()
    return entry


def _thumbs(entry: KnowledgeEntry, down: int, up: int = 0) -> KnowledgeEntry:
    for _ in range(down):
        services.entry_record_feedback(acting_user=None, external_id=entry.external_id, helpful=False)
    for _ in range(up):
        services.entry_record_feedback(acting_user=None, external_id=entry.external_id, helpful=True)
    entry.refresh_from_db()
    return entry


def _hit(entry: KnowledgeEntry) -> KnowledgeEntry:
    services.entries_record_hits(external_ids=[entry.external_id])
    entry.refresh_from_db()
    return entry


SOLID = "Acionar a equipe responsável, corrigir o arquivo de entrada e reexecutar o job pelo conman."

# (finding type, what triggers it, what must not, an optional step applied to the created entry)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], Any]] = [
    (FindingType.DUPLICATE,
     {**BASE, "external_id": "D-1"},
     {**UNRELATED, "external_id": "D-2"}, None),
    (FindingType.NEAR_DUPLICATE,
     {"external_id": "N-1", "title": "Backup RMAN sem espaço no destino", "cause": "Destino cheio.",
      "symptom": "O backup RMAN falha porque o destino de backup ficou sem espaço livre.",
      "solution": "Remover backups expirados com RMAN DELETE EXPIRED e rodar o backup de novo.",
      "error_codes": ["ORA-19809"], "job_patterns": ["BKP_RMAN_INCR"]},
     {**UNRELATED, "external_id": "N-2"}, None),
    (FindingType.CONTRADICTION,
     {**UNRELATED, "external_id": "C-1", "error_codes": ["RC=12"], "job_patterns": ["FP_CALC_FOLHA"],
      "solution": "Fazer confirm succ do job e não fazer rerun: o próximo ciclo corrige sozinho."},
     {**UNRELATED, "external_id": "C-2", "error_codes": ["RC=12"], "job_patterns": ["FP_CALC_FOLHA"],
      "solution": "Não fazer confirm succ; pedir a liberação ao RH e então fazer rerun do job."}, None),
    # The same generic code on another job is another problem: opposite advice there is no contradiction.
    (FindingType.CONTRADICTION,
     {**UNRELATED, "external_id": "C-3", "error_codes": ["RC=12"], "job_patterns": ["FP_CALC_FOLHA"],
      "solution": "Fazer confirm succ do job e não fazer rerun: o próximo ciclo corrige sozinho."},
     {**UNRELATED, "external_id": "C-4", "error_codes": ["RC=12"], "job_patterns": ["CB_IMPORTA_RETORNO"],
      "solution": "Fazer confirm succ do job e não fazer rerun: o próximo ciclo corrige sozinho."}, None),
    (FindingType.SECRET,
     {**UNRELATED, "external_id": "S-1", "solution": SOLID + " Conectar no banco com senha: Pr0d#2024x."},
     {**UNRELATED, "external_id": "S-2", "solution": SOLID + " A senha fica no cofre (senha: <senha do cofre>)."},
     None),
    (FindingType.SECRET,
     {**UNRELATED, "external_id": "S-3", "solution": SOLID + " String: postgresql://tws:S3nhaF0rte@db01:5432/tws"},
     {**UNRELATED, "external_id": "S-4", "solution": SOLID + " Veja https://wiki.example/tws para detalhes."}, None),
    (FindingType.SECRET,
     {**UNRELATED, "external_id": "S-5", "cause": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow", "solution": SOLID},
     {**UNRELATED, "external_id": "S-6", "cause": "A chave privada do agente expirou.", "solution": SOLID}, None),
    (FindingType.DANGEROUS,
     {**UNRELATED, "external_id": "G-1", "solution": "Parar o agente e rodar rm -rf /opt/tws/stdlist/* no servidor."},
     {**UNRELATED, "external_id": "G-2",
      "solution": "ATENÇÃO: faça backup antes e só com aprovação. Parar o agente e rodar rm -rf /opt/tws/stdlist/old."},
     None),
    (FindingType.DANGEROUS,
     {**UNRELATED, "external_id": "G-3", "solution": "Rodar ResetPlan -scratch e gerar o plano de novo com JnextPlan."},
     {**UNRELATED, "external_id": "G-4", "solution": "Rodar JnextPlan -for 0000 para estender o plano."}, None),
    (FindingType.DANGEROUS,
     {**UNRELATED, "external_id": "G-5", "solution": "Apagar o arquivo Symphony e os arquivos .msg do diretório TWS."},
     {**UNRELATED, "external_id": "G-6", "solution": "Conferir o tamanho dos arquivos .msg com evtsize e aumentar."},
     None),
    (FindingType.DANGEROUS,
     {**UNRELATED, "external_id": "G-7", "solution": "Cancelar todos os jobs do stream com conman \"cj @#@.@;cancel\"."},
     {**UNRELATED, "external_id": "G-8", "solution": "Cancelar só o job travado e reexecutar o stream."}, None),
    (FindingType.MISSING_ESSENTIALS,
     {"external_id": "M-1", "symptom": "Algo estranho aconteceu no plano.", "solution": "TBD"},
     {**UNRELATED, "external_id": "M-2"}, None),
    (FindingType.STALE_REFERENCE,
     {**UNRELATED, "external_id": "R-1", "job_patterns": ["JOB_DESATIVADO_2019"]},
     {**UNRELATED, "external_id": "R-2", "job_patterns": ["DWV_PUBLICA"]}, None),
    (FindingType.THUMBS_DOWN,
     {**UNRELATED, "external_id": "T-1", "status": EntryStatus.APPROVED},
     {**UNRELATED, "external_id": "T-2", "status": EntryStatus.APPROVED},
     "thumbs"),
    (FindingType.NEVER_RETRIEVED,
     {**UNRELATED, "external_id": "U-1", "status": EntryStatus.APPROVED},
     {**UNRELATED, "external_id": "U-2", "status": EntryStatus.APPROVED},
     "unused"),
]


@pytest.mark.parametrize(("finding_type", "triggers", "clean", "step"), CASES,
                         ids=[f"{c[0]}-{c[1]['external_id']}" for c in CASES])
def test_each_finding_type_triggers_on_one_entry_and_not_on_the_other(
    base_entries: list[KnowledgeEntry], plan: None, finding_type: str, triggers: dict[str, Any],
    clean: dict[str, Any], step: str | None,
) -> None:
    bad, good = make(**triggers), make(**clean)
    if step == "thumbs":
        bad, good = _thumbs(bad, down=3), _thumbs(good, down=1, up=4)
    elif step == "unused":
        bad, good = _old(bad), _hit(_old(good))
    auditor_run(entry_ids=[bad.pk, good.pk])
    found_bad = set(Finding.objects.filter(entry=bad).values_list("type", flat=True))
    found_good = set(Finding.objects.filter(entry=good).values_list("type", flat=True))
    assert finding_type in found_bad, Finding.objects.filter(entry=bad).values_list("type", "reason")
    assert finding_type not in found_good, Finding.objects.filter(entry=good).values_list("type", "reason")


def test_finding_carries_type_reason_severity_confidence_and_the_entries_involved(base_entries: list[KnowledgeEntry]) -> None:
    copy = make(**{**BASE, "external_id": "D-9"})
    auditor_run(entry_ids=[copy.pk])
    finding = Finding.objects.get(entry=copy, type=FindingType.DUPLICATE)
    assert finding.other_entry.external_id == "KB-0003"
    assert finding.severity and 0 < finding.confidence <= 1 and "KB-0003" in finding.reason
    event = AuditEvent.objects.get(action=AuditAction.KB_FINDING, target_id="D-9", details__type="duplicate")
    assert event.actor_label == "auditor" and event.details["other_entry"] == "KB-0003"
    # The draft waits in the review queue beside its most similar entry.
    item = ReviewItem.objects.get(entry=copy, status=ReviewStatus.OPEN)
    assert item.kind == ReviewKind.SUBMITTED and item.similar_entry.external_id == "KB-0003" and item.similarity > 0.9


def test_a_secret_is_never_copied_into_the_finding_or_the_audit_trail(db: Any) -> None:
    entry = make(**{**UNRELATED, "external_id": "S-9", "solution": SOLID + " token=ghp_abcdefghijklmnop123456"})
    auditor_run(entry_ids=[entry.pk])
    finding = Finding.objects.get(entry=entry, type=FindingType.SECRET)
    event = AuditEvent.objects.get(action=AuditAction.KB_FINDING, target_id="S-9")
    assert "abcdefghijklmnop123456" not in finding.reason and "abcdefghijklmnop123456" not in str(event.details)


def test_the_sweep_does_not_repeat_findings_and_resolves_what_is_fixed(base_entries: list[KnowledgeEntry]) -> None:
    entry = make(**{**UNRELATED, "external_id": "F-1", "solution": "Rodar ResetPlan -scratch e pronto, resolvido."})
    first = auditor_run()
    again = auditor_run()
    assert first.new >= 1 and again.new == 0 and again.seen >= 1
    assert Finding.objects.filter(entry=entry, type=FindingType.DANGEROUS).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.KB_FINDING, target_id="F-1").count() == 1

    services.entry_update(acting_user=None, entry=entry, solution="ATENÇÃO: só com aprovação do plantão. " + entry.solution)
    auditor_run(entry_ids=[entry.pk])
    finding = Finding.objects.get(entry=entry, type=FindingType.DANGEROUS)
    assert finding.status == FindingStatus.RESOLVED and finding.resolution == "no longer detected"


def test_the_auditor_never_changes_or_deletes_an_entry(base_entries: list[KnowledgeEntry], plan: None) -> None:
    entry = make(external_id="X-1", symptom="Sintoma.", solution="rm -rf / com senha: abc12345")
    before = {f.name: getattr(entry, f.name) for f in KnowledgeEntry._meta.fields}
    history = entry.history.count()
    auditor_run()
    entry.refresh_from_db()
    assert {f.name: getattr(entry, f.name) for f in KnowledgeEntry._meta.fields} == before
    assert entry.history.count() == history
    assert KnowledgeEntry.objects.count() == 3
    assert {FindingType.SECRET, FindingType.DANGEROUS, FindingType.MISSING_ESSENTIALS} <= set(
        Finding.objects.filter(entry=entry).values_list("type", flat=True))


def test_a_serious_finding_on_an_approved_entry_puts_it_in_the_review_queue(db: Any) -> None:
    entry = make(status=EntryStatus.APPROVED, **{**UNRELATED, "external_id": "A-1",
                                                   "solution": SOLID + " senha: Sup3rSecreta!"})
    auditor_run(entry_ids=[entry.pk])
    item = ReviewItem.objects.get(entry=entry, status=ReviewStatus.OPEN)
    assert item.kind == ReviewKind.FINDING


def test_without_a_plan_nothing_is_called_stale(db: Any) -> None:
    entry = make(**{**UNRELATED, "external_id": "P-1", "job_patterns": ["JOB_QUALQUER"]})
    run = auditor_run(entry_ids=[entry.pk])
    assert not Finding.objects.filter(type=FindingType.STALE_REFERENCE).exists()
    assert any(s.startswith("stale") for s in run.skipped)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Não fazer confirm succ. Fazer rerun.", {"confirm_succ": False, "rerun": True}),
        ("Do not rerun the job; cancel it.", {"rerun": False, "cancel": True}),
        ("Reexecutar o job.", {"rerun": True}),
    ],
)
def test_instructions_read_polarity_in_both_languages(text: str, expected: dict[str, bool]) -> None:
    assert {k: v for k, v in instructions(text).items() if k in expected} == expected


def test_contradiction_judged_by_the_llm_when_one_is_configured(base_entries: list[KnowledgeEntry], settings: Any) -> None:
    from chat.testing import FakeLlmServer, Reply

    verdict = '{"contradicts": true, "reason": "One says to confirm the job, the other forbids it.", "confidence": 0.83}'
    with FakeLlmServer(default=Reply(text=verdict)) as llm:
        settings.LLM_MODEL, settings.LLM_API_BASE, settings.LLM_API_KEY = "openai/fake-model", llm.url, "k"
        entry = make(**{**UNRELATED, "external_id": "L-1", "error_codes": ["RC=12"], "job_patterns": ["FP_CALC_FOLHA"],
                        "solution": "Seguir o procedimento padrão do turno e avisar o RH por e-mail."})
        auditor_run(entry_ids=[entry.pk], ctx=audit_context())
        assert llm.requests and "KB-0003" in llm.requests[0]["body"]["messages"][1]["content"]
    finding = Finding.objects.get(entry=entry, type=FindingType.CONTRADICTION)
    assert finding.other_entry.external_id == "KB-0003" and finding.confidence == pytest.approx(0.83)
    assert finding.details["judge"] == "llm" and "forbids" in finding.reason


def test_llm_down_falls_back_to_the_rules(base_entries: list[KnowledgeEntry], settings: Any) -> None:
    from chat.testing import FakeLlmServer, Reply

    with FakeLlmServer(default=Reply(status=500)) as llm:
        settings.LLM_MODEL, settings.LLM_API_BASE, settings.LLM_API_KEY = "openai/fake-model", llm.url, "k"
        entry = make(**{**UNRELATED, "external_id": "L-2", "error_codes": ["RC=12"], "job_patterns": ["FP_CALC_FOLHA"],
                        "solution": "Fazer confirm succ do job FP_CALC_FOLHA e seguir o plano."})
        auditor_run(entry_ids=[entry.pk])
    finding = Finding.objects.get(entry=entry, type=FindingType.CONTRADICTION)
    assert finding.details["judge"] == "rules"
