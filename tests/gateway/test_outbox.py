"""The outbox: a command issued while NATS is down is published once NATS is back, and stored once; a message
JetStream refuses for good is parked after a bounded number of refusals, stops blocking the rows behind it, and
is delivered when an operator re-queues it."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from datetime import timedelta

import nats
import pytest
from django.conf import settings
from django.db import connections, transaction
from django.test import Client, override_settings
from django.urls import reverse
from nats.js.api import StreamConfig
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import User
from compliance.models import AuditLog
from suho.bus import bus_discard
from suho.models import OutboxMessage
from suho.outbox import (
    PARK_AFTER_REFUSALS,
    _drainer,
    _marker,
    _publish_committed,
    outbox_drain,
    outbox_prune,
    outbox_publish_on_commit,
)
from suho.tenancy import tenant_context
from tests.factories import staff_login
from trading.outbound import command_issue

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def stream_copies(subject: str, stream: str = "MT5_OUTBOUND") -> int:
    """Messages stored on `subject`, from the stream's per-subject counts (one request: no fetch that a slow
    machine could time out before the message arrives)."""

    async def count():
        connection = await nats.connect(settings.NATS_URL)
        try:
            info = await connection.jetstream().stream_info(stream, subjects_filter=subject)
            return (info.state.subjects or {}).get(subject, 0)
        finally:
            await connection.close()

    return asyncio.run(count())


def pending(command_id) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.using("operator").filter(msg_id=f"command:{command_id}"))


def test_a_command_issued_while_nats_is_down_is_published_when_it_returns(ea_account):
    tenant, account, _secret = ea_account
    with override_settings(NATS_URL="nats://127.0.0.1:1"):  # nothing listens there
        command = command_issue(tenant_id=tenant.id, account_id=account.account_id, kind="reconnect", issued_by="t")
        _drainer.submit(lambda: None).result(timeout=30)  # the after-commit retry in the background has run, and failed
        [row] = pending(command.command_id)
        assert row.published_at is None and row.attempts >= 1 and row.last_error
        assert row.refusals == 0 and row.retry_at is None and row.parked_at is None  # an outage is not a refusal
    bus_discard("nats://127.0.0.1:1")
    assert outbox_drain() >= 1
    [row] = pending(command.command_id)
    assert row.published_at is not None
    subject = f"mt5.command.{account.account_id}.reconnect"
    assert stream_copies(subject) == 1
    OutboxMessage.objects.using("operator").filter(id=row.id).update(published_at=None)  # as if the ack was lost
    assert outbox_drain() >= 1
    assert stream_copies(subject) == 1  # JetStream dropped the retry by its Nats-Msg-Id


def test_a_message_written_in_a_rolled_back_transaction_is_never_published(ea_account):
    tenant, account, _secret = ea_account
    marker = uuid.uuid4()
    with pytest.raises(RuntimeError), tenant_context(tenant.id):
        command_issue(tenant_id=tenant.id, account_id=account.account_id, kind="restart_ea", issued_by=str(marker))
        raise RuntimeError("the caller's transaction fails after issuing")
    assert not transaction.get_connection().in_atomic_block
    assert not OutboxMessage.objects.using("operator").filter(subject__endswith="restart_ea").exists()


def outbox_write(tenant, subject: str, payload: bytes = b'{"test": 1}') -> OutboxMessage:
    """One message through the real path: written in a tenant transaction, published after commit (and, when that
    fails, handed to the background drainer, which is waited for)."""
    msg_id = f"test:{uuid.uuid4()}"
    with tenant_context(tenant.id):
        outbox_publish_on_commit(tenant_id=tenant.id, subject=subject, payload=payload, msg_id=msg_id)
    _drainer.submit(lambda: None).result(timeout=30)
    return OutboxMessage.objects.using("operator").get(msg_id=msg_id)


def reread(message: OutboxMessage) -> OutboxMessage:
    return OutboxMessage.objects.using("operator").get(id=message.id)


def parked_gauge() -> float:
    with override_settings(METRICS_PUBLIC=True):
        text = Client().get("/metrics").content.decode()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "suho_outbox_parked_messages"]
    return family.samples[0].value


def drain_until_parked(message: OutboxMessage):
    """Drain at each backoff's end (a later clock instead of sleeping) until one refusal is left before parking;
    check on the way that a refused row is not retried inside its backoff and that the backoff doubles. Returns the
    clock at which the last try is due."""
    row = reread(message)
    while True:
        assert row.refusals >= 1 and row.parked_at is None and row.published_at is None
        due = row.retry_at
        if row.refusals == PARK_AFTER_REFUSALS - 1:
            return due
        assert outbox_drain(now=due - timedelta(milliseconds=100)) == 0
        assert reread(message).refusals == row.refusals  # inside the backoff: not retried
        assert outbox_drain(now=due) == 0
        refused = reread(message)
        assert refused.refusals == row.refusals + 1
        assert refused.retry_at - due == timedelta(seconds=2**row.refusals)
        row = refused


def test_a_message_jetstream_refuses_is_parked_after_bounded_retries_and_the_next_one_is_delivered(ea_account, caplog):
    tenant, account, _secret = ea_account
    poison = outbox_write(tenant, f"mt5.alerts.{account.account_id}")  # no stream covers mt5.alerts.>
    assert poison.published_at is None and poison.refusals == 1  # the after-commit try, then the drainer's
    assert poison.last_error.startswith("NoStreamResponseError")
    behind = OutboxMessage.objects.using("operator").create(  # as a crash between commit and publish leaves it
        tenant_id=tenant.id, subject=f"mt5.command.{account.account_id}.reconnect", payload=b"{}",
        msg_id=f"test:{uuid.uuid4()}",
    )  # fmt: skip
    now = drain_until_parked(poison)  # every drain until then returned 0: the row behind waited in line
    with caplog.at_level(logging.ERROR, logger="suho.outbox"):
        assert outbox_drain(now=now) == 1  # the last refusal parks it; the command behind it goes out
    poison, behind = reread(poison), reread(behind)
    assert poison.parked_at is not None and poison.published_at is None and poison.refusals == PARK_AFTER_REFUSALS
    assert behind.published_at is not None
    assert stream_copies(f"mt5.command.{account.account_id}.reconnect") == 1
    assert any(r.levelno == logging.ERROR and "parked" in r.getMessage() for r in caplog.records)
    assert parked_gauge() == 1

    assert outbox_drain(now=now + timedelta(hours=1)) == 0  # parked: no longer tried
    assert outbox_prune(now=now + timedelta(days=30)) >= 1  # the published command goes, the parked row stays
    assert reread(poison).refusals == PARK_AFTER_REFUSALS


def test_a_message_over_the_servers_max_payload_counts_as_a_refusal_not_an_outage(ea_account):
    tenant, account, _secret = ea_account
    too_large = b"x" * (1024 * 1024 + 1)  # the server's default max_payload is 1 MB
    row = outbox_write(tenant, f"mt5.command.{account.account_id}.reconnect", payload=too_large)
    assert row.published_at is None and row.refusals == 1 and row.retry_at is not None
    assert row.last_error.startswith("MaxPayloadError")


def test_an_operator_requeues_a_parked_message_from_the_admin_and_it_is_delivered(ea_account):
    tenant, account, _secret = ea_account
    subject = f"mt5.alerts.{account.account_id}"
    poison = outbox_write(tenant, subject)
    assert outbox_drain(now=drain_until_parked(poison)) == 0
    assert reread(poison).parked_at is not None
    stream = f"TEST_ALERTS_{uuid.uuid4().hex[:8]}"

    async def stream_add(add: bool):
        connection = await nats.connect(settings.NATS_URL)
        try:
            if add:
                await connection.jetstream().add_stream(StreamConfig(name=stream, subjects=[subject]))
            else:
                await connection.jetstream().delete_stream(stream)
        finally:
            await connection.close()

    asyncio.run(stream_add(True))  # the operator's fix: a stream now covers the subject
    try:
        staff = User.objects.create_superuser(username=f"op{uuid.uuid4().hex[:8]}", email="op@x.example",
                                              password="x" * 12)  # fmt: skip
        client = Client()
        staff_login(client, staff)
        url = reverse("admin:suho_outboxmessage_changelist")
        assert client.get(url, {"state": "parked"}).status_code == 200
        response = client.post(url, {"action": "requeue", "_selected_action": [str(poison.id)]})
        assert response.status_code == 302
        _drainer.submit(lambda: None).result(timeout=30)  # the kick after the admin's commit has run
        row = reread(poison)
        assert row.parked_at is None and row.published_at is not None and row.refusals == 0
        assert stream_copies(subject, stream=stream) == 1
        assert parked_gauge() == 0
        audit = AuditLog.objects.using("operator").filter(tenant_id=tenant.id, event_type="admin_update")
        assert [entry.metadata["object_id"] for entry in audit] == [poison.id]  # in the tenant's audit chain
    finally:
        asyncio.run(stream_add(False))


@pytest.fixture
def kicks(monkeypatch):
    """The drainer's kicks, recorded instead of run: a kick says the committing thread's publish or mark failed."""
    calls = []
    monkeypatch.setattr("suho.outbox.outbox_kick", lambda: calls.append(1))
    monkeypatch.setattr("suho.outbox.IMMEDIATE_TIMEOUT_S", 5.0)  # a loaded machine's slow ack is not what is tested
    return calls


def test_the_committing_thread_publishes_and_marks_its_row(ea_account, kicks):
    tenant, account, _secret = ea_account
    row = outbox_write(tenant, f"mt5.command.{account.account_id}.reconnect")
    assert kicks == [], "the committing thread's publish or mark failed"
    assert row.published_at is not None and row.attempts == 1 and row.retry_at is None
    assert stream_copies(f"mt5.command.{account.account_id}.reconnect") == 1


def test_a_committed_message_listener_that_fails_is_logged_and_the_message_is_still_published(
    ea_account, kicks, monkeypatch, caplog
):
    tenant, account, _secret = ea_account
    told = []

    def failing(subject: str, payload: bytes) -> None:
        told.append(subject)
        raise RuntimeError("listener broken")

    monkeypatch.setattr("suho.outbox._committed_listeners", [failing])
    subject = f"mt5.command.{account.account_id}.reconnect"
    with caplog.at_level(logging.ERROR, logger="suho.outbox"):
        row = outbox_write(tenant, subject)
    assert told == [subject]
    assert "a committed-message listener failed" in caplog.text
    assert kicks == [] and row.published_at is not None
    assert stream_copies(subject) == 1


def test_the_committing_thread_does_not_wait_for_a_drain_that_holds_its_row(ea_account, kicks):
    """During an outage a drain holds the rows of its pass while it waits for JetStream (up to the publish timeout
    each). A committing thread whose own publish got through must not wait for that lock to mark its row: an EA's
    EVENT_ACK waits for this thread (a CI run timed out that way). Here the drain lets go without reaching the row,
    as one that stopped at an earlier row's failure does: the row is marked in the background then, so no later
    drain sends it again (after the stream's duplicate window, a second copy would be stored)."""
    tenant, account, _secret = ea_account
    subject = f"mt5.command.{account.account_id}.reconnect"
    message = OutboxMessage.objects.using("operator").create(
        tenant_id=tenant.id, subject=subject, payload=b"{}", msg_id=f"test:{uuid.uuid4()}"
    )
    locked, release, marked = threading.Event(), threading.Event(), threading.Event()
    held, failures = [], []

    def drain_holding_the_row():
        try:
            with transaction.atomic(using="operator"):
                rows = OutboxMessage.objects.using("operator").select_for_update(skip_locked=True)
                held.extend(row.id for row in rows.filter(id=message.id))
                locked.set()
                release.wait(60)
        except Exception as exc:  # noqa: BLE001 — reported by the assertions below
            failures.append(exc)
        finally:
            locked.set()
            connections.close_all()

    def committing_thread():
        try:
            _publish_committed(message)
            marked.set()
        except Exception as exc:  # noqa: BLE001 — reported by the assertions below
            failures.append(exc)
        finally:
            connections.close_all()

    holder = threading.Thread(target=drain_holding_the_row)
    holder.start()
    committer = threading.Thread(target=committing_thread)
    try:
        assert locked.wait(30) and held == [message.id], failures
        committer.start()
        assert marked.wait(20), f"the committing thread waited for the drain's lock {failures}"
        assert reread(message).published_at is None  # the drain holds it
    finally:
        release.set()
        holder.join(30)
        if committer.ident:  # started
            committer.join(30)
    _marker.submit(lambda: None).result(timeout=30)  # the background mark, after the drain let go, has run
    assert failures == [] and kicks == [], (failures, kicks)
    row = reread(message)
    assert row.published_at is not None and row.attempts == 1
    assert outbox_drain() == 0  # nothing left to send again
    assert stream_copies(subject) == 1


def test_a_mark_that_fails_inside_an_operator_transaction_spares_that_transaction(ea_account, kicks, monkeypatch):
    """The committing thread's mark can run while this thread's operator connection is inside a transaction (a
    service-alias commit inside an operator block). Its failure is logged, the row left to the drain, and the outer
    transaction goes on and commits."""
    tenant, account, _secret = ea_account
    subject = f"mt5.command.{account.account_id}.reconnect"
    message = OutboxMessage.objects.using("operator").create(
        tenant_id=tenant.id, subject=subject, payload=b"{}", msg_id=f"test:{uuid.uuid4()}"
    )
    monkeypatch.setattr("suho.outbox.MARK_UNLESS_LOCKED", "UPDATE suho_outbox SET no_such_column = %s WHERE id = %s")
    outer_id = f"test:{uuid.uuid4()}"
    with transaction.atomic(using="operator"):
        _publish_committed(message)
        OutboxMessage.objects.using("operator").create(tenant_id=tenant.id, subject=subject, payload=b"{}",
                                                       msg_id=outer_id)  # fmt: skip
    assert kicks == [1]  # the drain was asked to take the row over
    assert reread(message).published_at is None
    assert OutboxMessage.objects.using("operator").filter(msg_id=outer_id).exists()
