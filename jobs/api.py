"""REST API of the plan: jobs, job streams, workstations, status events, the dashboard snapshot,
and job actions (preview, then act with a justification: the same services the chat uses).

Everything here is for the operations roles (`OPERATIONS`), by session or token. Lists are
LimitOffset-paginated and filtered by query parameters; none of them joins, so the query count of
a page does not grow with its length. Live reads (log, dependencies, action preview) go to HWA and
answer 503 with a clear code when HWA cannot.

Every list takes `folder=` (an HWA folder path such as `/FINANCEIRO/`; a job is in its job
stream's folder): checked against HWA's naming rules, a 400 that says which rule otherwise.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from jobs import selectors, services
from jobs.models import JobInstance, JobStream, StatusChange, Workstation
from jobs.tws.folders import MAX_NAME_LENGTH, MAX_PATH_LENGTH, PATH_PATTERN, FolderError, folder_parse
from resync_site.lib.errors import ConflictError, NotFoundError
from resync_site.roles import OPERATIONS, role_permission

OperationsOnly = role_permission(*OPERATIONS)


# --- serializers ----------------------------------------------------------------------------------


class JobSerializer(serializers.ModelSerializer[JobInstance]):
    id = serializers.CharField(source="hwa_id", read_only=True)
    stream = serializers.CharField(source="stream_name", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = JobInstance
        fields = [
            "id", "name", "stream", "folder", "workstation", "status", "substatus", "common_status", "canceled", "priority",
            "critical", "late", "requires_confirmation", "sched_time", "deadline", "run_id", "run_count",
            "return_code", "started_at", "ended_at", "dependency_count", "unresolved_dependencies",
            "status_changed_at", "url",
        ]
        read_only_fields = fields

    def get_url(self, job: JobInstance) -> str:
        from django.urls import reverse

        return reverse("jobs:detail", args=[job.hwa_id])


class JobStreamSerializer(serializers.ModelSerializer[JobStream]):
    id = serializers.CharField(source="hwa_id", read_only=True)

    class Meta:
        model = JobStream
        fields = ["id", "name", "folder", "workstation", "status", "common_status", "sched_time", "late", "job_count"]
        read_only_fields = fields


class WorkstationSerializer(serializers.ModelSerializer[Workstation]):
    id = serializers.CharField(source="hwa_id", read_only=True)

    class Meta:
        model = Workstation
        fields = ["id", "name", "folder", "type", "os", "linked", "running", "limit", "fence"]
        read_only_fields = fields


class StatusEventSerializer(serializers.ModelSerializer[StatusChange]):
    job_id = serializers.CharField(source="job_hwa_id", read_only=True)
    stream = serializers.CharField(source="stream_name", read_only=True)

    class Meta:
        model = StatusChange
        fields = ["id", "job_id", "job_name", "stream", "folder", "workstation", "from_status", "to_status", "common_status",
                  "return_code", "observed_at"]
        read_only_fields = fields


class FilterText(serializers.CharField):
    """A text filter from the query string. Every list filter of this API is one, so the checks are
    made once, here: PostgreSQL refuses NUL in text (a 500 if it reached a query), so a NUL byte is
    a 400 (DRF's `ProhibitNullCharactersValidator`, stated explicitly so it cannot be dropped)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("allow_blank", True)  # `?name=` means no filter, as the dashboard's page sends it
        super().__init__(**kwargs)
        if not any(isinstance(v, ProhibitNullCharactersValidator) for v in self.validators):
            self.validators.append(ProhibitNullCharactersValidator())


class FolderFilter(FilterText):
    """An HWA folder path from the query string (`/`, `/RH/`, `/FINANCEIRO/TESOURARIA/`; the slashes
    around it may be left out), checked against HWA's naming rules and handed on in canonical form."""

    default_error_messages = {
        "invalid": _("Not a valid HWA folder. Write / or /NAME/ or /NAME/SUB/: each name has only letters, digits, "
                     "- and _, no spaces, and does not start with -."),
        "name_too_long": _("Each name in a folder path has at most {max} characters."),
        "too_long": _("A folder path has at most {max} characters."),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_PATH_LENGTH)
        kwargs.setdefault("help_text", "HWA folder path, e.g. `/FINANCEIRO/` (that folder only, not its sub-folders; "
                                        "case is ignored); a job is in its job stream's folder")
        super().__init__(**kwargs)
        # Publishes the rule as the parameter's `pattern` in the OpenAPI schema; folder_parse is the check.
        self.validators.append(RegexValidator(PATH_PATTERN, message=self.error_messages["invalid"]))

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not value:
            return value
        try:
            return folder_parse(value)
        except FolderError as exc:
            limit = MAX_NAME_LENGTH if exc.code == "name_too_long" else MAX_PATH_LENGTH
            self.fail(exc.code, max=limit)
            raise  # unreachable: fail() raises


class JobFilters(serializers.Serializer[dict[str, Any]]):
    name = FilterText()
    pattern = FilterText(help_text="`*` or `@` as wildcards")
    status = FilterText(max_length=200, help_text="one status or several, comma-separated")
    stream = FilterText()
    workstation = FilterText()
    folder = FolderFilter()
    failed = serializers.BooleanField(required=False, allow_null=True, default=None)
    critical = serializers.BooleanField(required=False, allow_null=True, default=None)
    late = serializers.BooleanField(required=False, allow_null=True, default=None)


class JobStreamFilters(serializers.Serializer[dict[str, Any]]):
    name = FilterText()
    status = FilterText(max_length=200, help_text="comma-separated")
    workstation = FilterText()
    folder = FolderFilter(help_text="HWA folder path, e.g. `/FINANCEIRO/` (that folder only; case is ignored)")


class WorkstationFilters(serializers.Serializer[dict[str, Any]]):
    folder = FolderFilter(help_text="the workstation's own HWA folder path, e.g. `/` (case is ignored)")


class DashboardFilters(serializers.Serializer[dict[str, Any]]):
    workstation = FilterText()
    stream = FilterText()
    status = FilterText(max_length=200, help_text="comma-separated statuses")
    folder = FolderFilter()


class StatusEventFilters(serializers.Serializer[dict[str, Any]]):
    since = serializers.DateTimeField(required=False)
    status = FilterText(max_length=200)
    job = FilterText(help_text="a job's id")
    folder = FolderFilter(help_text="the job's HWA folder path (its job stream's), e.g. `/RH/`")


class LogQuery(serializers.Serializer[dict[str, Any]]):
    from_line = serializers.IntegerField(required=False, min_value=1)
    to_line = serializers.IntegerField(required=False, min_value=1)


class ActionRequest(serializers.Serializer[dict[str, Any]]):
    action = serializers.ChoiceField(choices=[a.value for a in services.JobAction])
    justification = serializers.CharField(max_length=1000)
    ticket = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    priority = serializers.IntegerField(required=False, min_value=0, max_value=101, allow_null=True, default=None)


class PreviewQuery(serializers.Serializer[dict[str, Any]]):
    action = serializers.ChoiceField(choices=[a.value for a in services.JobAction])


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip().upper() for v in value.split(",") if v.strip()]


