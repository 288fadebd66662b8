"""What the person asked, without an LLM: language, intent and entities (PT/EN, colloquial too).

Used by the no-LLM mode to pick tools, and by both modes to know which action (if any) the person
asked for in their own words: the only source of truth for `propose_action`. Time windows ("in the
last 6 hours", "nas últimas 6 horas", "tonight", "desde as 22h") are read here too, as a
`WindowAsk` that becomes concrete times only against the plan's clock (`WindowAsk.resolve`), and
so are HWA folders: a folder the question is about ("na pasta /RH/", "in folder /FINANCEIRO/",
"folder RH") and job references written with one (`PRD_LNX01#/RH/FOLHA_PAGAMENTO.FP_CALC_FOLHA`),
as typed: the validation layer checks them against HWA's rules.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Intent(StrEnum):
    ACTION = "action"
    HOW_FIX = "how_fix"
    WHY_FAILED = "why_failed"
    DEPENDENCIES = "dependencies"
    LOG = "log"
    WORKSTATION = "workstation"
    FAILURES = "failures"
    STATUS = "status"
    RUNNING = "running"
    STUCK = "stuck"
    KNOWLEDGE = "knowledge"
    GREETING = "greeting"
    UNKNOWN = "unknown"


@dataclass
class Recognized:
    language: str
    intent: Intent
    jobs: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    workstations: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    action: str | None = None
    pattern: str | None = None
    window: WindowAsk | None = None
    # The folder the question is about, as typed ("/RH/", "RH", or a malformed path for validation to refuse).
    folder: str | None = None

    def qualified(self, name: str) -> str:
        """`name` (a job or job stream) in the question's folder, unless it names a folder of its own."""
        if not self.folder or "/" in name:
            return name
        return f"{self.folder.rstrip('/')}/{name}"  # "/" (the root) gives "/NAME"


# --- time windows -----------------------------------------------------------------------------------

# The batch night, for "tonight" / "esta noite" / "last night": from 18:00 to 08:00 the next morning.
NIGHT_STARTS_AT = 18
NIGHT_ENDS_AT = 8


@dataclass(frozen=True)
class TimeWindow:
    since: datetime
    until: datetime


@dataclass(frozen=True)
class WindowAsk:
    """A time window as the person said it. `kind`: "last" (`hours` back from now), "since" (the latest
    `hour`:`minute` at or before now), "since_yesterday", "tonight", "last_night", "today" or "yesterday"."""

    kind: str
    phrase: str
    hours: float = 0.0
    hour: int = 0
    minute: int = 0

    def resolve(self, now: datetime) -> TimeWindow:
        """Concrete times against `now` (aware), in the site's time zone: "desde as 22h" at 02:30 is
        22:00 of the day before, "tonight" at 10:00 is the night that just ended."""
        from django.utils import timezone

        local = timezone.localtime(now)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)

        def at(day_offset: int, hour: int, minute: int = 0) -> datetime:
            day = (midnight + timedelta(days=day_offset)).date()
            return datetime(day.year, day.month, day.day, hour, minute, tzinfo=local.tzinfo)

        if self.kind == "last":
            return TimeWindow(now - timedelta(hours=self.hours), now)
        if self.kind == "since":
            start = at(0, self.hour, self.minute)
            return TimeWindow(start if start <= local else at(-1, self.hour, self.minute), now)
        if self.kind == "tonight":
            if local.hour >= NIGHT_STARTS_AT:
                return TimeWindow(at(0, NIGHT_STARTS_AT), now)
            if local.hour < NIGHT_ENDS_AT:
                return TimeWindow(at(-1, NIGHT_STARTS_AT), now)
            return TimeWindow(at(-1, NIGHT_STARTS_AT), at(0, NIGHT_ENDS_AT))  # asked in the morning: the night just past
        if self.kind == "last_night":
            if local.hour < NIGHT_ENDS_AT:
                return TimeWindow(at(-1, NIGHT_STARTS_AT), now)
            return TimeWindow(at(-1, NIGHT_STARTS_AT), at(0, NIGHT_ENDS_AT))
        if self.kind == "today":
            return TimeWindow(midnight, now)
        if self.kind == "yesterday":
            return TimeWindow(at(-1, 0), midnight)
        if self.kind == "since_yesterday":
            return TimeWindow(at(-1, 0), now)
        raise ValueError(f"unknown window kind {self.kind}")


