"""The outbox: a command issued while NATS is down is published once NATS is back, and stored once."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from django.conf import settings
from django.test import override_settings

from suho.bus import bus_discard
from suho.models import OutboxMessage
from suho.outbox import _drainer, outbox_drain
from trading.outbound import command_issue

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def stream_copies(subject: str) -> int:
    async def count():
        connection = await nats.connect(settings.NATS_URL)
        try:
            jetstream = connection.jetstream()
            consumer = await jetstream.pull_subscribe(subject, durable=None, stream="MT5_OUTBOUND")
            messages = []
            try:
                while True:
                    messages += await consumer.fetch(10, timeout=0.5)
            except nats.errors.TimeoutError:
                pass
            return len(messages)
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
    from django.db import transaction

    from suho.tenancy import tenant_context

    tenant, account, _secret = ea_account
    marker = uuid.uuid4()
    with pytest.raises(RuntimeError), tenant_context(tenant.id):
        command_issue(tenant_id=tenant.id, account_id=account.account_id, kind="restart_ea", issued_by=str(marker))
        raise RuntimeError("the caller's transaction fails after issuing")
    assert not transaction.get_connection().in_atomic_block
    assert not OutboxMessage.objects.using("operator").filter(subject__endswith="restart_ea").exists()
