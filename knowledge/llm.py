"""One JSON-answering LLM call for the knowledge app (learned drafts, the contradiction judge).

Only used when `LLM_MODEL` is set. Any failure (connection, HTTP error, timeout, an answer that is
not a JSON object) returns None, and the caller falls back to its rule-based path: the auditor and
the learning loop must keep working with the model down.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def llm_configured() -> bool:
    return bool(settings.LLM_MODEL)


def llm_json(*, system: str, user: str, max_tokens: int = 800) -> dict[str, Any] | None:
    """The model's answer parsed as a JSON object, or None when there is no usable answer."""
    if not llm_configured():
        return None
    import litellm  # heavy import: only when an LLM is configured

    kwargs: dict[str, Any] = {
        "model": settings.LLM_MODEL,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "timeout": settings.LLM_TIMEOUT_SECONDS,
        "num_retries": 0,
    }
    if settings.LLM_API_BASE:
        kwargs["api_base"] = settings.LLM_API_BASE
    if settings.LLM_API_KEY:
        kwargs["api_key"] = settings.LLM_API_KEY
    try:
        response = litellm.completion(**kwargs)
        text = response.choices[0].message.content or ""
    except Exception as exc:  # the model is outside our control: every failure means "fall back"
        logger.warning("knowledge LLM call failed: %s: %s", type(exc).__name__, exc)
        return None
    match = _JSON_OBJECT.search(text)
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
