"""Reading a team's knowledge workbook into validated rows (no database writes here).

Real workbooks are messy: a title in merged cells above the header, extra sheets, Portuguese or
English header names, blank rows, line breaks and trailing spaces in cells. This module finds the
data sheet and its header row, maps the columns to fields and validates every row, reporting each
problem with its sheet, row number, column and reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from knowledge.text import clean_cell, detect_language, fold, parse_codes, parse_jobs
from resync_site.lib.errors import ApplicationError

ALLOWED_SUFFIXES = (".xlsx", ".xlsm", ".csv")
HEADER_SCAN_ROWS = 30

# Header names (folded: lower case, no accents, punctuation as spaces) for each field.
HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "external_id": ("id", "kb id", "id kb", "kb", "entry id", "identificador", "ref", "referencia", "artigo",
                    "article", "article id", "numero", "no", "n", "key", "chave", "kb number"),
    "title": ("titulo", "title", "assunto", "subject", "resumo", "summary"),
    "error_codes": ("codigo de erro", "codigos de erro", "codigo erro", "codigo do erro", "error code",
                    "error codes", "error message id", "message id", "msg id", "mensagem", "codigo",
                    "codigos", "erro", "error", "rc abend", "codes", "code", "error id"),
    "job_patterns": ("job job stream", "job", "jobs", "job stream", "jobstream", "job name", "nome do job",
                     "job jobstream", "job stream job", "jobs job streams", "job pattern", "fluxo", "rotina"),
    "symptom": ("sintoma", "sintomas", "symptom", "symptoms", "problema", "problem", "descricao",
                "descricao do problema", "description", "issue", "issue description", "ocorrencia"),
    "cause": ("causa", "causas", "cause", "root cause", "causa raiz", "motivo", "reason", "why"),
    "solution": ("solucao", "solution", "fix workaround", "fix", "workaround", "resolucao", "resolution",
                 "procedimento", "procedure", "acao", "acoes", "action", "actions", "steps", "passos",
                 "correcao", "solucao contorno", "como resolver", "how to fix"),
    "category": ("categoria", "category", "area", "tipo", "type", "classificacao", "classification"),
    "severity": ("criticidade", "severidade", "severity", "prioridade", "priority", "impacto", "impact",
                 "criticality", "gravidade"),
    "owner_team": ("responsavel", "responsaveis", "owner", "owner team", "owners", "equipe", "team",
                   "equipe responsavel", "time responsavel", "dono", "resolver group", "grupo", "support group"),
    "source_updated_on": ("atualizado em", "updated", "last updated", "updated on", "updated at", "data",
                          "date", "data de atualizacao", "ultima atualizacao", "modified", "last modified"),
    "revalidate_on": ("revalidar em", "revalidacao", "revalidation", "revalidation date", "review date",
                      "revisar em", "validade", "next review", "proxima revisao"),
    "language": ("idioma", "language", "lang", "lingua"),
}
_HEADER_LOOKUP = {syn: fieldname for fieldname, syns in HEADER_SYNONYMS.items() for syn in syns}
REQUIRED = ("external_id", "solution")

SEVERITY_WORDS = {
    "high": ("alta", "alto", "high", "critica", "critico", "critical", "p1", "sev1", "1", "urgente", "urgent"),
    "medium": ("media", "medio", "medium", "moderate", "moderada", "p2", "sev2", "2", "normal"),
    "low": ("baixa", "baixo", "low", "minor", "p3", "sev3", "3", "p4"),
}
_SEVERITY_LOOKUP = {word: key for key, words in SEVERITY_WORDS.items() for word in words}
_LANG_LOOKUP = {"pt": "pt", "pt-br": "pt", "portugues": "pt", "portuguese": "pt", "en": "en", "english": "en",
                "ingles": "en"}
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%Y/%m/%d", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S")

# Fields compared to decide "changed" vs "unchanged" on re-import, in a stable order.
IMPORTED_FIELDS = ("title", "symptom", "error_codes", "job_patterns", "workstations", "cause", "solution",
                   "category", "severity", "owner_team", "language", "source_updated_on", "revalidate_on")


# Parts of an OOXML package that carry macros: a VBA project (.xlsm, or renamed to .xlsx) and
# Excel 4.0 macro sheets. Part names are case-insensitive in OOXML.
MACRO_PARTS = re.compile(r"(?i)(^|/)vbaProject(Signature)?\.bin$|^xl/macrosheets/")

# A cell Excel (or LibreOffice) would run as a formula when the text reaches a spreadsheet: "=..."
# always; "+", "-" and "@" only before a function call, a DDE link or "=" (so "- step one",
# "-- comment", "+55 11 91234-5678" and "-5" stay text). The plural idiom "job(s)" is not a call.
_FORMULA_AFTER_SIGN = re.compile(r"=|[A-Za-z_][\w.]*\((?!(?:s|es|as|os)\))")
_DDE = re.compile(r"\w\|\s*(?:'[^']*'|[^\s!|']+)\s*!")  # cmd|' /C calc'!A0 or msexcel|sheet!A1, anywhere


def formula_like(value: str) -> bool:
    """Whether a text cell would become a live formula (formula or DDE injection) in a spreadsheet."""
    # NFKC folds full-width signs; leading spaces, tabs and line breaks are skipped by spreadsheets.
    probe = unicodedata.normalize("NFKC", value[:500]).lstrip(" \t\r\n")
    if not probe or probe[0] not in "=+-@":
        return False
    if probe[0] == "=":
        return bool(probe[1:].strip())
    return bool(_FORMULA_AFTER_SIGN.match(probe.lstrip("+-@ \t\r\n")) or _DDE.search(probe))


class ImportFileError(ApplicationError):
    """The file as a whole cannot be imported (type, size, structure)."""

    code = "import_file_invalid"


@dataclass(frozen=True)
class RowError:
    sheet: str
    row: int
    column: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "column": self.column, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.sheet}!{self.row} [{self.column}]: {self.reason}"


@dataclass
class ParsedRow:
    row: int
    external_id: str
    values: dict[str, Any]

    @property
    def content_hash(self) -> str:
        return entry_content_hash(self.values)


@dataclass
class ParsedWorkbook:
    file_name: str
    sheet: str
    header_row: int
    columns: dict[str, str]  # field -> header text as written
    ignored_columns: list[str]
    rows: list[ParsedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    total_rows: int = 0
    other_sheets: list[str] = field(default_factory=list)

    @property
    def invalid_rows(self) -> set[int]:
        return {error.row for error in self.errors}


def entry_content_hash(values: dict[str, Any]) -> str:
    parts = []
    for name in IMPORTED_FIELDS:
        value = values.get(name)
        if isinstance(value, list):
            value = "|".join(value)
        elif isinstance(value, dt.date):
            value = value.isoformat()
        parts.append(f"{name}={value or ''}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _header_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", fold(text)).strip()


def map_header(cells: list[Any]) -> dict[int, str]:
    """Column index -> field for one candidate header row (first column wins on a repeat)."""
    mapping: dict[int, str] = {}
    seen: set[str] = set()
    for index, cell in enumerate(cells):
        if cell is None or isinstance(cell, (dt.date, int, float)):
            continue
        fieldname = _HEADER_LOOKUP.get(_header_key(str(cell)))
        if fieldname and fieldname not in seen:
            mapping[index] = fieldname
            seen.add(fieldname)
    return mapping


def _check_size(data: bytes, file_name: str) -> None:
    limit = settings.KB_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise ImportFileError(
            _("%(name)s is %(size)d bytes; the limit is %(limit)d bytes.")
            % {"name": file_name, "size": len(data), "limit": limit},
            code="import_too_large",
        )


def _check_zip(data: bytes, file_name: str) -> None:
    """Refuses zip bombs before openpyxl inflates anything (defusedxml covers entity tricks)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ImportFileError(
            _("%(name)s is not a valid Excel workbook (.xlsx/.xlsm files are zip archives).") % {"name": file_name},
            code="import_not_a_workbook",
        ) from None
    with archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        if len(infos) > 10_000 or total > settings.KB_IMPORT_MAX_UNZIPPED_BYTES:
            raise ImportFileError(
                _("%(name)s expands to %(size)d bytes, over the %(limit)d-byte limit.")
                % {"name": file_name, "size": total, "limit": settings.KB_IMPORT_MAX_UNZIPPED_BYTES},
                code="import_too_large",
            )
        for info in infos:
            if info.compress_size and info.file_size / info.compress_size > 200 and info.file_size > 10_000_000:
                raise ImportFileError(
                    _("%(name)s contains a suspiciously compressed part (%(part)s).")
                    % {"name": file_name, "part": info.filename},
                    code="import_too_large",
                )
        if any(MACRO_PARTS.search(info.filename) for info in infos):
            raise ImportFileError(
                _("%(name)s: the workbook contains macros; save it as .xlsx without macros and import that file.")
                % {"name": file_name},
                code="import_macros",
            )


