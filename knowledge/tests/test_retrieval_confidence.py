"""The "not in the knowledge base" decision: rules for secrets and for names the base does not
know, the confidence model (dense similarity + coverage of the question's words by the best hit's
problem description), and the focus rule (what the question asks for must be in the best hit).

`data/heldout_questions.csv` is a held-out set written for this project, independently of the shared
dev set: answerable paraphrases and unanswerable questions in Portuguese and English, never used to
fit or choose anything (`data/calibration_questions.csv`, written at the same time and split from
it at random, is the one fitted with the dev set, see `bench/retrieval.py`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge.evaluation import Outcome, Question, calibrate_confidence, compute_metrics, fit_logistic, read_questions
from knowledge.retrieval import confidence_probability, search
from knowledge.text import bm25_query, light_stem, question_focus, question_terms, secret_request, token_id

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        # Paraphrases of entries, worded unlike the entries and unlike the shared dev questions.
        ("O job fica em HOLD porque o arquivo que ele espera não foi encontrado, como sigo sem ele?", "KB-0013"),
        ("The job priority is zero and it never starts", "KB-0009"),
        ("Depois que trocaram a senha da conta de serviço do Windows os jobs caem em FAIL", "KB-0005"),
        ("O JnextPlan reclama que o banco está travado por uma geração anterior", "KB-0047"),
    ],
)
@pytest.mark.django_db
def test_a_paraphrase_of_an_entry_is_answered(imported_sample: Any, question: str, expected: str) -> None:
    result = search(question)
    assert result.confident and result.reason == "semantic_match"
    assert result.hits[0].external_id == expected
    assert result.signals is not None and result.signals.probability >= 0.5
    assert result.as_dict()["confidence"] == pytest.approx(result.signals.probability, abs=1e-4)


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        # Names of products the base never mentions: whatever loosely matches is not an answer.
        ("Como faço backup do banco DB2 do HWA com o TSM?", "unknown_term"),
        # Topics the base does not cover, without any telling name.
        ("What is the phone number of the night shift supervisor?", "low_similarity"),
        ("Quanto custa a licença por estação?", "low_similarity"),
    ],
)
@pytest.mark.django_db
def test_a_question_about_something_absent_from_the_base_is_not_answered(
    imported_sample: Any, question: str, reason: str
) -> None:
    result = search(question)
    assert not result.confident
    assert result.reason == reason
    assert result.hits, "loosely related hits are still listed, only not presented as the answer"
    if reason == "unknown_term":
        assert {"DB2", "TSM"} <= set(result.as_dict()["unknown_terms"])


@pytest.mark.django_db
def test_names_the_base_knows_do_not_block_an_answer(imported_sample: Any) -> None:
    # JnextPlan, DWC and conman are in the base: the question is answered on its merits.
    result = search("O DWC mostra um status e o conman outro para os mesmos jobs depois do JnextPlan")
    assert result.signals is not None and result.signals.unknown_terms == []
    assert result.confident and "KB-0055" in [h.external_id for h in result.hits[:3]]


def test_question_terms_are_names_not_codes_jobs_or_shouting() -> None:
    assert question_terms("Como configuro LDAP no DWC e no Intercom.msg com o Control-M?") == [
        "LDAP", "DWC", "Intercom.msg", "Control-M"
    ]
    assert question_terms("JnextPlan falhou com AWSJPL018E e RC 12 no FOLHA_PAGAMENTO") == ["JnextPlan"]
    # Short acronyms (TI, RH) and times (7h) are too common to mean anything.
    assert question_terms("a TI pediu ao RH para rodar as 7h") == []
    # A question in capitals is shouting, not naming.
    assert question_terms("O JOB FALHOU DE NOVO NA ESTACAO, ALGUEM AJUDA?") == []
    # A capitalized word inside a sentence is a name; the first word of a sentence, a weekday or a
    # language is not, and neither is a lower-case compound.
    assert question_terms("Dá para integrar com o Jenkins? Preciso disso. Rodando no Kubernetes") == [
        "Jenkins", "Kubernetes"
    ]
    assert question_terms("Every Monday the fault-tolerant agent sends an e-mail in Portuguese") == []


def test_secret_requests_are_questions_for_a_value_not_about_a_procedure() -> None:
    for question in ("Qual é a senha do usuário de banco?", "me passa a senha do root", "What's the admin password?",
                     "what is the API key of the engine", "Quais são as credenciais do DWC?",
                     "Can you give me the service account password?"):
        assert secret_request(question), question
    for question in ("Como troco a senha do twsuser?", "The password of the service account expired",
                     "A senha expirou e os jobs caem em FAIL", "How do I renew the API key?"):
        assert not secret_request(question), question


def test_question_focus_is_the_attribute_asked_for() -> None:
    assert question_focus("Qual o prazo de retenção dos backups?") == ["prazo"]
    assert question_focus("Qual é o tamanho máximo do Symphony?") == ["tamanho"]
    assert question_focus("What is the licensing difference between HWA and Control-M?") == ["difference"]
    assert question_focus("Quem é o gerente da Equipe BI?") == ["gerente"]
    assert question_focus("How many workstations can a master have?") == ["workstations"]
    # The cause, the fix or the procedure is what every entry gives: no focus to check.
    assert question_focus("Qual o procedimento?") == []
    assert question_focus("What is the fix for a job stuck in HOLD?") == []
    assert question_focus("O job abendou com RC 12, o que faço?") == []
    assert light_stem("backups") == light_stem("backup") and light_stem("limites") == light_stem("limite")


def test_glossary_translates_generic_operations_words_only() -> None:
    ids = set(bm25_query("a senha do usuário expirou")[0])
    assert {token_id("password"), token_id("user")} <= ids
    # Slang is left to the dense signal, not guessed by the glossary.
    assert set(bm25_query("caiu")[0]) == {token_id("caiu")}


def _outcome(similarity: float, coverage: float, answerable: bool, reason: str = "semantic_match") -> Outcome:
    question = Question(question=f"q{similarity}{coverage}", expected_ids=("KB-1",) if answerable else (), lang="pt",
                        kind="paraphrase" if answerable else "no_answer")
    return Outcome(question=question, ranked_ids=["KB-1"], confident=True, reason=reason, top_similarity=similarity,
                   seconds=0.0, coverage=coverage, symptom_coverage=coverage)


def test_calibration_reports_held_out_figures_and_the_rules_stay_rules() -> None:
    rng = np.random.default_rng(3)
    outcomes = [_outcome(float(s), float(c), True) for s, c in rng.uniform([0.4, 0.4], [0.8, 1.0], size=(40, 2))]
    outcomes += [_outcome(float(s), float(c), False) for s, c in rng.uniform([0.0, 0.0], [0.3, 0.3], size=(10, 2))]
    # An exact match is answered and an unknown code refused whatever the model would say.
    outcomes += [_outcome(0.1, 0.0, True, reason="exact_match"), _outcome(0.9, 1.0, False, reason="unknown_code")]
    report = calibrate_confidence(outcomes, folds=5, repeats=3)
    held_out = report["held_out_5fold_x3"]
    assert held_out["no_answer_recall"] == 1.0 and held_out["answerable_confident"] == 1.0
    assert report["training_questions"] == 50  # every question but the exact match and the unknown code
    assert report["weights"]["similarity"] > 0 and report["weights"]["symptom_coverage"] > 0


def test_logistic_fit_recovers_a_known_rule() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(400, 1))
    y = (rng.uniform(0, 1, size=400) < 1 / (1 + np.exp(-(-3 + 6 * x[:, 0])))).astype(float)
    weights = fit_logistic(x, y, l2=0.1)
    assert weights[0] == pytest.approx(-3, abs=0.8) and weights[1] == pytest.approx(6, abs=1.5)
    # The shipped model: more similarity or more coverage never lowers the confidence.
    assert confidence_probability(0.5, 0.5) > confidence_probability(0.3, 0.5) > confidence_probability(0.3, 0.1)


def test_calibration_applies_the_focus_rule_and_reports_a_test_set() -> None:
    rng = np.random.default_rng(5)
    outcomes = [_outcome(float(s), float(c), True) for s, c in rng.uniform([0.4, 0.4], [0.8, 1.0], size=(30, 2))]
    outcomes += [_outcome(float(s), float(c), False) for s, c in rng.uniform([0.0, 0.0], [0.3, 0.3], size=(10, 2))]
    asks_elsewhere = replace(_outcome(0.9, 1.0, False), missing_focus=("prazo",))
    report = calibrate_confidence(outcomes, folds=5, repeats=2, test=[asks_elsewhere, _outcome(0.9, 1.0, True)])
    # A good match on every signal is still refused when the attribute asked for is not in it.
    assert report["test_set"]["no_answer_recall"] == 1.0 and report["test_set"]["answerable_confident"] == 1.0


@pytest.mark.django_db
def test_the_held_out_set_unanswerable_refused_answerable_answered(imported_sample: Any) -> None:
    """Figures on questions never used for fitting (see the module notes): before this model 9 of the
    21 unanswerable ones were refused (0.43), now 17; all 29 answerable ones stay answered."""
    questions = read_questions(DATA / "heldout_questions.csv")
    assert {q.lang for q in questions} == {"pt", "en"}
    assert sum(1 for q in questions if not q.expected_ids) == 21 and len(questions) == 50
    outcomes = []
    for question in questions:
        result = search(question.question)
        outcomes.append(Outcome(question=question, ranked_ids=[h.external_id for h in result.hits],
                                confident=result.confident, reason=result.reason, top_similarity=0.0, seconds=0.0))
    metrics = compute_metrics(outcomes, 5)
    answered_wrongly = metrics["no_answer"]["answered_wrongly"]
    refused = [o.question.question for o in outcomes if o.question.expected_ids and not o.confident]
    assert metrics["no_answer"]["recall"] >= 0.8, answered_wrongly
    assert metrics["overall"]["confident"] >= 0.95, refused
    assert metrics["overall"]["recall@5"] >= 0.95 and metrics["overall"]["mrr"] >= 0.85
    for language in ("pt", "en"):  # both languages, both ways
        answerable = [o for o in outcomes if o.question.lang == language and o.question.expected_ids]
        unanswerable = [o for o in outcomes if o.question.lang == language and not o.question.expected_ids]
        assert sum(o.confident for o in answerable) >= 0.9 * len(answerable), language
        assert sum(not o.confident for o in unanswerable) >= 0.7 * len(unanswerable), language


@pytest.mark.django_db
def test_a_request_for_a_secret_is_never_answered_even_with_an_exact_match(imported_sample: Any) -> None:
    result = search("Qual a senha do usuário que roda o FOLHA_PAGAMENTO?")
    assert not result.confident and result.reason == "secret_request"
    assert "job:FOLHA_PAGAMENTO" in result.hits[0].matched  # still ranked, only not presented as the answer
    # Asking how to change it is a procedure the base has.
    changed = search("Trocaram a senha da conta de serviço do Windows e os jobs dela caem em FAIL, o que fazer?")
    assert changed.confident and changed.hits[0].external_id == "KB-0005"


@pytest.mark.django_db
def test_the_attribute_asked_for_must_be_in_the_best_hit(imported_sample: Any) -> None:
    result = search("Qual o tamanho médio do arquivo de retorno que o banco manda pela VAN?")
    assert not result.confident and result.reason in ("missing_focus", "low_similarity")
    assert result.signals is not None and result.signals.missing_focus == ["tamanho"]
    assert result.as_dict()["missing_focus"] == ["tamanho"]
    # A focus the entry has ("limite") does not block it.
    kept = search("Qual o limite de jobs da estação quando nenhum job sai de READY?")
    assert kept.signals is not None and kept.signals.missing_focus == []


@pytest.mark.django_db
def test_a_product_name_the_base_never_mentions_blocks_an_answer(imported_sample: Any) -> None:
    result = search("O agente dinâmico perdeu a conexão com o master depois que instalamos o Grafana")
    assert not result.confident and "Grafana" in result.as_dict()["unknown_terms"]
