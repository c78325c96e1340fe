"""The signal lifecycle (seed §7.1) is enforced by the database: every status change not in TRANSITIONS fails."""

from __future__ import annotations

import itertools

import pytest
from django.db import IntegrityError, connections, transaction
from factories import make_account, make_signal, make_tenant, make_user

from signals.lifecycle import ILLEGAL_TRANSITION, STATUSES, TRANSITIONS
from suho.tenancy import tenant_context

PAIRS = [(old, new) for old, new in itertools.permutations(STATUSES, 2)]


@pytest.fixture
def account(db):
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def move(signal, new: str) -> None:
    with tenant_context(signal.tenant_id), connections["default"].cursor() as cursor:
        cursor.execute("UPDATE mt5_trading_signals SET status = %s WHERE signal_id = %s", [new, signal.pk])


def status_of(signal) -> str:
    with tenant_context(signal.tenant_id), connections["default"].cursor() as cursor:
        cursor.execute("SELECT status FROM mt5_trading_signals WHERE signal_id = %s", [signal.pk])
        return cursor.fetchone()[0]


def test_the_table_covers_every_pair_of_statuses():
    assert len(PAIRS) == 42
    assert TRANSITIONS < set(PAIRS)


@pytest.mark.parametrize(("old", "new"), sorted(TRANSITIONS))
def test_a_transition_in_the_table_is_accepted(account, old, new):
    signal = make_signal(account, status=old)
    move(signal, new)
    assert status_of(signal) == new


@pytest.mark.parametrize(("old", "new"), sorted(set(PAIRS) - TRANSITIONS))
def test_a_transition_not_in_the_table_is_refused_by_the_database(account, old, new):
    signal = make_signal(account, status=old)
    with pytest.raises(IntegrityError, match=ILLEGAL_TRANSITION.format(old=old, new=new)):
        with transaction.atomic():
            move(signal, new)
    assert status_of(signal) == old


def test_an_update_that_keeps_the_status_is_not_a_transition(account):
    signal = make_signal(account, status="closed")
    move(signal, "closed")
    assert status_of(signal) == "closed"


def test_an_unknown_status_is_refused(account):
    signal = make_signal(account)
    with pytest.raises(IntegrityError), transaction.atomic():
        move(signal, "lost")
