"""The lifecycle service: every move not in TRANSITIONS is refused and changes nothing; legal moves are audited
with who made them; expiry; cancel through the API (409 for anything but PENDING), also by an operator."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from factories import make_signal, staff_login

from accounts.models import User
from compliance.models import AuditLog
from signals import lifecycle
from signals.models import TradingSignal
from signals.services import SignalTransitionError, signal_transition, signals_expire_stale
from signals.services.lifecycle import EXPIRY_REASON, SIGNAL_ILLEGAL_TRANSITION
from signals.tasks import signals_expire_stale_task
from suho.routers import operator_path

ILLEGAL = sorted(set(itertools.product(lifecycle.STATUSES, repeat=2)) - lifecycle.TRANSITIONS)


def _state(signal) -> tuple[str, str, int]:
    with operator_path():
        row = TradingSignal.objects.get(pk=signal.pk)
        audits = AuditLog.objects.filter(metadata__signal_id=str(signal.pk)).count()
    return row.status, row.status_reason, audits


def test_the_illegal_table_is_every_other_pair():
    assert len(ILLEGAL) == 7 * 7 - len(lifecycle.TRANSITIONS) == 41


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_an_illegal_transition_is_refused_and_nothing_changes(account, old, new):
    signal = make_signal(account, status=old)
    before = _state(signal)
    with pytest.raises(SignalTransitionError) as refused:
        signal_transition(signal=signal, to=new, reason="test", actor="test")
    assert refused.value.message == SIGNAL_ILLEGAL_TRANSITION.format(old=old, new=new)
    assert _state(signal) == before


@pytest.mark.parametrize(("old", "new"), sorted(lifecycle.TRANSITIONS))
def test_a_legal_transition_is_made_and_audited_with_its_actor(account, old, new):
    signal = make_signal(account, status=old)
    moved = signal_transition(signal=signal, to=new, reason="because", actor="operator:alice")
    assert (moved.status, moved.status_reason) == (new, "because")
    assert _state(signal) == (new, "because", 1)
    with operator_path():
        audit = AuditLog.objects.get(metadata__signal_id=str(signal.pk))
    assert (audit.event_type, audit.metadata["old_status"], audit.metadata["actor"]) == (
        f"signal_{new}", old, "operator:alice")  # fmt: skip


def test_a_stale_copy_is_checked_again_on_the_locked_row(account):
    signal = make_signal(account, status=lifecycle.SENT)
    stale_copy = TradingSignal(**{f.attname: getattr(signal, f.attname) for f in TradingSignal._meta.concrete_fields})
    signal_transition(signal=signal, to=lifecycle.EXECUTED, reason="filled", actor="ea")
    with pytest.raises(SignalTransitionError):
        signal_transition(signal=stale_copy, to=lifecycle.EXPIRED, reason="late", actor="expiry")  # copy says SENT
    assert _state(signal)[0] == lifecycle.EXECUTED


def test_expiry_moves_pending_and_sent_signals_past_valid_until_and_nothing_else(account):
    now = timezone.now()
    past = now - timedelta(seconds=1)
    pending = make_signal(account, valid_until=past)
    sent = make_signal(account, status=lifecycle.SENT, valid_until=past)
    executed = make_signal(account, status=lifecycle.EXECUTED, valid_until=past)
    fresh = make_signal(account, valid_until=now + timedelta(minutes=1))
    assert signals_expire_stale(now=now) == 2
    assert _state(pending) == (lifecycle.EXPIRED, EXPIRY_REASON, 1)
    assert _state(sent) == (lifecycle.EXPIRED, EXPIRY_REASON, 1)
    assert _state(executed)[0] == lifecycle.EXECUTED
    assert _state(fresh)[0] == lifecycle.PENDING
    assert signals_expire_stale_task() == 0  # nothing left: the scheduled task is idempotent
    with operator_path():
        assert not TradingSignal.objects.get(pk=pending.pk).is_valid


def test_cancel_through_the_api_then_again_is_409(api, account):
    signal = make_signal(account)
    response = api.post(f"/api/signals/{signal.pk}/cancel/")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == ("cancelled", "cancelled by ml-engine:lstm")
    before = _state(signal)
    again = api.post(f"/api/signals/{signal.pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "illegal_transition",
        "message": SIGNAL_ILLEGAL_TRANSITION.format(old="cancelled", new="cancelled"),
    }
    assert _state(signal) == before


def test_an_operator_cancels_any_tenants_signal_and_is_named_in_the_audit(account):
    with operator_path():
        staff = User.objects.create_user(username="ops", password="x" * 12, is_staff=True)
    signal = make_signal(account, status=lifecycle.PENDING)
    client = Client()
    staff_login(client, staff)
    response = client.post(f"/api/signals/{signal.pk}/cancel/")
    assert response.status_code == 200, response.content
    assert _state(signal) == (lifecycle.CANCELLED, "cancelled by operator:ops", 1)
    with operator_path():
        assert AuditLog.objects.get(metadata__signal_id=str(signal.pk)).user_id == staff.pk
    assert client.get("/api/signals/").json()["count"] == 1
    assert client.post("/api/signals/", {}, content_type="application/json").status_code == 403
