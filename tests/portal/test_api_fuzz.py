"""A schema-driven fuzz of the REST API (schemathesis, bounded examples): no request the schema allows, or one it
does not, makes the server answer 500. Runs in-process (Django's WSGI handler) as a signed-in trader with an
account, a key and a signal, so the tenant-scoped paths have rows to find."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from accounts.services import api_key_create, mt5_account_create
from suho.tenancy import tenant_context
from tests.factories import make_signal
from tests.portal.conftest import PASSWORD, trader_make

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (optional: pip install it)")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

MAX_EXAMPLES = 20
SKIPPED = ("/api/tv/",)  # the TradingView webhook: its path is the secret; tested in tests/signals


def test_fuzzing_every_api_operation_finds_no_server_error(committed):
    trader = trader_make("Fuzz")
    account = mt5_account_create(user=trader, name="Fuzzed")
    api_key_create(account=account)
    with tenant_context(trader.tenant_id):
        make_signal(account)
    access = Client().post("/api/token/", {"username": "fuzz", "password": PASSWORD}).json()["access"]
    document = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(document)
    app = get_wsgi_application()
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith(SKIPPED):
            continue
        operations += 1

        @settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
        @given(case=operation.as_strategy())
        def fuzz(case):
            response = case.call(app=app, headers={"Authorization": f"Bearer {access}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:300]}")

        try:
            fuzz()
        finally:  # the EA auth endpoint counts the fuzz's failures against 127.0.0.1: later EAs connect from there
            cache.delete_many(["auth_throttle:ea:source:127.0.0.1", "auth_throttle:ea:source:127.0.0.1:until"])
    assert operations >= 15
    assert failures == [], "\n".join(f[:160] for f in failures)
