"""Dates past the edge's bounds are a 400 on the portal and the REST API, not a 500 (issue 15, finding 12): the
portal's `?until=9999-12-31` overflowed "the end of that day" through daphne; the API's `end=0001-01-01` overflowed
its default start. The limits are suho/edge.py's 1970-01-01 to 2999-12-31."""

from __future__ import annotations

import html

import pytest

from suho import edge
from tests.gateway.conftest import server_url  # noqa: F401  (a session fixture: daphne serving suho.asgi)
from tests.servers import http, http_base

OUT_OF_RANGE = edge.DATE_OUT_OF_RANGE.format(min=edge.DATE_MIN, max=edge.DATE_MAX)


@pytest.fixture
def portal_get(server_url, trader, client_of):  # noqa: F811
    """GET a path from daphne with Alice's portal session."""
    session = client_of(trader).cookies["sessionid"].value

    def send(path: str):
        return http(http_base(server_url) + path, headers={"Cookie": f"sessionid={session}"})

    return send


@pytest.mark.parametrize("query", ["until=9999-12-31", "since=9999-12-31", "until=0001-01-01", "since=1969-12-31"])
def test_a_trade_filter_date_out_of_range_is_400_with_the_forms_error(portal_get, account, query):
    status, _headers, body = portal_get(f"/portal/accounts/{account.account_id}/?{query}")
    assert status == 400
    page = html.unescape(body.decode())
    assert f'<p class="error" role="alert">{OUT_OF_RANGE}</p>' in page
    assert "Trade history" in page  # the account page, with its filter form showing the error


def test_trade_filter_dates_at_the_bounds_are_answered(portal_get, account):
    status, _headers, _body = portal_get(f"/portal/accounts/{account.account_id}/?since=1970-01-01&until=2999-12-31")
    assert status == 200


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("trades/?until=9999-12-31T00:00:00Z", "until"),
        ("trades/?since=0001-01-01T00:00:00Z", "since"),
        ("balances/?end=0001-01-01T00:00:00Z", "end"),
        ("balances/?start=3000-01-01T00:00:00Z&end=3000-01-02T00:00:00Z", "start"),
    ],
)
def test_an_api_date_out_of_range_is_400_in_the_api_error_format(client_of, trader, account, path, field):
    response = client_of(trader).get(f"/api/accounts/{account.account_id}/{path}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(f"{field}: {OUT_OF_RANGE}")


@pytest.mark.parametrize("query", ["limit=99999999999999999999", "offset=99999999999999999999", "limit=x"])
def test_the_user_api_pages_are_bounded(client_of, trader, account, query):
    response = client_of(trader).get(f"/api/accounts/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
