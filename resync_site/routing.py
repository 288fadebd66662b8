"""Websocket URL routes of every app."""

from __future__ import annotations

from typing import Any

websocket_urlpatterns: list[Any] = []

from django.urls import path  # noqa: E402

from chat.consumers import ChatConsumer  # noqa: E402

websocket_urlpatterns.append(path("ws/chat/", ChatConsumer.as_asgi()))

from jobs.consumers import DashboardConsumer  # noqa: E402

websocket_urlpatterns.append(path("ws/dashboard/", DashboardConsumer.as_asgi()))
