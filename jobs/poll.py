"""The plan poll: read the plan through the HWA client, upsert the snapshot, record status changes
and publish a compact diff event after commit.

`plan_poll()` is called by Celery beat in production (`jobs.tasks.poll_plan`) and by the in-process
poller in the embedded default (`jobs.embedded.start_poller`). When HWA is unreachable the snapshot
is kept, marked stale with its age, and a `jobs.hwa_status` event says so; the next successful
poll clears it. `job_refresh()` re-reads one job after an action.

Speed (50,000 jobs, bench/poll.py): job pages are decoded without validation and each item hashed;
the process remembers what its last committed poll wrote (`_PollMemory`), so only new or changed
items are validated and compared, and changed rows are written with COPY + INSERT ... ON CONFLICT.
A process without a usable memory (first poll, or someone else wrote the snapshot since) compares
every job with the database instead: same results, slower. The very first load into an empty
snapshot (PostgreSQL) COPYs the rows into the table while the pages are still arriving (`_first_load`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Count, Model
from django.utils import timezone
from pydantic_core import to_json

from audit.models import AuditAction, AuditOutcome
from audit.services import audit_record
from jobs.events import DIFF_EVENT, HWA_STATUS_EVENT, MAX_CHANGES_PER_EVENT, publish_on_commit
from jobs.models import JobInstance, JobStream, PlanState, StatusChange, Workstation
from jobs.tws.client import HwaClient, get_client
from jobs.tws.errors import HwaError
from jobs.tws.folders import MAX_PATH_LENGTH, folder_canonical
from jobs.tws.models import JobInPlan, JobStreamInPlan, WorkstationInPlan

logger = logging.getLogger(__name__)

POLLER_LABEL = "resync-poller"
JOB_FIELDS = (
    "name", "stream_name", "stream_hwa_id", "folder", "workstation", "status", "substatus", "common_status", "canceled",
    "priority", "critical", "late", "requires_confirmation", "sched_time", "deadline", "run_id", "run_count",
    "return_code", "started_at", "ended_at", "dependency_count", "unresolved_dependencies", "in_plan",
)


@dataclass(frozen=True)
class PollResult:
    ok: bool
    jobs: int = 0
    created: int = 0
    changed: int = 0
    removed: int = 0
    status_changes: int = 0
    seconds: float = 0.0
    stale: bool = False
    error: str = ""


def _job_values(job: JobInPlan) -> dict[str, object]:
    run = job.last_run
    time_info = run.time_info if run else None
    stats = job.dependencies_stats
    return {
        "name": job.name[:64],
        "stream_name": (job.job_stream_name or "")[:64],
        "stream_hwa_id": (job.job_stream_id or "")[:64],
        "folder": folder_canonical(job.folder)[:MAX_PATH_LENGTH],
        "workstation": (job.workstation or "")[:64],
        "status": job.status[:16],
        "substatus": job.substatus[:48],
        "common_status": (job.last_run_common_status or "")[:24],
        "canceled": job.canceled,
        "priority": job.priority,
        "critical": job.critical,
        "late": job.late,
        "requires_confirmation": bool(job.job_options and job.job_options.requires_confirmation),
        "sched_time": job.sched_time,
        "deadline": job.time_restrictions.deadline_time if job.time_restrictions else None,
        "run_id": (run.id if run else "")[:64],
        "run_count": len(job.jobruns),
        "return_code": run.return_code if run else None,
        "started_at": time_info.actual_start_time if time_info else None,
        "ended_at": time_info.actual_end_time if time_info else None,
        "dependency_count": stats.number_of_dependencies if stats else 0,
        "unresolved_dependencies": stats.number_of_unresolved_dependencies if stats else 0,
        "in_plan": True,
    }


def _fingerprint(values: tuple[object, ...]) -> str:
    # repr of a tuple runs in C: about twice as fast as joining str() of each field.
    return hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


# A job as the poll compares and writes it: (hwa_id, raw item key or None, fingerprint, values in
# JOB_FIELDS order). Plain tuples: a 50,000-job first load kept as validated models took twice the memory.
Prepared = tuple[str, int | None, str, tuple[object, ...]]
_STATUS = JOB_FIELDS.index("status")


def _prepare(job: JobInPlan, key: int | None) -> Prepared:
    values = tuple(_job_values(job).values())
    return job.id, key, _fingerprint(values), values


def _change_event(values: dict[str, object], hwa_id: str, previous: str) -> dict[str, object]:
    return {
        "id": hwa_id, "name": values["name"], "stream": values["stream_name"], "folder": values["folder"],
        "workstation": values["workstation"],
        "status": values["status"], "previous_status": previous, "substatus": values["substatus"],
        "common_status": values["common_status"], "return_code": values["return_code"],
        "critical": values["critical"], "late": values["late"],
    }


def _next_seq(state: PlanState) -> int:
    state.event_seq += 1
    return state.event_seq


def _locked_state() -> PlanState:
    PlanState.objects.get_or_create(pk=1)
    return PlanState.objects.select_for_update().get(pk=1)


# What the poll knows of one job row: (raw item key, fingerprint, status, primary key, in_plan).
# The item key is a hash of the job's raw JSON item as HWA last sent it (None when unknown). The
# primary key is None for rows a first load copied in without reading them back: only a status
# change needs it, and the upsert that records one returns it.
Known = tuple[int | None, str, str, int | None, bool]
Token = tuple[int, datetime | None]


@dataclass(frozen=True)
class _PollMemory:
    """This process's copy of what its last committed poll wrote, so the next poll can skip decoding,
    validating and comparing the ~99% of jobs that did not change. It is only trusted while
    PlanState still shows the (event_seq, last_success_at) that poll committed: any other writer of
    the snapshot (another process's poll or job_refresh, an outage mark) moves one of them."""

    token: Token
    jobs: dict[str, Known]
    streams: dict[str, tuple[object, ...]] | None  # None: read from the database when needed


_memory: _PollMemory | None = None
_memory_lock = threading.Lock()


def _memory_get() -> _PollMemory | None:
    with _memory_lock:
        return _memory


def _memory_set(memory: _PollMemory | None, *, replacing: _PollMemory | bool | None = True) -> None:
    """Installs `memory`; with `replacing`, only if the current one is still that object."""
    global _memory
    with _memory_lock:
        if replacing is True or _memory is replacing:
            _memory = memory


def _state_token() -> Token | None:
    return PlanState.objects.filter(pk=1).values_list("event_seq", "last_success_at").first()


def _item_key(item: object) -> int:
    """A stable 64-bit key of the job's raw item: pydantic-core serializes it in Rust (about 4x faster
    than repr) and any change in what HWA sent changes it. Stored on the row (`item_key`), so a new
    process's first poll skips the unchanged jobs as a warm one does."""
    return int.from_bytes(hashlib.blake2b(to_json(item), digest_size=8).digest(), "big", signed=True)


def _read_known(hwa_ids: list[str] | None = None) -> dict[str, Known]:
    # A raw cursor: the ORM's per-row overhead is most of the cost of reading 50,000 rows.
    sql = f"SELECT hwa_id, item_key, fingerprint, status, id, in_plan FROM {JobInstance._meta.db_table}"  # noqa: S608 (table name)
    with connection.cursor() as cursor:
        if hwa_ids is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql + " WHERE hwa_id = ANY(%s)", [hwa_ids])
        return {row[0]: row[1:] for row in cursor.fetchall()}


