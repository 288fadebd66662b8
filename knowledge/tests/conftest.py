"""Knowledge tests: each test gets its own Qdrant collection (one local client per folder and
process, so tests share the client but never a collection) and its own media folder."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

# shared/ sits beside the work tree (as in CI's fresh clone).
SHARED_KB = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "kb").resolve()


def sample_path() -> Path:
    path = SHARED_KB / "knowledge_base.xlsx"
    if not path.is_file():
        pytest.skip("the shared sample workbook is not available")
    return path


@pytest.fixture(autouse=True)
def kb_collection(settings: Any, tmp_path: Path) -> Iterator[str]:
    from knowledge.index import drop_collection

    name = settings.QDRANT_COLLECTION = f"test_{uuid.uuid4().hex[:12]}"
    settings.MEDIA_ROOT = tmp_path / "media"
    yield name
    drop_collection(name)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """Messages are asserted in English (the site's default language is Portuguese)."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Tasks run in the test's process (the embedded default's behaviour) instead of going to Redis."""
    from resync_site.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def sample_bytes() -> bytes:
    return sample_path().read_bytes()


@pytest.fixture
def imported_sample(db: Any, sample_bytes: bytes) -> Any:
    """The shared sample imported and indexed, as `manage.py kb_import` would."""
    from knowledge import services

    plan = services.import_plan(data=sample_bytes, file_name="knowledge_base.xlsx")
    result = services.import_apply(acting_user=None, plan=plan)
    services.entries_index(entry_ids=result.written_ids)
    return result


HEADER_PT = ["ID", "Código de Erro", "Job / Job Stream", "Sintoma", "Causa", "Solução", "Categoria", "Criticidade",
             "Responsável", "Atualizado em"]


def build_workbook(
    rows: list[list[Any]],
    *,
    header: list[str] | None = None,
    title: str | None = None,
    header_row: int = 1,
    extra_sheet_first: bool = False,
    sheet_name: str = "KB",
) -> bytes:
    """An .xlsx made the way people make them: optional title in merged cells, optional notes sheet."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = sheet_name
    if extra_sheet_first:
        notes = workbook.create_sheet("Leia-me", 0)
        notes["A1"] = "Instruções: preencha uma linha por problema. Não altere o cabeçalho."
        notes["A2"] = "ID Solução Sintoma"  # words that look like headers, but not a header row
    header = header or HEADER_PT
    if title:
        sheet.cell(row=1, column=1, value=title)
        sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(header))
    for column, name in enumerate(header, start=1):
        sheet.cell(row=header_row, column=column, value=name)
    for offset, values in enumerate(rows, start=1):
        for column, value in enumerate(values, start=1):
            sheet.cell(row=header_row + offset, column=column, value=value)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def make_workbook() -> Callable[..., bytes]:
    return build_workbook
