"""Database round trips counted at the wire (issue 21): this process's service and operator connections go through a
TCP proxy that counts each time the client speaks after the server has answered (a query string of several
statements is one round trip). Used by the HELLO and the signal intake round-trip tests."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager

from django.db import connections

PROXIED = ("default", "operator")


class RoundTripCounter:
    """A TCP proxy to PostgreSQL counting round trips: one each time a client sends after its server answered."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.count = 0
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
            turn = {"server_answered": True}
            threading.Thread(target=self._pump, args=(client, server, turn, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, turn, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, turn: dict, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if from_client and turn["server_answered"]:
                        self.count += 1
                    turn["server_answered"] = not from_client
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()


def pools_point_at(port: int | None, saved: dict) -> None:
    """The service and operator pools connect to 127.0.0.1:`port` from now on (None: where they did before)."""
    for alias in PROXIED:
        connections[alias].close()
        connections[alias].close_pool()  # the next connection comes from a pool made with the new address
        settings = connections[alias].settings_dict
        if port is None:
            settings.update(HOST=saved[alias][0], PORT=saved[alias][1])
        else:
            saved[alias] = (settings["HOST"], settings["PORT"])
            settings.update(HOST="127.0.0.1", PORT=str(port))
            # Its first connections made now, before anything is counted: Django opens a pool without waiting for
            # them, so its first checkout would wait and make the pool grow by one more, whose handshake lands,
            # later, in whatever is being counted.
            connections[alias].pool.open(wait=True)


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
