"""Masking of host names, user names and IP addresses before text goes to an external LLM.

With `LLM_MASKING=on` every message sent to the model has those replaced by placeholders such as
HOST_1, USER_2, IP_1; the model's streamed answer and its tool-call arguments get the real values
back. The same value always gets the same placeholder within a turn, so the model can still reason
about "the same host".
"""

from __future__ import annotations

import re

_IP = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Host names: at least one dot and a letter-only last label (FQDNs), e.g. srvbatch01.corp.example.
_HOST = re.compile(r"\b(?=[\w-]*[a-zA-Z])[a-zA-Z0-9][\w-]*(?:\.[a-zA-Z0-9][\w-]*)*\.(?:[a-zA-Z]{2,24})\b")
# User names where the text says they are one: user=x, usuário: x, login x, run as x, /home/x.
_USER = re.compile(r"(?i)(\b(?:user(?:name)?|usu[aá]rio|login|logon|owner|run\s+as|runas|uid)\s*[:=]?\s*)([A-Za-z_][\w.-]{1,31})\b")
_HOME = re.compile(r"(/home/)([A-Za-z_][\w.-]{1,31})")
_PLACEHOLDER = re.compile(r"\b(HOST|USER|IP|MAIL)_(\d+)\b")
# File-name-like tokens (script.sh, data.csv) are not hosts.
_NOT_HOST_SUFFIXES = {"sh", "ksh", "bat", "cmd", "py", "log", "txt", "csv", "dat", "xml", "json", "sql", "jar", "exe",
                      "out", "err", "tmp", "xlsx", "zip", "gz", "cfg", "conf", "ini", "properties", "java", "pl"}


class Masker:
    def __init__(self) -> None:
        self.forward: dict[str, str] = {}
        self.backward: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def _placeholder(self, kind: str, value: str) -> str:
        if value in self.forward:
            return self.forward[value]
        self._counts[kind] = self._counts.get(kind, 0) + 1
        token = f"{kind}_{self._counts[kind]}"
        self.forward[value] = token
        self.backward[token] = value
        return token

    def mask(self, text: str) -> str:
        if not text:
            return text
        text = _EMAIL.sub(lambda m: self._placeholder("MAIL", m.group(0)), text)
        text = _IP.sub(lambda m: self._placeholder("IP", m.group(0)), text)

        def host(m: re.Match[str]) -> str:
            value = m.group(0)
            if value.rsplit(".", 1)[-1].lower() in _NOT_HOST_SUFFIXES or _PLACEHOLDER.fullmatch(value):
                return value
            return self._placeholder("HOST", value)

        text = _HOST.sub(host, text)
        text = _USER.sub(lambda m: m.group(1) + (m.group(2) if _PLACEHOLDER.fullmatch(m.group(2)) else self._placeholder("USER", m.group(2))), text)
        return _HOME.sub(lambda m: m.group(1) + self._placeholder("USER", m.group(2)), text)

    def unmask(self, text: str) -> str:
        if not self.backward or not text:
            return text
        return _PLACEHOLDER.sub(lambda m: self.backward.get(m.group(0), m.group(0)), text)

    def stream(self) -> StreamUnmasker:
        return StreamUnmasker(self)


class StreamUnmasker:
    """Restores placeholders in streamed text, holding back a tail that may be half a placeholder."""

    _PARTIAL = re.compile(r"(?:H|HO|HOS|HOST|HOST_\d*|U|US|USE|USER|USER_\d*|I|IP|IP_\d*|M|MA|MAI|MAIL|MAIL_\d*)$")

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.held = ""

    def feed(self, delta: str) -> str:
        text = self.held + delta
        if not self.masker.backward:
            self.held = ""
            return text
        tail = self._PARTIAL.search(text)
        if tail and (tail.start() == 0 or not text[tail.start() - 1].isalnum()):
            self.held = text[tail.start():]
            text = text[: tail.start()]
        else:
            self.held = ""
        return self.masker.unmask(text)

    def finish(self) -> str:
        text, self.held = self.held, ""
        return self.masker.unmask(text)
