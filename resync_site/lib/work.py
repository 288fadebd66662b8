"""Background runs that survive a killed worker: claims, heartbeats and the recovery sweep.

A run (a knowledge import, an audit export) is a database row that goes queued -> running ->
done/failed. The pieces, and why each is there:

- **Claim.** A worker takes a queued run with a conditional UPDATE after locking the row, and
  stamps it with a fresh `claim_id`, its node name (`claimed_by`) and `heartbeat_at`. Every later
  write of that worker is conditioned on its `claim_id` (a fencing token), so a worker that was
  wrongly presumed dead (a long pause) cannot write over the attempt that replaced it: its next
  heartbeat raises `ClaimLost` and it stops.
- **Heartbeat.** The run's progress callbacks bump `heartbeat_at`, at most every
  `WORK_HEARTBEAT_SECONDS`. While a run holds its row lock inside a long transaction (the import's
  all-or-nothing write), the lock is the sign of life instead: the sweep skips locked rows.
- **Sweep** (`runs_recover`, from beat every `WORK_SWEEP_SECONDS`, and once when a worker starts,
  for the queues it consumes): a running run whose heartbeat is older than `WORK_STALE_SECONDS`
  (or that was claimed by an earlier incarnation of the worker now starting, which is dead by
  definition) goes back to queued and is sent again; after `WORK_MAX_ATTEMPTS` claims it is marked
  failed instead. Each decision is audited by the app's callback.
- **Delivery.** Celery runs with `acks_late` and `reject_on_worker_lost`: a pool child that dies
  gets its message redelivered at once, and a whole worker killed leaves its message in Redis until
  the visibility timeout (1 h). Either redelivery finds the run no longer queued and is skipped, so
  the sweep is the one path that restarts work, and the claim makes every duplicate harmless.
- **Lost messages.** A run can also be queued while its message is gone: the broker was down when
  the after-commit send ran (`send_on_commit` logs that loudly instead of failing the request), or
  Redis restarted and dropped its queues (it keeps nothing on disk). The same sweep sends again a
  queued run that no worker claimed for `WORK_QUEUED_STALE_SECONDS` (`runs_resend`; while queued,
  `heartbeat_at` is when its message was last sent), up to `WORK_MAX_RESENDS` times, then fails it
  with a message that says to check the workers. A message that was only late, not lost, is then
  delivered twice: the claim lets one delivery run it. The beat sweep expires after one interval,
  so a sweep that runs at all saw its queue drain in under `WORK_SWEEP_SECONDS`: a run still
  unclaimed minutes later is not just waiting its turn.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# When this process started: runs its worker node name claimed before then belong to a dead incarnation.
PROCESS_STARTED = timezone.now()


class ClaimLost(Exception):
    """This worker's claim on a run was handed to another attempt: stop without writing anything more."""


@dataclass
class Heartbeat:
    """The throttled heartbeat of one claimed run, written by its progress callbacks.

    `fence` is the run's queryset narrowed to this claim (`pk=…, status=running, claim_id=…`), so a
    beat that updates nothing means the claim is gone.
    """

    fence: QuerySet[Any]
    interval: float = field(default_factory=lambda: float(settings.WORK_HEARTBEAT_SECONDS))
    _last: float = field(default_factory=time.monotonic)

    def beat(self, *, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if not self.fence.update(heartbeat_at=timezone.now(), **fields):
            raise ClaimLost()


def new_claim() -> uuid.UUID:
    return uuid.uuid4()


def stale_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(seconds=settings.WORK_STALE_SECONDS)


def queued_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(seconds=settings.WORK_QUEUED_STALE_SECONDS)


@dataclass
class Recovery:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"requeued": self.requeued, "failed": self.failed}

    def merge(self, other: Recovery) -> Recovery:
        return Recovery(requeued=self.requeued + other.requeued, failed=self.failed + other.failed)


def runs_recover(
    running: QuerySet[Any],
    *,
    worker: str | None,
    requeue: Callable[[Any], None],
    give_up: Callable[[Any], None],
) -> Recovery:
    """Hands each abandoned run of `running` (the model's running rows) to `requeue` or `give_up`.

    Both callbacks run inside this function's transaction with the run's row locked, so they update
    the row, audit it and send the task in one step. Rows locked by someone else are skipped
    (`SKIP LOCKED`): a live worker inside its write transaction, or another sweep.
    """
    now = timezone.now()
    stale = Q(heartbeat_at__lt=stale_cutoff(now)) | Q(heartbeat_at__isnull=True)
    if worker:
        # A worker starting under a node name means every run that name claimed earlier is orphaned.
        stale |= Q(claimed_by=worker, heartbeat_at__lt=PROCESS_STARTED)
    result = Recovery()
    with transaction.atomic():
        for run in running.select_for_update(skip_locked=True).filter(stale).order_by("pk"):
            if run.attempts >= settings.WORK_MAX_ATTEMPTS:
                give_up(run)
                result.failed.append(str(run.pk))
            else:
                requeue(run)
                result.requeued.append(str(run.pk))
    if result.requeued or result.failed:
        logger.warning("recovered abandoned %s runs: %s", running.model._meta.label, result.as_dict())
    return result


