"""`retried_on_deadlock` (suho/sql.py): a transaction PostgreSQL aborts as a deadlock's victim (SQLSTATE 40P01) runs
again, and only the run that commits leaves anything; any other error, or one inside a caller's transaction, is the
caller's. The 40P01 here is raised by the server itself, in the transaction being tested."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections, transaction
from factories import make_account, make_heartbeat, make_tenant, make_user

from suho.routers import SERVICE
from suho.sql import DEADLOCK_ATTEMPTS, retried_on_deadlock
from suho.tenancy import tenant_context

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])


def raise_sqlstate(code: str) -> None:
    with connections[SERVICE].cursor() as cursor:
        cursor.execute(f"DO $$ BEGIN RAISE EXCEPTION 'provoked' USING ERRCODE = '{code}'; END $$")


def heartbeats_written(account, latency_ms: int) -> int:
    with tenant_context(account.tenant_id), connections[SERVICE].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM mt5_ea_heartbeat WHERE account_id = %s AND latency_ms = %s",
                       [account.pk, latency_ms])  # fmt: skip
        return cursor.fetchone()[0]


@pytest.fixture
def account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def writer(account, *, failures: int, code: str = "40P01"):
    """A transaction that writes a heartbeat (latency 77) and is aborted with `code` on its first `failures` runs."""
    runs = []

    @retried_on_deadlock
    def write():
        runs.append(len(runs) + 1)
        with tenant_context(account.tenant_id):
            make_heartbeat(account, latency_ms=77)
            if len(runs) <= failures:
                raise_sqlstate(code)
        return len(runs)

    return write, runs


def test_a_deadlock_victim_runs_again_and_only_the_committed_run_is_kept(account):
    write, runs = writer(account, failures=1)
    assert write() == 2
    assert runs == [1, 2]
    assert heartbeats_written(account, 77) == 1


def test_it_gives_up_after_its_attempts_with_the_deadlock_and_nothing_written(account):
    write, runs = writer(account, failures=DEADLOCK_ATTEMPTS)
    with pytest.raises(OperationalError, match="provoked"):
        write()
    assert len(runs) == DEADLOCK_ATTEMPTS
    assert heartbeats_written(account, 77) == 0


def test_another_error_is_not_run_again(account):
    write, runs = writer(account, failures=1, code="55P03")  # lock_not_available
    with pytest.raises(OperationalError, match="provoked"):
        write()
    assert runs == [1]
    assert heartbeats_written(account, 77) == 0


def test_inside_a_callers_transaction_the_deadlock_is_the_callers(account):
    write, runs = writer(account, failures=1)
    with pytest.raises(OperationalError, match="provoked"), transaction.atomic(using=SERVICE):
        write()
    assert runs == [1]
    assert heartbeats_written(account, 77) == 0
