"""Measuring retrieval quality on a question set (`manage.py kb_eval`, `bench/retrieval.py`).

The workbook is imported inside a transaction that is rolled back at the end, into a scratch Qdrant
collection that is dropped afterwards, so an evaluation never touches the live knowledge base.
"""

from __future__ import annotations

import csv
import io
import statistics
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction
from django.test.utils import override_settings

from knowledge.index import get_index
from knowledge.models import KnowledgeEntry


@dataclass(frozen=True)
class Question:
    question: str
    expected_ids: tuple[str, ...]
    lang: str
    kind: str


@dataclass
class Outcome:
    question: Question
    ranked_ids: list[str]
    confident: bool
    reason: str
    top_similarity: float
    seconds: float
    coverage: float = 0.0
    unknown_terms: tuple[str, ...] = ()
    symptom_coverage: float = 0.0
    missing_focus: tuple[str, ...] = ()

    @property
    def rank(self) -> int | None:
        for position, external_id in enumerate(self.ranked_ids, start=1):
            if external_id in self.question.expected_ids:
                return position
        return None


@dataclass
class EvalReport:
    metrics: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)
    import_seconds: dict[str, float] = field(default_factory=dict)


def read_questions(path: Path) -> list[Question]:
    text = path.read_text(encoding="utf-8-sig")
    return [
        Question(
            question=row["question"].strip(),
            expected_ids=tuple(i.strip() for i in (row.get("expected_ids") or "").split(";") if i.strip()),
            lang=(row.get("lang") or "").strip(),
            kind=(row.get("kind") or "").strip() or "unknown",
        )
        for row in csv.DictReader(io.StringIO(text))
        if (row.get("question") or "").strip()
    ]


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def compute_metrics(outcomes: list[Outcome], k: int) -> dict[str, Any]:
    answerable = [o for o in outcomes if o.question.expected_ids]
    no_answer = [o for o in outcomes if not o.question.expected_ids]

    def block(items: list[Outcome]) -> dict[str, Any]:
        ranks = [o.rank for o in items]
        n = len(items) or 1
        return {
            "n": len(items),
            "recall@1": round(sum(1 for r in ranks if r == 1) / n, 4),
            f"recall@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / n, 4),
            "mrr": round(sum(1 / r for r in ranks if r is not None and r <= k) / n, 4),
            "confident": round(sum(1 for o in items if o.confident) / n, 4),
        }

    by_kind: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in answerable:
        by_kind[outcome.question.kind].append(outcome)
    predicted_none = [o for o in outcomes if not o.confident]
    true_none = [o for o in no_answer if not o.confident]
    latencies = [o.seconds * 1000 for o in outcomes]
    return {
        "questions": len(outcomes),
        "k": k,
        "overall": block(answerable),
        "per_kind": {kind: block(items) for kind, items in sorted(by_kind.items())},
        "code_lookup_all_top1": all(o.rank == 1 for o in by_kind.get("code_lookup", [])),
        "no_answer": {
            "n": len(no_answer),
            "precision": round(len(true_none) / len(predicted_none), 4) if predicted_none else None,
            "recall": round(len(true_none) / len(no_answer), 4) if no_answer else None,
            "answered_wrongly": [o.question.question for o in no_answer if o.confident],
        },
        "search_ms": {"p50": round(statistics.median(latencies), 2) if latencies else 0.0,
                      "p95": round(_percentile(latencies, 95), 2)},
    }


def run_eval(*, workbook: Path, questions: list[Question], k: int = 5, keep_outcomes: bool = False) -> EvalReport:
    from knowledge.retrieval import search
    from knowledge.services import entries_index, import_apply, import_plan

    class _Rollback(Exception):
        pass

    scratch = f"kb_eval_{uuid.uuid4().hex[:12]}"
    report = EvalReport(metrics={})
    with override_settings(QDRANT_COLLECTION=scratch):
        index = get_index()
        try:
            with transaction.atomic():
                # Only the workbook's entries may answer: others are removed for the evaluation's
                # duration (the transaction is rolled back below).
                KnowledgeEntry.objects.all().delete()
                started = time.perf_counter()
                plan = import_plan(data=workbook.read_bytes(), file_name=workbook.name)
                validated = time.perf_counter()
                result = import_apply(acting_user=None, plan=plan, only_valid=True)
                written = time.perf_counter()
                entries_index(entry_ids=result.written_ids)
                indexed = time.perf_counter()
                report.import_seconds = {
                    "rows": len(result.written_ids),
                    "validate": validated - started,
                    "write": written - validated,
                    "index": indexed - written,
                }
                search("warm-up", limit=k, index=index)
                outcomes = []
                for question in questions:
                    t0 = time.perf_counter()
                    found = search(question.question, limit=k, index=index)
                    seconds = time.perf_counter() - t0
                    outcomes.append(
                        Outcome(
                            question=question,
                            ranked_ids=[h.external_id for h in found.hits],
                            confident=found.confident,
                            reason=found.reason,
                            top_similarity=found.hits[0].similarity if found.hits else 0.0,
                            seconds=seconds,
                            coverage=found.signals.coverage if found.signals else 0.0,
                            unknown_terms=tuple(found.signals.unknown_terms) if found.signals else (),
                            symptom_coverage=found.signals.symptom_coverage if found.signals else 0.0,
                            missing_focus=tuple(found.signals.missing_focus) if found.signals else (),
                        )
                    )
                report.metrics = compute_metrics(outcomes, k)
                if keep_outcomes:
                    report.outcomes = outcomes
                raise _Rollback
        except _Rollback:
            pass
        finally:
            index.drop()
    return report


