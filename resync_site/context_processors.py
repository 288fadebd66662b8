from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from resync_site.roles import user_roles


def resync(request: HttpRequest) -> dict[str, Any]:
    roles = user_roles(request.user) if hasattr(request, "user") else frozenset()
    return {"user_roles": roles, "oidc_enabled": settings.OIDC_ENABLED, "resync_env": settings.RESYNC_ENV}
