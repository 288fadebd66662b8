"""The read-only knowledge entry page the chat's citations link to."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from knowledge.selectors import entry_get_for_user
from resync_site.lib.errors import NotFoundError
from resync_site.roles import KNOWLEDGE_READERS, role_required


@role_required(*KNOWLEDGE_READERS)
def entry_detail(request: HttpRequest, external_id: str) -> HttpResponse:
    try:
        entry = entry_get_for_user(user=request.user, external_id=external_id)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc
    return render(request, "knowledge/entry_detail.html", {"entry": entry})
