"""How long JetStream publishing stalls when a node of a three-node NATS cluster dies (issue 17, decision 0019).

Each run starts a fresh cluster (suho.natscluster: three nats-server processes on loopback, `sync_interval: always`),
creates the project's streams with three replicas, and publishes to MT5_OUTBOUND through the project's own path
(`Bus.jetstream_publish`, the outbox's immediate publish timeout of 0.5 s, the same `Nats-Msg-Id` again after a
failure, as the outbox does) one message at a time, without pause. Then it SIGKILLs a node that does not lead the
stream, restarts it once the cluster is healthy, and SIGKILLs the stream's leader. The stall is the longest time
between two acknowledged publishes around each kill (the publisher never waits for anything but the ack).
Afterwards every acknowledged message id must be in the stream (counted: `lost`).

    .venv/bin/python -m bench.run --only failover [--runs 3] [--write]
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.stats import cell, spread

SUBJECT = "mt5.command.bench-failover.close_all"
STREAM = "MT5_OUTBOUND"
WARM_S = 2.0  # publishing before the first kill
AFTER_S = 3.0  # publishing after the first ack that followed a kill
LIMIT_S = 60.0  # a stall longer than this ends the run (recorded as such)
PUBLISH_TIMEOUT_S = 0.5  # suho.outbox.IMMEDIATE_TIMEOUT_S


class Publisher(threading.Thread):
    """Publishes until stopped; keeps the monotonic time of every ack and every acked message id."""

    def __init__(self, bus):
        super().__init__(name="failover-publisher", daemon=True)
        self.bus = bus
        self.acks: list[float] = []
        self.acked_ids: set[str] = set()
        self.failures = 0
        self.failure_kinds: dict[str, int] = {}  # what the outbox would see: a refusal or an outage (outbox_refused)
        self.stop = threading.Event()

    def run(self) -> None:
        sequence = 0
        while not self.stop.is_set():
            msg_id = f"bench-failover:{sequence}"
            try:
                self.bus.jetstream_publish(SUBJECT, b"{}", msg_id=msg_id, timeout=PUBLISH_TIMEOUT_S)
            except Exception as exc:
                self.failures += 1
                kind = type(exc).__name__
                self.failure_kinds[kind] = self.failure_kinds.get(kind, 0) + 1
                time.sleep(0.01)  # a refusal comes back at once (no responders mid-election): do not spin
                continue
            self.acks.append(time.monotonic())
            self.acked_ids.add(msg_id)
            sequence += 1

    def acked_after(self, moment: float) -> bool:
        return bool(self.acks) and self.acks[-1] > moment

    def stall_around(self, moment: float) -> float:
        """The longest gap between consecutive acks from the last ack before `moment` up to now."""
        before = [t for t in self.acks if t <= moment]
        times = ([before[-1]] if before else []) + [t for t in self.acks if t > moment]
        return max((b - a for a, b in itertools.pairwise(times)), default=LIMIT_S)


def _wait(condition, limit: float = LIMIT_S) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster did not recover within the bench's limit")
        time.sleep(0.01)


def one_run(folder: Path) -> dict:
    from django.test import override_settings

    from suho.bus import Bus, nats_servers
    from suho.natscluster import NatsCluster, stream_cluster
    from suho.streams import streams_ensure

    shutil.rmtree(folder, ignore_errors=True)
    cluster = NatsCluster(folder)
    cluster.start()
    bus = Bus(cluster.url)
    publisher = Publisher(bus)
    try:
        with override_settings(NATS_URL=cluster.url, NATS_STREAM_REPLICAS=3):
            streams_ensure()
        bus.flush()
        publisher.start()
        _wait(lambda: bool(publisher.acks))  # a new stream answers "no responders" for a moment
        time.sleep(WARM_S)
        publisher.failures, publisher.failure_kinds = 0, {}
        result = {}
        for label in ("follower", "leader"):
            leader = asyncio.run(stream_cluster(cluster.url, STREAM)).leader  # asked again: a restart may move it
            victim = next(node for node in cluster.nodes if (node.name == leader) == (label == "leader"))
            connected_port = bus._client.connected_url.port
            result[label] = victim.name
            killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
            victim.kill()
            _wait(lambda at=killed_at: publisher.acked_after(at))
            first_ack = next(t for t in publisher.acks if t > killed_at)
            time.sleep(AFTER_S)
            result[f"{label}_stall_s"] = publisher.stall_around(killed_at)
            result[f"{label}_first_ack_s"] = first_ack - killed_at
            result[f"{label}_client_on_it"] = victim.client_port == connected_port
            if label == "leader":  # stream info can be a moment old: an election after the kill proves it led
                after = asyncio.run(stream_cluster(cluster.url, STREAM))
                result["leader_confirmed"] = after.leader != victim.name and after.leader_since > killed_wall
            if label == "follower":
                restarted_at = time.monotonic()
                cluster.restart(victim.name)
                time.sleep(AFTER_S)  # the restarted node catches up before the leader goes
                result["rejoin_stall_s"] = publisher.stall_around(restarted_at)
        publisher.stop.set()
        publisher.join(timeout=10)
        result["new_leader"] = asyncio.run(stream_cluster(cluster.url, STREAM)).leader
        result["acked"] = len(publisher.acked_ids)
        result["failed_tries"] = publisher.failures
        result["failure_kinds"] = publisher.failure_kinds
        result["lost"] = len(publisher.acked_ids) - asyncio.run(_stored(nats_servers(cluster.url)))
        return result
    finally:
        publisher.stop.set()
        bus.close()
        cluster.stop()


async def _stored(servers: list[str]) -> int:
    import nats

    connection = await nats.connect(servers, connect_timeout=2)
    try:
        return (await connection.jetstream(timeout=5).stream_info(STREAM)).state.messages
    finally:
        await connection.close()


def run(*, eas: list, runs: int, log_dir: Path | None = None) -> dict:
    folder = (log_dir or Path("/tmp")) / "nats-failover"
    return {"runs": [one_run(folder / f"run{i}") for i in range(runs)]}


def _spread(result: dict, key: str) -> dict:
    """Over the runs; a leader figure only over the runs whose kill was followed by an election."""
    runs = [run for run in result["runs"] if not key.startswith("leader_") or run.get("leader_confirmed", True)]
    return spread([run[key] for run in runs])


def targets(result: dict) -> list[tuple[str, str, str, bool]]:
    lost = sum(run["lost"] for run in result["runs"])
    return [("NATS cluster: acknowledged publishes lost over a follower and a leader kill", f"{lost}", "0", lost == 0)]


def markdown(result: dict) -> str:
    rows = [
        ("follower killed: longest gap between acks", _spread(result, "follower_stall_s"), 2, " s"),
        (
            "killed follower restarted and rejoining: longest gap between acks",
            _spread(result, "rejoin_stall_s"),
            2,
            " s",
        ),
        ("stream leader killed: longest gap between acks", _spread(result, "leader_stall_s"), 2, " s"),
        ("stream leader killed: first ack after the kill", _spread(result, "leader_first_ack_s"), 2, " s"),
        ("publishes acknowledged per run", _spread(result, "acked"), 0, ""),
        ("tries that failed (timeout or no responder) and were repeated", _spread(result, "failed_tries"), 0, ""),
        ("acknowledged but not in the stream afterwards", _spread(result, "lost"), 0, ""),
    ]
    kinds: dict[str, int] = {}
    for run in result["runs"]:
        for kind, count in run.get("failure_kinds", {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    confirmed = sum(run.get("leader_confirmed", True) for run in result["runs"])
    on_victim = sum(run["follower_client_on_it"] or run["leader_client_on_it"] for run in result["runs"])
    lines = ["| figure | median | spread |", "|---|---:|---|"]
    lines += [f"| {label} | {' | '.join(cell(figure, digits, unit))} |" for label, figure, digits, unit in rows]
    lines += [
        "",
        "A fresh three-node cluster per run (`suho/natscluster.py`, loopback, `sync_interval: always`, every stream "
        "with three replicas); one publisher sends to MT5_OUTBOUND through `Bus.jetstream_publish`, the outbox's path, "
        f"one message at a time with a {PUBLISH_TIMEOUT_S:g} s timeout and the same `Nats-Msg-Id` after a failure. A "
        "node that does not lead the stream is SIGKILLed, restarted, then the stream's leader is SIGKILLed. A "
        "follower's loss costs nothing measurable beyond the client's own reconnect when it was connected to it; the "
        "leader's costs an election (the Raft election timeout is randomised, so the figure varies). The Celery "
        "drain's publishes wait up to 5 s for an ack, so a publish in flight to the dead leader adds up to that "
        f"much for the outbox. The client was connected to a killed node in {on_victim} of {len(result['runs'])} runs. "
        f"The leader figures are over the {confirmed} of {len(result['runs'])} runs in which stream info taken just "
        "before the kill named the leader correctly (a new leader elected after the kill); in the others it named a "
        "server that no longer led, and the kill cost nothing. "
        "The failed tries after the warm-up, all runs together: "
        + (", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items())) or "none")
        + " (the outbox counts NoStreamResponseError as a refusal, retried with backoff and parked after 5, about "
        "25 s; a timeout as an outage, retried without limit).",
    ]
    return "\n".join(lines)
