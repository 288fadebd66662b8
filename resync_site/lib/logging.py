"""Request ids, JSON log lines and secret redaction.

Every log record carries the id of the request (or chat turn) it belongs to, so one operator's
problem can be followed across web, worker and HWA calls. Secrets never reach a log line: the
redaction filter masks anything that looks like a credential before any handler sees it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_REQUEST_ID_HEADER = "HTTP_X_REQUEST_ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Takes a well-formed X-Request-ID from the proxy or makes one, and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get(_REQUEST_ID_HEADER, "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


# key=value, "key": "value" and Authorization headers whose key names a secret.
_SECRET_KEYS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|authorization|client[_-]?secret|sessionid|csrftoken)"  # noqa: S105 (names of secrets, not one)
# The key may carry a prefix (TWS_PASSWORD, HTTP_AUTHORIZATION, OIDC_RP_CLIENT_SECRET); a quoted value
# is masked up to its closing quote, spaces included.
_KEY_VALUE = re.compile(
    rf"(?i)(?P<key>\b(?:\w+?_)?{_SECRET_KEYS}\b[\"']?\s*[:=]\s*)"
    r"(?P<quote>[\"'])?(?P<scheme>(?:Basic|Bearer|Token)\s+)?"
    r"(?P<value>(?(quote)(?:(?!(?P=quote)).)*|[^\s\"',;&}]+))"
)
# The user part may be empty: redis://:password@host is how Redis URLs carry a password.
_URL_CREDENTIALS = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)(@)")
# "Token" is DRF's scheme; matched case-sensitively so the word "token" in prose stays readable.
_BEARER = re.compile(r"\b((?i:Bearer|Basic)|Token)\s+[A-Za-z0-9._~+/=-]{8,}")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S)
MASK = "***"


def redact(text: str) -> str:
    text = _PRIVATE_KEY.sub("-----BEGIN PRIVATE KEY-----" + MASK, text)
    text = _URL_CREDENTIALS.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['quote'] or ''}{m['scheme'] or ''}{MASK}", text)
    return _BEARER.sub(rf"\g<1> {MASK}", text)


class RedactSecretsFilter(logging.Filter):
    """Masks credentials in the final message text (arguments included) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers index without parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key in ("turn_id", "user", "event"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_text or record.exc_info:
            payload["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(payload, ensure_ascii=False, default=str)
