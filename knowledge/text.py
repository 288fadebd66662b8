"""Text normalization shared by the import, the index and the search.

Error codes and job names are matched *exactly* before anything fuzzy happens, so they are
normalized the same way on both sides: `rc 12`, `RC=12` and `RC = 12` are all `RC=12`.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter

# HWA message ids (AWSBHT001E, AWKRAA210E, EQQM391I), return codes, z/OS system and user abends,
# HTTP statuses and vendor codes such as ORA-19502 or RMAN-03009.
CODE_RE = re.compile(
    r"(?<![A-Za-z0-9_])(?:"
    r"AW[A-Z]{4}\d{3}[EWIT]"
    r"|EQQ[A-Z]?\d{3,4}[EWIT]"
    r"|[A-Z]{2,6}-\d{3,6}"
    r"|RC\s*=?\s*\d{1,5}"
    r"|HTTP\s*\d{3}"
    r"|S[0-9A-F]{3}"
    r"|U\d{4}"
    r")(?![A-Za-z0-9_])",
    re.IGNORECASE,
)
_RC_RE = re.compile(r"RC\s*=?\s*(\d{1,5})")
_HTTP_RE = re.compile(r"HTTP\s*(\d{3})")
# Job, job stream and workstation names: upper case with an underscore or a digit (FOLHA_PAGAMENTO,
# CBR0150, PRD_LNX01); `*` and `?` allowed for patterns.
JOB_RE = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_*?#@.-]*(?:_[A-Z0-9*?]+|\d)[A-Z0-9_*?]*(?![A-Za-z0-9_])")
WORD_RE = re.compile(r"[a-z0-9]+(?:[_=.-][a-z0-9]+)*")

STOPWORDS = frozenset(
    """
    a o as os um uma uns umas de do da dos das no na nos nas em ao aos e ou que se por para pra pro com
    sem como qual quais quando onde porque por que isso esse essa este esta eu ele ela eles nos voce
    meu minha seu sua foi ser esta estao tem ter mas mais ja nao sim so ta tá ate
    the an of to in on and or is are was were be been it its for with without what how when where why
    which who this that these those i we you he she they my our your do does did can could should
    would will there here at by from as if not no yes
    """.split()
)
_PT_MARKERS = frozenset(
    "o os as um uma de do da dos das no na em ao que com para pra nao não foi esta está são sao "
    "quando job fica ficam está".split()
)
_EN_MARKERS = frozenset("the of to in and is are was with for when it its that this be not".split())


def fold(text: str) -> str:
    """Lower case without accents: `Solução` and `solucao` compare equal."""
    if text.isascii():  # nothing to strip: skip the per-character pass (most of a search's tokenizing)
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def clean_cell(value: object) -> str:
    """A spreadsheet cell as tidy text: line breaks kept, trailing spaces and blank runs removed."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def normalize_code(raw: str) -> str:
    code = re.sub(r"\s+", " ", raw.strip().upper())
    if match := _RC_RE.fullmatch(code):
        return f"RC={int(match.group(1))}"
    if match := _HTTP_RE.fullmatch(code):
        return f"HTTP {match.group(1)}"
    return code


def parse_codes(cell: str) -> list[str]:
    """A cell of error codes ("AWSRJM002E, AWSRJM004E" or one per line) as a normalized list."""
    codes: list[str] = []
    for piece in re.split(r"[,;\n|]+", cell):
        piece = piece.strip()
        if piece:
            code = normalize_code(piece)
            if code not in codes:
                codes.append(code)
    return codes


def parse_jobs(cell: str) -> tuple[list[str], list[str]]:
    """Job / job stream names, and workstation names (the ones in parentheses), from a cell."""
    jobs: list[str] = []
    workstations: list[str] = []
    inside = " ".join(re.findall(r"\(([^)]*)\)", cell))
    outside = re.sub(r"\([^)]*\)", " ", cell)
    for name in JOB_RE.findall(outside):
        if name not in jobs:
            jobs.append(name)
    for name in JOB_RE.findall(inside):
        if name not in workstations and name not in jobs:
            workstations.append(name)
    return jobs, workstations


# "return code 12", "código de retorno 12", "exit code 12" say RC=12 in words.
_RC_WORDS_RE = re.compile(r"\b(?:return\s+code|exit\s+code|c[oó]digo\s+de\s+retorno|rc)\s*[=:]?\s*(\d{1,5})\b", re.IGNORECASE)


