"""The legacy v1 price packet on the gateway's fast path (decode_v1_price_records): what becomes a row, what not."""

from __future__ import annotations

import struct
import time

import pytest
from channels.db import database_sync_to_async

import binproto
from accounts.models import MT5Account
from suho.tenancy import tenant_context
from tests.gateway.ea_client import connect, ingest_settled, receive_until, rows
from trading.consumers import TICK_PRICE_OUT_OF_RANGE

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def packet(records: list[tuple[int, int, int, int]], timestamp_us: int) -> bytes:
    """A v1 packet from raw wire records (symbol id, bid × 100000, ask × 100000, flags), zero-padded to 144 bytes."""
    body = b"".join(struct.pack("<IIII", *record) for record in records)
    raw = struct.pack("<IHBBQ", binproto.MAGIC, 1, 1, len(records), timestamp_us) + body
    return raw + bytes(binproto.V1_PACKET_SIZE - len(raw))


def quotes(account_id):
    return rows(
        "SELECT symbol, bid::float, ask::float, spread::float FROM mt5_broker_quotes WHERE account_id = %s"
        " ORDER BY symbol",
        [account_id],
    )


async def test_unknown_ids_give_no_row_and_a_zero_price_is_refused_with_an_error(ea_account):
    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    now_us = time.time_ns() // 1000
    await communicator.send_to(
        bytes_data=packet(
            [(1, 109_537, 109_557, 20 | 3 << 16), (255, 1, 2, 0), (2, 0, 127_325, 25), (8, 4_213_012, 4_213_512, 50)],
            now_us,
        )
    )
    error = await receive_until(communicator, binproto.Error)
    assert (error.code, error.reason) == (binproto.ErrorCode.MALFORMED_FRAME, TICK_PRICE_OUT_OF_RANGE)
    await communicator.disconnect()
    await ingest_settled()
    assert await database_sync_to_async(quotes)(account.account_id) == [
        ("EURUSD", pytest.approx(1.09537), pytest.approx(1.09557), 20.0),
        ("XAUUSD", pytest.approx(42.13012), pytest.approx(42.13512), 50.0),
    ]


async def test_the_accounts_own_v1_id_table_names_the_symbols(ea_account):
    tenant, account, secret = ea_account

    def renumber():
        with tenant_context(tenant.id):
            MT5Account.objects.filter(pk=account.pk).update(symbol_id_overrides={"8": "GOLD.m", "9": "XAUUSD"})

    await database_sync_to_async(renumber)()
    communicator, _ = await connect(account, secret)
    await communicator.send_to(
        bytes_data=packet([(8, 4_213_012, 4_213_512, 50), (9, 200_000, 200_100, 10)], time.time_ns() // 1000)
    )
    await communicator.disconnect()
    await ingest_settled()
    assert [row[0] for row in await database_sync_to_async(quotes)(account.account_id)] == ["GOLD.m", "XAUUSD"]
