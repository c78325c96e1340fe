"""A `transaction=True` test's clean-up survives being a deadlock's victim (tests/conftest.py): a server that is
still committing its disconnect bookkeeping when the flush's TRUNCATE takes its table locks must not turn a passed
test into an error (seen once under load in tests/gateway/test_protocol_contract.py). Provoked here for certain: a
second connection holds the last table TRUNCATE needs and then asks for the first one it took."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.core.management.color import no_style
from django.db import connections
from django.test import TransactionTestCase

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


class OwnerFlush(TransactionTestCase):
    __test__ = False  # made only to be flushed, not collected
    databases = {"owner"}

    def runTest(self):  # a TestCase needs a test method to be made; this one is only flushed
        pass


def test_a_flush_that_a_deadlock_aborts_is_done_again():
    owner = connections["owner"]
    tables = owner.introspection.django_table_names(only_existing=True, include_views=False)
    [truncate] = owner.ops.sql_flush(no_style(), tables)
    assert truncate.startswith("TRUNCATE")
    first, last = (owner.ops.quote_name(name) for name in (tables[0], tables[-1]))
    params = owner.get_connection_params()
    other = psycopg.connect(**{key: value for key, value in params.items() if key != "cursor_factory"})
    holding, released = threading.Event(), threading.Event()

    def the_other_transaction():
        with other.transaction():
            other.execute(f"LOCK TABLE {last} IN ROW EXCLUSIVE MODE")
            holding.set()
            time.sleep(0.5)  # the flush is waiting for `last` by now, holding `first`
            other.execute(f"LOCK TABLE {first} IN ROW EXCLUSIVE MODE")  # the cycle: one of the two is aborted
            time.sleep(0.2)
        released.set()

    worker = threading.Thread(target=the_other_transaction)
    worker.start()
    try:
        assert holding.wait(10)
        OwnerFlush()._fixture_teardown()  # PostgreSQL picks the flush, which waited first, as the victim
    finally:
        worker.join(30)
        other.close()
    assert released.is_set(), "the other transaction was the one aborted: the flush was never retried"