@dataclass
class _Fetched:
    """Phase one of a poll (before any lock is taken): the jobs to look at, and those skipped as
    identical to what the poll in `memory` saw."""

    pending: list[Prepared]
    unchanged: dict[str, Known]
    memory: _PollMemory | None
    token: Token | None


def _fetch_jobs(client: HwaClient) -> _Fetched:
    token = _state_token()
    memory = _memory_get()
    if memory is not None and (memory.token != token or not memory.jobs):
        memory = None
    if memory is None:
        # A new process (or one whose memory went stale): what the database holds serves the same
        # purpose. The token is read before the rows, so a poll committing in between shows up as a
        # race under the lock and the rest is compared with the database again.
        jobs = _read_known()
        memory = _PollMemory(token=token, jobs=jobs, streams=None) if jobs and token is not None else None
    known = memory.jobs if memory is not None else {}
    pending: list[Prepared] = []
    unchanged: dict[str, Known] = {}
    for page in client.job_pages_raw():
        todo: list[object] = []
        keys: list[int] = []
        for item in page:
            key = _item_key(item)
            hwa_id = item.get("id") if isinstance(item, dict) else None
            entry = known.get(hwa_id) if isinstance(hwa_id, str) else None
            if entry is not None and entry[0] == key and entry[4]:
                unchanged[hwa_id] = entry  # type: ignore[index]
                continue
            todo.append(item)
            keys.append(key)
        if todo:
            # Validated page by page and kept only as tuples, so at most one page of models is alive
            # (and the work is done while HWA builds the next page).
            pending.extend(_prepare(job, key) for job, key in zip(client.jobs_from_items(todo), keys, strict=True))
    return _Fetched(pending=pending, unchanged=unchanged, memory=memory, token=token)