def _read_xlsx(data: bytes, file_name: str) -> list[tuple[str, list[list[Any]]]]:
    import openpyxl
    from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

    def formula_text(value: Any) -> Any:
        # Array and data-table formulas come as objects: their text, so they are refused like the others.
        if isinstance(value, ArrayFormula):
            return value.text or "=?"
        return "=TABLE()" if isinstance(value, DataTableFormula) else value

    _check_zip(data, file_name)
    try:
        # read_only streams the sheet; keep_vba=False: nothing of a macro project is ever loaded (a
        # workbook carrying one was refused above). data_only=False: a formula cell reads as its
        # formula ("=..."), which the row check refuses by row and column, instead of its cached
        # result (or nothing at all, in a file saved without results) being imported as if typed.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False, keep_vba=False)
    except Exception as exc:  # openpyxl raises many types for a damaged or hostile file
        raise ImportFileError(
            _("%(name)s could not be read as a workbook: %(error)s") % {"name": file_name, "error": exc},
            code="import_not_a_workbook",
        ) from None
    max_rows = settings.KB_IMPORT_MAX_ROWS
    sheets: list[tuple[str, list[list[Any]]]] = []
    try:
        for sheet in workbook.worksheets:
            rows: list[list[Any]] = []
            for values in sheet.iter_rows(values_only=True):
                rows.append([formula_text(value) for value in values])
                if len(rows) > max_rows + HEADER_SCAN_ROWS:
                    break
            sheets.append((sheet.title, rows))
    finally:
        workbook.close()
    return sheets


