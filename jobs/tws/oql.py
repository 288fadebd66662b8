"""Building OQL filters (the `oql` query parameter of HWA's plan endpoints) safely.

Values are always rendered as quoted literals with embedded quotes doubled, and field names must
be plain dotted identifiers, so text a person typed can never change the shape of the filter
(`FOO' OR name LIKE '@` stays one literal job name). Never build OQL by string concatenation:
compose `eq`, `ne`, `in_`, `like`, `and_`, `or_` and render with `str()`.

Escaping a quote by doubling it follows the SQL convention HWA's parser is modelled on
(unverified against a real server; the mock implements the same rule).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OqlError(ValueError):
    pass


def quote(value: str | int) -> str:
    if isinstance(value, bool):
        raise OqlError("booleans are not OQL literals")
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _CONTROL.search(text):
        raise OqlError("control characters are not allowed in an OQL value")
    return "'" + text.replace("'", "''") + "'"


def _field(name: str) -> str:
    if not _FIELD.match(name):
        raise OqlError(f"not an OQL field name: {name!r}")
    return name


@dataclass(frozen=True)
class Expr:
    text: str

    def __str__(self) -> str:
        return self.text

    def __and__(self, other: Expr) -> Expr:
        return and_(self, other)

    def __or__(self, other: Expr) -> Expr:
        return or_(self, other)


def eq(field: str, value: str | int) -> Expr:
    return Expr(f"{_field(field)} = {quote(value)}")


def ne(field: str, value: str | int) -> Expr:
    return Expr(f"{_field(field)} != {quote(value)}")


def in_(field: str, values: Iterable[str | int]) -> Expr:
    items = [quote(v) for v in values]
    if not items:
        raise OqlError("IN needs at least one value")
    return Expr(f"{_field(field)} IN [{','.join(items)}]")


def like(field: str, pattern: str) -> Expr:
    """`pattern` uses HWA's `@` wildcard; a `*` typed by a person is read as `@` too."""
    return Expr(f"{_field(field)} LIKE {quote(pattern.replace('*', '@'))}")


def and_(*parts: Expr | None) -> Expr:
    kept = [p for p in parts if p is not None]
    if not kept:
        raise OqlError("AND of nothing")
    return kept[0] if len(kept) == 1 else Expr(" AND ".join(f"({p})" for p in kept))


def or_(*parts: Expr | None) -> Expr:
    kept = [p for p in parts if p is not None]
    if not kept:
        raise OqlError("OR of nothing")
    return kept[0] if len(kept) == 1 else Expr(" OR ".join(f"({p})" for p in kept))


def order_by(expr: Expr | None, field: str, *, descending: bool = False) -> str:
    tail = f"ORDER BY {_field(field)} {'DESC' if descending else 'ASC'}"
    return f"{expr} {tail}" if expr is not None else tail
