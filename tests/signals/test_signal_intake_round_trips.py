"""A new signal for one account costs at most four database round trips (issue 21), from the ML-engine key's look-up
to the outbox row marked published, with the account's broker quote in the cache as the gateway keeps it: the
producer's id is checked by the insert itself (the unique constraint); the account, its tenant, the reference quote
and the risk gate's loss figures (today's loss, the drawdown) are read in one round trip (two for an account whose
EA has connected but sent no balance snapshot in the last day: signals.selectors); the signal, its audit row and its
outbox row are written in one. Each of those two is a transaction of its own, the tenant setting its first
statement (suho.sql.tenant_statements). Seven before that (BEGIN, the setting and COMMIT each on its own), nine
before that, eleven before that, thirteen before issue 21.

Round trips are counted at the wire, as for the HELLO (tests/round_trips.py).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from quotes.ingest import TickRow, broker_quotes_after_commit
from signals.models import TradingSignal
from signals.serializers import SignalInputSerializer
from signals.services import signal_submit
from suho.routers import operator_path
from tests.round_trips import round_trips_counted
from tests.signals.conftest import BROKER_ASK, BROKER_BID, quote_put, seed_json

MAX_NEW_SIGNAL_ROUND_TRIPS = 4


@pytest.fixture
def counter(committed):
    with round_trips_counted() as proxy:
        yield proxy


def test_a_new_signal_takes_at_most_four_round_trips_and_a_repeat_writes_nothing(api, account, published, counter):
    broker_quotes_after_commit([TickRow(time.time_ns() // 1000, str(account.tenant_id), str(account.account_id),
                                        "EURUSD", float(BROKER_BID), float(BROKER_ASK), 20.0, 100, True, "london",
                                        True)])  # fmt: skip
    api.post("/api/signals/", seed_json(account.account_id))  # the key's use recorded
    body = seed_json(account.account_id)

    before = counter.count
    first = api.post("/api/signals/", body)
    used = counter.count - before
    again = api.post("/api/signals/", {**body, "volume": 0.2})

    assert first.status_code == 201, first.json()
    assert 3 <= used <= MAX_NEW_SIGNAL_ROUND_TRIPS, f"{used} round trips:\n{counter.trips_since(before, used)}"
    assert again.status_code == 200 and again.json()["signal_id"] == first.json()["signal_id"]
    assert again.json()["volume"] == 0.1
    with operator_path():
        assert TradingSignal.objects.filter(client_signal_id=body["signal_id"]).count() == 1
    assert len(published.for_account(account.account_id)) == 2  # the warm-up's and the first; the repeat's none


def test_two_copies_at_once_record_one_signal_and_both_answer_with_it(tenant, account, published):
    quote_put(account)
    spec, client_id = seed_json(account.account_id), "race-1"
    serializer = SignalInputSerializer(data=spec)
    serializer.is_valid(raise_exception=True)
    results, errors, start = [], [], threading.Barrier(2)

    def submit() -> None:
        start.wait()
        try:
            submission = signal_submit(tenant_id=tenant.id, account_id=account.account_id,
                                       payload=serializer.spec(), source="ml", client_signal_id=client_id)  # fmt: skip
            results.append(submission)
        except Exception as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not errors and not any(thread.is_alive() for thread in threads), errors
    assert sorted(r.created for r in results) == [False, True]
    assert len({r.signals[0].signal_id for r in results}) == 1
    with operator_path():
        assert TradingSignal.objects.filter(client_signal_id=client_id).count() == 1
    assert len(published.for_account(account.account_id)) == 1


def test_no_statement_of_a_signal_is_parsed_again_on_every_post(tenant, account, published, monkeypatch):
    """psycopg keeps the converted form of a query of at most 50 parameters unless told otherwise
    (suho.sql.psycopg_statement_cache_widen, at start). A signal's write, its row with the audit and outbox rows in
    one query string, has more: without it, psycopg parses that query on every POST, and here every parse that
    bypassed psycopg's cache is counted."""
    from psycopg import _queries

    uncached = []
    parse = _queries._query2pg_client_nocache  # what psycopg calls for a query it will not cache

    def counted(query, encoding):
        uncached.append(query[:60])
        return parse(query, encoding)

    monkeypatch.setattr(_queries, "_query2pg_client_nocache", counted)
    quote_put(account)
    serializer = SignalInputSerializer(data=seed_json(account.account_id))
    serializer.is_valid(raise_exception=True)
    for client_id in ("parse-1", "parse-2"):
        submission = signal_submit(tenant_id=tenant.id, account_id=account.account_id, payload=serializer.spec(),
                                   source="ml", client_signal_id=client_id)  # fmt: skip
        assert submission.created

    assert uncached == []
    assert len(published.for_account(account.account_id)) == 2
