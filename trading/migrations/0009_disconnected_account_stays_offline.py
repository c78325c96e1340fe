"""A heartbeat batch committed after its EA's disconnect no longer marks the account online again.

Heartbeats are volume: the gateway buffers them (250 ms, or through the data bridge), so a batch with an EA's last
heartbeat could commit after its disconnect, and mark the account online with no EA connected until the silence
check (two minutes). The disconnect that takes the account offline now records its epoch (`disconnected_epoch`);
while that is still the live one, the heartbeat's update (trading.ingest.MARK_ONLINE) leaves the account offline. The
next claim takes a new epoch, so nothing needs clearing, and a stale copy of the row saved later can only write back
an older epoch. An account the silence check marked offline while its EA stays connected is still marked online by
its next heartbeat.

The disconnect function is trading migration 0008's, with that one assignment added.
"""

import importlib

from django.db import migrations

functions = importlib.import_module("trading.migrations.0008_session_claim_functions")
ANCHOR = "SET connection_status = 'offline'"
if functions.DISCONNECTED.count(ANCHOR) != 1:
    raise RuntimeError(f"migration 0008's function text changed: {ANCHOR!r}")
DISCONNECTED = functions.DISCONNECTED.replace(ANCHOR, ANCHOR + ", disconnected_epoch = a.live_session_epoch")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_account_disconnected_epoch"),
        ("trading", "0008_session_claim_functions"),
    ]

    operations = [migrations.RunSQL(DISCONNECTED, functions.DISCONNECTED)]
