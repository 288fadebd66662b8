from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditAnchor, AuditArchive, AuditEvent, AuditReport


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail can be looked at, never edited, from the admin."""

    list_display = ("sequence", "timestamp", "actor_label", "action", "target_type", "target_label", "outcome")
    list_filter = ("action", "outcome", "target_type")
    search_fields = ("actor_label", "target_id", "target_label", "request_id")
    date_hierarchy = "timestamp"
    list_select_related = ("actor",)
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Records of compliance work: made by services (which audit themselves), only looked at here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditArchive)
class AuditArchiveAdmin(_ReadOnlyAdmin):
    list_display = ("first_sequence", "last_sequence", "row_count", "cutoff", "file_name", "created_at")


@admin.register(AuditAnchor)
class AuditAnchorAdmin(_ReadOnlyAdmin):
    list_display = ("anchored_at", "sequence", "hash", "file_name")


@admin.register(AuditReport)
class AuditReportAdmin(_ReadOnlyAdmin):
    list_display = ("period_start", "period_end", "language", "status", "requested_by", "scheduled", "created_at")
    list_filter = ("status", "scheduled", "language")
    list_select_related = ("requested_by",)
    exclude = ("figures",)