def _node(node: selectors.NodeSummary) -> dict[str, Any]:
    return {"id": node.hwa_id, "name": node.name, "stream": node.stream, "workstation": node.workstation,
            "status": node.status, "critical": node.critical, "unresolved_dependencies": node.unresolved_dependencies}


class JobNodeSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.CharField()
    name = serializers.CharField()
    stream = serializers.CharField()
    workstation = serializers.CharField()
    status = serializers.CharField()
    critical = serializers.BooleanField()
    unresolved_dependencies = serializers.IntegerField()


# --- views ----------------------------------------------------------------------------------------


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[JobInstance]):
    """Jobs in the current plan (snapshot of the last poll), with their history, log and neighbours."""

    serializer_class = JobSerializer
    permission_classes = [OperationsOnly]
    throttle_classes = [UserRateThrottle]
    lookup_field = "hwa_id"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self) -> Any:
        if self.action != "list":
            return selectors.jobs_search(limit=None)
        query = JobFilters(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        return selectors.jobs_search(
            name=data.get("name"), pattern=data.get("pattern"), status=_split(data.get("status")),
            stream=data.get("stream"), workstation=data.get("workstation"), folder=data.get("folder"), failed=data.get("failed"),
            critical=data.get("critical"), late=data.get("late"), limit=None,
        )

    def get_object(self) -> JobInstance:
        try:
            return selectors.job_get(hwa_id=self.kwargs["hwa_id"])
        except NotFoundError as exc:
            raise Http404(exc.message) from exc

    @extend_schema(parameters=[JobFilters])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=StatusEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, hwa_id: str) -> Response:
        """The job's recorded status changes, newest first (up to 100)."""
        job = self.get_object()
        return Response(StatusEventSerializer(selectors.job_history(job=job, limit=100), many=True).data)

    @extend_schema(parameters=[LogQuery], responses=inline_serializer("JobLog", {
        "job_id": serializers.CharField(), "run_id": serializers.CharField(), "from_line": serializers.IntegerField(),
        "to_line": serializers.IntegerField(), "lines": serializers.ListField(child=serializers.CharField()),
    }))
    @action(detail=True, methods=["get"])
    def log(self, request: Request, hwa_id: str) -> Response:
        """The current run's job log, live from HWA (untrusted text)."""
        job = self.get_object()
        query = LogQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        log = selectors.job_log_text(job=job, from_line=query.validated_data.get("from_line"),
                                     to_line=query.validated_data.get("to_line"))
        return Response({"job_id": log.job_hwa_id, "run_id": log.run_id, "from_line": log.from_line,
                         "to_line": log.to_line, "lines": log.lines})

    @extend_schema(responses=inline_serializer("JobNeighbours", {
        "predecessors": JobNodeSerializer(many=True), "successors": JobNodeSerializer(many=True),
        "dependencies": serializers.ListField(child=serializers.DictField()),
    }))
    @action(detail=True, methods=["get"])
    def dependencies(self, request: Request, hwa_id: str) -> Response:
        """Predecessors and successors (one level), live from HWA."""
        deps = selectors.job_dependencies(job=self.get_object())
        return Response({
            "predecessors": [_node(n) for n in deps.predecessors],
            "successors": [_node(n) for n in deps.successors],
            "dependencies": [d.model_dump(mode="json", by_alias=False) for d in deps.dependencies],
        })

    @extend_schema(parameters=[PreviewQuery], responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, hwa_id: str) -> Response:
        """What an action would do now: allowed or why not, successors that run or stay blocked, risk."""
        query = PreviewQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        preview = services.job_action_preview(job=self.get_object(), action=query.validated_data["action"])
        return Response(preview.as_dict())

    @extend_schema(request=ActionRequest, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def act(self, request: Request, hwa_id: str) -> Response:
        """Carries out an action after the caller has seen its preview. High-risk actions (cancel or
        kill touching a critical job) need a supervisor's consent: propose them in the chat."""
        body = ActionRequest(data=request.data)
        body.is_valid(raise_exception=True)
        result = job_act(user=request.user, job=self.get_object(), **body.validated_data)
        return Response(result)


def job_act(*, user: Any, job: JobInstance, action: str, justification: str, ticket: str = "",
            priority: int | None = None) -> dict[str, Any]:
    """The job page's and the API's way to act: refuses high-risk actions (they need four eyes,
    which the chat's proposal flow provides), else calls `jobs.services.job_action`."""
    preview = services.job_action_preview(job=job, action=action)
    if preview.high_risk:
        raise ConflictError("This action affects a critical job and needs a supervisor's approval: propose it in the chat.",
                            code="second_approver_required")
    result = services.job_action(acting_user=user, job=job, action=action, justification=justification, ticket=ticket,
                                 priority=priority)
    return {"action": str(result.action), "job": _node(result.job), "status_after": result.status_after,
            "audit_sequence": result.audit_sequence, "message": result.message}


class JobStreamViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[JobStream]):
    """Job streams in the current plan."""

    serializer_class = JobStreamSerializer
    permission_classes = [OperationsOnly]

    def get_queryset(self) -> Any:
        query = JobStreamFilters(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        return selectors.job_streams_list(name=data.get("name"), status=_split(data.get("status")),
                                          workstation=data.get("workstation"), folder=data.get("folder")).order_by("sched_time", "name")

    @extend_schema(parameters=[JobStreamFilters])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


class WorkstationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Workstation]):
    """Workstations in the current plan, with their link and running state."""

    serializer_class = WorkstationSerializer
    permission_classes = [OperationsOnly]

    def get_queryset(self) -> Any:
        query = WorkstationFilters(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        linked = self.request.query_params.get("linked")
        return selectors.workstations_list(linked=None if linked is None else linked.lower() in ("1", "true", "yes"),
                                           folder=query.validated_data.get("folder")).order_by("name")

    @extend_schema(parameters=[OpenApiParameter("linked", bool), WorkstationFilters])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


class StatusEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[StatusChange]):
    """Status changes the poller recorded, newest first."""

    serializer_class = StatusEventSerializer
    permission_classes = [OperationsOnly]

    def get_queryset(self) -> Any:
        query = StatusEventFilters(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        return selectors.status_events_list(since=data.get("since"), statuses=_split(data.get("status")),
                                            job_hwa_id=data.get("job"), folder=data.get("folder"))

    @extend_schema(parameters=[StatusEventFilters])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


class DashboardView(APIView):
    """GET /api/dashboard/: the dashboard's initial state; `seq` is the last status event it
    includes, so a client applies only `jobs.diff` events with a higher `seq`."""

    permission_classes = [OperationsOnly]

    @extend_schema(parameters=[DashboardFilters], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        query = DashboardFilters(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        filters = selectors.DashboardFilters(
            workstation=data.get("workstation", ""), stream=data.get("stream", ""),
            statuses=tuple(_split(data.get("status")) or ())[:20], folder=data.get("folder", ""),
        )
        return Response(selectors.dashboard_snapshot(filters=filters))
