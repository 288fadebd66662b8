"""Knowledge API: search for knowledge readers, workbook import for admins."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from knowledge import services
from knowledge.models import ImportRun, ImportStatus
from knowledge.retrieval import search
from knowledge.selectors import import_run_get
from resync_site.roles import KNOWLEDGE_READERS, Role, role_permission


class SearchQuery(serializers.Serializer):
    q = serializers.CharField(max_length=2000, trim_whitespace=True)
    limit = serializers.IntegerField(min_value=1, max_value=20, default=5)


# The response shapes below document what the views return (`SearchResult.as_dict()`, `_run_payload`)
# for the OpenAPI schema; schemathesis checks real responses against them (tests/hostile).


class SearchHitSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    title = serializers.CharField()
    symptom = serializers.CharField()
    cause = serializers.CharField()
    solution = serializers.CharField()
    codes = serializers.ListField(child=serializers.CharField())
    jobs = serializers.ListField(child=serializers.CharField())
    language = serializers.CharField()
    score = serializers.FloatField(help_text="0..1: 1.0 for an exact code or job match, else the hybrid search's fused rank score.")
    similarity = serializers.FloatField(help_text="Cosine similarity of the question to this entry (embeddings).")
    matched = serializers.ListField(child=serializers.CharField(),
                                    help_text="Why it matched: `error_code:<code>`, `job:<name>`, `semantic`, `lexical:<field>`.")
    url = serializers.CharField(help_text="The entry's page in Resync.")


class SearchResultSerializer(serializers.Serializer):
    question = serializers.CharField()
    confident = serializers.BooleanField(help_text="Whether the best hit is trusted to answer the question.")
    reason = serializers.CharField(help_text="`exact_match`, `semantic_match`, `secret_request`, `unknown_code`, "
                                             "`unknown_job`, `unknown_term`, `missing_focus`, `low_similarity` or `empty`.")
    unknown_codes = serializers.ListField(child=serializers.CharField())
    confidence = serializers.FloatField(help_text="0..1: the confidence model's probability that the best hit answers.")
    unknown_terms = serializers.ListField(child=serializers.CharField())
    missing_focus = serializers.ListField(child=serializers.CharField(),
                                          help_text="What the question asks for that the best hit never mentions.")
    hits = SearchHitSerializer(many=True)


class SearchView(APIView):
    """GET /api/kb/search/?q=...&limit=5: ranked approved entries with citations and confidence."""

    permission_classes = [role_permission(*KNOWLEDGE_READERS)]
    throttle_classes = [UserRateThrottle]

    @extend_schema(parameters=[SearchQuery], responses=SearchResultSerializer)
    def get(self, request: Request) -> Response:
        query = SearchQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = search(query.validated_data["q"], limit=query.validated_data["limit"])
        return Response(result.as_dict())


@extend_schema_field(OpenApiTypes.BINARY)  # an upload, not the URL a FileField reads back as
class WorkbookUploadField(serializers.FileField):
    pass


class ImportUpload(serializers.Serializer):
    file = WorkbookUploadField()
    dry_run = serializers.BooleanField(default=False)
    only_valid = serializers.BooleanField(default=False)


class ImportRowErrorSerializer(serializers.Serializer):
    sheet = serializers.CharField()
    row = serializers.IntegerField()
    column = serializers.CharField()
    reason = serializers.CharField()


class ImportProgressSerializer(serializers.Serializer):
    processed = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.IntegerField(min_value=0, max_value=100)


class ImportRunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    file = serializers.CharField(help_text="The uploaded file's name.")
    sheet = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=ImportStatus.choices)
    counts = serializers.DictField(child=serializers.IntegerField(),
                                   help_text="Row counts: `rows`, `new`, `changed`, `unchanged`, `invalid`, and the `header_row` found.")
    errors = ImportRowErrorSerializer(many=True, help_text="Rows that cannot be imported, and why.")
    progress = ImportProgressSerializer()
    message = serializers.CharField(allow_blank=True)
    url = serializers.CharField(help_text="Where to follow this import's progress.")


def _run_payload(run: ImportRun) -> dict[str, Any]:
    return {
        "id": str(run.pk),
        "file": run.file_name,
        "sheet": run.sheet,
        "status": run.status,
        "counts": run.counts,
        "errors": run.errors,
        "progress": {"processed": run.processed, "total": run.to_process, "percent": run.progress_percent},
        "message": run.message,
        "url": f"/api/kb/import/{run.pk}/",
    }


class ImportView(APIView):
    """POST /api/kb/import/ (multipart `file`, `dry_run`, `only_valid`): validates, then imports in the background."""

    permission_classes = [role_permission(Role.ADMIN)]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=ImportUpload, responses={200: ImportRunSerializer, 202: ImportRunSerializer},
                   description="`dry_run` answers 200 with the preview only; otherwise 202 and the import runs in the background.")
    def post(self, request: Request) -> Response:
        upload = ImportUpload(data=request.data)
        upload.is_valid(raise_exception=True)
        handle = upload.validated_data["file"]
        run = services.import_run_create(acting_user=request.user, data=handle.read(), file_name=handle.name)
        if upload.validated_data["dry_run"]:
            return Response(_run_payload(run), status=status.HTTP_200_OK)
        run = services.import_run_start(acting_user=request.user, run=run, only_valid=upload.validated_data["only_valid"])
        run.refresh_from_db()
        return Response(_run_payload(run), status=status.HTTP_202_ACCEPTED)


class ImportRunView(APIView):
    """GET /api/kb/import/<id>/: status and progress of an import."""

    permission_classes = [role_permission(Role.ADMIN)]

    @extend_schema(responses=ImportRunSerializer)
    def get(self, request: Request, run_id: str) -> Response:
        return Response(_run_payload(import_run_get(run_id=run_id)))
