"""Typed errors of the HWA client.

Every failure of a call becomes one of these, so a caller can tell "HWA unreachable"
(`HwaUnavailable`, including an open circuit) from "not found" (`HwaNotFound`) from "refused"
(`HwaRefused`: a state guard or a rule of the engine said no) from "our credentials are wrong"
(`HwaAuthError`) from "HWA answered something we cannot read" (`HwaProtocolError`).
Each carries the HTTP status, the AWS message ids found in the answer and the HWA messages.
They are `ApplicationError`s, so the API maps them to clear 4xx/5xx answers, never a 500 crash.
"""

from __future__ import annotations

import json
import re
from typing import Any

from resync_site.lib.errors import ApplicationError

# An engine message id: AWS + 3-letter component + 3 digits + severity (I/W/E).
AWS_MESSAGE_ID = re.compile(r"AWS[A-Z]{3}\d{3}[IWE]")


class HwaError(ApplicationError):
    code = "hwa_error"
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        messages: list[str] | None = None,
        message_ids: list[str] | None = None,
        raw: str = "",
        url: str = "",
    ) -> None:
        self.status_code = status_code
        self.messages = messages or []
        self.message_ids = message_ids or []
        self.raw = raw[:2000]
        self.url = url
        super().__init__(message, extra={"hwa_status": status_code, "hwa_message_ids": self.message_ids})


class HwaUnavailable(HwaError):
    """HWA could not be reached, timed out, or answered with a server-side outage."""

    code = "hwa_unavailable"
    http_status = 503


class HwaCircuitOpen(HwaUnavailable):
    """Too many recent failures: calls are not even attempted until the breaker's cool-down ends."""

    code = "hwa_circuit_open"


class HwaAuthError(HwaError):
    """HWA rejected our credentials (401) or our HWA user may not do this (403)."""

    code = "hwa_auth"
    http_status = 502


class HwaNotFound(HwaError):
    code = "hwa_not_found"
    http_status = 404


class HwaRefused(HwaError):
    """HWA understood the request and said no (state guard, duplicate, rule of the engine)."""

    code = "hwa_refused"
    http_status = 409


class HwaBadRequest(HwaError):
    """HWA found our request malformed (bad OQL, missing content type): a bug on our side."""

    code = "hwa_bad_request"
    http_status = 502


class HwaProtocolError(HwaError):
    """HWA answered, but not with what its API promises (HTML page, truncated JSON, wrong types)."""

    code = "hwa_protocol"
    http_status = 502


def extract_messages(text: str) -> tuple[list[str], list[str]]:
    """The HWA `messages` of an error body (JSON when possible, raw text otherwise) and their AWS ids."""
    messages: list[str] = []
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        found = body.get("messages")
        if isinstance(found, list):
            messages = [str(m) for m in found]
        elif isinstance(found, str):
            messages = [found]
        for key in ("message", "errorMessage", "error"):
            if isinstance(body.get(key), str):
                messages.append(body[key])
    haystack = " ".join(messages) if messages else text[:5000]
    ids = list(dict.fromkeys(AWS_MESSAGE_ID.findall(haystack)))
    if not ids and "OQL_FILTER_SYNTAX_ERROR" in haystack:
        ids = ["OQL_FILTER_SYNTAX_ERROR"]
    return messages, ids
