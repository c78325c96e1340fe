"""Database round trips counted at the wire (issue 21): this process's service and operator connections go through a
TCP proxy that counts each time the client speaks after the server has answered (a query string of several
statements is one round trip). Used by the HELLO and the signal intake round-trip tests.

What is counted is the work's own round trips, as in a process whose pools are in steady use: each pool is
warmed before counting starts (`pool_warmed`), so no connection is opened, set up or first checked meanwhile
(unless the uncounted work before the count outlasts suho.dbpool.FRESH_S). Each round trip is recorded with what
the client sent (`trips_since`), for the failure message."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

from django.db import connections

PROXIED = ("default", "operator")
WARM_CONNECTIONS = 3  # more than a HELLO or a signal intake holds at once from one pool
POOL_SETTLED_S = 10.0  # at most this long for a warmed pool's connections still being opened


class RoundTripCounter:
    """A TCP proxy to PostgreSQL counting round trips: one each time a client sends after its server answered."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.count = 0
        self.trips: list[tuple[int, str]] = []  # (client connection number, what its client sent) per round trip
        self._connections = 0
        self._lock = threading.Lock()
        self._closed = False
        self.saved: dict = {}  # the pools' addresses before they were pointed here
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._connections += 1
            turn = {"server_answered": True, "number": self._connections}
            threading.Thread(target=self._pump, args=(client, server, turn, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, turn, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, turn: dict, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if from_client and turn["server_answered"]:
                        self.count += 1
                        self.trips.append((turn["number"], message_described(data)))
                    turn["server_answered"] = not from_client
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def trips_since(self, count: int, used: int) -> str:
        """The `used` round trips after the first `count`, one per line, for a failure message."""
        return "\n".join(f"connection {number}: {what}" for number, what in self.trips[count : count + used])

    def close(self) -> None:
        self._closed = True
        self.listener.close()


def message_described(data: bytes) -> str:
    """A client's first message in `data`: its type and, for a query or a parse, the start of its SQL. Over TLS
    (DB_SSLMODE, against a server with SSL on) what follows the SSL request reads as TLS records, `message '\\x16'` or
    `message '\\x17'`."""
    if data[0] == 0:  # no type byte: the startup packet, or an SSL, GSS or cancel request
        code = int.from_bytes(data[4:8], "big")
        return {80877102: "cancel request", 80877103: "SSL request", 80877104: "GSS request"}.get(code, "startup")
    kind = chr(data[0])
    if kind in "QP":  # a query's SQL follows its length; a parse's follows the statement's name
        body = data[5:] if kind == "Q" else data[5:].partition(b"\0")[2]
        sql = body[:80].split(b"\0")[0].decode(errors="replace")
        return f"{'query' if kind == 'Q' else 'parse'} {sql!r}"
    return f"message {kind!r}"


def pools_point_at(port: int | None, saved: dict) -> None:
    """The service and operator pools connect to 127.0.0.1:`port` from now on, warmed (`pool_warmed`), or with None
    where they did before."""
    for alias in PROXIED:
        connections[alias].close()
        connections[alias].close_pool()  # the next connection comes from a pool made with the new address
        settings = connections[alias].settings_dict
        if port is None:
            settings.update(HOST=saved[alias][0], PORT=saved[alias][1])
        else:
            saved[alias] = (settings["HOST"], settings["PORT"])
            settings.update(HOST="127.0.0.1", PORT=str(port))
            pool_warmed(alias)


def pool_warmed(alias: str, connections_wanted: int = WARM_CONNECTIONS) -> None:
    """The alias's pool holds `connections_wanted` connections, each just handed back, as a pool in steady use does,
    and none still being opened.

    Counting starts on a new pool. One that must grow while work is counted (a checkout that waits makes it open
    one more connection) puts that connection's handshake, its session set-up and its first check in the count,
    and a connection never handed back is checked, a round trip, at its first checkout (suho/dbpool.py). A
    connection counts as just handed back for suho.dbpool.FRESH_S: uncounted work longer than that before the
    count leaves the pool's unused connections to be checked."""
    pool = connections[alias].pool
    pool.open(wait=True)  # its first connections made: Django's first checkout would not wait for them, and grow it
    connections[alias].ensure_connection()  # suho.dbpool's check and return hook installed on the pool
    connections[alias].close()
    taken = []
    try:
        for _ in range(min(max(connections_wanted, pool.min_size), pool.max_size)):  # each of a larger pool too
            taken.append(pool.getconn())
    finally:
        for connection in taken:
            pool.putconn(connection)
    deadline = time.monotonic() + POOL_SETTLED_S
    while (stats := pool.get_stats())["pool_size"] != stats["pool_available"]:  # one still being opened
        assert time.monotonic() < deadline, f"{alias}: a pool connection still being opened after {POOL_SETTLED_S} s"
        time.sleep(0.01)


def round_trips_counter_start() -> RoundTripCounter:
    """From now on this process's service and operator pools connect through a new RoundTripCounter."""
    settings = connections[PROXIED[0]].settings_dict
    counter = RoundTripCounter(settings["HOST"], int(settings["PORT"]))
    pools_point_at(counter.port, counter.saved)
    return counter


def round_trips_counter_stop(counter: RoundTripCounter) -> None:
    """The pools connect where they did before; the proxy closes."""
    pools_point_at(None, counter.saved)
    counter.close()


@contextmanager
def round_trips_counted():
    """The service and operator pools connect through a RoundTripCounter while the block runs."""
    counter = round_trips_counter_start()
    try:
        yield counter
    finally:
        round_trips_counter_stop(counter)
