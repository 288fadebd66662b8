"""Searching the knowledge base: exact codes and job names first, then hybrid dense + BM25.

The one entry point other apps use::

    from knowledge.retrieval import search
    result = search("FOLHA_PAGAMENTO abendou com RC=12")
    if result.confident:
        for hit in result.hits: hit.external_id, hit.title, hit.solution, hit.url, hit.matched, hit.score
    else:
        ...  # "not in the knowledge base": hits (if any) are only loosely related, never an answer

Only approved entries are ever returned. How it ranks:

1. **Exact**: error codes (AWSBHT001E, `rc 12` -> RC=12, S0C7) and job / job stream names found in
   the question are looked up in the entries' normalized keys (`EntryKey`). Matches come first,
   codes weighing more than job names.
2. **Hybrid**: the rest is ordered by reciprocal-rank fusion of a dense multilingual embedding
   (finds Portuguese entries for English questions and the other way round) and a BM25 sparse
   vector (exact words, product terms), both served by Qdrant.
3. **Confidence**: a request for a secret's value is never answered; an exact match is confident; a
   question naming a code or job the base does not know is not; otherwise a two-feature logistic
   model (dense similarity of the best hit, and how much of the question's IDF-weighted wording the
   best hit's problem description contains) must give at least KB_CONFIDENCE_THRESHOLD, the
   question must not name a product or object (LDAP, AIX, Control-M, Jenkins) no entry mentions,
   and when it asks for an attribute ("qual o prazo…", "what is the syntax…") the best hit must
   mention it. Fitted and cross-validated by `bench/retrieval.py` (see knowledge/README.md).
"""

from __future__ import annotations

import fnmatch
import functools
import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.urls import reverse

from knowledge.index import KnowledgeIndex, entry_text, get_index
from knowledge.models import EntryKey, EntryStatus, KnowledgeEntry
from knowledge.text import (
    GLOSSARY,
    light_stem,
    question_codes,
    question_focus,
    question_job_names,
    question_keys,
    question_terms,
    secret_request,
    token_id,
    tokens,
)

RRF_K = 60
DENSE_WEIGHT = 1.0
LEXICAL_WEIGHT = 1.0
CODE_WEIGHT = 2
JOB_WEIGHT = 1
CANDIDATES = 50

# The confidence model (see "Confidence" in knowledge/README.md): a logistic regression on two
# signals of the best hit, fitted by `bench/retrieval.py --synthetic 0` ("confidence_calibration") on
# the shared dev set plus knowledge/tests/data/calibration_questions.csv; copy its numbers here.
# P(answerable) = 1 / (1 + exp(-(INTERCEPT + SIMILARITY_WEIGHT * similarity
#                                 + SYMPTOM_COVERAGE_WEIGHT * symptom_coverage)))
CONFIDENCE_INTERCEPT = -4.14
CONFIDENCE_SIMILARITY_WEIGHT = 11.30
CONFIDENCE_SYMPTOM_COVERAGE_WEIGHT = 8.17


@dataclass(frozen=True)
class Confidence:
    """The signals behind `SearchResult.confident`, for display, logging and calibration."""

    similarity: float
    """Dense cosine similarity of the question to the best hit."""
    coverage: float
    """0..1: share of the question's content words (IDF-weighted, glossary translations count) the best hit contains."""
    probability: float
    """The model's probability that the best hit answers the question."""
    unknown_terms: list[str] = field(default_factory=list)
    """Names in the question (LDAP, AIX, Control-M, Jenkins) no approved entry mentions."""
    symptom_coverage: float = 0.0
    """0..1: like `coverage`, counting only the best hit's problem description (title, symptom, codes, jobs)."""
    missing_focus: list[str] = field(default_factory=list)
    """What the question asks for ("prazo" in "qual o prazo de retenção…") that the best hit never mentions."""


def confidence_probability(similarity: float, symptom_coverage: float) -> float:
    z = (CONFIDENCE_INTERCEPT + CONFIDENCE_SIMILARITY_WEIGHT * similarity
         + CONFIDENCE_SYMPTOM_COVERAGE_WEIGHT * symptom_coverage)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass(frozen=True)
class KnowledgeHit:
    external_id: str
    title: str
    symptom: str
    cause: str
    solution: str
    codes: list[str]
    jobs: list[str]
    language: str
    score: float
    """0..1: 1.0 for an exact code/job match, else the fused rank score of the hybrid search."""
    similarity: float
    """The dense (embedding) cosine similarity to the question, for display and calibration."""
    matched: list[str]
    """Why it matched: `error_code:<code>`, `job:<name>`, `semantic`, `lexical:<field>`."""
    url: str

    def as_dict(self) -> dict[str, object]:
        return {
            "external_id": self.external_id, "title": self.title, "symptom": self.symptom, "cause": self.cause,
            "solution": self.solution, "codes": self.codes, "jobs": self.jobs, "language": self.language,
            "score": round(self.score, 4), "similarity": round(self.similarity, 4), "matched": self.matched,
            "url": self.url,
        }


