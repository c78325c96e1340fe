"""Liveness and readiness endpoints."""

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_dependency_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "nats": "ok"}


@override_settings(NATS_URL="nats://127.0.0.1:1", REDIS_URL="redis://127.0.0.1:1/0")
def test_readyz_names_each_unreachable_dependency_with_503(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"].startswith("error")
    assert checks["nats"].startswith("error")


def test_the_home_page_links_admin_api_docs_and_the_ea_socket(client):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "/admin/" in body and "/api/docs/" in body and "/ws/ea/" in body