def question_codes(question: str) -> set[str]:
    """Code-shaped strings in a question (known to the base or not), normalized."""
    codes = {normalize_code(m) for m in CODE_RE.findall(question)}
    codes |= {f"RC={int(n)}" for n in _RC_WORDS_RE.findall(question)}
    return codes


def question_keys(question: str) -> set[str]:
    """Every string in a question that could be an entry's code or job name, normalized."""
    keys = question_codes(question)
    keys |= {token.upper() for token in re.findall(r"[A-Za-z0-9_#@.-]+", question) if len(token) >= 3}
    keys |= {token.strip(".-").upper() for token in re.findall(r"[A-Za-z0-9_#@.-]+", question) if len(token) >= 4}
    return keys


def question_job_names(question: str) -> set[str]:
    """Upper-case names with an underscore (FOLHA_PAGAMENTO) the question mentions."""
    return {name for name in JOB_RE.findall(question) if "_" in name}


# Names a question can mention besides codes and jobs: acronyms of 3+ letters (LDAP, AIX, CANCELP),
# CamelCase words (JnextPlan), dotted or hyphenated identifiers (Intercom.msg, Control-M) and
# capitalized words inside a sentence (Jenkins, Solaris, Excel). A hyphenated or dotted word in lower
# case only (fault-tolerant, e-mail, ad-hoc) is an ordinary word, unless it has a dot (a file name).
_TERM_RE = re.compile(
    r"(?<![\w/-])(?:[A-Z][A-Z0-9]{2,}(?:[-_./][A-Za-z0-9]+)*|[A-Za-z]+[a-z][A-Z]\w*|[A-Za-z]+(?:[-_.][A-Za-z0-9]+)+)(?![\w-])"
)
_NAME_RE = re.compile(r"(?<![\w./-])[A-Z][a-z]{2,}(?![\w-])")
# Capitalized in English because of its spelling rules, not because they name a product.
_CAPITALIZED_WORDS = frozenset(
    """monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december english portuguese spanish brazilian""".split()
)


def question_terms(question: str) -> list[str]:
    """Product, object and status names a question mentions (codes and job names excluded).

    A question in capitals throughout is shouting, not naming: only identifier-shaped words
    (with `.`, `-` or `_`) count then. A capitalized word counts only inside a sentence (not as its
    first word) and when it is not a weekday, a month or a language.
    """
    text = _RC_WORDS_RE.sub(" ", CODE_RE.sub(" ", question))
    letters = [ch for ch in text if ch.isalpha()]
    shouting = len(letters) >= 12 and sum(ch.isupper() for ch in letters) > 0.6 * len(letters)
    found = []
    for match in _TERM_RE.finditer(text):
        term = match.group()
        job_shaped = "_" in term and term.upper() == term  # a job name: the exact stage judges those
        plain_compound = term.islower() and "." not in term  # fault-tolerant, e-mail: words, not names
        if job_shaped or plain_compound or term in found or (shouting and not re.search(r"[-_.]", term)):
            continue
        found.append(term)
    for match in _NAME_RE.finditer(text):
        before = text[: match.start()].rstrip()
        sentence_start = not before or before[-1] in ".!?:;\"'(\u201c\u00ab\u2013-\n"
        term = match.group()
        if sentence_start or fold(term) in _CAPITALIZED_WORDS or any(term in t for t in found):
            continue
        found.append(term)
    return found


