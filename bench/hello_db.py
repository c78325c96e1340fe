"""A reconnecting EA's database work, one EA after another in this process: what the token HELLO's claim, the resync
read and the disconnect each cost in wall time, in Python's CPU and in PostgreSQL's, without the socket, the event
loop or the other EAs. The storm (bench/reconnect.py) runs the same three calls in the server's database threads;
this says how much of its time is theirs and which side of the connection spends it (issue 21: where a goal is
missed, the profile says why).
"""

from __future__ import annotations

import time

import psutil

from bench.fixtures import sessions_held_by_a_gone_process
from bench.stack import cpu_delta, postgres_cpu, process_cpu_s

COUNT = 1_000
NODE = "bench-hello-db"
STAGES = ("claim", "resync", "disconnect")
TITLES = {
    "claim": "token HELLO: the hold, the token, the claim (`ea_token_hello`)",
    "resync": "resync read (`ea_resync`)",
    "disconnect": "disconnect (`ea_disconnected`)",
}
# Parts of the stages above, timed the same way on their own: what the database threads' Python is made of.
PARTS = ("shared", "hold", "token", "round_trip")
SHARED = 16  # HELLOs a storm's database thread takes at once (about what its resync reads share: section 12)
PART_TITLES = {
    "shared": f"token HELLO, {SHARED} at a time as a storm's database thread takes them (`ea_token_hellos`)",
    "hold": "… of the HELLO: the 4008 hold check, one Redis command (`ea_rate_limit_hold_left_s`)",
    "token": "… of the HELLO: the access token's signature and claims (`ea_access_verify`)",
    "round_trip": "any one of the three: a round trip's own cost (`tenant_round_trip` of `SELECT 1`)",
}


def run(*, eas: list, count: int = COUNT) -> dict:
    """Each stage for `count` EAs in turn (all claims, then all resyncs, then all disconnects, then the HELLO's
    parts on their own: PARTS), as the database threads run them: each call's connections handed back to the pool
    afterwards."""
    from django.db import connections

    from accounts import services as account_services
    from suho.sql import tenant_round_trip
    from trading import connection as sessions

    eas = eas[:count]
    sessions_held_by_a_gone_process(eas)
    hellos: list = []

    def claim(ea):
        hello = sessions.ea_token_hello(account_id=ea.account_id, token=ea.access_token, node=NODE)
        if hello.claim is None:
            raise RuntimeError(f"bench EA {ea.account_id} was not claimed: {hello}")
        hellos.append(hello)

    def resync(index):
        claims = hellos[index].claims
        sessions.ea_resync(tenant_id=claims.tenant_id, account_id=claims.account_id)

    def disconnect(index):
        claims, epoch = hellos[index].claims, hellos[index].claim.epoch
        sessions.ea_disconnected(tenant_id=claims.tenant_id, account_id=claims.account_id,
                                 session_id=claims.session_id, close_code=1000, epoch=epoch)  # fmt: skip

    def shared(some):
        asked = [sessions.HelloAsked(account_id=str(ea.account_id), token=ea.access_token) for ea in some]
        for hello in sessions.ea_token_hellos(asked, node=NODE):
            if isinstance(hello, Exception) or hello.claim is None:
                raise RuntimeError(f"a bench EA was not claimed: {hello}")

    def hold(ea):
        sessions.ea_rate_limit_hold_left_s(account_id=ea.account_id)

    def token(ea):
        account_services.ea_access_verify(token=ea.access_token)

    def round_trip(index):
        tenant_round_trip(hellos[index].claims.tenant_id, "SELECT 1", {})

    this_process = psutil.Process()
    result = {"eas": len(eas)}
    for stage, call, items in (
        ("claim", claim, eas),
        ("resync", resync, range(len(eas))),
        ("disconnect", disconnect, range(len(eas))),
        ("shared", shared, [eas[start : start + SHARED] for start in range(0, len(eas), SHARED)]),
        ("hold", hold, eas),
        ("token", token, eas),
        ("round_trip", round_trip, range(len(eas))),
    ):
        pg0, cpu0, t0 = postgres_cpu(), process_cpu_s(this_process), time.perf_counter()
        for item in items:
            try:
                call(item)
            finally:
                connections.close_all()
        wall, cpu, pg = time.perf_counter() - t0, process_cpu_s(this_process) - cpu0, cpu_delta(pg0, postgres_cpu())
        result[stage] = {"wall_ms": wall * 1000 / len(eas), "python_ms": cpu * 1000 / len(eas),
                         "postgres_ms": pg * 1000 / len(eas)}  # fmt: skip
    return result


def markdown(result: dict | None) -> str:
    """The table, or nothing for results from before it was measured."""
    if not result:
        return ""
    rows = [result[stage] for stage in STAGES]
    total = {key: sum(row[key] for row in rows) for key in ("wall_ms", "python_ms", "postgres_ms")}
    lines = [
        f"The database work of one EA, in the bench process, {result['eas']:,} EAs one after another "
        "(`bench/hello_db.py`; ms per EA):",
        "",
        "| stage | wall | Python CPU | PostgreSQL CPU |",
        "|---|---:|---:|---:|",
        *(
            f"| {TITLES[stage]} | {row['wall_ms']:.2f} | {row['python_ms']:.2f} | {row['postgres_ms']:.2f} |"
            for stage, row in zip(STAGES, rows, strict=True)
        ),
        f"| all three | {total['wall_ms']:.2f} | {total['python_ms']:.2f} | {total['postgres_ms']:.2f} |",
        *(
            f"| {PART_TITLES[part]} | {row['wall_ms']:.2f} | {row['python_ms']:.2f} | {row['postgres_ms']:.2f} |"
            for part in PARTS
            if (row := result.get(part))  # results from before the parts were timed have none
        ),
    ]
    return "\n".join(lines) + "\n"
