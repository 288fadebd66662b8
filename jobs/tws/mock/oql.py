"""The mock's OQL subset: `=`, `!=`, `IN [..]`, `LIKE` (with `@` wildcards), `AND`, `OR`, parentheses
and `ORDER BY field ASC|DESC`. Literals are single-quoted with `''` for an embedded quote, or numbers.
Anything else raises `OqlSyntaxError` (HWA's 400 `OQL_FILTER_SYNTAX_ERROR`).

A field may have a normalizer for the literals of `=`, `!=` and `IN` (not `LIKE`): `folder = '/RH'`
and `folder = '/RH/'` then mean the same folder, as the stored values have one spelling.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Getter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]


class OqlSyntaxError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<num>-?\d+)
      | (?P<op>!=|=|\(|\)|\[|\]|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Tok:
    kind: str
    value: Any


def tokenize(text: str) -> list[Tok]:
    tokens: list[Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise OqlSyntaxError(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
        pos = m.end()
        if m.group("str") is not None:
            tokens.append(Tok("str", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            tokens.append(Tok("num", int(m.group("num"))))
        elif m.group("op") is not None:
            tokens.append(Tok("op", m.group("op")))
        else:
            word = m.group("word")
            upper = word.upper()
            if upper in ("AND", "OR", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC"):
                tokens.append(Tok("kw", upper))
            else:
                tokens.append(Tok("field", word))
    return tokens


def like_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("@")) + "$", re.DOTALL)


def _matches(value: Any, op: str, literal: Any) -> bool:
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    values = ["" if v is None else str(v) for v in values]
    if op == "=":
        return str(literal) in values
    if op == "!=":
        return str(literal) not in values
    if op == "IN":
        wanted = {str(v) for v in literal}
        return any(v in wanted for v in values)
    if op == "LIKE":
        return any(literal.match(v) for v in values)
    raise OqlSyntaxError(op)


class _Parser:
    def __init__(self, tokens: list[Tok], fields: dict[str, Getter], normalizers: dict[str, Callable[[str], str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.fields = fields
        self.normalizers = normalizers

    def peek(self) -> Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: Any = None) -> Tok:
        tok = self.peek()
        if tok is None or tok.kind != kind or (value is not None and tok.value != value):
            raise OqlSyntaxError(f"expected {value or kind} at token {self.pos}, got {tok.value if tok else 'end'!r}")
        self.pos += 1
        return tok

    def is_kw(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "kw" and tok.value == value

    def expr(self) -> Predicate:
        left = self.term()
        while self.is_kw("OR"):
            self.pos += 1
            right = self.term()
            left = (lambda a, b: lambda o: a(o) or b(o))(left, right)
        return left

    def term(self) -> Predicate:
        left = self.factor()
        while self.is_kw("AND"):
            self.pos += 1
            right = self.factor()
            left = (lambda a, b: lambda o: a(o) and b(o))(left, right)
        return left

    def literal(self) -> Any:
        tok = self.peek()
        if tok is None or tok.kind not in ("str", "num"):
            raise OqlSyntaxError(f"expected a literal at token {self.pos}")
        self.pos += 1
        return tok.value

    def factor(self) -> Predicate:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.value == "(":
            self.pos += 1
            inner = self.expr()
            self.take("op", ")")
            return inner
        field = self.take("field").value
        getter = self.fields.get(field)
        if getter is None:
            raise OqlSyntaxError(f"unknown field {field!r}")
        tok = self.peek()
        if tok is None:
            raise OqlSyntaxError("missing operator")
        normalize = self.normalizers.get(field)
        if tok.kind == "op" and tok.value in ("=", "!="):
            self.pos += 1
            op, literal = tok.value, self.literal()
            if normalize is not None:
                literal = normalize(str(literal))
        elif tok.kind == "kw" and tok.value == "IN":
            self.pos += 1
            self.take("op", "[")
            items = [self.literal()]
            while self.peek() is not None and self.peek().value == ",":  # type: ignore[union-attr]
                self.pos += 1
                items.append(self.literal())
            self.take("op", "]")
            op, literal = "IN", [normalize(str(i)) for i in items] if normalize is not None else items
        elif tok.kind == "kw" and tok.value == "LIKE":
            self.pos += 1
            op, literal = "LIKE", like_regex(str(self.literal()))
        else:
            raise OqlSyntaxError(f"unsupported operator {tok.value!r}")
        return lambda o: _matches(getter(o), op, literal)


@dataclass(frozen=True)
class Query:
    predicate: Predicate | None
    order_field: Getter | None
    descending: bool


def parse(text: str, fields: dict[str, Getter], normalizers: dict[str, Callable[[str], str]] | None = None) -> Query:
    tokens = tokenize(text or "")
    parser = _Parser(tokens, fields, normalizers or {})
    predicate: Predicate | None = None
    if parser.peek() is not None and not parser.is_kw("ORDER"):
        predicate = parser.expr()
    order: Getter | None = None
    descending = False
    if parser.is_kw("ORDER"):
        parser.pos += 1
        parser.take("kw", "BY")
        name = parser.take("field").value
        order = fields.get(name)
        if order is None:
            raise OqlSyntaxError(f"cannot order by {name!r}")
        if parser.is_kw("ASC") or parser.is_kw("DESC"):
            descending = parser.take("kw").value == "DESC"
    if parser.peek() is not None:
        raise OqlSyntaxError(f"unexpected {parser.peek().value!r}")  # type: ignore[union-attr]
    return Query(predicate, order, descending)