# What the question asks for (its focus): "Qual o <prazo> de retenção…", "What is the <syntax> of…",
# "Quem é o <gerente>…", "How many <workstations>…". A troubleshooting entry answers a question about
# a problem; when the question asks for a specific attribute, the entry must at least mention it.
_NP = r"(?P<np>[a-z0-9][\w.-]*(?:\s+[a-z0-9][\w.-]*){0,3}?)"
_FOCUS_PT = re.compile(
    r"\b(?:qua(?:l|is)\s+(?:e\s+|eh\s+|seria\s+|sao\s+|era\s+|foi\s+)?(?:(?:o|a|os|as)\s+)?"
    r"|quem\s+(?:e|eh|sao|seria)\s+(?:(?:o|a|os|as)\s+)?|quant[oa]s?\s+"
    r"|onde\s+(?:fica|ficam|esta|estao)\s+(?:(?:o|a|os|as)\s+)?)"
    + _NP
    + r"(?=\s+(?:de|do|da|dos|das|para|pra|pro|no|na|nos|nas|em|entre|que|com|por|pelo|pela|quando|se|e|ou|usad[oa]s?)\b"
    r"|\s*[?,.!;:]|\s*$)"
)
_FOCUS_EN = re.compile(
    r"\b(?:what(?:'s|\s+is|\s+are|\s+was|\s+were)\s+(?:(?:the|a|an|our)\s+)?|which\s+"
    r"|who(?:'s|\s+is|\s+are)\s+(?:(?:the|a|an|our)\s+)?|how\s+(?:many|much)\s+"
    r"|where(?:'s|\s+is|\s+are)\s+(?:(?:the|a|an|our)\s+)?)"
    + _NP
    + r"(?=\s+(?:of|for|in|on|at|between|to|that|when|used|from|with|by|if|does|do|is|are|can|should|and|or)\b"
    r"|\s*[?,.!;:]|\s*$)"
)
# Foci every entry answers (its cause, its fix, its commands), and fillers that are no focus at all.
_GENERIC_FOCUS = frozenset(
    """procedimento procedimentos solucao solucoes causa causas motivo motivos razao problema problemas erro erros
    correcao comando comandos passo passos acao acoes significado sentido jeito forma maneira melhor recomendacao
    orientacao alternativa certo correto fix fixes procedure procedures solution solutions cause causes reason reasons
    problem problems error errors workaround meaning command commands step steps action actions way best right correct
    recommendation recommended next thing things coisa coisas""".split()
)
_FOCUS_FILLERS = frozenset(
    """um uma uns umas dele dela deles delas isso isto aquilo outro outra mesmo mesma tipo one other same kind""".split()
)


def question_focus(question: str) -> list[str]:
    """The head words (folded) of the attributes a question asks for, generic ones (cause, fix) left out.

    Portuguese puts the head first ("prazo de retenção", "tamanho máximo"), English last
    ("licensing difference", "API key").
    """
    text = fold(question).replace("\u2019", "'")
    heads: list[str] = []
    for pattern, head_last in ((_FOCUS_PT, False), (_FOCUS_EN, True)):
        for match in pattern.finditer(text):
            words = [w for w in tokens(match.group("np")) if w not in _FOCUS_FILLERS]
            if words:
                head = words[-1] if head_last else words[0]
                if head not in _GENERIC_FOCUS and head not in heads:
                    heads.append(head)
    return heads


# A request for a secret's value ("qual a senha do twsuser?", "what is the API key?"): no entry holds
# one and no answer may give one, whatever entry mentions the account (asking how to change or renew
# a password is a procedure, and is not caught here).
_SENSITIVE_WORDS = (
    r"(?:senhas?|passwords?|passphrase|credenciais|credencial|credentials?|chaves?\s+(?:de\s+|da\s+)?api|api[\s-]?keys?"
    r"|apikey|tokens?|segredos?|secrets?)"
)
_SECRET_REQUEST_RE = re.compile(
    r"\b(?:qua(?:l|is)\s+(?:e\s+|eh\s+|seria\s+|sao\s+)?(?:(?:a|as|o|os)\s+)?" + _SENSITIVE_WORDS
    + r"|(?:me\s+)?(?:passa|passe|manda|mande|envia|envie|informa|informe|diz|diga|fala|fale)\s+(?:(?:a|as|o|os)\s+)?"
    + _SENSITIVE_WORDS
    + r"|what(?:'s|\s+is|\s+are|\s+was)\s+(?:(?:the|our|my|his|her|their)\s+)?(?:[\w-]+\s+){0,2}?" + _SENSITIVE_WORDS
    + r"|(?:give|send|tell|share|show)\s+(?:me|us)\s+(?:(?:the|our|a)\s+)?(?:[\w-]+\s+){0,2}?" + _SENSITIVE_WORDS
    + r")\b"
)


def secret_request(question: str) -> bool:
    """True when the question asks for the value of a password, API key, token or credential."""
    return bool(_SECRET_REQUEST_RE.search(fold(question).replace("\u2019", "'")))


_PLURALS = (("oes", "ao"), ("aes", "ao"), ("ais", "al"), ("eis", "el"), ("res", "r"), ("zes", "z"), ("ses", "s"))
_ENDINGS = sorted(
    """ado ada ados adas ido ida idos idas ando endo indo aram eram iram ava avam ou eu iu ar er ir am em
    ing ed ly ment ness ation acao""".split(),
    key=len,
    reverse=True,
)


def light_stem(word: str) -> str:
    """A crude Portuguese/English stem (plural, then a verb or participle ending, then a final vowel) for
    "does the entry mention it" checks: `backups`/`backup`, `limites`/`limite`, `configurada`/`configurar`,
    `failed`/`fails` compare equal."""
    if not word.isalpha() or len(word) <= 3:
        return word
    for plural, singular in _PLURALS:
        if word.endswith(plural) and len(word) > len(plural) + 2:
            word = word[: -len(plural)] + singular
            break
    else:
        if word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[: -len(ending)]
    if word[-1] in "aeo" and len(word) >= 5:
        return word[:-1]
    return word


