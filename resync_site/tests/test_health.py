from __future__ import annotations

import socket

import pytest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_answers_without_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


@pytest.mark.django_db
def test_readyz_reports_each_part(client):
    response = client.get("/readyz")
    body = response.json()
    names = {check["name"]: check for check in body["checks"]}
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert names["database"]["ok"] and names["database"]["detail"] == "postgresql"
    assert names["redis"]["ok"] and names["redis"]["required"]
    assert names["qdrant"]["ok"]


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    redis_check = next(c for c in response.json()["checks"] if c["name"] == "redis")
    assert not redis_check["ok"]
    assert "Connection" in redis_check["detail"]


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123").headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", HTTP_X_REQUEST_ID="<script>").headers["X-Request-ID"]
    assert made != "<script>" and len(made) == 32


def test_metrics_need_token_or_allowed_network(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    assert response.status_code == 200
    assert b"django_http_requests_total" in response.content
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200
