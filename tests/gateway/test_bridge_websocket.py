"""Bridge mode end to end (issue 10's acceptance): 100,000 ticks from simulated EAs over real WebSockets to daphne in
INGEST_MODE=bridge, the data bridge (`manage.py data_bridge`, its own process) SIGKILLed twice mid-stream and
restarted: every tick the gateway acknowledged is in mt5_broker_quotes exactly once.

What "acknowledged" means for a tick. Ticks have no per-message ack (docs/protocol.md §8: prices are snapshots, not
acknowledged, not retried), so the gateway's only ways to refuse one are to tell the EA: ERROR (bad price, unknown
symbol, malformed frame, rate limit) or SESSION_CLOSING and a close. A tick it does not refuse goes into its batcher,
which publishes it to SUHO_INGEST and retries the same message until JetStream acks it (a bounded buffer aside, whose
overflow would be a loss this test counts). So here: the gateway acknowledged every tick an EA sent on a connection
that was still open at the end and on which the server sent neither ERROR nor SESSION_CLOSING. The test asserts that
premise for every EA, then that the ticks stored are exactly the ticks sent: each (account, symbol, time) once, none
missing, none extra, each with the tenant, bid and ask it was sent with.

The kills are mid-stream: each EA holds before the packet at one third (two thirds) of its stream until the first
(second) kill is done. A bridge is killed once it has committed a batch of its own and fetched another since (the
consumer's delivered sequence moved on), so most likely in the middle of applying or acking it. What it had fetched
and not acked — committed or not — JetStream redelivers after the ack wait, here 2 s (production: 10 s) to keep the
test short; a batch redelivered while a live bridge still applies it is skipped through suho_bridge_applied, so the
short ack wait exercises that path too. (Checked against broken bridges: one that skips that check stores ticks
twice, one that acks before its commit loses some.)

The first bridge is held (SIGSTOP) until the test has seen that its durable consumer does not exist yet, then the
test waits for the consumer with a deadline: on a loaded machine the bridge's Django start took long enough that
asking for the consumer at once failed with NotFoundError (issue 15, finding 15); holding it makes that case happen
on every run instead of by chance.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import nats
import pytest
from channels.db import database_sync_to_async
from django.conf import settings

import binproto
from bench.ea_load import Stats, ea_connect, reader
from tests.gateway.ea_client import (
    bridge_process,
    ingest_consumer_wait,
    ingest_queue_depth,
    ingest_queue_reset,
    rows,
)
from trading.bridge import DURABLE, INGEST_STREAM

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

TENANTS, ACCOUNTS_PER_TENANT = 2, 2
SYMBOLS = 25  # per PRICE_STREAM packet: one tick per symbol, all with the packet's timestamp
PACKETS = 1_000  # per EA: 4 EAs × 1,000 packets × 25 symbols = 100,000 ticks
TICKS = TENANTS * ACCOUNTS_PER_TENANT * PACKETS * SYMBOLS
STEP_US = 1_000  # packet n of every EA carries timestamp base + n ms
PACKETS_PER_S = 150  # per EA: ≈ 15,000 ticks/s in all, so the stream outlasts a bridge's restart
GATES = (PACKETS // 3, 2 * PACKETS // 3)  # an EA waits here until the first, then the second, kill is done
ACK_WAIT_S = "2"  # the bridges' --ack-wait
SETTLE_S = 120.0  # generous: a loaded machine
QUIET_S = 10.0  # an empty queue and no new row for this long: the rest is lost (a broken bridge fails in seconds)


def tick_prices(packet: int, symbol: int) -> tuple[float, float]:
    bid = round(1.0 + symbol / 100 + packet / 100_000, 5)
    return bid, round(bid + 0.0002, 5)


def symbol_name(symbol: int) -> str:
    return f"SIM{symbol:02d}"


def ea_frames(base_us: int) -> list[bytes]:
    table = binproto.SymbolTable(symbols=tuple(binproto.SymbolEntry(i, 5, symbol_name(i)) for i in range(SYMBOLS)))
    packets = [
        binproto.PriceStream(
            ticks=tuple(binproto.PriceTick(i, *tick_prices(n, i), 20) for i in range(SYMBOLS)),
            version=binproto.V2, timestamp_us=base_us + n * STEP_US,
        )
        for n in range(PACKETS)
    ]  # fmt: skip
    return [binproto.encode(table)] + [binproto.encode(packet) for packet in packets]


async def ea_stream(ws, frames: list[bytes], gates: dict[int, asyncio.Event], sent: list[int], index: int) -> None:
    """Send the symbol table, then the packets at PACKETS_PER_S, waiting at each gate until it opens."""
    await ws.send(frames[0])
    loop = asyncio.get_running_loop()
    start = loop.time()
    for packet, frame in enumerate(frames[1:]):
        if packet in gates and not gates[packet].is_set():
            await gates[packet].wait()
            start = loop.time() - packet / PACKETS_PER_S  # resume the pace, no burst
        delay = start + packet / PACKETS_PER_S - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send(frame)
        sent[index] += SYMBOLS


def stored_count(account_ids: list[str]) -> int:
    [(count,)] = rows("SELECT count(*) FROM mt5_broker_quotes WHERE account_id = ANY(%s::uuid[])", [account_ids])
    return count


def stored_ticks(account_ids: list[str]) -> list[tuple]:
    return rows(
        "SELECT tenant_id::text, account_id::text, symbol, (extract(epoch FROM time) * 1000000)::bigint,"
        " bid::float8, ask::float8 FROM mt5_broker_quotes WHERE account_id = ANY(%s::uuid[])",
        [account_ids],
    )


async def test_every_tick_the_gateway_acknowledged_is_stored_once_though_the_bridge_is_killed_twice(
    ea_accounts, bridge_server_url, tmp_path
):
    started = time.monotonic()
    await ingest_queue_reset()
    log_path = tmp_path / "bridge.log"
    bridge = bridge_process(log_path, "--ack-wait", ACK_WAIT_S)
    bridge.send_signal(signal.SIGSTOP)  # held until the test has looked for its consumer: what a loaded machine did
    eas = await database_sync_to_async(ea_accounts)(TENANTS, ACCOUNTS_PER_TENANT)
    account_ids = [str(account.account_id) for _tenant, account, _secret in eas]
    base_us = time.time_ns() // 1000 - 60_000_000  # a minute ago: trusted, and no two packets share a time
    frames = ea_frames(base_us)
    sockets = [
        await ea_connect(bridge_server_url, {"account_id": str(account.account_id), "api_key": secret}, True)
        for _tenant, account, secret in eas
    ]
    stats = [Stats() for _ in eas]
    readers = [asyncio.create_task(reader(ws, s)) for ws, s in zip(sockets, stats, strict=True)]
    gates = {packet: asyncio.Event() for packet in GATES}
    sent = [0] * len(eas)
    streams = [asyncio.create_task(ea_stream(ws, frames, gates, sent, i)) for i, ws in enumerate(sockets)]
    stored = partial_stored = 0
    kills: list[dict] = []
    nc = await nats.connect(settings.NATS_URL)
    try:
        jetstream = nc.jetstream()
        assert not await jetstream.consumers_info(INGEST_STREAM)  # the held bridge has not created its consumer yet
        bridge.send_signal(signal.SIGCONT)
        await ingest_consumer_wait(jetstream, DURABLE, process=bridge)
        for packet, gate in gates.items():
            seen, fetched_by_then = await database_sync_to_async(stored_count)(account_ids), None
            while True:  # until this bridge has committed a batch and fetched another since: mid-batch, most likely
                assert bridge.poll() is None, log_path.read_text()[-3000:]
                assert not any(s.done() for s in streams), [s.exception() for s in streams if s.done()]
                partial_stored = await database_sync_to_async(stored_count)(account_ids)
                consumer = await jetstream.consumer_info(INGEST_STREAM, DURABLE)
                if partial_stored > seen:
                    seen, fetched_by_then = partial_stored, consumer.delivered.stream_seq
                elif fetched_by_then is not None and consumer.delivered.stream_seq > fetched_by_then:
                    break
                elif (
                    fetched_by_then is not None
                    and all(n >= packet * SYMBOLS for n in sent)
                    and not (consumer.num_pending or consumer.num_ack_pending)
                ):
                    break  # every EA waits at the gate and the bridge has caught up: kill it idle
                await asyncio.sleep(0.02)
            bridge.send_signal(signal.SIGKILL)
            bridge.wait(timeout=10)
            kills.append({"at_s": round(time.monotonic() - started, 1), "sent": sum(sent), "stored": partial_stored,
                          "unacked": consumer.num_ack_pending, "pending": consumer.num_pending})  # fmt: skip
            bridge = bridge_process(log_path, "--ack-wait", ACK_WAIT_S)
            gate.set()
        await asyncio.wait_for(asyncio.gather(*streams), SETTLE_S)
        sent_s = time.monotonic() - started
        deadline, last, quiet_since = time.monotonic() + SETTLE_S, -1, time.monotonic()
        while (stored := await database_sync_to_async(stored_count)(account_ids)) < TICKS or await ingest_queue_depth():
            assert bridge.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{stored} of {TICKS} ticks stored after {SETTLE_S} s; kills {kills}"
            if stored != last or await ingest_queue_depth():
                last, quiet_since = stored, time.monotonic()
            elif time.monotonic() - quiet_since > QUIET_S:
                break  # the queue is empty and nothing moves: what is missing is lost; the checks below say what
            await asyncio.sleep(0.1)
        open_at_end = [ws.state.name for ws in sockets]
        stored_s = time.monotonic() - started
    finally:
        await nc.close()
        for task in streams + readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets))
        bridge.send_signal(signal.SIGCONT)  # in case it is still held
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=20)
        await ingest_queue_reset()

    # The premise: the gateway refused nothing, so every tick sent was acknowledged.
    assert sum(sent) == TICKS and len(kills) == 2 and all(kill["sent"] < TICKS for kill in kills), (sent, kills)
    assert open_at_end == ["OPEN"] * len(eas)
    assert [(dict(s.errors), dict(s.closed)) for s in stats] == [({}, {})] * len(eas)
    # Exactly once: the stored ticks are the sent ticks, each once, each with its tenant and prices.
    found = await database_sync_to_async(stored_ticks)(account_ids)
    expected = {
        (str(tenant.id), str(account.account_id), symbol_name(i), base_us + n * STEP_US): tick_prices(n, i)
        for tenant, account, _secret in eas
        for n in range(PACKETS)
        for i in range(SYMBOLS)
    }
    copies = Counter(row[:4] for row in found)
    assert len(found) == TICKS, f"{len(found)} rows for {TICKS} ticks; {sum(c > 1 for c in copies.values())} twice"
    assert set(copies) == set(expected) and max(copies.values()) == 1
    assert all(tuple(row[4:]) == expected[row[:4]] for row in found)
    print(f"\n{TICKS} ticks; kills {kills}; all sent at {sent_s:.1f} s, stored at {stored_s:.1f} s, checked at"
          f" {time.monotonic() - started:.1f} s")  # fmt: skip