def tokens(text: str) -> list[str]:
    """Lexical tokens for the BM25 signal: folded, stop words removed, codes kept whole."""
    folded = fold(text)
    return [t for t in WORD_RE.findall(folded) if t not in STOPWORDS and len(t) > 1]


def token_id(token: str) -> int:
    # Stable across processes and machines (Python's hash() is salted per process).
    return zlib.crc32(token.encode()) & 0x7FFFFFFF


BM25_K1 = 1.2
BM25_B = 0.75
BM25_AVG_LEN = 90.0  # typical entry length in tokens; Qdrant supplies the IDF part


def bm25_document(text: str) -> tuple[list[int], list[float]]:
    """A document's sparse vector: BM25 term-frequency saturation per token (IDF left to Qdrant)."""
    counts = Counter(tokens(text))
    length = sum(counts.values()) or 1
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / BM25_AVG_LEN)
    merged: dict[int, float] = {}
    for token, tf in counts.items():
        idx = token_id(token)
        merged[idx] = merged.get(idx, 0.0) + tf * (BM25_K1 + 1) / (tf + norm)
    return list(merged), list(merged.values())


# A generic Portuguese<->English operations glossary (folded, one word each side), the kind a
# bilingual batch-operations team keeps: objects, states and actions of job scheduling. The lexical
# signal only matches words written the same, so a Portuguese question also looks for the English
# words and back; the dense signal does the rest of the cross-language work. Deliberately no slang
# and no words picked from the sample questions: it must serve question sets it has never seen.
_GLOSSARY_PAIRS = """
estacao:workstation estacoes:workstations agente:agent agentes:agents servidor:server servidores:servers
plano:plan fila:queue filas:queues arquivo:file arquivos:files diretorio:directory pasta:folder caminho:path
disco:disk espaco:space memoria:memory rede:network conexao:connection comunicacao:communication
banco:database recurso:resource recursos:resources dependencia:dependency dependencias:dependencies
predecessor:predecessor sucessor:successor sucessores:successors prioridade:priority limite:limit
prazo:deadline horario:time agendamento:schedule calendario:calendar feriado:holiday
senha:password senhas:passwords usuario:user usuarios:users conta:account permissao:permission
permissoes:permissions autorizacao:authorization credenciais:credentials certificado:certificate
certificados:certificates chave:key mensagem:message mensagens:messages erro:error erros:errors
falha:failure aviso:warning alerta:alert evento:event regra:rule relatorio:report saida:output
entrada:input tabela:table carga:load versao:version instalacao:installation atualizacao:update
configuracao:configuration parametro:parameter variavel:variable servico:service processo:process
execucao:run dia:day hora:hour mes:month semana:week noite:night
falhou:failed reiniciar:restart parar:stop iniciar:start executar:run reexecutar:rerun cancelar:cancel
cancelado:cancelled liberar:release segurar:hold confirmar:confirm responder:reply resposta:reply
submeter:submit atrasado:late atraso:delay lento:slow cheio:full expirado:expired bloqueado:locked
corrompido:corrupted aguardando:waiting desconectado:disconnected criar:create apagar:delete
excluir:delete renovar:renew alterar:change aumentar:increase verificar:check
""".split()
GLOSSARY: dict[str, tuple[str, ...]] = {}
for _pair in _GLOSSARY_PAIRS:
    _pt, _en = _pair.split(":")
    GLOSSARY[_pt] = (*GLOSSARY.get(_pt, ()), _en)
    GLOSSARY[_en] = (*GLOSSARY.get(_en, ()), _pt)


def bm25_query(text: str) -> tuple[list[int], list[float]]:
    words = set(tokens(text))
    for word in list(words):
        words.update(GLOSSARY.get(word, ()))
    ids = sorted({token_id(t) for t in words})
    return ids, [1.0] * len(ids)


def detect_language(text: str) -> str:
    """`pt` or `en`, by counting each language's commonest words (entries are long enough for it)."""
    words = re.findall(r"[a-zà-ú]+", text.lower())
    pt = sum(1 for w in words if w in _PT_MARKERS) + 2 * len(re.findall(r"[ãõçáéíóúâêô]", text.lower()))
    en = sum(1 for w in words if w in _EN_MARKERS)
    return "en" if en > pt else "pt"