_JOB_COLUMNS = ("hwa_id", "item_key", "fingerprint", "status_changed_at", "updated_at", *JOB_FIELDS)


def _upsert_jobs(rows: list[tuple[object, ...]]) -> dict[str, int]:
    """Writes job rows (values in _JOB_COLUMNS order) and returns each row's primary key by hwa_id.

    status_changed_at only moves when the status did: rows whose status is the same keep theirs (NULL here)."""
    table = JobInstance._meta.db_table
    cols = ", ".join(_JOB_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _JOB_COLUMNS if c not in ("hwa_id", "status_changed_at"))
    on_conflict = (f"ON CONFLICT (hwa_id) DO UPDATE SET {updates}, "
                   f"status_changed_at = COALESCE(EXCLUDED.status_changed_at, {table}.status_changed_at) RETURNING hwa_id, id")
    if connection.vendor == "postgresql":
        return _upsert_jobs_copy(rows, table, cols, on_conflict)
    # SQLite (the embedded default): the same upsert as multi-row VALUES.
    return dict(_insert_batched(JobInstance, _JOB_COLUMNS, rows, on_conflict))


def _upsert_jobs_copy(rows: list[tuple[object, ...]], table: str, cols: str, on_conflict: str) -> dict[str, int]:
    """PostgreSQL: COPY into a temporary table and one INSERT ... ON CONFLICT. bulk_create spent seconds
    of Python preparing a 50,000-row initial load value by value; COPY hands psycopg the tuples as they are."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.resync_poll_jobs")
        cursor.execute(f"CREATE TEMP TABLE resync_poll_jobs ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA")  # noqa: S608
        with cursor.copy(f"COPY resync_poll_jobs ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM resync_poll_jobs {on_conflict}")  # noqa: S608
        pks = dict(cursor.fetchall())
        cursor.execute("DROP TABLE pg_temp.resync_poll_jobs")
    return pks


def _insert_batched(model: type[Model], columns: tuple[str, ...], rows: list[tuple[object, ...]], tail: str) -> list[tuple[object, ...]]:
    """Multi-row INSERT ... VALUES `tail` in batches under SQLite's limit on bound parameters; returns
    what `tail` RETURNs. psycopg adapts the values itself; on SQLite they go through Django's conversions."""
    table = model._meta.db_table
    fields = [model._meta.get_field(c) for c in columns] if connection.vendor != "postgresql" else None
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    batch = max(1, 30_000 // len(columns))
    returned: list[tuple[object, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            if fields is None:
                params = [v for row in chunk for v in row]
            else:
                params = [f.get_db_prep_save(v, connection) for row in chunk for f, v in zip(fields, row, strict=True)]
            cursor.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row_sql] * len(chunk))} {tail}", params)  # noqa: S608 (table name)
            if cursor.description:
                returned.extend(cursor.fetchall())
    return returned


def _apply_jobs(
    jobs: list[Prepared], *, existing: dict[str, Known], now: datetime, initial_load: bool,
) -> tuple[int, int, int, list[dict[str, object]], dict[str, Known]]:
    """Upserts jobs whose fingerprint changed; returns (created, changed, status changes, events, what is now known of them)."""
    to_write: list[tuple[object, ...]] = []
    written: list[tuple[str, int | None, str, str]] = []
    changes: list[StatusChange] = []
    events: list[dict[str, object]] = []
    seen: dict[str, Known] = {}
    created = changed = 0
    for hwa_id, key, fingerprint, row in jobs:
        known = existing.get(hwa_id)
        if known is not None and known[1] == fingerprint and known[4]:
            seen[hwa_id] = (key, fingerprint, known[2], known[3], True)
            continue
        status = str(row[_STATUS])
        previous_status = known[2] if known is not None else ""
        status_moved = previous_status != status
        if known is None:
            created += 1
        else:
            changed += 1  # the upsert matches on hwa_id, so the row keeps its primary key
        to_write.append((hwa_id, key, fingerprint, now if status_moved else None, now, *row))
        written.append((hwa_id, key, fingerprint, status))
        if initial_load:
            continue  # the first load is not a list of changes
        values = dict(zip(JOB_FIELDS, row, strict=True))
        if status_moved:
            changes.append(StatusChange(
                job_id=known[3] if known is not None else None, job_hwa_id=hwa_id, job_name=values["name"],
                stream_name=values["stream_name"], folder=values["folder"], workstation=values["workstation"], from_status=previous_status,
                to_status=status, common_status=str(values["common_status"]),
                return_code=values["return_code"], observed_at=now,  # type: ignore[arg-type]
            ))
        events.append(_change_event(values, hwa_id, previous_status))
    pks = _upsert_jobs(to_write) if to_write else {}
    if changes:
        for change in changes:
            if change.job_id is None:
                change.job_id = pks.get(change.job_hwa_id)
        StatusChange.objects.bulk_create(changes, batch_size=2000)
    for hwa_id, key, fingerprint, status in written:
        seen[hwa_id] = (key, fingerprint, status, pks.get(hwa_id), True)
    return created, changed, len(changes), events, seen


