"""A heartbeat flush marks its accounts online locking their rows in account_id order, the order every other
transaction that locks several account rows uses (trading/outbound_batch.py): so it never deadlocks with one. Here
another transaction holds the lower account FOR SHARE while the flush, given the accounts in the other order, waits
for it; the other then takes the higher one too, which an out-of-order flush would already hold."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest
from django.db import connections
from factories import heartbeat_row, make_account, make_tenant, make_user

from accounts.models import MT5Account
from suho.tenancy import TENANT_SETTING, tenant_context
from tests.servers import owner_conninfo
from trading.ingest import heartbeats_insert

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])


def test_a_flush_waiting_for_the_lower_account_holds_no_lock_on_the_higher_one(caplog):
    tenant = make_tenant()
    user = make_user(tenant)
    lower, higher = sorted((make_account(tenant, user), make_account(tenant, user)), key=lambda a: str(a.pk))
    caplog.set_level(logging.WARNING, logger="suho.sql")
    other = psycopg.connect(owner_conninfo())
    other.execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, str(tenant.id)])
    other.execute("SELECT 1 FROM mt5_user_accounts WHERE account_id = %s FOR SHARE", [lower.pk])

    def flush():
        try:
            heartbeats_insert([heartbeat_row(higher), heartbeat_row(lower)])
        finally:
            connections.close_all()

    flushing = threading.Thread(target=flush)
    flushing.start()
    try:
        time.sleep(0.5)  # the flush is waiting for `lower` by now
        other.execute("SET LOCAL lock_timeout = '3s'")
        other.execute("SELECT 1 FROM mt5_user_accounts WHERE account_id = %s FOR SHARE", [higher.pk])
        other.commit()
    finally:
        other.close()
        flushing.join(10)
    assert "deadlock" not in caplog.text
    with tenant_context(tenant.id):
        online = set(MT5Account.objects.filter(connection_status="online").values_list("pk", flat=True))
    assert online == {lower.pk, higher.pk}
