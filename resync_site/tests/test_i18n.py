"""Portuguese first, English on request: the browser decides for visitors, the saved preference for users."""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from audit.models import AuditAction, AuditEvent
from resync_site.services import user_set_language

LOCALE = Path(settings.BASE_DIR) / "locale"


def test_a_portuguese_browser_gets_the_portuguese_sign_in_page(db: Any) -> None:
    response = Client().get("/account/signin/", headers={"Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5"})
    html = response.content.decode()
    assert '<html lang="pt-br">' in html
    assert "Entrar no Resync" in html and "Senha" in html
    assert "Sign in to Resync" not in html


def test_an_english_browser_gets_english(db: Any) -> None:
    html = Client().get("/account/signin/", headers={"Accept-Language": "en-US,en;q=0.9"}).content.decode()
    assert '<html lang="en">' in html
    assert "Sign in to Resync" in html and "Password" in html


def test_without_a_language_header_the_team_gets_portuguese(db: Any) -> None:
    assert "Entrar no Resync" in Client().get("/account/signin/").content.decode()


def test_a_saved_english_preference_beats_a_portuguese_browser(operator: Any, client_for: Callable[..., Client]) -> None:
    user_set_language(user=operator, language="en")
    html = client_for(operator).get("/", headers={"Accept-Language": "pt-BR"}).content.decode()
    assert '<html lang="en">' in html
    assert "Sign out" in html and ">Sair<" not in html


def test_a_saved_portuguese_preference_beats_an_english_browser(operator: Any, client_for: Callable[..., Client]) -> None:
    user_set_language(user=operator, language="pt-br")
    html = client_for(operator).get("/", headers={"Accept-Language": "en"}).content.decode()
    assert '<html lang="pt-br">' in html and "Sair" in html


def test_switching_language_is_saved_and_audited(operator: Any, client_for: Callable[..., Client]) -> None:
    client = client_for(operator)
    response = client.post("/account/language/", {"language": "en", "next": "/account/password/"},
                           headers={"Accept-Language": "pt-BR"})
    assert response.status_code == 302 and response["Location"] == "/account/password/"
    assert "Change password" in client.get("/account/password/", headers={"Accept-Language": "pt-BR"}).content.decode()
    operator.refresh_from_db()
    assert operator.preference.language == "en"
    event = AuditEvent.objects.get(action=AuditAction.LANGUAGE_CHANGED)
    assert event.details == {"before": "", "after": "en"}

    # A fresh session (another browser) keeps the saved choice once signed in.
    assert "Change password" in client_for(operator).get("/account/password/",
                                                          headers={"Accept-Language": "pt-BR"}).content.decode()


def test_switching_to_an_unknown_language_changes_nothing(operator: Any, client_for: Callable[..., Client]) -> None:
    client = client_for(operator)
    response = client.post("/account/language/", {"language": "xx", "next": "https://evil.example/"})
    assert response["Location"] == "/"
    assert not AuditEvent.objects.filter(action=AuditAction.LANGUAGE_CHANGED).exists()


# --- the catalogue itself ------------------------------------------------------------------------


def _po_entries(path: Path) -> dict[str, str]:
    """msgid -> msgstr for the active (not obsolete) entries; enough of the PO grammar for our files."""
    entries: dict[str, str] = {}
    fuzzy: set[str] = set()
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#~")]
        fields: dict[str, str] = {}
        key = ""
        for line in lines:
            if match := re.match(r'^(msgid|msgstr|msgctxt|msgid_plural|msgstr\[0\]) "(.*)"$', line):
                key = match.group(1)
                fields[key] = match.group(2)
            elif line.startswith('"') and key:
                fields[key] += line[1:-1]
        msgid = fields.get("msgid", "").encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
        if msgid:
            entries[msgid] = fields.get("msgstr", fields.get("msgstr[0]", ""))
            if any(line.startswith("#,") and "fuzzy" in line for line in lines):
                fuzzy.add(msgid)
    return {k: ("" if k in fuzzy else v) for k, v in entries.items()}


@pytest.mark.parametrize("language", ["pt_BR"])
def test_every_interface_string_has_a_translation(language: str) -> None:
    entries = _po_entries(LOCALE / language / "LC_MESSAGES" / "django.po")
    assert len(entries) > 50
    untranslated = sorted(msgid for msgid, msgstr in entries.items() if not msgstr)
    assert not untranslated, f"translate these in locale/{language}/LC_MESSAGES/django.po: {untranslated}"


@pytest.mark.parametrize("language", ["pt_BR", "en"])
def test_the_compiled_catalogue_is_up_to_date(language: str) -> None:
    folder = LOCALE / language / "LC_MESSAGES"
    with (folder / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = [msgid for msgid, msgstr in _po_entries(folder / "django.po").items()
             if msgstr and compiled.gettext(msgid) == msgid and msgstr != msgid]
    assert not stale, f"run `manage.py compilemessages`: {stale[:10]}"
