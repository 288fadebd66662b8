"""Helpers of the fault tests on background runs (imports and exports surviving lost workers and messages)."""

from __future__ import annotations

import csv
import io

from audit.models import AuditEvent
from tests.topology.stack import Stack


def kb_workbook(rows: int) -> bytes:
    """A CSV knowledge base of `rows` distinct, valid entries."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["ID", "Código de Erro", "Job", "Sintoma", "Causa", "Solução"])
    for n in range(rows):
        writer.writerow([f"KB-{n:05d}", f"AWSJ{n:05d}E", f"JOB_{n}", f"O job JOB_{n} terminou em ABEND {n}",
                         "permissão negada no stdlist", f"Corrigir a permissão e fazer rerun do JOB_{n}."])
    return buffer.getvalue().encode()


def index_points(stack: Stack, collection: str) -> int:
    """Points in the stack's local Qdrant collection (the workers are stopped: local mode admits one client); drops it."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(stack.data_dir / "qdrant"))
    try:
        count = client.count(collection, exact=True).count
        client.delete_collection(collection)
        return count
    finally:
        client.close()


def requeued(action: str, target_id: str, detail: str) -> list[str]:
    """One detail (`worker`, `reason`) of each recovery event of one run."""
    return list(AuditEvent.objects.filter(action=action, target_id=target_id, details__step="requeued")
                .values_list(f"details__{detail}", flat=True))
