"""The ML engine's feedback feed, GET /api/signals/feedback/ (seed §7.3, issue 20): its own key, its own tenant's
closed executions, page by page from a cursor, before and after an export; traders and forged cursors refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from factories import make_account, make_tenant, make_user
from feedback_factory import feedback_generate

from accounts.user_tokens import user_tokens_issue
from signals.api import FEEDBACK_ML_KEY_ONLY
from signals.learning import feedback_export
from signals.models import TradingSignal
from signals.serializers import FEEDBACK_CURSOR_INVALID, FEEDBACK_RANGE_INVALID
from signals.services import ml_engine_key_create
from suho.tenancy import tenant_context

URL = "/api/signals/feedback/"


def _get(key: str, **params):
    return Client().get(URL, params, HTTP_AUTHORIZATION=f"Bearer {key}")


def _all_pages(key: str, **params) -> tuple[list[dict], int]:
    """Every row, following next_cursor; and how many pages it took."""
    rows, cursor, pages = [], None, 0
    while True:
        response = _get(key, **params, **({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.content
        body = response.json()
        rows += body["results"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return rows, pages
        assert pages < 100


@pytest.fixture
def other_account(committed):
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def test_the_ml_key_pages_through_all_of_its_tenants_feedback_before_and_after_an_export(
    account, other_account, tmp_path
):
    now = timezone.now()
    ours = feedback_generate(account, count=7, seed=11, now=now)
    feedback_generate(account, count=2, seed=12, now=now, closed=False)  # open trades: not feedback yet
    theirs = feedback_generate(other_account, count=4, seed=13, now=now)
    our_key = ml_engine_key_create(tenant_id=account.tenant_id, label="lstm")[1]
    their_key = ml_engine_key_create(tenant_id=other_account.tenant_id, label="xgb")[1]

    before, pages = _all_pages(our_key, limit=3)
    assert pages == 3
    ordered = sorted(ours, key=lambda s: (s.time, s.signal_id))
    assert [row["signal_id"] for row in before] == [str(s.signal_id) for s in ordered], "stable order, no repeats"
    assert {row["feedback_status"] for row in before} == {"pending"}

    feedback_export(now=now, directory=tmp_path)

    after, _ = _all_pages(our_key, limit=3)
    assert [row["signal_id"] for row in after] == [row["signal_id"] for row in before], "exporting hides nothing"
    assert {row["feedback_status"] for row in after} == {"included_in_training"}
    for row_before, row_after in zip(before, after, strict=True):
        unchanged = {k: v for k, v in row_after.items() if k not in ("feedback_status", "exported_at")}
        assert unchanged == {k: v for k, v in row_before.items() if k not in ("feedback_status", "exported_at")}

    theirs_read, _ = _all_pages(their_key, limit=1000)
    assert {row["signal_id"] for row in theirs_read} == {str(s.signal_id) for s in theirs}, "only its own tenant"


def test_feedback_is_filtered_by_signal_time_and_strategy(account):
    now = timezone.now()
    recent = feedback_generate(account, count=3, seed=21, now=now, days_ago=1)
    old = feedback_generate(account, count=3, seed=22, now=now, days_ago=20)
    with tenant_context(account.tenant_id):
        TradingSignal.objects.filter(signal_id=recent[0].signal_id).update(strategy_name="breakout")
    key = ml_engine_key_create(tenant_id=account.tenant_id)[1]

    rows, _ = _all_pages(key, start=(now - timedelta(days=10)).isoformat())
    assert {row["signal_id"] for row in rows} == {str(s.signal_id) for s in recent}
    rows, _ = _all_pages(key, end=(now - timedelta(days=10)).isoformat())
    assert {row["signal_id"] for row in rows} == {str(s.signal_id) for s in old}
    rows, _ = _all_pages(key, strategy="breakout")
    assert [row["signal_id"] for row in rows] == [str(recent[0].signal_id)]


def test_a_traders_jwt_or_session_is_refused(account):
    feedback_generate(account, count=1, seed=31, now=timezone.now())
    access = user_tokens_issue(user=account.user)["access"]
    response = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {access}")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "permission_denied", "message": FEEDBACK_ML_KEY_ONLY}}
    client = Client()
    client.force_login(account.user)
    assert client.get(URL).status_code == 403
    assert Client().get(URL).status_code == 401


def test_a_cursor_this_api_did_not_issue_is_a_clear_400(account):
    feedback_generate(account, count=3, seed=41, now=timezone.now())
    key = ml_engine_key_create(tenant_id=account.tenant_id)[1]
    issued = _get(key, limit=1).json()["next_cursor"]
    for cursor in ("junk", issued[:-2] + "xx", issued.replace(":", ";", 1)):
        response = _get(key, cursor=cursor)
        assert response.status_code == 400
        message = f"cursor: {FEEDBACK_CURSOR_INVALID}"
        assert response.json() == {"error": {"code": "invalid_request", "message": message}}
    now = timezone.now()
    response = _get(key, start=now.isoformat(), end=(now - timedelta(days=1)).isoformat())
    assert response.status_code == 400 and FEEDBACK_RANGE_INVALID in response.json()["error"]["message"]
    assert _get(key, limit=0).status_code == 400