def _mark_removed(previous: dict[str, Known], present: Iterable[str] | set[str]) -> list[str]:
    """Jobs that were in the plan and are no longer listed are kept, marked out of the plan."""
    present = present if isinstance(present, set) else set(present)
    removed_ids = [hwa_id for hwa_id, row in previous.items() if row[4] and hwa_id not in present]
    for start in range(0, len(removed_ids), 2000):
        JobInstance.objects.filter(hwa_id__in=removed_ids[start : start + 2000]).update(in_plan=False)
    return removed_ids


def _apply_workstations(items: list[WorkstationInPlan]) -> None:
    rows = [
        Workstation(hwa_id=w.id, name=w.name[:64], folder=folder_canonical(w.folder)[:MAX_PATH_LENGTH], type=(w.type or "")[:32], os=(w.os or "")[:16], linked=w.linked,
                    running=w.running, active_states=w.active_states, limit=w.limit, fence=w.fence, in_plan=True)
        for w in items
    ]
    Workstation.objects.bulk_create(rows, update_conflicts=True, unique_fields=["hwa_id"],
                                    update_fields=["name", "folder", "type", "os", "linked", "running", "active_states", "limit", "fence", "in_plan", "updated_at"])
    Workstation.objects.exclude(hwa_id__in=[w.id for w in items]).update(in_plan=False)


STREAM_FIELDS = ("name", "folder", "workstation", "status", "common_status", "sched_time", "late", "job_count", "in_plan")


def _apply_streams(items: list[JobStreamInPlan], *, known: dict[str, tuple[object, ...]] | None) -> dict[str, tuple[object, ...]]:
    """Writes the streams that changed; returns what is now known of the streams in the plan.
    `known` is the poll memory's copy (None: read it from the database)."""
    if known is None:
        known = {row[0]: row[1:] for row in JobStream.objects.values_list("hwa_id", *STREAM_FIELDS)}
    current: dict[str, tuple[object, ...]] = {}
    for s in items:
        current[s.id] = (s.name[:64], folder_canonical(s.folder)[:MAX_PATH_LENGTH], (s.workstation or "")[:64], s.status[:16], (s.common_status or "")[:24], s.sched_time,
                         bool(s.js_status_flags and s.js_status_flags.late_job_stream),
                         s.job_stream_stats.number_of_job if s.job_stream_stats else 0, True)
    # Only streams that changed are written: a 5,000-stream plan mostly stands still between polls.
    now = timezone.now()
    rows = [(h, *values, now) for h, values in current.items() if known.get(h) != values]
    if rows:
        _upsert_streams(rows)
    gone = [h for h, values in known.items() if values[-1] and h not in current]
    if gone:
        JobStream.objects.filter(hwa_id__in=gone).update(in_plan=False)
    return current


def _upsert_streams(rows: list[tuple[object, ...]]) -> None:
    """Writes (hwa_id, *STREAM_FIELDS, updated_at) rows as multi-row INSERT ... ON CONFLICT: for a first
    load's 5,000 streams, bulk_create spent more on building model instances than the database on writing."""
    columns = ("hwa_id", *STREAM_FIELDS, "updated_at")
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
    _insert_batched(JobStream, columns, rows, f"ON CONFLICT (hwa_id) DO UPDATE SET {updates}")


