"""A consumer started after the fact replays one account's events from a given time or sequence, in order."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import nats
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from suho.streams import TICKS_NOT_STORED, stream_replay, streams_ensure


def publish(events: list[tuple[str, bytes]]) -> list[int]:
    """Through JetStream, acknowledged: the stream sequence of each (None for a subject no stream keeps)."""

    async def send():
        connection = await nats.connect(settings.NATS_URL)
        try:
            jetstream = connection.jetstream()
            sequences = []
            for subject, data in events:
                if ".quotes." in subject:  # as the gateway sends ticks: core NATS, no stream answers
                    await connection.publish(subject, data)
                    await connection.flush()
                    sequences.append(None)
                else:
                    sequences.append((await jetstream.publish(subject, data)).seq)
            return sequences
        finally:
            await connection.close()

    return asyncio.run(send())


def test_one_accounts_events_replay_from_a_time_in_order_and_nothing_else():
    streams_ensure()
    account, other = str(uuid.uuid4()), str(uuid.uuid4())
    publish([(f"mt5.account.{account}.balance", b"before")])
    since = datetime.now(UTC)
    later = [
        (f"mt5.account.{account}.trades.open", b"open"),
        (f"mt5.account.{other}.trades.open", b"someone else"),
        (f"mt5.account.{account}.quotes.EURUSD", b"tick"),
        (f"mt5.account.{account}.heartbeat", b"beat"),
        (f"mt5.account.{account}.trades.close", b"close"),
    ]
    sequences = publish(later)
    events = stream_replay(account_id=account, since=since)
    assert [event.data for event in events] == [b"open", b"beat", b"close"]  # stream order, across kinds
    assert [event.seq for event in events] == sorted(event.seq for event in events)
    trades = stream_replay(account_id=account, kind="trades", start_seq=sequences[0])
    assert [event.data for event in trades] == [b"open", b"close"]
    assert len(stream_replay(account_id=account, since=since, limit=2)) == 2


def test_ticks_are_not_stored_and_asking_for_them_says_where_they_are():
    """Ticks go to live subscribers only (JetStream with fsync on every write cannot keep up with a gateway's tick
    rate and drops what it cannot store); their history is mt5_broker_quotes."""
    streams_ensure()
    with pytest.raises(ValueError, match="ticks are not kept"):
        stream_replay(kind="quotes")
    with pytest.raises(ValueError, match="unknown kind"):
        stream_replay(kind="positions")
    with pytest.raises(CommandError, match="mt5_broker_quotes"):
        call_command("stream_tail", "--kind", "quotes")
    assert "mt5_broker_quotes" in TICKS_NOT_STORED


def test_stream_tail_prints_an_accounts_events(capsys):
    streams_ensure()
    account = str(uuid.uuid4())
    publish([(f"mt5.account.{account}.heartbeat", b'{"status": "online"}')])
    call_command("stream_tail", "--account", account, "--since", "2000-01-01T00:00:00Z")
    out = capsys.readouterr().out
    assert f"mt5.account.{account}.heartbeat" in out and '{"status": "online"}' in out