@dataclass(frozen=True)
class SearchResult:
    question: str
    hits: list[KnowledgeHit]
    confident: bool
    reason: str
    """`exact_match`, `semantic_match`, `secret_request`, `unknown_code`, `unknown_job`, `unknown_term`,
    `missing_focus`, `low_similarity` (the confidence model says no) or `empty`."""
    unknown_codes: list[str] = field(default_factory=list)
    signals: Confidence | None = None

    @property
    def top(self) -> KnowledgeHit | None:
        return self.hits[0] if self.hits else None

    def as_dict(self) -> dict[str, object]:
        signals = self.signals
        return {"question": self.question, "confident": self.confident, "reason": self.reason,
                "unknown_codes": self.unknown_codes,
                "confidence": round(signals.probability, 4) if signals else 0.0,
                "unknown_terms": signals.unknown_terms if signals else [],
                "missing_focus": signals.missing_focus if signals else [],
                "hits": [h.as_dict() for h in self.hits]}


def _exact_matches(question: str) -> tuple[dict[str, list[str]], set[str]]:
    """External id -> matched keys, and every key value the base knows among the question's strings."""
    keys = question_keys(question)
    names = question_job_names(question)
    # No join with the entries here: with stale planner statistics (right after a big import) the
    # join hashed every approved entry (3-4 ms at 10,000 entries); key rows by value, then their
    # entries by primary key, both use an index whatever the statistics say.
    rows = list(EntryKey.objects.filter(value__in=keys).values_list("entry_id", "kind", "value"))
    if names:
        rows += [(entry_id, EntryKey.Kind.JOB, pattern) for entry_id, pattern in
                 EntryKey.objects.filter(is_pattern=True).values_list("entry_id", "value")
                 if any(fnmatch.fnmatchcase(name, pattern) for name in names)]
    if not rows:
        return {}, set()
    approved = dict(
        KnowledgeEntry.objects.filter(pk__in={row[0] for row in rows}, status=EntryStatus.APPROVED).values_list(
            "pk", "external_id"
        )
    )
    matches: dict[str, list[str]] = defaultdict(list)
    known: set[str] = set()
    for entry_pk, kind, value in rows:
        external_id = approved.get(entry_pk)
        if external_id is None:
            continue
        if "*" in value or "?" in value:  # a pattern: what it knows is the question's name it matched
            for name in names:
                if fnmatch.fnmatchcase(name, value):
                    matches[external_id].append(f"job:{name}")
                    known.add(name)
            continue
        known.add(value)
        # A workstation runs many unrelated jobs: knowing it is no reason to rank its entries first.
        if kind != EntryKey.Kind.WORKSTATION:
            matches[external_id].append(f"{'error_code' if kind == EntryKey.Kind.CODE else 'job'}:{value}")
    return matches, known


def _exact_weight(matched: list[str]) -> int:
    return sum(CODE_WEIGHT if m.startswith("error_code:") else JOB_WEIGHT for m in matched)


@functools.lru_cache(maxsize=8192)
def _text_tokens(text: str) -> frozenset[str]:
    # Entry fields come back search after search; tokenizing them is the costliest Python step.
    return frozenset(tokens(text))


def _lexical_fields(entry: KnowledgeEntry, question_tokens: set[str]) -> list[str]:
    found = []
    for name in ("title", "symptom", "cause", "solution"):
        if question_tokens & _text_tokens(getattr(entry, name)):
            found.append(f"lexical:{name}")
    return found


@functools.lru_cache(maxsize=8192)
def _text_stems(text: str) -> frozenset[str]:
    return frozenset(light_stem(t) for t in _text_tokens(text))


def _problem_text(entry: KnowledgeEntry) -> str:
    """What describes an entry's problem (what a question about that problem echoes): not its cause or fix."""
    return "\n".join([entry.title, entry.symptom, " ".join(entry.error_codes), " ".join(entry.job_patterns)])


def _confidence_signals(
    question: str, top: KnowledgeEntry | None, similarity: float, known_keys: set[str], index: KnowledgeIndex
) -> Confidence:
    """Coverage of the question's words by the best hit, the names in the question the base lacks,
    and what the question asks for that the best hit never mentions.

    A word counts by its IDF in the base (rare words such as product names weigh most); a word is
    covered when the entry contains it or one of its glossary translations. A word no entry
    contains gets the IDF of a word found once, so misspellings and slang lower coverage without
    swamping it. `coverage` looks at the whole entry, `symptom_coverage` (the model's feature) at
    its problem description only: a question describes a problem, and an entry whose fix merely
    mentions the question's words ("…para contas críticas como o twsuser…") is not about it.
    """
    words = list(dict.fromkeys(tokens(question)))
    terms = [t for t in question_terms(question) if t.upper() not in known_keys]
    term_words = {t: tokens(t) for t in terms}
    focus = question_focus(question)
    forms = {w: (w, *GLOSSARY.get(w, ())) for w in {*words, *focus, *(w for ws in term_words.values() for w in ws)}}
    ids = {form: token_id(form) for fs in forms.values() for form in fs}
    total, df = index.document_frequencies(set(ids.values()))
    known = {w: max(df[ids[f]] for f in fs) for w, fs in forms.items()}
    unknown_terms = [t for t, ws in term_words.items() if ws and any(known[w] == 0 for w in ws)]
    coverage = symptom_coverage = 0.0
    missing_focus: list[str] = []
    if top is not None:
        if words and total:
            weight = {w: math.log(1 + (total - max(known[w], 1) + 0.5) / (max(known[w], 1) + 0.5)) for w in words}
            whole = sum(weight.values()) or 1.0

            def share(found: frozenset[str]) -> float:
                return sum(weight[w] for w in words if any(f in found for f in forms[w])) / whole

            coverage = share(_text_tokens(entry_text(top)))
            symptom_coverage = share(_text_tokens(_problem_text(top)))
        if focus:
            stems = _text_stems(entry_text(top))
            missing_focus = [w for w in focus if not any(light_stem(f) in stems for f in forms[w])]
    return Confidence(similarity=similarity, coverage=coverage, symptom_coverage=symptom_coverage,
                      probability=confidence_probability(similarity, symptom_coverage), unknown_terms=unknown_terms,
                      missing_focus=missing_focus)