_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "twelve": 12, "um": 1, "uma": 1, "dois": 2, "duas": 2, "tres": 3, "quatro": 4, "cinco": 5, "seis": 6,
    "sete": 7, "oito": 8, "nove": 9, "dez": 10, "doze": 12,
}
_NUMBER = r"(\d{1,4}(?:[.,]\d+)?|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
_UNIT = r"(minutes?|mins?|minutos?|hours?|hrs?|horas?|h|days?|dias?|d)"
_UNIT_HOURS = {"m": 1 / 60, "h": 1.0, "d": 24.0}
_UNIT_AFTER = re.compile(r"\s*(?:minutes?|mins?|minutos?|hours?|hrs?|horas?|days?|dias?|weeks?|semanas?)\b")
# Over folded text (lower case, no accents). Specific before generic: "ontem a noite" before "ontem".
_WINDOW_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # "in the last 6 hours", "past 2h", "last hour", "nas últimas 6 horas", "na última hora", "nos últimos 2 dias"
    ("last", re.compile(rf"\b(?:(?:in|over|during)\s+)?(?:the\s+)?(?:last|past|previous)\s+(?:{_NUMBER}\s*)?{_UNIT}\b")),
    ("last", re.compile(rf"\b(?:n|d)[ao]s?\s+{_NUMBER}\s*{_UNIT}\s+(?:ultim[ao]s?|passad[ao]s?)\b")),
    ("last", re.compile(rf"\b(?:n|d)[ao]s?\s+{_NUMBER}\s+ultim[ao]s?\s+{_UNIT}\b")),
    ("last", re.compile(rf"\b(?:(?:n|d)[ao]s?\s+)?(?:ultim[ao]s?|derradeir[ao]s?)\s+(?:{_NUMBER}\s*)?{_UNIT}\b")),
    ("since_yesterday", re.compile(r"\b(?:since|desde)\s+(?:yesterday|ontem)\b")),
    # "since 22:00", "since 10pm", "since 22h", "after 9:30 pm", "desde as 22h", "a partir das 22:30", "depois das 23h"
    ("since", re.compile(r"\b(?:since|after|from)\s+(\d{1,2})(?:[:h](\d{2}))?\s*(am|pm|h|o'?clock)?(?=\W|$)")),
    ("since", re.compile(r"\b(?:desde|a\s+partir|depois)\s+(?:(?:d?[ao]s?|de)\s+)?(\d{1,2})(?:[:h](\d{2}))?\s*(h|hs|horas?)?(?=\W|$)")),
    ("midnight", re.compile(r"\b(?:since|after)\s+midnight\b|\b(?:desde|a\s+partir|depois)\s+(?:d?a\s+)?meia[\s-]?noite\b")),
    ("last_night", re.compile(r"\b(last\s+night|overnight|ontem\s+(?:a|de)\s+noite|noite\s+passada|ontem\s+a\s+madrugada)\b")),
    ("tonight", re.compile(r"\b(tonight|this\s+night|(?:n?esta|n?essa)\s+(?:noite|madrugada)|hoje\s+(?:a|de)\s+noite|de\s+madrugada)\b")),
    ("yesterday", re.compile(r"\b(yesterday|ontem)\b")),
    ("today", re.compile(r"\b(today|hoje)\b")),
]


def _number(text: str | None) -> float:
    if not text:
        return 1.0
    if text in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[text])
    return float(text.replace(",", "."))


def time_window(text: str) -> WindowAsk | None:
    """The time window the question asks about, if any (not yet bounded: validation does that)."""
    folded = fold(text)
    for kind, pattern in _WINDOW_PATTERNS:
        match = pattern.search(folded)
        if match is None:
            continue
        phrase = match.group(0).strip()
        if kind == "last":
            number, unit = match.group(1), match.group(2)
            return WindowAsk("last", phrase, hours=_number(number) * _UNIT_HOURS[unit[0]])
        if kind == "since":
            hour, minute = int(match.group(1)), int(match.group(2) or 0)
            suffix = (match.group(3) or "").replace("'", "")
            if not (match.group(2) or suffix or phrase.startswith("since") or re.search(r"\bd?as\s+\d", phrase)):
                continue  # "from 3 streams", "depois de 2 tentativas", "desde 20/11": a number, not a time of day
            if _UNIT_AFTER.match(folded, match.end()):
                continue  # "since 2 days ago" is not 02:00
            if suffix == "pm" and hour < 12:
                hour += 12
            elif suffix == "am" and hour == 12:
                hour = 0
            if hour > 23 or minute > 59:
                continue
            return WindowAsk("since", phrase, hour=hour, minute=minute)
        if kind == "midnight":
            return WindowAsk("since", phrase, hour=0, minute=0)
        return WindowAsk(kind, phrase)
    return None


