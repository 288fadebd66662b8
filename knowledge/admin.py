"""Knowledge admin: reviewers curate entries; admins import workbooks with a preview and a progress bar.

Every write goes through knowledge.services, so the admin is audited like every other door.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from import_export import resources
from import_export.admin import ExportMixin
from simple_history.admin import SimpleHistoryAdmin

from knowledge import review, selectors, services
from knowledge.models import (
    EntryStatus,
    Finding,
    FindingStatus,
    FindingType,
    ImportRun,
    ImportStatus,
    KnowledgeEntry,
    ReviewItem,
    ReviewStatus,
    Severity,
    UnansweredQuestion,
    VerifiedAnswer,
)
from resync_site.lib import spreadsheet
from resync_site.lib.errors import ApplicationError
from resync_site.roles import KNOWLEDGE_CURATORS, Role, has_role


class KnowledgeEntryResource(resources.ModelResource):
    """Export of the base (the import goes through knowledge.services, which copes with messy workbooks)."""

    class Meta:
        model = KnowledgeEntry
        fields = ("external_id", "title", "symptom", "error_codes", "job_patterns", "cause", "solution", "category",
                  "severity", "owner_team", "language", "source", "status", "source_updated_on", "revalidate_on",
                  "hit_count", "helpful_count", "unhelpful_count")
        export_order = fields


def _pk_or_404(model: type[Any], object_id: str) -> Any:
    """The admin URL's id as the model's primary key, or 404: a malformed id (`x` where a UUID or a
    number belongs) would otherwise reach the query and end in a 500 (Django's own views 404 too)."""
    try:
        return model._meta.pk.to_python(unquote(object_id))
    except (ValidationError, ValueError, TypeError) as exc:
        raise Http404("malformed id") from exc


class ImportUploadForm(forms.Form):
    file = forms.FileField(label=_("Workbook (.xlsx, .xlsm or .csv)"))


@admin.register(KnowledgeEntry)
class KnowledgeEntryAdmin(ExportMixin, SimpleHistoryAdmin):
    resource_classes = [KnowledgeEntryResource]
    # CSV, TSV and XLSX exports prefix formula-like text with ' so no exported cell runs in Excel.
    export_formats = spreadsheet.EXPORT_FORMATS
    # import-export wraps this template around the admin's own change list (adds "Export").
    import_export_change_list_template = "admin/knowledge/knowledgeentry/change_list.html"
    list_display = ("external_id", "title", "status", "language", "severity", "source", "category", "hit_count",
                    "updated_at")
    list_filter = ("status", "language", "source", "severity", "category")
    search_fields = ("external_id", "title", "symptom", "keys__value")
    list_select_related = ()
    readonly_fields = ("source", "hit_count", "helpful_count", "unhelpful_count", "created_at", "updated_at",
                       "created_by")
    fields = ("external_id", "title", "symptom", "error_codes", "job_patterns", "workstations", "cause", "solution",
              "category", "severity", "owner_team", "language", "status", "source_updated_on", "revalidate_on",
              *readonly_fields)
    actions = ("approve_selected", "reject_selected", "retire_selected")
    show_full_result_count = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Entries are retired, never deleted: history, audit and citations in old chats keep pointing at them.
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The ID is what imports match on: changing it would turn an update into a new entry.
        return (*self.readonly_fields, "external_id") if obj is not None else self.readonly_fields

    def history_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None) -> Any:
        # simple-history hands the raw id to the query: a non-numeric one raises ValueError (a 500).
        _pk_or_404(self.model, object_id)
        return super().history_view(request, object_id, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_import": has_role(request.user, [Role.ADMIN])}
        return super().changelist_view(request, extra_context)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        results, _may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return results.distinct(), False

    def save_model(self, request: HttpRequest, obj: KnowledgeEntry, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        try:
            if change:
                status = data.pop("status", None)
                services.entry_update(acting_user=request.user, entry=obj, reason=_("edited in the admin"), **data)
                if status:  # audited as an approval / rejection / retirement, not a plain edit
                    services.entry_set_status(acting_user=request.user, entry=obj, status=status,
                                              reason=str(_("changed in the admin")))
            else:
                created = services.entry_create(
                    acting_user=request.user,
                    external_id=obj.external_id,
                    symptom=obj.symptom,
                    solution=obj.solution,
                    title=obj.title,
                    cause=obj.cause,
                    error_codes=obj.error_codes,
                    job_patterns=obj.job_patterns,
                    category=obj.category,
                    severity=obj.severity,
                    owner_team=obj.owner_team,
                    language=obj.language,
                    status=obj.status,
                    revalidate_on=obj.revalidate_on,
                    reason=str(_("created in the admin")),
                )
                obj.pk = created.pk
        except ApplicationError as exc:
            raise PermissionDenied(exc.message) from exc

    def _set_status(self, request: HttpRequest, queryset: QuerySet[KnowledgeEntry], status: str) -> None:
        for entry in queryset:
            services.entry_set_status(acting_user=request.user, entry=entry, status=status,
                                      reason=str(_("admin action")))
        self.message_user(request, _("%(n)d entries updated.") % {"n": queryset.count()}, messages.SUCCESS)

    @admin.action(description=_("Approve selected entries"), permissions=["change"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[KnowledgeEntry]) -> None:
        self._set_status(request, queryset, EntryStatus.APPROVED)

    @admin.action(description=_("Reject selected entries"), permissions=["change"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[KnowledgeEntry]) -> None:
        self._set_status(request, queryset, EntryStatus.REJECTED)

    @admin.action(description=_("Retire selected entries"), permissions=["change"])
    def retire_selected(self, request: HttpRequest, queryset: QuerySet[KnowledgeEntry]) -> None:
        self._set_status(request, queryset, EntryStatus.RETIRED)

    # --- workbook import ----------------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        return [
            path("import-workbook/", self.admin_site.admin_view(self.import_workbook_view), name="knowledge_import"),
            *super().get_urls(),
        ]

    def import_workbook_view(self, request: HttpRequest) -> HttpResponse:
        if not has_role(request.user, [Role.ADMIN]):
            raise PermissionDenied
        form = ImportUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                run = services.import_run_create(acting_user=request.user, data=upload.read(), file_name=upload.name)
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                return HttpResponseRedirect(reverse("admin:knowledge_importrun_change", args=[run.pk]))
        context = {**self.admin_site.each_context(request), "form": form, "title": _("Import a knowledge workbook"),
                   "opts": self.model._meta}
        return render(request, "admin/knowledge/import_upload.html", context)


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = ("file_name", "status", "sheet", "total_rows", "progress", "attempts", "created_by", "created_at")
    list_filter = ("status",)
    list_select_related = ("created_by",)

    @admin.display(description=_("progress"))
    def progress(self, run: ImportRun) -> str:
        return f"{run.progress_percent}%"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_role(request.user, [Role.ADMIN])

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role(request.user, [Role.ADMIN])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The preview (new / changed / unchanged / invalid, row errors), the confirm buttons, the progress."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ImportRun, pk=_pk_or_404(ImportRun, object_id))
        if request.method == "POST":
            only_valid = request.POST.get("mode") == "only_valid"
            try:
                services.import_run_start(acting_user=request.user, run=run, only_valid=only_valid)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.path)
        run.refresh_from_db()
        context = {
            **self.admin_site.each_context(request),
            "run": run,
            "opts": self.model._meta,
            "title": run.file_name,
            "can_start": run.status in (ImportStatus.VALIDATED, ImportStatus.FAILED),
            "in_progress": run.status in (ImportStatus.QUEUED, ImportStatus.RUNNING),
            "counts": run.counts,
        }
        return render(request, "admin/knowledge/import_run.html", context)


# --- the review queue, auditor findings, unanswered questions, verified answers (issue 7) --------

REVIEW_FIELDS = ("title", "symptom", "error_codes", "job_patterns", "workstations", "cause", "solution", "category",
                 "severity", "owner_team", "language")


class CuratorOnlyMixin:
    """Reviewers and admins (KNOWLEDGE_CURATORS) only, whatever model permissions say."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_role(request.user, KNOWLEDGE_CURATORS)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role(request.user, KNOWLEDGE_CURATORS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role(request.user, KNOWLEDGE_CURATORS)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReviewActionForm(ActionForm):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=1000)
    assignee = forms.ModelChoiceField(label=_("Assign to"), required=False, queryset=None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = curators_queryset()


def curators_queryset() -> QuerySet[Any]:
    from django.contrib.auth import get_user_model

    names = [str(r) for r in KNOWLEDGE_CURATORS]
    return (get_user_model().objects.filter(is_active=True)
            .filter(Q(groups__name__in=names) | Q(is_superuser=True)).distinct().order_by("username"))


class ReviewStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [*ReviewStatus.choices, ("all", _("All"))]

    def choices(self, changelist: Any) -> Any:
        value = self.value() or ReviewStatus.OPEN
        for lookup, title in self.lookup_choices:
            yield {"selected": value == str(lookup), "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                   "display": title}

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value() or ReviewStatus.OPEN  # the queue opens on what waits for a decision
        return queryset if value == "all" else queryset.filter(status=value)


class FindingTypeFilter(admin.SimpleListFilter):
    title = _("finding type")
    parameter_name = "finding"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [*FindingType.choices, ("none", _("No finding"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        open_findings = Finding.objects.filter(status=FindingStatus.OPEN)
        if self.value() == "none":
            return queryset.exclude(entry__in=open_findings.values("entry"))
        return queryset.filter(entry__in=open_findings.filter(type=self.value()).values("entry"))


class FindingSeverityFilter(admin.SimpleListFilter):
    title = _("finding severity")
    parameter_name = "severity"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return Severity.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        return queryset.filter(entry__in=Finding.objects.filter(status=FindingStatus.OPEN, severity=self.value())
                               .values("entry"))


class AgeFilter(admin.SimpleListFilter):
    title = _("age")
    parameter_name = "age"
    RANGES: dict[str, tuple[int | None, int | None]] = {"1d": (None, 1), "7d": (1, 7), "30d": (7, 30), "old": (30, None)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [("1d", _("Under a day")), ("7d", _("1 to 7 days")), ("30d", _("7 to 30 days")),
                ("old", _("Over 30 days"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() not in self.RANGES:
            return queryset
        now = timezone.now()
        newer, older = self.RANGES[self.value()]
        if newer is not None:
            queryset = queryset.filter(created_at__lte=now - dt.timedelta(days=newer))
        if older is not None:
            queryset = queryset.filter(created_at__gt=now - dt.timedelta(days=older))
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = _("assignee")
    parameter_name = "assignee"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [("me", _("Assigned to me")), ("none", _("Unassigned")),
                *[(str(u.pk), u.get_username()) for u in curators_queryset()[:50]]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


class EditEntryForm(forms.Form):
    """The fields a reviewer may change before approving (lists are one item per line)."""

    title = forms.CharField(label=_("title"), max_length=300)
    symptom = forms.CharField(label=_("symptom"), widget=forms.Textarea(attrs={"rows": 4}))
    error_codes = forms.CharField(label=_("error codes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    job_patterns = forms.CharField(label=_("jobs / job streams"), required=False,
                                   widget=forms.Textarea(attrs={"rows": 2}))
    cause = forms.CharField(label=_("cause"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    solution = forms.CharField(label=_("solution"), widget=forms.Textarea(attrs={"rows": 6}))

    @staticmethod
    def initial_for(entry: KnowledgeEntry) -> dict[str, Any]:
        return {"title": entry.title, "symptom": entry.symptom, "cause": entry.cause, "solution": entry.solution,
                "error_codes": "\n".join(entry.error_codes), "job_patterns": "\n".join(entry.job_patterns)}

    def changes(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        for name in ("error_codes", "job_patterns"):
            data[name] = [line.strip() for line in data[name].replace(",", "\n").splitlines() if line.strip()]
        return data


def field_diff(proposed: KnowledgeEntry, existing: KnowledgeEntry | None) -> list[dict[str, Any]]:
    """Field-by-field comparison of a proposed entry and the most similar existing one."""
    rows = []
    for name in REVIEW_FIELDS:
        mine = getattr(proposed, name)
        theirs = getattr(existing, name) if existing is not None else None
        as_text = (lambda v: ", ".join(v) if isinstance(v, list) else str(v or ""))  # noqa: E731
        rows.append({
            "name": name,
            "label": KnowledgeEntry._meta.get_field(name).verbose_name,
            "proposed": as_text(mine),
            "existing": as_text(theirs) if existing is not None else "",
            "same": existing is not None and as_text(mine) == as_text(theirs),
            "diff": _inline_diff(_words(theirs), _words(mine)) if existing is not None else None,
        })
    return rows


def _words(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")


def _inline_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Word-level diff as (op, text) pairs: "=", "+" (only in the proposal), "-" (only in the existing one)."""
    import difflib

    a, b = old.split(), new.split()
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", " ".join(a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", " ".join(a[i1:i2])))
            if j2 > j1:
                out.append(("+", " ".join(b[j1:j2])))
    return out


