"""The database pools' connection check: a connection leaving the pool is asked with an empty query whether it is
alive, unless it came back less than `FRESH_S` ago and nothing waits on its socket.

psycopg_pool's own check (Django's with CONN_HEALTH_CHECKS) costs a round trip at every checkout, and the gateway
checks a connection out for each piece of database work: a token HELLO takes two, so the checks were half of its
round trips. A connection handed back after successful work moments ago, whose socket the server has not written
to since (a restart or a terminated backend sends an error and closes it, which makes the socket readable), is
alive as far as anything can tell without asking. One idle for longer (a firewall may drop it silently) is asked,
and a broken one is discarded when it comes back (psycopg_pool does that itself).
"""

from __future__ import annotations

import select
import time
import weakref

import psycopg
from psycopg_pool import ConnectionPool

FRESH_S = 10.0
_returned_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pool_check_install(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: put `connection_check` in the place of the check Django gave the pool (Django
    passes psycopg_pool's own with CONN_HEALTH_CHECKS and takes no other), and have the pool note when each
    connection comes back, once per pool. Not with the pool's `reset` callback: with one set, psycopg_pool hands
    every returned connection to its worker thread, a thread wake-up and GIL hand-over per piece of database work
    (a reconnect storm returns three connections per EA; issue 21), and the connection is back only when the
    worker has run."""
    pool = getattr(connection, "pool", None)
    if pool is not None and pool._check is ConnectionPool.check_connection:
        pool._check = connection_check
        pool.putconn = _noting_return(pool.putconn)


def _noting_return(putconn):
    def returned(connection) -> None:
        _returned_at[connection] = time.monotonic()  # a broken one is discarded by the pool, never checked out
        putconn(connection)

    return returned


def connection_check(connection) -> None:
    """The pool's `check` callback: raises if the connection does not answer (the pool then takes another)."""
    returned_at = _returned_at.get(connection)
    if returned_at is not None and time.monotonic() - returned_at < FRESH_S and not _input_waiting(connection):
        return
    ConnectionPool.check_connection(connection)


def _input_waiting(connection) -> bool:
    """Whether the server wrote to this idle connection (it closed it, or spoke unasked): then it is asked. With
    poll, not select: select refuses a descriptor above 1023, and a gateway serving thousands of sockets opens its
    later database connections above that, which were then asked at every checkout."""
    poller = select.poll()
    try:
        poller.register(connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):  # a closed one has no descriptor: asked, refused, discarded
        return True