def fold(text: str) -> str:
    """Lower case without accents: 'Tá travado' and 'ta travado' read the same."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_PT_WORDS = set(
    "o a os as do da dos das de que qual quais como esta estao está tá ta por porque pq caiu falhou abendou deu "
    "erro hoje noite ontem rodar rode roda reexecutar reexecute reexecuta segurar liberar libera cancelar cancela "
    "matar mata job jobs sao é e um uma no na nos nas pra para isso esse essa meu minha resolver resolvo corrigir "
    "corrijo solucao travado travou parado preso rodando executando aguardando esperando status situacao quem "
    "quando onde falharam caíram cairam abendaram tem ha houve algum alguma favor oi ola bom dia tarde".split()
)
_EN_WORDS = set(
    "the is are was were what which how why did does do of in on to for a an failed fail failing tonight today "
    "yesterday job jobs status stuck running rerun hold release cancel kill fix solve solution please show me my "
    "it this that there any error errors abended crashed log logs depends dependencies successors predecessors "
    "workstation agent can could should i you hello hi".split()
)

# (action, patterns over folded text). Order matters: specific before generic.
_ACTIONS: list[tuple[str, re.Pattern[str]]] = [
    ("confirm_succ", re.compile(r"\b(confirm\w*\s+(as\s+)?succ\w*|confirm\w*\s+(como\s+)?sucesso|marca\w*\s+como\s+sucesso|forc\w+\s+(o\s+)?sucesso|confirm-succ)\b")),
    ("confirm_abend", re.compile(r"\b(confirm\w*\s+(as\s+)?abend\w*|confirm\w*\s+(como\s+)?(abend|falha)|confirm-abend)\b")),
    ("rerun", re.compile(r"\b(re-?run\w*|run\s+\w+\s+again|run\s+again|re-?execut\w*|reprocess\w*|restart\w*|reinici\w*|rod\w+\s+(\w+\s+){0,2}de\s+novo|rod\w+\s+(\w+\s+){0,2}novamente|rela?nc\w*|resubmit\w*|ressubmet\w*)\b")),
    ("hold", re.compile(r"\b(hold|put\s+on\s+hold|segur\w+|coloc\w+\s+em\s+hold|bot\w+\s+em\s+hold|paus\w+|suspend\w*)\b")),
    ("release", re.compile(r"\b(release\w*|liber\w+|solt\w+|unhold)\b")),
    ("cancel", re.compile(r"\b(cancel\w*)\b")),
    ("kill", re.compile(r"\b(kill\w*|mat\w+\s+o\s+job|mata[r]?\b|matem|abort\w*|derrub\w+)\b")),
]

_HOW_FIX = re.compile(
    r"\b(how\s+(do|can|should)\s+(i|we)\s+(fix|solve|resolve|handle)|how\s+to\s+(fix|solve|resolve|handle)|fix\b|workaround|"
    r"como\s+(eu\s+)?(resolv\w*|corrij\w*|corrig\w*|soluciono|arrum\w*|conserto|consertar|trato|tratar|fa[cz]\w*\s+pra\s+resolver)|"
    r"solu[cç]\w*|o\s+que\s+(eu\s+)?(fa[cz]\w*|devo\s+fazer)|what\s+(do|should)\s+i\s+do|resolver|corrigir)"
)
_WHY = re.compile(r"\b(why|por\s*que|porque|pq|motivo|causa|cause|reason|what\s+happened|o\s+que\s+(aconteceu|houve|deu))\b")
_DEPS = re.compile(
    r"\b(depend\w*|predecess\w*|successor\w*|sucessor\w*|impact\w*|downstream|upstream|bloquead\w*|blocked|"
    r"waiting\s+for|esperando|aguardando|espera\s+de|what\s+(runs|comes)\s+after|o\s+que\s+vem\s+depois)\b"
)
_LOG = re.compile(r"\b(log|logs|stdlist|joblog|saida|output)\b")
_WS = re.compile(r"\b(workstation\w*|estac\w+|agente\w*|agent\w*|servidor\w*|linked|unlinked|deslinkad\w*|link)\b")
_FAIL_WORDS = re.compile(
    r"\b(fail\w*|abend\w*|cai[ru]\w*|cair\w*|caiu|cairam|quebr\w*|deu\s+erro|com\s+erro|erro\w*|error\w*|crash\w*|"
    r"problema\w*|problems?|incident\w*|broke\w*|faio|falhou|falharam)\b"
)
_LIST_WORDS = re.compile(
    r"\b(what|which|quais|qual|quantos|how\s+many|list\w*|lista\w*|tonight|hoje|noite|today|last\s+night|ontem|"
    r"algum|alguma|any|tem\s+job|teve|houve)\b"
)
_STUCK = re.compile(r"\b(stuck|hung|hang\w*|travad\w*|travou|tra?vando|pres[oa]|parad[oa]|nao\s+(anda|sai|roda)|not\s+moving|atrasad\w*|late)\b")
_RUNNING = re.compile(r"\b(running|rodando|executando|em\s+execucao|in\s+progress)\b")
_STATUS = re.compile(r"\b(status|situac\w*|estado|como\s+(esta|ta|anda|ficou)|how\s+is|how's|state|terminou|finished|done|acabou|rodou)\b")
_GREETING = re.compile(r"^\s*(oi|ola|hello|hi|hey|bom\s+dia|boa\s+tarde|boa\s+noite|good\s+(morning|afternoon|evening))\b[\s!.,]*$")

_CODE = re.compile(r"\b(AWS[A-Z]{3}\d{3}[IWE]|ORA-\d{5}|SQLCODE\s*-?\d+|S[0-9A-F]{3}(?=\b)|U\d{4}|RC\s*=\s*\d+|EQQ[A-Z0-9]{4,6})\b", re.I)
_JOBLIKE = re.compile(r"\b([A-Za-z][A-Za-z0-9]*(?:[_\-#.][A-Za-z0-9]+)+|[A-Z][A-Z0-9]{3,})\b")
_WILDCARD = re.compile(r"\b([A-Za-z0-9_]*[*@][A-Za-z0-9_*@]*)")

STATUS_WORDS = {
    "ABEND", "FAIL", "SUCC", "EXEC", "HOLD", "READY", "INTRO", "WAIT", "PEND", "FENCE", "CANCL", "STUCK", "SUSP",
    "SUPPR", "ERROR", "ABENP", "SUCCP",
}
_NOT_JOBS = STATUS_WORDS | {
    "HWA", "TWS", "JOB", "JOBS", "LOG", "KB", "RC", "SAP", "AWS", "OK", "PT", "EN", "AND", "THE", "WHY", "HOW", "WHAT",
    "STATUS", "DO", "DE", "DA", "FIX", "IBM", "HCL", "ORA", "SQL", "CPU", "HOJE", "NOITE", "OQUE", "DONE", "RUN",
    "PASTA", "FOLDER",
}
_COLLOQUIAL_STATUS = [
    (re.compile(r"\b(abend\w*|cai[ru]\w*|caiu|cairam|quebr\w*|fail\w*|falh\w*|erro\w*|error\w*|crash\w*)\b"), "ABEND"),
    (re.compile(r"\b(rodando|executando|running|em\s+execucao)\b"), "EXEC"),
    (re.compile(r"\b(segurad\w*|em\s+hold|on\s+hold|held)\b"), "HOLD"),
]


def detect_language(text: str) -> str:
    words = re.findall(r"[a-zà-ÿ]+", text.lower())
    pt = sum(1 for w in words if w in _PT_WORDS or fold(w) in _PT_WORDS)
    en = sum(1 for w in words if w in _EN_WORDS)
    if re.search(r"[ãõçáéíóúâêô]", text.lower()):
        pt += 2
    return "en" if en > pt else "pt"


# --- folders ------------------------------------------------------------------------------------------

# Not "diretório"/"directory": on a batch team those are a server's, like /dados/folha/saida/.
_FOLDER_WORD = r"(?:pasta|folder)"
# What may follow "pasta"/"folder": a path as typed, up to the next space or punctuation.
_PATH_TEXT = r"[^\s,;:!?()'\"`]+"
_ROOT_FOLDER = re.compile(r"(?i)\b(?:(?:the\s+)?root\s+folder|pasta\s+raiz)\b")
# "na pasta /RH/", "in folder /FINANCEIRO/", "folder RH", "da pasta chamada RH"
_FOLDER_AFTER = re.compile(rf"(?i)\b{_FOLDER_WORD}\s+(?:(?:chamad[ao]|named|called)\s+)?(?P<path>{_PATH_TEXT})")
# "in the /RH/ folder"
_FOLDER_BEFORE = re.compile(rf"(?i)(?<!\S)(?P<path>/{_PATH_TEXT})\s+{_FOLDER_WORD}\b")
# A path on its own, "/FINANCEIRO/" or "/FINANCEIRO/TESOURARIA/": slashes around it, not the start of a job reference.
_FOLDER_PATH = re.compile(r"(?<![\w:/#.@*-])(?P<path>/(?:[A-Za-z0-9_][\w-]*/)+)(?![\w@*./#-])")
# A token that may be a job reference with a folder: `WS#/RH/STREAM.JOB`, `/RH/STREAM.JOB`, `RH/STREAM.JOB`, `/RH/FP_*`.
_REF_TOKEN = re.compile(r"(?<![\w:/#.@*-])[\w\-/#.@*]*/[\w\-/#.@*]*")


def _hwa_like(token: str) -> bool:
    """Written as HWA names usually are: upper case (a lower-case path is more likely a file's)."""
    return token == token.upper() and bool(re.search(r"[A-Z]", token))


def _folder_named(token: str, folder_names: frozenset[str], *, said_folder: bool = True) -> str | None:
    """The folder a path or a word names: a folder of the plan (`rh` is `/RH/`), a name written like
    HWA's (upper case), or, after "pasta"/"folder" (`said_folder`), any path, for validation to check.
    Else None: "pasta de trabalho" is a workbook, "/dados/folha/saida/" a directory on a server."""
    token = token.rstrip(".")
    if not token:
        return None
    for known in folder_names:
        if fold(known.strip("/")) == fold(token.strip("/")):
            return known if "/" not in token else token
    if "/" in token:
        return token if said_folder or _hwa_like(token) else None
    return token if _hwa_like(token) and re.fullmatch(r"[A-Z0-9_][A-Z0-9_\-]*", token) else None


def _folder_refs(text: str, *, job_names: frozenset[str], stream_names: frozenset[str],
                 folder_names: frozenset[str]) -> tuple[str | None, list[str], list[str], str | None, str]:
    """The folder the question is about, job and job stream references written with a folder, a
    pattern with one, and the text with all of those blanked out (so their parts are not read again)."""
    spans: list[tuple[int, int]] = []
    refs: list[str] = []
    stream_refs: list[str] = []
    pattern: str | None = None
    names = job_names | stream_names
    for match in _REF_TOKEN.finditer(text):
        token = match.group(0).rstrip(".")
        last = token.rpartition("/")[2]
        if not last or not re.search(r"\w", last):
            continue
        wild = bool(re.search(r"[*@]", last))
        if not (wild or "#" in token or last.rpartition(".")[2].upper() in names or ("." in last and _hwa_like(token))):
            continue  # "/backup", "20/11", "/dados/saida/sem_conta.txt": not a job
        spans.append((match.start(), match.start() + len(token)))
        if wild:
            pattern = pattern or token.upper()
        elif "#" not in token and "." not in last and last.upper() in stream_names and last.upper() not in job_names:
            stream_refs.append(token.upper())  # /RH/FOLHA_PAGAMENTO: a job stream in its folder
        elif token.upper() not in refs:
            refs.append(token.upper())
    folder: str | None = None
    for regex in (_ROOT_FOLDER, _FOLDER_AFTER, _FOLDER_BEFORE, _FOLDER_PATH):
        for match in regex.finditer(text):
            if any(start < match.end() and match.start() < end for start, end in spans):
                continue
            found = "/" if regex is _ROOT_FOLDER else _folder_named(match.group("path"), folder_names,
                                                                   said_folder=regex is not _FOLDER_PATH)
            if found is None:
                continue
            spans.append(match.span())
            folder = folder or found
    blanked = text
    for start, end in spans:
        blanked = blanked[:start] + " " * (end - start) + blanked[end:]
    return folder, refs, stream_refs, pattern, blanked


def _match_names(text: str, folded: str, names: frozenset[str]) -> list[str]:
    found = []
    for name in names:
        low = fold(name)
        if low and re.search(rf"(?<![\w]){re.escape(low)}(?![\w])", folded):
            found.append(name)
    # Longest first: FOLHA_PAGAMENTO_2 before FOLHA_PAGAMENTO when both appear.
    return sorted(found, key=lambda n: (-len(n), n))


def recognize(
    text: str,
    *,
    job_names: frozenset[str] = frozenset(),
    stream_names: frozenset[str] = frozenset(),
    workstation_names: frozenset[str] = frozenset(),
    folder_names: frozenset[str] = frozenset(),
) -> Recognized:
    folder, refs, stream_refs, folder_pattern, text = _folder_refs(
        text, job_names=frozenset(n.upper() for n in job_names), stream_names=frozenset(n.upper() for n in stream_names),
        folder_names=folder_names)
    folded = fold(text)
    language = detect_language(text)
    codes = []
    for raw in _CODE.findall(text):
        code = re.sub(r"\s+", "", raw.upper())
        # Three-letter S-abends only when they look like z/OS abends (S0C7, S806, S322), not words.
        if re.fullmatch(r"S[0-9A-F]{3}", code) and not re.search(r"\d", code):
            continue
        if code not in codes:
            codes.append(code)
    jobs = [*refs, *_match_names(text, folded, job_names)]
    streams = [*stream_refs, *(s for s in _match_names(text, folded, stream_names) if s not in jobs)]
    workstations = [w for w in _match_names(text, folded, workstation_names) if w not in jobs]
    known = {fold(n) for n in (*jobs, *streams, *workstations)}
    pattern = folder_pattern
    wild = _WILDCARD.search(text)
    if pattern is None and wild and len(wild.group(1).strip("*@")) >= 2:
        pattern = wild.group(1).upper()
    if not jobs and not streams:
        # Names not (yet) in the plan still count when they look like job names.
        for token in _JOBLIKE.findall(text):
            upper = token.upper()
            if upper in _NOT_JOBS or fold(token) in known or any(upper == c for c in codes):
                continue
            if _CODE.fullmatch(token) or upper.startswith("KB-"):
                continue
            if token.isupper() or "_" in token:
                jobs.append(upper)
    statuses = [w for w in re.findall(r"\b[A-Z]{4,5}\b", text) if w in STATUS_WORDS]
    for pattern_re, status in _COLLOQUIAL_STATUS:
        if pattern_re.search(folded) and status not in statuses:
            statuses.append(status)

    action = None
    for name, action_re in _ACTIONS:
        if action_re.search(folded):
            action = name
            break
    # "How do I release X?" asks for knowledge; "release X" (or "pode liberar X?") asks for the action.
    asks_how = bool(re.search(r"\b(how\s+(do|can|to)|como\s+(eu\s+)?(fa[cz]o|posso|se|devo))\b", folded))
    if action and asks_how and not (jobs or streams or pattern):
        action = None

    has_target = bool(jobs or streams or pattern)
    if _GREETING.match(folded):
        intent = Intent.GREETING
    elif action and (has_target or action in ("rerun", "cancel", "kill", "hold", "release")) and not asks_how:
        intent = Intent.ACTION
    elif _HOW_FIX.search(folded):
        intent = Intent.HOW_FIX
    elif _WHY.search(folded) and (has_target or _FAIL_WORDS.search(folded)):
        intent = Intent.WHY_FAILED if has_target else Intent.FAILURES
    elif _DEPS.search(folded) and has_target:
        intent = Intent.DEPENDENCIES
    elif _LOG.search(folded) and has_target:
        intent = Intent.LOG
    elif _WS.search(folded) or (workstations and not has_target):
        intent = Intent.WORKSTATION
    elif _STUCK.search(folded):
        intent = Intent.STUCK
    elif has_target and _FAIL_WORDS.search(folded) and not _LIST_WORDS.search(folded):
        intent = Intent.WHY_FAILED
    elif _FAIL_WORDS.search(folded) and not has_target:
        intent = Intent.FAILURES
    elif _RUNNING.search(folded) and not has_target:
        intent = Intent.RUNNING
    elif has_target or _STATUS.search(folded):
        intent = Intent.STATUS
    elif codes:
        intent = Intent.HOW_FIX
    else:
        intent = Intent.KNOWLEDGE
    if action and intent is not Intent.ACTION:
        action = None
    return Recognized(
        language=language, intent=intent, jobs=jobs, streams=streams, workstations=workstations,
        codes=codes, statuses=statuses, action=action, pattern=pattern, window=time_window(text), folder=folder,
    )
