"""Deviation analytics (seed §6.4) per symbol and broker, the anomaly flag, and GET /api/analytics/deviation/."""

from __future__ import annotations

import statistics
from decimal import Decimal

import pytest
from factories import ago, make_account, make_quote, make_tenant, make_user
from rest_framework.test import APIClient

from accounts.models import User
from quotes.api import ANALYTICS_NO_TENANT
from quotes.selectors import deviation_anomalies, deviation_by_symbol_and_broker
from suho.tenancy import tenant_context

pytestmark = pytest.mark.django_db

# (server, symbol, deviation in price units, minutes ago); reference mid 1.1 for EURUSD, 150 for USDJPY.
DATASET = [
    ("ICMarkets-Live", "EURUSD", "0.00020", 5),
    ("ICMarkets-Live", "EURUSD", "0.00010", 30),
    ("ICMarkets-Live", "EURUSD", "-0.00004", 90),
    ("Pepperstone-Live", "EURUSD", "0.00080", 10),  # 0.0727 %: an anomaly at 0.05 %
    ("Pepperstone-Live", "EURUSD", "0.00002", 20),
    ("Pepperstone-Live", "USDJPY", "0.01500", 15),
    ("ICMarkets-Live", "EURUSD", "0.00900", 60 * 30),  # outside every window used here
]
MIDS = {"EURUSD": Decimal("1.1"), "USDJPY": Decimal("150")}


@pytest.fixture
def dataset():
    tenant = make_tenant()
    user = make_user(tenant)
    accounts = {server: make_account(tenant, user, server=server) for server in {row[0] for row in DATASET}}
    for server, symbol, deviation, minutes in DATASET:
        deviation = Decimal(deviation)
        mid = MIDS[symbol]
        make_quote(accounts[server], symbol=symbol, time=ago(minutes=minutes), polygon_mid_price=mid,
                   bid=mid + deviation - Decimal("0.0001"), ask=mid + deviation + Decimal("0.0001"),
                   price_deviation=deviation, deviation_percent=round(deviation * 100 / mid, 6))  # fmt: skip
    make_quote(accounts["ICMarkets-Live"], time=ago(minutes=1))  # no reference: not a sample
    other = make_tenant()
    make_quote(make_account(other, make_user(other)), time=ago(minutes=1), polygon_mid_price=Decimal("1.1"),
               price_deviation=Decimal("0.5"), deviation_percent=Decimal("45"))  # fmt: skip
    return tenant, user


def independent(hours: int) -> dict:
    groups: dict[tuple, list[Decimal]] = {}
    for server, symbol, deviation, minutes in DATASET:
        if minutes < hours * 60:
            groups.setdefault((symbol, server), []).append(Decimal(deviation))
    return {
        key: (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None,
              max(abs(v) for v in values), len(values))
        for key, values in groups.items()
    }  # fmt: skip


def test_deviation_per_symbol_and_broker_matches_an_independent_computation(dataset):
    tenant, _user = dataset
    with tenant_context(tenant.id):
        rows = deviation_by_symbol_and_broker(hours=24)
    got = {
        (r["symbol"], r["broker_server"]): (float(r["avg_deviation"]),
                                            None if r["stddev_deviation"] is None else float(r["stddev_deviation"]),
                                            r["max_deviation"], r["sample_count"])
        for r in rows
    }  # fmt: skip
    expected = independent(24)
    assert set(got) == set(expected) == {("EURUSD", "ICMarkets-Live"), ("EURUSD", "Pepperstone-Live"),
                                         ("USDJPY", "Pepperstone-Live")}  # fmt: skip
    for key, (avg, stddev, worst, count) in expected.items():
        assert got[key][0] == pytest.approx(avg)
        assert got[key][1] == (None if stddev is None else pytest.approx(float(stddev)))
        assert (got[key][2], got[key][3]) == (worst, count)


def test_quotes_straying_beyond_the_threshold_are_flagged_per_symbol_and_broker(dataset):
    tenant, _user = dataset
    with tenant_context(tenant.id):
        flagged = deviation_anomalies(threshold_percent=0.05, hours=1)
        wider = deviation_anomalies(threshold_percent=0.001, hours=1)
    assert [(r["symbol"], r["broker_server"], r["anomaly_count"]) for r in flagged] == [
        ("EURUSD", "Pepperstone-Live", 1)
    ], "0.0008 / 1.1 = 0.073 % (the other tenant's 45 % is not visible)"
    assert flagged[0]["max_abs_deviation_percent"] == Decimal("0.072727")
    assert {(r["symbol"], r["broker_server"]): r["anomaly_count"] for r in wider} == {
        ("EURUSD", "Pepperstone-Live"): 2,  # 0.0018 % and 0.073 %
        ("EURUSD", "ICMarkets-Live"): 2,  # 0.018 %, 0.009 %; the 90-minute one is outside the hour
        ("USDJPY", "Pepperstone-Live"): 1,
    }


def test_the_api_returns_the_tenants_deviation_by_symbol_and_by_broker(dataset):
    _tenant, user = dataset
    client = APIClient()
    client.force_authenticate(user)

    by_symbol = client.get("/api/analytics/deviation/", {"hours": 1})
    by_broker = client.get("/api/analytics/deviation/", {"hours": 24, "by": "broker"})

    assert by_symbol.status_code == 200
    eurusd = {r["symbol"]: r for r in by_symbol.json()["results"]}["EURUSD"]
    assert eurusd["sample_count"] == 4, "the hour's four EURUSD samples, both brokers"
    assert Decimal(eurusd["max_deviation"]) == Decimal("0.0008")
    rows = {(r["symbol"], r["broker_server"]): r["sample_count"] for r in by_broker.json()["results"]}
    assert rows == {
        ("EURUSD", "ICMarkets-Live"): 3,
        ("EURUSD", "Pepperstone-Live"): 2,
        ("USDJPY", "Pepperstone-Live"): 1,
    }


@pytest.mark.parametrize("params", [{"hours": 0}, {"hours": "x"}, {"by": "account"}, {"hours": 24 * 91}])
def test_bad_parameters_get_one_error_shape(dataset, params):
    _tenant, user = dataset
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/analytics/deviation/", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert set(response.json()["error"]) == {"code", "message"}


def test_a_user_without_a_tenant_and_an_anonymous_client_are_refused(dataset):
    client = APIClient()
    assert client.get("/api/analytics/deviation/").json()["error"]["code"] == "not_authenticated"
    operator = User(username="operator-analytics", is_staff=True)  # staff without a tenant (never saved)
    client.force_authenticate(operator)
    response = client.get("/api/analytics/deviation/")
    assert (response.status_code, response.json()) == (
        403,
        {"error": {"code": "no_tenant", "message": ANALYTICS_NO_TENANT}},
    )


def test_the_anomalies_endpoint_flags_with_the_threshold_given(dataset):
    _tenant, user = dataset
    client = APIClient()
    client.force_authenticate(user)
    body = client.get("/api/analytics/deviation/anomalies/", {"threshold_percent": "0.05"}).json()
    assert [(r["symbol"], r["broker_server"], r["anomaly_count"]) for r in body["results"]] == [
        ("EURUSD", "Pepperstone-Live", 1)
    ]
