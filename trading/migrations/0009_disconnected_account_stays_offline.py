"""A heartbeat batch committed after its EA's disconnect no longer marks the account online again.

Heartbeats are volume: the gateway buffers them (250 ms, or through the data bridge), so a batch with an EA's last
heartbeat could commit after its disconnect, and mark the account online with no EA connected until the silence
check (two minutes). The disconnect of the live session now records when (`disconnected_at`), the next claim clears
it, and the heartbeat's update (trading.ingest.MARK_ONLINE) leaves an account with one offline. An account the
silence check marked offline while its EA stays connected is still marked online by its next heartbeat.

The functions are trading migration 0008's, with those two assignments added.
"""

import importlib

from django.db import migrations

functions = importlib.import_module("trading.migrations.0008_session_claim_functions")


def _added(sql: str, anchor: str, addition: str) -> str:
    if sql.count(anchor) != 1:
        raise RuntimeError(f"migration 0008's function text changed: {anchor!r}")
    return sql.replace(anchor, anchor + addition)


CLAIM = _added(functions.CLAIM, "connection_status = 'online',", " disconnected_at = NULL,")
DISCONNECTED = _added(functions.DISCONNECTED, "SET connection_status = 'offline'", ", disconnected_at = p_now")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_account_disconnected_at"),
        ("trading", "0008_session_claim_functions"),
    ]

    operations = [migrations.RunSQL(CLAIM + DISCONNECTED, functions.CLAIM + functions.DISCONNECTED)]
