"""Canonical serialization, hashing and verification of the audit chain.

Kept free of ORM writes so exports, archives and the benchmark verify with the same code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

GENESIS_HASH = "0" * 64

# The fields that make an event, in the order `chain_rows` yields them.
CHAIN_FIELDS = (
    "sequence",
    "timestamp",
    "actor_id",
    "actor_label",
    "ip_address",
    "request_id",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "details",
    "outcome",
    "prev_hash",
    "hash",
)
CONTENT_FIELDS = CHAIN_FIELDS[2:12]


def normalize_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON value exactly as the database will give it back (dates as text, tuples as lists)."""
    return json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder, ensure_ascii=False))


def timestamp_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def content_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of what the event says (who, what, on what, result)."""
    payload = {key: fields[key] for key in CONTENT_FIELDS}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def link_hash(*, sequence: int, timestamp: str, prev_hash: str, content: str) -> str:
    """The chain link: position, time, the previous link and the content hash.

    PostgreSQL computes the same value inside `audit_append()` (migration 0002), so the chain head
    is locked for one statement only; this function is what verification trusts.
    """
    return hashlib.sha256(f"{sequence}|{timestamp}|{prev_hash}|{content}".encode()).hexdigest()


def event_hash(fields: dict[str, Any]) -> str:
    return link_hash(
        sequence=fields["sequence"],
        timestamp=timestamp_text(fields["timestamp"]),
        prev_hash=fields["prev_hash"],
        content=content_hash(fields),
    )


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int
    first_sequence: int | None = None
    last_sequence: int | None = None
    last_hash: str = GENESIS_HASH
    broken_sequence: int | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"OK {self.count} events"
        return f"BROKEN at sequence {self.broken_sequence}: {self.reason}"


def verify_rows(
    rows: Iterable[tuple[Any, ...]], *, expected_prev_hash: str = GENESIS_HASH, expected_first: int | None = 1
) -> ChainReport:
    """Walks rows (tuples in CHAIN_FIELDS order, by ascending sequence) and reports the first break.

    `expected_first`/`expected_prev_hash` say where this stretch of the chain must start: the
    genesis for a whole chain, or an archive's last event for the online remainder.
    """
    prev_hash = expected_prev_hash
    expected_sequence = expected_first
    count = 0
    first: int | None = None
    last: int | None = None
    for row in rows:
        fields = dict(zip(CHAIN_FIELDS, row, strict=True))
        sequence = fields["sequence"]
        if first is None:
            first = sequence
        if expected_sequence is not None and sequence != expected_sequence:
            return ChainReport(False, count, first, last, prev_hash, expected_sequence, f"sequence {expected_sequence} is missing")
        if fields["prev_hash"] != prev_hash:
            return ChainReport(False, count, first, last, prev_hash, sequence, "prev_hash does not match the previous event's hash")
        if event_hash(fields) != fields["hash"]:
            return ChainReport(False, count, first, last, prev_hash, sequence, "the event's content does not match its hash")
        prev_hash = fields["hash"]
        last = sequence
        expected_sequence = sequence + 1
        count += 1
    return ChainReport(True, count, first, last, prev_hash)


def iter_chunks(queryset: Any, *, chunk_size: int = 10_000) -> Iterator[tuple[Any, ...]]:
    """Keyset pagination by sequence: constant memory on any database, no server-side cursor."""
    after = None
    while True:
        page = queryset.order_by("sequence")
        if after is not None:
            page = page.filter(sequence__gt=after)
        rows = list(page.values_list(*CHAIN_FIELDS)[:chunk_size])
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


# --- Files outside the database: exports and archives carry the chain fields as text ------------


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the same text for the same value, whatever the key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)


def row_as_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row (CHAIN_FIELDS order) as a JSON-ready dict; the timestamp as the exact text that is hashed."""
    record = dict(zip(CHAIN_FIELDS, row, strict=True))
    record["timestamp"] = timestamp_text(record["timestamp"])
    return record


def record_as_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """The inverse of `row_as_record`, ready for `verify_rows` or `event_hash`."""
    fields = dict(record)
    if isinstance(fields["timestamp"], str):
        fields["timestamp"] = datetime.fromisoformat(fields["timestamp"])
    return tuple(fields[name] for name in CHAIN_FIELDS)


def row_as_cells(row: tuple[Any, ...]) -> list[Any]:
    """A row as flat cells for CSV and spreadsheets: nulls become empty, details becomes canonical JSON."""
    record = row_as_record(row)
    record["details"] = canonical_json(record["details"])
    return ["" if record[name] is None else record[name] for name in CHAIN_FIELDS]


def cells_as_row(cells: Iterable[Any]) -> tuple[Any, ...]:
    """Reads back what `row_as_cells` wrote (from CSV text or spreadsheet values).

    Empty actor and IP cells are nulls: the database never stores an empty IP address or actor id.
    """
    record = dict(zip(CHAIN_FIELDS, ["" if cell is None else cell for cell in cells], strict=True))
    record["sequence"] = int(record["sequence"])
    record["actor_id"] = int(record["actor_id"]) if str(record["actor_id"]) != "" else None
    record["ip_address"] = record["ip_address"] or None
    record["details"] = json.loads(record["details"]) if record["details"] != "" else {}
    for name in ("actor_label", "request_id", "action", "target_type", "target_id", "target_label", "outcome",
                 "prev_hash", "hash"):
        record[name] = str(record[name])
    return record_as_row(record)


def file_sha256(path: Any, *, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def read_archive_rows(path: Any) -> Iterator[tuple[Any, ...]]:
    """Streams the rows of a gzip-compressed JSON-lines archive, in file order."""
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield record_as_row(json.loads(line))
