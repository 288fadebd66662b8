"""The plan snapshot: what HWA's current plan looked like at the last successful poll.

Rows mirror HWA objects by their plan id (`hwa_id`). Names are kept denormalized next to ids, so
the dashboard's and the chat's queries (by name, pattern, status, stream, workstation, folder, time)
need no joins. `folder` is HWA's folder path in one spelling, `/` or `/A/B/` (`jobs.tws.folders`); a
job is in its job stream's folder. Folder filters ignore case, so they use an index on UPPER(folder). `StatusChange` is the history the poller records each time a job's status moves.
`PlanState` is a single row saying when the snapshot was last refreshed and whether it is stale.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from jobs.tws.folders import MAX_PATH_LENGTH, ROOT


class Workstation(models.Model):
    hwa_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=64, db_index=True)
    folder = models.CharField(max_length=MAX_PATH_LENGTH, default=ROOT)
    type = models.CharField(max_length=32, blank=True)
    os = models.CharField(max_length=16, blank=True)
    linked = models.BooleanField(default=True)
    running = models.BooleanField(default=True)
    active_states = models.JSONField(default=list, blank=True)
    limit = models.IntegerField(null=True, blank=True)
    fence = models.IntegerField(null=True, blank=True)
    in_plan = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("workstation")
        verbose_name_plural = _("workstations")

    def __str__(self) -> str:
        return self.name


class JobStream(models.Model):
    hwa_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=64, db_index=True)
    folder = models.CharField(max_length=MAX_PATH_LENGTH, default=ROOT)
    workstation = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, db_index=True)
    common_status = models.CharField(max_length=24, blank=True)
    sched_time = models.DateTimeField(null=True, blank=True)
    late = models.BooleanField(default=False)
    job_count = models.IntegerField(default=0)
    in_plan = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sched_time", "name"]
        verbose_name = _("job stream")
        verbose_name_plural = _("job streams")
        indexes = [models.Index(Upper("folder"), name="jobs_stream_folder_idx")]

    def __str__(self) -> str:
        return f"{self.workstation}#{self.name}"


class JobInstance(models.Model):
    """A job in the current plan: its current state plus its last run."""

    hwa_id = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    stream_name = models.CharField(max_length=64)
    stream_hwa_id = models.CharField(max_length=64, blank=True)
    folder = models.CharField(max_length=MAX_PATH_LENGTH, default=ROOT)
    workstation = models.CharField(max_length=64)
    status = models.CharField(max_length=16)
    substatus = models.CharField(max_length=48, blank=True)
    common_status = models.CharField(max_length=24, blank=True)
    canceled = models.BooleanField(default=False)
    priority = models.IntegerField(null=True, blank=True)
    critical = models.BooleanField(default=False)
    late = models.BooleanField(default=False)
    requires_confirmation = models.BooleanField(default=False)
    sched_time = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    run_count = models.IntegerField(default=0)
    return_code = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)
    dependency_count = models.IntegerField(default=0)
    unresolved_dependencies = models.IntegerField(default=0)
    in_plan = models.BooleanField(default=True)
    # Hash of every field above as HWA reported them: the poller compares it to spot changes cheaply.
    fingerprint = models.CharField(max_length=32)
    # Key of the raw item HWA last listed for this row (NULL when written from elsewhere, e.g. a
    # single job's refresh): a poll skips decoding items whose key is unchanged.
    item_key = models.BigIntegerField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sched_time", "stream_name", "name"]
        verbose_name = _("job instance")
        verbose_name_plural = _("job instances")
        # Every poll writes thousands of these rows (50,000 at a plan's first load), so each index
        # is one the filters use: names are matched case-insensitively (UPPER), never by LIKE
        # prefix, and hwa_id is unique without Django's extra varchar_pattern_ops index.
        constraints = [models.UniqueConstraint(fields=["hwa_id"], name="jobs_job_hwa_id_key")]
        indexes = [
            models.Index(fields=["status", "ended_at"], name="jobs_status_ended_idx"),
            models.Index(Upper("name"), name="jobs_job_name_idx"),
            models.Index(Upper("stream_name"), name="jobs_job_stream_idx"),
            models.Index(Upper("workstation"), name="jobs_job_ws_idx"),
            models.Index(Upper("folder"), name="jobs_folder_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.workstation}#{self.stream_name}.{self.name}"


class StatusChange(models.Model):
    job = models.ForeignKey(JobInstance, null=True, on_delete=models.SET_NULL, related_name="status_changes")
    job_hwa_id = models.CharField(max_length=64, db_index=True)
    job_name = models.CharField(max_length=64)
    stream_name = models.CharField(max_length=64)
    folder = models.CharField(max_length=MAX_PATH_LENGTH, default=ROOT)
    workstation = models.CharField(max_length=64)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    common_status = models.CharField(max_length=24, blank=True)
    return_code = models.IntegerField(null=True, blank=True)
    observed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-observed_at", "-id"]
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")
        indexes = [
            models.Index(fields=["job_hwa_id", "observed_at"], name="jobs_change_job_idx"),
            models.Index(Upper("folder"), models.F("observed_at").desc(), name="jobs_change_folder_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.stream_name}.{self.job_name}: {self.from_status or '-'} -> {self.to_status}"


class PlanState(models.Model):
    """One row (pk=1): when the snapshot was refreshed, and whether HWA is currently unreachable."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    stale = models.BooleanField(default=False)
    stale_since = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    event_seq = models.BigIntegerField(default=0)
    job_count = models.IntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="jobs_plan_state_single_row")]

    def __str__(self) -> str:
        return "stale" if self.stale else f"fresh at {self.last_success_at}"
