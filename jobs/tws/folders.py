"""HWA folders: paths like `/FINANCEIRO/TESOURARIA/` that hold job streams (and workstations).

A job in the plan belongs to its job stream's folder; anything defined outside a folder is in the
root folder `/`. HWA's naming rules (composer's folder definition): each name is letters, digits,
`-` and `_`, does not start with `-`, has no spaces, and is at most 256 characters; the whole path
is at most 800 characters.

Resync keeps one spelling of a path, with a leading and a trailing slash (`/RH/`), whatever HWA or
a person wrote (`/RH`, `RH`, `RH/`): both sides of a comparison then agree. Folder names are
compared without regard to case, as the rest of the plan's names are.
"""

from __future__ import annotations

import re

ROOT = "/"
MAX_PATH_LENGTH = 800
MAX_NAME_LENGTH = 256

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
# What a person may type: `/`, or names separated by `/`, with optional leading and trailing slashes.
# (ECMA-compatible, so the API schema can publish it as the parameter's pattern.)
PATH_PATTERN = rf"^(/|/?{_NAME}(/{_NAME})*/?)$"
_PATH = re.compile(PATH_PATTERN)


class FolderError(ValueError):
    """A folder path that breaks HWA's naming rules; `code` says which rule."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def folder_canonical(raw: str | None) -> str:
    """`raw` (as HWA reports it) with a leading and a trailing slash; empty or missing is the root.
    Does not check the naming rules: what HWA says is what the plan holds."""
    text = (raw or "").strip().strip("/")
    return ROOT if not text else f"/{text}/"


def folder_parse(text: str) -> str:
    """A folder path a person typed, checked against HWA's naming rules, in canonical form.
    Raises `FolderError` (code `invalid`, `name_too_long` or `too_long`) otherwise."""
    value = text.strip()
    if not _PATH.fullmatch(value):
        raise FolderError(f"not a valid HWA folder path: {value[:80]!r}", code="invalid")
    canonical = folder_canonical(value)
    if any(len(name) > MAX_NAME_LENGTH for name in canonical.split("/")):
        raise FolderError(f"a folder name is longer than {MAX_NAME_LENGTH} characters", code="name_too_long")
    if len(canonical) > MAX_PATH_LENGTH:
        raise FolderError(f"the folder path is longer than {MAX_PATH_LENGTH} characters", code="too_long")
    return canonical
