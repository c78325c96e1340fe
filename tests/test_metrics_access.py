"""GET /metrics is closed unless its token is sent or it is opened explicitly, and scrapes cannot hammer the
database: its cross-tenant figures are read at most once per METRICS_CACHE_S per process (issue 15, finding 13)."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from factories import make_account, make_risk_event, make_tenant, make_user
from prometheus_client.parser import text_string_to_metric_families

from suho import metrics
from tests.gateway.conftest import server_url  # noqa: F401  (a session fixture: daphne serving suho.asgi)
from tests.servers import http, http_base

TOKEN = "scrape-secret"


def open_risk_events(response) -> float:
    assert response.status_code == 200, response.content
    families = text_string_to_metric_families(response.content.decode())
    return sum(s.value for f in families if f.name == "suho_risk_events_open" for s in f.samples)


def test_metrics_are_403_by_default_through_daphne(server_url):  # noqa: F811
    status, _headers, body = http(http_base(server_url) + "/metrics")
    assert (status, body.decode()) == (403, metrics.METRICS_FORBIDDEN)


def test_metrics_are_403_without_a_token_unless_metrics_public_opens_them(committed, settings):
    settings.METRICS_TOKEN, settings.METRICS_PUBLIC = "", False
    assert Client().get("/metrics").status_code == 403
    settings.METRICS_PUBLIC = True
    assert Client().get("/metrics").status_code == 200


@pytest.mark.parametrize("public", [False, True])
def test_with_a_token_set_only_that_bearer_token_is_let_in(committed, settings, public):
    settings.METRICS_TOKEN, settings.METRICS_PUBLIC = TOKEN, public
    for authorization in (None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"):
        headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
        assert Client().get("/metrics", **headers).status_code == 403, authorization
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_scrapes_within_the_cache_window_read_the_database_once(committed, settings, monkeypatch):
    settings.METRICS_TOKEN, settings.METRICS_CACHE_S = TOKEN, 3600
    monkeypatch.setattr(metrics, "_database_cached", None)
    account = make_account(tenant := make_tenant(), make_user(tenant))
    make_risk_event(account)
    scrape = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    with CaptureQueriesContext(connections["operator"]) as queries:
        first = open_risk_events(scrape.get("/metrics"))
        make_risk_event(account)
        second = open_risk_events(scrape.get("/metrics"))
        third = open_risk_events(scrape.get("/metrics"))

    assert (first, second, third) == (1, 1, 1)  # the figures of the one read
    assert sum(metrics.RISK_EVENTS_OPEN in q["sql"] for q in queries.captured_queries) == 1
    settings.METRICS_CACHE_S = 0  # the window over: the next scrape reads again
    assert open_risk_events(scrape.get("/metrics")) == 2
