"""One domain error type and the API's exception handler.

Services raise `ApplicationError` (or a subclass) for anything a user caused or can act on; the
handler turns it into a clear 4xx with a stable code, so nothing user-caused becomes a 500.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    code = "invalid"
    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class NotFoundError(ApplicationError):
    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND


class ForbiddenError(ApplicationError):
    code = "forbidden"
    http_status = status.HTTP_403_FORBIDDEN


class ConflictError(ApplicationError):
    code = "conflict"
    http_status = status.HTTP_409_CONFLICT


class UnavailableError(ApplicationError):
    code = "unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"code": exc.code, "message": exc.message, **exc.extra}, status=exc.http_status)
    if isinstance(exc, ValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    return exception_handler(exc, context)