def _read_csv(data: bytes, file_name: str) -> list[tuple[str, list[list[Any]]]]:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes nearly anything
        raise ImportFileError(_("%(name)s is not UTF-8 or Windows-1252 text.") % {"name": file_name})
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(settings.KB_IMPORT_MAX_CELL_CHARS + 1)
    try:
        rows = [list(r) for r in csv.reader(io.StringIO(text), dialect)]
    except csv.Error as exc:
        raise ImportFileError(_("%(name)s: %(error)s") % {"name": file_name, "error": exc}) from None
    return [(Path(file_name).stem, rows)]


def _find_header(sheets: list[tuple[str, list[list[Any]]]]) -> tuple[str, int, dict[int, str]]:
    best: tuple[int, str, int, dict[int, str]] | None = None
    for name, rows in sheets:
        for index, cells in enumerate(rows[:HEADER_SCAN_ROWS]):
            mapping = map_header(cells)
            fields = set(mapping.values())
            if not set(REQUIRED) <= fields or not ({"symptom", "title"} & fields):
                continue
            if best is None or len(mapping) > best[0]:
                best = (len(mapping), name, index, mapping)
    if best is None:
        found = ", ".join(f"'{name}'" for name, _rows in sheets) or "-"
        raise ImportFileError(
            _(
                "No sheet has a header row with at least an ID, a symptom (or title) and a solution column "
                "(sheets: %(sheets)s). Recognized names include: ID, Código de Erro / Error Code, "
                "Sintoma / Symptom, Causa / Cause, Solução / Solution / Fix."
            )
            % {"sheets": found},
            code="import_no_header",
        )
    return best[1], best[2], best[3]


def _parse_date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(text)