def search(
    question: str, *, limit: int = 5, index: KnowledgeIndex | None = None, threshold: float | None = None
) -> SearchResult:
    """Ranked approved entries for a question, with citations and a calibrated confidence.

    `threshold` is the minimum probability (of the confidence model) to answer; default
    KB_CONFIDENCE_THRESHOLD.
    """
    question = question.strip()[:2000]
    if not question:
        return SearchResult(question=question, hits=[], confident=False, reason="empty")
    index = index or get_index()
    threshold = settings.KB_CONFIDENCE_THRESHOLD if threshold is None else threshold

    exact_ids, known_keys = _exact_matches(question)
    dense, lexical = index.query(question, limit=CANDIDATES)

    fused: dict[str, float] = defaultdict(float)
    similarity: dict[str, float] = {}
    signals: dict[str, list[str]] = defaultdict(list)
    for rank, hit in enumerate(dense):
        fused[hit.external_id] += DENSE_WEIGHT / (RRF_K + rank + 1)
        similarity[hit.external_id] = hit.score
        if rank < 10:
            signals[hit.external_id].append("semantic")
    for rank, hit in enumerate(lexical):
        fused[hit.external_id] += LEXICAL_WEIGHT / (RRF_K + rank + 1)
    best_possible = (DENSE_WEIGHT + LEXICAL_WEIGHT) / (RRF_K + 1)

    candidates = set(fused) | set(exact_ids)
    ranked = sorted(
        candidates,
        key=lambda eid: (-_exact_weight(exact_ids.get(eid, [])), -fused.get(eid, 0.0), eid),
    )[: max(limit, 1)]

    entries = {
        e.external_id: e
        for e in KnowledgeEntry.objects.filter(external_id__in=ranked, status=EntryStatus.APPROVED).only(
            "external_id", "title", "symptom", "cause", "solution", "error_codes", "job_patterns", "language"
        )
    }
    question_tokens = set(tokens(question))
    hits: list[KnowledgeHit] = []
    for external_id in ranked:
        entry = entries.get(external_id)
        if entry is None:  # retired or rejected since it was indexed
            continue
        exact_keys = exact_ids.get(external_id, [])
        hits.append(
            KnowledgeHit(
                external_id=external_id,
                title=entry.title,
                symptom=entry.symptom,
                cause=entry.cause,
                solution=entry.solution,
                codes=list(entry.error_codes),
                jobs=list(entry.job_patterns),
                language=entry.language,
                score=1.0 if exact_keys else min(1.0, fused.get(external_id, 0.0) / best_possible),
                similarity=similarity.get(external_id, 0.0),
                matched=exact_keys + signals.get(external_id, []) + _lexical_fields(entry, question_tokens),
                url=reverse("kb-entry", kwargs={"external_id": external_id}),
            )
        )

    unknown_codes = sorted(question_codes(question) - known_keys)
    unknown_jobs = question_job_names(question) - known_keys
    top = hits[0] if hits else None
    confidence = _confidence_signals(
        question, entries.get(top.external_id) if top else None, top.similarity if top else 0.0, known_keys, index
    )
    if secret_request(question):
        # Whatever entry mentions the account, no answer gives a password, key or token away.
        confident, reason = False, "secret_request"
    elif top and exact_ids.get(top.external_id):
        confident, reason = True, "exact_match"
    elif unknown_codes:
        confident, reason = False, "unknown_code"
    elif unknown_jobs:
        confident, reason = False, "unknown_job"
    elif not top or confidence.probability < threshold:
        confident, reason = False, "low_similarity"
    elif confidence.unknown_terms:
        # The question names a product, object or status no entry mentions: whatever matched, the
        # base does not know what it is asking about.
        confident, reason = False, "unknown_term"
    elif confidence.missing_focus:
        # It asks for an attribute (a retention period, a size, a manager) the best hit never mentions.
        confident, reason = False, "missing_focus"
    else:
        confident, reason = True, "semantic_match"
    return SearchResult(question=question, hits=hits, confident=confident, reason=reason, unknown_codes=unknown_codes,
                        signals=confidence)