@admin.register(ReviewItem)
class ReviewItemAdmin(CuratorOnlyMixin, admin.ModelAdmin):
    list_display = ("entry_id_display", "entry_title", "kind", "entry_source", "findings_display", "similar_display",
                    "assignee", "age_display")
    list_filter = (ReviewStatusFilter, FindingTypeFilter, FindingSeverityFilter, ("entry__source", admin.ChoicesFieldListFilter),
                   AgeFilter, AssigneeFilter, "kind")
    list_select_related = ("entry", "similar_entry", "assignee")
    search_fields = ("entry__external_id", "entry__title", "entry__symptom")
    ordering = ("created_at",)
    action_form = ReviewActionForm
    actions = ("approve_selected", "reject_selected", "assign_selected")
    change_list_template = "admin/knowledge/reviewitem/change_list.html"
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReviewItem]:
        open_findings = Finding.objects.filter(status=FindingStatus.OPEN).order_by("-created_at")
        return (super().get_queryset(request)
                .prefetch_related(Prefetch("entry__findings", queryset=open_findings, to_attr="open_findings")))

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=_("entry"), ordering="entry__external_id")
    def entry_id_display(self, item: ReviewItem) -> str:
        return item.entry.external_id

    @admin.display(description=_("title"))
    def entry_title(self, item: ReviewItem) -> str:
        return item.entry.title[:80]

    @admin.display(description=_("source"), ordering="entry__source")
    def entry_source(self, item: ReviewItem) -> str:
        return item.entry.get_source_display()

    @admin.display(description=_("findings"))
    def findings_display(self, item: ReviewItem) -> str:
        findings = getattr(item.entry, "open_findings", [])
        return ", ".join(f"{f.get_type_display()} ({f.get_severity_display()})" for f in findings[:4]) or "-"

    @admin.display(description=_("most similar"))
    def similar_display(self, item: ReviewItem) -> str:
        if item.similar_entry is None:
            return "-"
        return f"{item.similar_entry.external_id} ({item.similarity or 0:.2f})"

    @admin.display(description=_("age"), ordering="created_at")
    def age_display(self, item: ReviewItem) -> str:
        return timesince(item.created_at)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "metrics": selectors.review_metrics()}
        return super().changelist_view(request, extra_context)

    # --- bulk actions ---------------------------------------------------------------------------
    def _each(self, request: HttpRequest, queryset: QuerySet[ReviewItem], decide: Any, done: str) -> None:
        count, errors = 0, []
        for item in queryset.filter(status=ReviewStatus.OPEN):
            try:
                decide(item)
                count += 1
            except ApplicationError as exc:
                errors.append(f"{item.entry.external_id}: {exc.message}")
        if count:
            self.message_user(request, done % {"n": count}, messages.SUCCESS)
        for error in errors[:10]:
            self.message_user(request, error, messages.ERROR)

    @admin.action(description=_("Approve selected entries"))
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        reason = request.POST.get("reason", "").strip() or str(_("bulk approval"))
        self._each(request, queryset, lambda item: review.review_approve(acting_user=request.user, item=item,
                                                                            reason=reason),
                   str(_("%(n)d entries approved.")))

    @admin.action(description=_("Reject selected entries (give a reason)"))
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, _("Write the reason for the rejection in the Reason box."), messages.ERROR)
            return
        self._each(request, queryset, lambda item: review.review_reject(acting_user=request.user, item=item,
                                                                           reason=reason),
                   str(_("%(n)d entries rejected.")))

    @admin.action(description=_("Assign selected items"))
    def assign_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        form = ReviewActionForm(request.POST)
        assignee = form.fields["assignee"].clean(request.POST.get("assignee") or None) if request.POST.get(
            "assignee") else None
        try:
            count = review.review_assign(acting_user=request.user, items=list(queryset), assignee=assignee)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, _("%(n)d items assigned.") % {"n": count}, messages.SUCCESS)

    # --- one item: the proposal beside the most similar entry, and the decisions ----------------
    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            item = selectors.review_item_for(user=request.user, item_id=object_id)
        except ApplicationError as exc:
            raise Http404(exc.message) from exc
        edit_form = EditEntryForm(initial=EditEntryForm.initial_for(item.entry))
        if request.method == "POST":
            response, edit_form = self._decide(request, item)
            if response is not None:
                return response
        item.refresh_from_db()
        similar = item.similar_entry
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Review %(id)s") % {"id": item.entry.external_id},
            "item": item,
            "entry": item.entry,
            "similar": similar,
            "diff": field_diff(item.entry, similar),
            "findings": selectors.open_findings_for(item.entry),
            "provenance": item.provenance,
            "edit_form": edit_form,
            "mergeable_fields": review.MERGEABLE_FIELDS,
            "curators": curators_queryset(),
            "is_open": item.status == ReviewStatus.OPEN,
        }
        return render(request, "admin/knowledge/review_item.html", context)

    def _decide(self, request: HttpRequest, item: ReviewItem) -> tuple[HttpResponse | None, EditEntryForm]:
        decision = request.POST.get("decision", "")
        reason = request.POST.get("reason", "").strip()
        edit_form = EditEntryForm(request.POST if decision == "edit_approve" else None,
                                  initial=EditEntryForm.initial_for(item.entry))
        try:
            if decision == "approve":
                review.review_approve(acting_user=request.user, item=item, reason=reason)
                done = _("%(id)s approved: it is searchable now.")
            elif decision == "edit_approve":
                if not edit_form.is_valid():
                    return None, edit_form
                review.review_approve(acting_user=request.user, item=item, reason=reason, changes=edit_form.changes())
                done = _("%(id)s edited and approved: it is searchable now.")
            elif decision == "merge":
                target_id = request.POST.get("target", "").strip()
                target = KnowledgeEntry.objects.filter(external_id=target_id).first()
                if target is None:
                    raise ApplicationError(_("No knowledge entry %(id)s.") % {"id": target_id})
                review.review_merge(acting_user=request.user, item=item, target=target, reason=reason,
                                    take_fields=request.POST.getlist("take"))
                done = _("%(id)s merged.")
            elif decision == "reject":
                review.review_reject(acting_user=request.user, item=item, reason=reason)
                done = _("%(id)s rejected.")
            elif decision == "assign":
                assignee_id = request.POST.get("assignee", "")
                assignee = curators_queryset().filter(pk=assignee_id).first() if assignee_id.isdigit() else None
                review.review_assign(acting_user=request.user, items=[item], assignee=assignee)
                self.message_user(request, _("Assignment saved."), messages.SUCCESS)
                return HttpResponseRedirect(request.path), edit_form
            else:
                raise ApplicationError(_("Choose a decision."))
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return (None if decision == "edit_approve" else HttpResponseRedirect(request.path)), edit_form
        self.message_user(request, done % {"id": item.entry.external_id}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:knowledge_reviewitem_changelist")), edit_form


@admin.register(Finding)
class FindingAdmin(CuratorOnlyMixin, admin.ModelAdmin):
    list_display = ("type", "severity", "confidence", "entry", "other_entry", "reason_short", "status", "created_at")
    list_filter = ("status", "type", "severity")
    list_select_related = ("entry", "other_entry")
    search_fields = ("entry__external_id", "other_entry__external_id", "reason")
    readonly_fields = ("type", "severity", "confidence", "reason", "entry", "other_entry", "details", "status",
                       "created_at", "last_seen_at", "resolved_at", "resolution")
    fields = readonly_fields
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the auditor writes findings; reviewers decide on the entries

    @admin.display(description=_("reason"))
    def reason_short(self, finding: Finding) -> str:
        return finding.reason[:120]


class ConvertForm(forms.Form):
    title = forms.CharField(label=_("title"), max_length=300, required=False)
    symptom = forms.CharField(label=_("symptom"), widget=forms.Textarea(attrs={"rows": 3}))
    error_codes = forms.CharField(label=_("error codes"), required=False)
    job_patterns = forms.CharField(label=_("jobs / job streams"), required=False)
    cause = forms.CharField(label=_("cause"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    solution = forms.CharField(label=_("solution"), widget=forms.Textarea(attrs={"rows": 6}))


@admin.register(UnansweredQuestion)
class UnansweredQuestionAdmin(CuratorOnlyMixin, admin.ModelAdmin):
    list_display = ("question_short", "reason", "times_asked", "language", "asked_by", "status", "last_asked_at")
    list_filter = ("status", "reason", "language")
    list_select_related = ("asked_by", "entry")
    search_fields = ("question",)
    actions = ("dismiss_selected",)
    show_full_result_count = False

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=_("question"))
    def question_short(self, question: UnansweredQuestion) -> str:
        return question.question[:120]

    @admin.action(description=_("Dismiss selected questions"))
    def dismiss_selected(self, request: HttpRequest, queryset: QuerySet[UnansweredQuestion]) -> None:
        count = review.unanswered_dismiss(acting_user=request.user, questions=list(queryset))
        self.message_user(request, _("%(n)d questions dismissed.") % {"n": count}, messages.SUCCESS)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The question and a form that turns it into an entry waiting in the review queue."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        question = get_object_or_404(UnansweredQuestion, pk=object_id) if object_id.isdigit() else None
        if question is None:
            raise Http404
        form = ConvertForm(request.POST or None, initial={"symptom": question.question})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            split = (lambda v: [p.strip() for p in v.replace(";", ",").split(",") if p.strip()])  # noqa: E731
            try:
                item = review.unanswered_convert(
                    acting_user=request.user, question=question, symptom=data["symptom"], solution=data["solution"],
                    title=data["title"], cause=data["cause"], error_codes=split(data["error_codes"]),
                    job_patterns=split(data["job_patterns"]))
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, _("Entry %(id)s created; it waits in the review queue.")
                                  % {"id": item.entry.external_id}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:knowledge_reviewitem_change", args=[item.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "question": question,
                   "form": form, "title": _("Unanswered question")}
        return render(request, "admin/knowledge/unanswered_convert.html", context)


@admin.register(VerifiedAnswer)
class VerifiedAnswerAdmin(CuratorOnlyMixin, admin.ModelAdmin):
    list_display = ("question_short", "entry", "hit_count", "last_hit_at", "active", "created_by")
    list_filter = ("active",)
    list_select_related = ("entry", "created_by")
    search_fields = ("question", "entry__external_id")
    fields = ("question", "entry", "active", "hit_count", "last_hit_at", "created_by", "created_at")
    readonly_fields = ("question", "entry", "hit_count", "last_hit_at", "created_by", "created_at")

    @admin.display(description=_("question"))
    def question_short(self, answer: VerifiedAnswer) -> str:
        return answer.question[:120]
