"""The account page's balance chart: the last 24 h of the 5-minute rollup, then every raw snapshot newer than its
last bucket, so it shows the EA's stream before the first rollup refresh (issue 20: "No balance data yet" after
6 minutes of streaming) and between refreshes."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from tests.factories import make_balance, make_rollup


def _chart(client, account) -> dict:
    page = client.get(f"/portal/accounts/{account.account_id}/").content.decode()
    found = re.search(r'<script id="balance-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(found.group(1)) if found else {}


def test_raw_snapshots_show_before_any_rollup(account, client_of):
    now = timezone.now()
    for seconds, equity in ((90, "10001.00"), (60, "10002.00"), (30, "10003.00")):
        make_balance(account, time=now - timedelta(seconds=seconds), equity=Decimal(equity))
    chart = _chart(client_of(account.user), account)
    assert chart["equity"] == [10001.0, 10002.0, 10003.0]


def test_the_rollup_comes_first_then_only_the_snapshots_after_its_last_bucket(account, client_of):
    bucket = (timezone.now() - timedelta(minutes=20)).replace(second=0, microsecond=0)
    bucket -= timedelta(minutes=bucket.minute % 5)
    old = make_rollup(account, bucket=bucket - timedelta(hours=25), equity=Decimal("9000.00"))  # outside 24 h
    make_rollup(account, bucket=bucket - timedelta(minutes=5), equity=Decimal("10010.00"))
    make_rollup(account, bucket=bucket, equity=Decimal("10020.00"))
    make_balance(account, time=bucket + timedelta(minutes=4), equity=Decimal("1.00"))  # inside the last bucket
    make_balance(account, time=bucket + timedelta(minutes=5), equity=Decimal("10030.00"))
    make_balance(account, time=bucket + timedelta(minutes=7), equity=Decimal("10040.00"))

    chart = _chart(client_of(account.user), account)

    assert chart["equity"] == [10010.0, 10020.0, 10030.0, 10040.0]
    assert chart["t"] == sorted(chart["t"]) and int(old.bucket.timestamp()) not in chart["t"]