def runs_resend(
    queued: QuerySet[Any],
    *,
    resend: Callable[[Any], None],
    give_up: Callable[[Any], None],
) -> Recovery:
    """Hands each queued run of `queued` that no worker claimed in time to `resend` or `give_up`.

    A queued run's `heartbeat_at` is when its message was last sent (its `created_at` when never
    stamped). After `WORK_QUEUED_STALE_SECONDS` without a claim the message is taken for lost and
    `resend` sends it again (and must stamp `heartbeat_at` and count `resends`); once
    `WORK_MAX_RESENDS` sends went unanswered, `give_up` fails the run instead. As in
    `runs_recover`, both run inside this function's transaction with the row locked; a worker
    claiming the run at that moment waits for the commit and then claims it (it is still queued).
    """
    cutoff = queued_cutoff()
    late = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    result = Recovery()
    with transaction.atomic():
        for run in queued.select_for_update(skip_locked=True).filter(late).order_by("pk"):
            if run.resends >= settings.WORK_MAX_RESENDS:
                give_up(run)
                result.failed.append(str(run.pk))
            else:
                resend(run)
                result.requeued.append(str(run.pk))
    if result.requeued or result.failed:
        logger.warning("%s runs queued with no worker claiming them (task message lost?): %s",
                       queued.model._meta.label, result.as_dict())
    return result


def send_on_commit(task: Any, *args: Any, what: str) -> None:
    """Sends a newly queued run's task once the transaction that queued it commits.

    After the commit, so the worker finds the row. A send that fails there (the broker is down) is
    logged as an error and goes no further: the run is committed as queued, the request that queued
    it succeeded, and the recovery sweep sends the task again (`runs_resend`). `what` names the run
    in the log. Eager tasks (the embedded default) run inline and raise as before.
    """
    from resync_site.celery import app

    if app.conf.task_always_eager:
        transaction.on_commit(lambda: task.delay(*args))
        return

    def send() -> None:
        try:
            task.delay(*args)
        except Exception:
            logger.exception(
                "COULD NOT SEND the task of %s (%s%r): the message broker did not take it. The run stays queued; "
                "the recovery sweep sends it again after %s s (WORK_QUEUED_STALE_SECONDS) if the broker is back.",
                what, task.name, args, settings.WORK_QUEUED_STALE_SECONDS,
            )

    transaction.on_commit(send)


def send_task(task: Any, *args: Any) -> None:
    """Sends a recovered run's task from inside the recovery transaction.

    Sent before the commit so a broker error rolls the recovery back and the next sweep tries again
    (a message sent after the commit could be lost, leaving the run queued forever). A worker that
    receives it first waits for the commit on the run's row lock (see the claims). Eager tasks (the
    embedded default) run inline, so they go after the commit instead.
    """
    from resync_site.celery import app

    if app.conf.task_always_eager:
        transaction.on_commit(lambda: task.delay(*args), robust=True)
    else:
        task.delay(*args)


# Why the sweep queued a run again (the `reason` of its `requeued` audit event).
REASON_WORKER_STOPPED = "worker_stopped"  # running, and its heartbeat went stale
REASON_NOT_CLAIMED = "not_claimed"  # queued, and no worker claimed it: its message was lost


def describe_run(run: Model) -> dict[str, Any]:
    """What the recovery audit event says about the run it found abandoned."""
    heartbeat = getattr(run, "heartbeat_at", None)
    return {
        "attempts": getattr(run, "attempts", 0),
        "resends": getattr(run, "resends", 0),
        "worker": getattr(run, "claimed_by", ""),
        "heartbeat_at": heartbeat.isoformat(timespec="seconds") if heartbeat else None,
    }


# --- running the sweeps ----------------------------------------------------------------------------

# The recovery tasks; each is routed to the queue of the work it recovers (settings.CELERY_TASK_ROUTES).
# Each takes an optional `worker` (the node name of a worker starting, see `recover_for_queues`). The
# chat's fails confirmed actions stuck executing, and never runs one again (chat.services.proposals_recover).
RECOVERY_TASKS = ("knowledge.tasks.import_runs_recover", "audit.tasks.exports_recover", "chat.tasks.proposals_recover")


def recover_for_queues(app: Any, queues: set[str], *, worker: str) -> None:
    """Runs, in this process, the recovery of the work that goes to `queues` (a worker starting)."""
    for name in RECOVERY_TASKS:
        route = app.amqp.router.route({}, name)
        queue = route.get("queue")
        if getattr(queue, "name", queue) not in queues:
            continue
        try:
            import_string(name)(worker=worker)
        except Exception:  # a failed sweep must not stop the worker from starting; beat runs it again
            logger.exception("recovery %s failed at worker start", name)


_embedded: threading.Thread | None = None
_embedded_stop = threading.Event()


def recover_all() -> None:
    """One pass of every recovery, in this process (the embedded default's sweep)."""
    for name in RECOVERY_TASKS:
        try:
            import_string(name)()
        except Exception:  # the thread must survive anything one sweep does
            logger.exception("recovery %s failed", name)
        finally:
            close_old_connections()


def start_embedded_recovery() -> str | None:
    """The embedded default has no beat: a thread of `manage.py serve` sweeps instead."""
    global _embedded
    if settings.REDIS_URL or (_embedded is not None and _embedded.is_alive()):
        return None
    interval = float(settings.WORK_SWEEP_SECONDS)
    _embedded_stop.clear()

    def sweep_forever() -> None:
        try:
            while not _embedded_stop.wait(interval):
                recover_all()
        finally:
            connections.close_all()  # this thread's own connections

    _embedded = threading.Thread(target=sweep_forever, name="work-recovery", daemon=True)
    _embedded.start()
    return f"recovery of interrupted imports, exports and actions (every {interval:g} s)"


def stop_embedded_recovery(timeout: float = 10.0) -> bool:
    """Stops the embedded sweep thread (tests; the server's thread ends with its process); True once it ended."""
    global _embedded
    thread = _embedded
    if thread is None:
        return True
    _embedded_stop.set()
    thread.join(timeout)
    if thread.is_alive():
        return False
    _embedded = None
    return True