def _publish_diff(state: PlanState, now: datetime, events: list[dict[str, object]], removed: list[str], *, force: bool = False,
                  counts: dict[str, int] | None = None) -> None:
    if not events and not removed and not force:
        return
    if counts is None:
        counts = dict(JobInstance.objects.filter(in_plan=True).values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    truncated = len(events) > MAX_CHANGES_PER_EVENT
    publish_on_commit({
        "type": DIFF_EVENT, "seq": _next_seq(state), "polled_at": now.isoformat(),
        "changes": [] if truncated else events, "removed": [] if truncated else removed,
        "truncated": truncated, "counts": counts,
    })


def plan_poll(*, client: HwaClient | None = None) -> PollResult:
    client = client or get_client()
    started = time.perf_counter()
    if connection.vendor == "postgresql" and not JobInstance.objects.exists():
        try:
            loaded = _first_load(client, started=started)
        except HwaError as exc:
            return _mark_stale(exc, started=started)
        if loaded is not None:
            return loaded
    try:
        # Workstations and streams are read alongside the jobs (the waits for HWA overlap); the
        # worker touches no database connection.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hwa-poll") as pool:
            others = pool.submit(lambda: (client.workstations(), client.job_streams()))
            fetched = _fetch_jobs(client)
            workstations, streams = others.result()
    except HwaError as exc:
        return _mark_stale(exc, started=started)
    now = timezone.now()
    with transaction.atomic():
        # Locking the state row serializes concurrent polls (beat overlap, an action's refresh).
        state = _locked_state()
        memory = fetched.memory
        # Someone else wrote the snapshot since the jobs were fetched: the skipped jobs were compared
        # with a memory that no longer matches, so compare the rest with the database and forget it.
        raced = memory is not None and memory.token != (state.event_seq, state.last_success_at)
        if memory is not None and not raced:
            existing = memory.jobs
            new_ids = [hwa_id for hwa_id, *_ in fetched.pending if hwa_id not in existing]
            if new_ids:
                existing = {**existing, **_read_known(new_ids)}  # e.g. a job back in the plan
        else:
            existing = _read_known()
        _apply_workstations(workstations)
        known_streams = _apply_streams(streams, known=memory.streams if memory is not None and not raced else None)
        created, changed, status_changes, events, seen = _apply_jobs(fetched.pending, existing=existing, now=now, initial_load=not existing)
        present = fetched.unchanged.keys() | seen.keys()
        removed_ids = _mark_removed(existing, present)
        _publish_diff(state, now, events, removed_ids, force=created > 0 and not events)
        _record_success(state, now=now, job_count=len(present),
                        jobs=None if raced else {**fetched.unchanged, **seen}, streams=known_streams)
    return PollResult(ok=True, jobs=len(present), created=created, changed=changed, removed=len(removed_ids),
                      status_changes=status_changes, seconds=time.perf_counter() - started)


def _record_success(state: PlanState, *, now: datetime, job_count: int, jobs: dict[str, Known] | None,
                    streams: dict[str, tuple[object, ...]]) -> None:
    """The end of a successful poll, under its lock: the state row, the recovery from an outage, and
    the process's memory of what the poll wrote (`jobs` None: forget it, the poll raced another writer)."""
    was_stale = state.stale
    state.last_attempt_at = now
    state.last_success_at = now
    state.job_count = job_count
    if was_stale:
        audit_record(action=AuditAction.HWA_STATUS, actor_label=POLLER_LABEL, target_type="hwa", target_id="plan",
                     target_label="HWA plan", details={"state": "recovered", "stale_since": state.stale_since.isoformat() if state.stale_since else None})
        publish_on_commit({"type": HWA_STATUS_EVENT, "seq": _next_seq(state), "stale": False, "stale_since": None, "age_seconds": 0,
                           "last_success_at": now.isoformat(), "code": "", "message": ""})
    state.stale = False
    state.stale_since = None
    state.error_code = ""
    state.error_message = ""
    state.save()
    if jobs is None:
        transaction.on_commit(lambda: _memory_set(None))
    else:
        remembered = _PollMemory(token=(state.event_seq, now), jobs=jobs, streams=streams)
        transaction.on_commit(lambda: _memory_set(remembered))


def _first_load(client: HwaClient, *, started: float) -> PollResult | None:
    """PostgreSQL, an empty snapshot (a new installation): the job rows are COPYed straight into the
    table while the pages are still arriving, so the database indexes one page while the next is
    decoded, with no staging table, conflict check or ids to read back. Unlike a normal poll this
    holds the poll's lock during the fetch, which is harmless while there is no snapshot to refresh.
    Returns None, having written nothing, if the table is not empty after all."""
    table = JobInstance._meta.db_table
    cols = ", ".join(_JOB_COLUMNS)
    now = timezone.now()
    with transaction.atomic():
        state = _locked_state()
        with connection.cursor() as cursor:
            # Every writer of job rows (polls, a job's refresh) holds the state row's lock, so no row
            # can appear between this check and the COPY (where a duplicate hwa_id would fail it).
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")  # noqa: S608 (table name)
            if cursor.fetchone()[0]:
                return None
            seen: dict[str, Known] = {}
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hwa-poll") as pool:
                others = pool.submit(lambda: (client.workstations(), client.job_streams()))
                with cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for page in client.job_pages_raw():
                        keys = [_item_key(item) for item in page]
                        for job, key in zip(client.jobs_from_items(page), keys, strict=True):
                            hwa_id, key, fingerprint, row = _prepare(job, key)
                            if hwa_id in seen:
                                continue  # listed twice (the plan moved between pages): the first one stands
                            copy.write_row((hwa_id, key, fingerprint, now, now, *row))
                            seen[hwa_id] = (key, fingerprint, str(row[_STATUS]), None, True)
                workstations, streams = others.result()
        _apply_workstations(workstations)
        known_streams = _apply_streams(streams, known=None)
        # The first load is not a list of changes: no status history, one diff with the counts.
        _publish_diff(state, now, [], [], force=bool(seen), counts=dict(Counter(known[2] for known in seen.values())))
        _record_success(state, now=now, job_count=len(seen), jobs=seen, streams=known_streams)
    return PollResult(ok=True, jobs=len(seen), created=len(seen), seconds=time.perf_counter() - started)


def _mark_stale(exc: HwaError, *, started: float) -> PollResult:
    now = timezone.now()
    logger.warning("plan poll failed: %s", exc.message)
    with transaction.atomic():
        state = _locked_state()
        if not state.stale:
            state.stale = True
            state.stale_since = now
            audit_record(action=AuditAction.HWA_STATUS, actor_label=POLLER_LABEL, target_type="hwa", target_id="plan",
                         target_label="HWA plan", outcome=AuditOutcome.FAILURE,
                         details={"state": "unreachable", "code": exc.code, "message": exc.message[:300], "hwa_message_ids": exc.message_ids})
        state.last_attempt_at = now
        state.error_code = exc.code[:32]
        state.error_message = exc.message[:500]
        age = (now - state.last_success_at).total_seconds() if state.last_success_at else None
        publish_on_commit({"type": HWA_STATUS_EVENT, "seq": _next_seq(state), "stale": True,
                           "stale_since": state.stale_since.isoformat() if state.stale_since else None,
                           "age_seconds": round(age) if age is not None else None,
                           "last_success_at": state.last_success_at.isoformat() if state.last_success_at else None,
                           "code": exc.code, "message": exc.message[:300]})
        state.save()
    return PollResult(ok=False, stale=True, error=exc.message, seconds=time.perf_counter() - started)


def job_refresh(*, hwa_id: str, client: HwaClient | None = None) -> JobInstance | None:
    """Re-reads one job from HWA and folds it into the snapshot (status change + event if it moved)."""
    client = client or get_client()
    job = client.job(hwa_id)
    now = timezone.now()
    with transaction.atomic():
        state = _locked_state()
        before: Token = (state.event_seq, state.last_success_at)
        existing = _read_known([job.id])
        _, _, _, events, _ = _apply_jobs([_prepare(job, None)], existing=existing, now=now, initial_load=False)
        _publish_diff(state, now, events, [])
        state.save(update_fields=["event_seq"])
        if events:
            # Keep the poll memory usable: forget this one job (the next poll compares it with the
            # database) and move the memory's token along with the event sequence.
            after: Token = (state.event_seq, state.last_success_at)
            transaction.on_commit(lambda: _memory_forget(job.id, before=before, after=after))
    return JobInstance.objects.filter(hwa_id=hwa_id).first()


def _memory_forget(hwa_id: str, *, before: Token, after: Token) -> None:
    memory = _memory_get()
    if memory is not None and memory.token == before:
        jobs = {h: k for h, k in memory.jobs.items() if h != hwa_id}
        _memory_set(_PollMemory(token=after, jobs=jobs, streams=memory.streams), replacing=memory)