# --- Calibrating the confidence model --------------------------------------------------------------
# The rules (secret request: don't; exact match: answer; unknown code / job: don't) come first, the
# model decides the rest, then the name and focus rules can still refuse. The model is fitted on every
# question the first rules leave to it, labelled answerable or not, with two features (dense
# similarity, symptom coverage) and an L2 penalty, so 3 numbers in all.
RULE_ANSWERS = ("exact_match",)
RULE_REFUSES = ("secret_request", "unknown_code", "unknown_job")
FEATURES = ("similarity", "symptom_coverage")


def _features(outcome: Outcome) -> list[float]:
    return [outcome.top_similarity, outcome.symptom_coverage]


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, iterations: int = 30) -> np.ndarray:
    """Intercept and weights (in the features' own units) of an L2-penalized logistic regression.

    Features are standardized for the fit (so the penalty treats them alike), then the weights are
    turned back into raw units: `p = sigmoid(w[0] + w[1:] @ x)`.
    """
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    design = np.c_[np.ones(len(x)), (x - mean) / scale]
    weights = np.zeros(design.shape[1])
    penalty = l2 * np.diag(np.r_[0.0, np.ones(design.shape[1] - 1)])
    for _ in range(iterations):  # Newton's method: converges in a handful of steps here
        p = 1 / (1 + np.exp(-design @ weights))
        gradient = design.T @ (p - y) + penalty @ weights
        hessian = (design.T * (p * (1 - p))) @ design + penalty
        weights -= np.linalg.solve(hessian, gradient)
    raw = weights[1:] / scale
    return np.r_[weights[0] - raw @ mean, raw]


def _decide(outcome: Outcome, weights: np.ndarray, threshold: float) -> bool:
    if outcome.reason in RULE_ANSWERS:
        return True
    if outcome.reason in RULE_REFUSES:
        return False
    z = float(weights[0] + weights[1:] @ np.array(_features(outcome)))
    return 1 / (1 + np.exp(-z)) >= threshold and not outcome.unknown_terms and not outcome.missing_focus


def _training_set(outcomes: list[Outcome]) -> tuple[np.ndarray, np.ndarray]:
    chosen = [o for o in outcomes if o.reason not in RULE_ANSWERS + RULE_REFUSES]
    return (np.array([_features(o) for o in chosen], dtype=float),
            np.array([1.0 if o.question.expected_ids else 0.0 for o in chosen]))


def _no_answer_figures(outcomes: list[Outcome], decided: list[bool]) -> dict[str, Any]:
    answerable = [d for o, d in zip(outcomes, decided, strict=True) if o.question.expected_ids]
    unanswerable = [d for o, d in zip(outcomes, decided, strict=True) if not o.question.expected_ids]
    refused = sum(1 for d in decided if not d)
    correctly_refused = sum(1 for d in unanswerable if not d)
    return {
        "no_answer_recall": round(correctly_refused / len(unanswerable), 4) if unanswerable else None,
        "no_answer_precision": round(correctly_refused / refused, 4) if refused else None,
        "answerable_confident": round(sum(answerable) / len(answerable), 4) if answerable else None,
        "unanswerable_answered": len(unanswerable) - correctly_refused,
        "answerable_refused": sum(1 for d in answerable if not d),
    }


def calibrate_confidence(
    outcomes: list[Outcome], *, folds: int = 5, repeats: int = 20, l2: float = 1.0, threshold: float = 0.5,
    test: list[Outcome] | None = None,
) -> dict[str, Any]:
    """The model fitted on all outcomes, and its held-out figures from repeated stratified k-fold
    cross-validation by question (each question is predicted by a model that never saw it); with
    `test`, also the fitted model's figures on those questions (a set never used for fitting)."""
    x, y = _training_set(outcomes)
    weights = fit_logistic(x, y, l2=l2)
    full = _no_answer_figures(outcomes, [_decide(o, weights, threshold) for o in outcomes])
    tested = _no_answer_figures(test, [_decide(o, weights, threshold) for o in test]) if test else None
    held_out: dict[str, list[float]] = defaultdict(list)
    for repeat in range(repeats):
        rng = np.random.default_rng(repeat)
        fold_of = np.zeros(len(outcomes), dtype=int)
        for label in (True, False):  # stratified: unanswerable questions spread over the folds
            members = [i for i, o in enumerate(outcomes) if bool(o.question.expected_ids) == label]
            for position, i in enumerate(rng.permutation(members)):
                fold_of[i] = position % folds
        decided = [False] * len(outcomes)
        for fold in range(folds):
            train = [o for i, o in enumerate(outcomes) if fold_of[i] != fold]
            tx, ty = _training_set(train)
            fold_weights = fit_logistic(tx, ty, l2=l2)
            for i, outcome in enumerate(outcomes):
                if fold_of[i] == fold:
                    decided[i] = _decide(outcome, fold_weights, threshold)
        for key, value in _no_answer_figures(outcomes, decided).items():
            if value is not None:
                held_out[key].append(value)
    return {
        "features": list(FEATURES),
        "intercept": round(float(weights[0]), 4),
        "weights": {name: round(float(w), 4) for name, w in zip(FEATURES, weights[1:], strict=True)},
        "threshold": threshold,
        "training_questions": len(y),
        "fitted_set": full,
        f"held_out_{folds}fold_x{repeats}": {key: round(float(np.mean(v)), 4) for key, v in held_out.items()},
        **({"test_set": tested} if tested is not None else {}),
    }
