"""Exports that a spreadsheet opens: no cell may become a live formula.

A text cell starting with =, +, -, @, a tab or a carriage return runs as a formula (or a DDE
command) when a CSV is opened in Excel or LibreOffice, and a string starting with = is written as a
formula by openpyxl. `formula_safe` prefixes such text with an apostrophe, the mark spreadsheets
read as "this is text" (OWASP's advice for CSV injection). The admin's export formats below apply it
to every cell of CSV, TSV and XLSX files; JSON, YAML and HTML exports keep the text as stored.

The prefix is reversible (`formula_unescape`), for files that are read back and checked, such as
the audit trail's CSV export: text that already starts with apostrophes before a formula sign gets
one more, so stripping one apostrophe always gives the original back.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from import_export.formats import base_formats

FORMULA_LEADS = frozenset("=+-@\t\r")


def _needs_prefix(text: str) -> bool:
    # Spreadsheets skip leading spaces and line breaks; full-width signs (U+FF1D) fold to ASCII.
    first = unicodedata.normalize("NFKC", text.lstrip("'").lstrip(" \n")[:1])
    return bool(first) and first in FORMULA_LEADS


def formula_safe(value: Any) -> Any:
    """`value` with an apostrophe in front when a spreadsheet would run it; other values unchanged."""
    if isinstance(value, str) and _needs_prefix(value):
        return "'" + value
    return value


def formula_unescape(value: Any) -> Any:
    """What `formula_safe` was given, from what it returned."""
    if isinstance(value, str) and value.startswith("'") and _needs_prefix(value[1:]):
        return value[1:]
    return value


class _FormulaSafeMixin:
    def export_data(self, dataset: Any, **kwargs: Any) -> Any:
        for index, row in enumerate(dataset):
            dataset[index] = tuple(formula_safe(cell) for cell in row)
        return super().export_data(dataset, **kwargs)  # type: ignore[misc]


class CSV(_FormulaSafeMixin, base_formats.CSV):
    pass


class TSV(_FormulaSafeMixin, base_formats.TSV):
    pass


class XLSX(_FormulaSafeMixin, base_formats.XLSX):
    pass


# What django-import-export's ExportMixin offers (its `export_formats`): spreadsheets made safe, data
# formats as they are.
EXPORT_FORMATS: list[type[base_formats.Format]] = [
    fmt for fmt in (CSV, XLSX, TSV, base_formats.JSON, base_formats.YAML, base_formats.HTML) if fmt.is_available()
]
