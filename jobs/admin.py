from __future__ import annotations

from django.contrib import admin

from jobs.models import JobInstance, JobStream, StatusChange, Workstation


class ReadOnlyAdmin(admin.ModelAdmin):
    """The snapshot mirrors HWA: it is changed by the poller and the job action services only."""

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(JobInstance)
class JobInstanceAdmin(ReadOnlyAdmin):
    list_display = ("name", "folder", "stream_name", "workstation", "status", "common_status", "return_code", "critical", "late", "ended_at")
    list_filter = ("status", "critical", "late", "folder", "workstation")
    search_fields = ("name", "stream_name", "hwa_id")


@admin.register(JobStream)
class JobStreamAdmin(ReadOnlyAdmin):
    list_display = ("name", "folder", "workstation", "status", "common_status", "late", "job_count", "sched_time")
    list_filter = ("status", "late", "folder")
    search_fields = ("name",)


@admin.register(Workstation)
class WorkstationAdmin(ReadOnlyAdmin):
    list_display = ("name", "type", "os", "linked", "running", "limit", "fence")


@admin.register(StatusChange)
class StatusChangeAdmin(ReadOnlyAdmin):
    list_display = ("observed_at", "folder", "stream_name", "job_name", "from_status", "to_status", "return_code")
    list_filter = ("to_status",)
    search_fields = ("job_name", "stream_name")