def read_workbook(data: bytes, file_name: str) -> ParsedWorkbook:
    """Parses and validates a workbook; raises ImportFileError when the file itself is unusable."""
    suffix = Path(file_name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise ImportFileError(
            _("%(name)s: only .xlsx, .xlsm and .csv files can be imported (got '%(suffix)s').")
            % {"name": file_name, "suffix": suffix or _("no extension")},
            code="import_file_type",
        )
    _check_size(data, file_name)
    sheets = _read_csv(data, file_name) if suffix == ".csv" else _read_xlsx(data, file_name)
    sheet_name, header_index, mapping = _find_header(sheets)
    rows = dict(sheets)[sheet_name]
    header_cells = rows[header_index]
    parsed = ParsedWorkbook(
        file_name=file_name,
        sheet=sheet_name,
        header_row=header_index + 1,
        columns={fieldname: clean_cell(header_cells[i]) for i, fieldname in mapping.items()},
        ignored_columns=[clean_cell(c) for i, c in enumerate(header_cells) if i not in mapping and clean_cell(c)],
        other_sheets=[name for name, _rows in sheets if name != sheet_name],
    )
    data_rows = rows[header_index + 1 :]
    non_blank = [(header_index + 2 + offset, cells) for offset, cells in enumerate(data_rows)
                 if any(clean_cell(c) for c in cells)]
    if len(non_blank) > settings.KB_IMPORT_MAX_ROWS:
        raise ImportFileError(
            _("%(name)s has more than %(limit)d data rows; split it into smaller files.")
            % {"name": file_name, "limit": settings.KB_IMPORT_MAX_ROWS},
            code="import_too_many_rows",
        )
    parsed.total_rows = len(non_blank)
    first_row_of: dict[str, int] = {}
    for row_number, cells in non_blank:
        row = _parse_row(parsed, row_number, cells, mapping)
        if row is None:
            continue
        if row.external_id in first_row_of:
            parsed.errors.append(RowError(sheet_name, row_number, parsed.columns["external_id"],
                                          _("duplicate ID %(id)s in this file (first on row %(first)d)")
                                          % {"id": row.external_id, "first": first_row_of[row.external_id]}))
            continue
        first_row_of[row.external_id] = row_number
        parsed.rows.append(row)
    invalid = parsed.invalid_rows
    parsed.rows = [r for r in parsed.rows if r.row not in invalid]
    return parsed


def _parse_row(parsed: ParsedWorkbook, row_number: int, cells: list[Any], mapping: dict[int, str]) -> ParsedRow | None:
    sheet = parsed.sheet
    raw: dict[str, Any] = {}
    errors: list[RowError] = []
    limit = settings.KB_IMPORT_MAX_CELL_CHARS
    for index, fieldname in mapping.items():
        value = cells[index] if index < len(cells) else None
        if isinstance(value, str) and len(value) > limit:
            errors.append(RowError(sheet, row_number, parsed.columns[fieldname],
                                   _("cell has %(n)d characters; the limit is %(limit)d")
                                   % {"n": len(value), "limit": limit}))
        elif isinstance(value, str) and formula_like(value):
            # Refused rather than kept: the entry would turn back into a live formula in whatever
            # spreadsheet the base is exported to (exports escape such cells too: resync_site.lib.spreadsheet).
            shown = re.sub(r"\s+", " ", value).strip()
            errors.append(RowError(sheet, row_number, parsed.columns[fieldname],
                                   _("'%(value)s' is a spreadsheet formula; formulas are not imported "
                                     "(paste the values, or write the text so that it does not start with %(sign)s)")
                                   % {"value": shown if len(shown) <= 40 else shown[:39] + "…", "sign": shown[:1]}))
        raw[fieldname] = value

    def column(fieldname: str) -> str:
        return parsed.columns.get(fieldname, fieldname)

    external_id = re.sub(r"\s+", " ", clean_cell(raw.get("external_id")))
    if isinstance(raw.get("external_id"), float) and raw["external_id"].is_integer():
        external_id = str(int(raw["external_id"]))
    symptom = clean_cell(raw.get("symptom"))
    title = clean_cell(raw.get("title"))
    solution = clean_cell(raw.get("solution"))
    if not external_id:
        errors.append(RowError(sheet, row_number, column("external_id"), _("missing ID")))
    elif len(external_id) > 64:
        errors.append(RowError(sheet, row_number, column("external_id"), _("ID longer than 64 characters")))
    if not solution:
        errors.append(RowError(sheet, row_number, column("solution"), _("missing solution")))
    if not symptom and not title:
        errors.append(RowError(sheet, row_number, column("symptom"), _("missing symptom")))
    dates: dict[str, dt.date | None] = {}
    for name in ("source_updated_on", "revalidate_on"):
        try:
            dates[name] = _parse_date(raw.get(name))
        except ValueError as exc:
            errors.append(RowError(sheet, row_number, column(name),
                                   _("unparseable date '%(value)s' (use a date cell or YYYY-MM-DD / DD/MM/YYYY)")
                                   % {"value": exc}))
    severity = ""
    severity_text = clean_cell(raw.get("severity"))
    if severity_text:
        severity = _SEVERITY_LOOKUP.get(_header_key(severity_text), "")
        if not severity:
            errors.append(RowError(sheet, row_number, column("severity"),
                                   _("unknown severity '%(value)s' (Alta/Média/Baixa or High/Medium/Low)")
                                   % {"value": severity_text}))
    if errors:
        parsed.errors.extend(errors)
        return None
    jobs, workstations = parse_jobs(clean_cell(raw.get("job_patterns")))
    body = "\n".join(filter(None, (title, symptom, clean_cell(raw.get("cause")), solution)))
    language = _LANG_LOOKUP.get(_header_key(clean_cell(raw.get("language")))) or detect_language(body)
    if not title:
        first_line = symptom.split("\n", 1)[0]
        title = first_line if len(first_line) <= 160 else first_line[:157].rsplit(" ", 1)[0] + "…"
    values: dict[str, Any] = {
        "title": title[:300],
        "symptom": symptom or title,
        "error_codes": parse_codes(clean_cell(raw.get("error_codes"))),
        "job_patterns": jobs,
        "workstations": workstations,
        "cause": clean_cell(raw.get("cause")),
        "solution": solution,
        "category": clean_cell(raw.get("category"))[:120],
        "severity": severity,
        "owner_team": clean_cell(raw.get("owner_team"))[:150],
        "language": language,
        "source_updated_on": dates.get("source_updated_on"),
        "revalidate_on": dates.get("revalidate_on"),
    }
    return ParsedRow(row=row_number, external_id=external_id, values=values)
