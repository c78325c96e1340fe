"""The outbox of trade events (docs/protocol.md §8): each one is kept, and resent, until its EVENT_ACK.

Trade events are money: the server must get each exactly once, so the EA numbers them with `event_seq` (growing by
one per event, never reused, across restarts too) and keeps them until the server's EVENT_ACK for the same
(type, ticket, event_seq). In memory by default; given a file, the events and the last `event_seq` live in a
stdlib sqlite3 database, so a restarted process resends what was never acknowledged and keeps counting upwards.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import binproto
from binproto import MsgType

TradeEvent = binproto.TradeOpened | binproto.TradeClosed | binproto.TradeModified
EventKey = tuple[MsgType, int, int]  # (event type, ticket, event_seq): what an EVENT_ACK names

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    event_type INTEGER NOT NULL, ticket INTEGER NOT NULL, event_seq INTEGER NOT NULL, frame BLOB NOT NULL,
    PRIMARY KEY (event_type, ticket, event_seq)
);
"""


def _clock_us() -> int:
    return time.time_ns() // 1000


def event_key(event: TradeEvent) -> EventKey:
    return (event.TYPE, event.ticket, event.event_seq)


class Outbox:
    """Unacknowledged trade events, oldest first, and the `event_seq` counter.

    Without a file, numbering starts from the clock in µs, so a restarted EA still numbers above its last run (the
    server deduplicates on `event_seq`); with a file, it continues from the last number stored there.
    """

    def __init__(self, path: str | Path | None = None):
        self._events: dict[EventKey, TradeEvent] = {}
        self._sent_at: dict[EventKey, float] = {}  # monotonic; 0 = not sent since this process started
        self._db: sqlite3.Connection | None = None
        self._last_seq = _clock_us()
        if path is not None:
            self._db = sqlite3.connect(path, isolation_level=None)  # autocommit: each write is durable at once
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name = 'last_seq'").fetchone()
            self._last_seq = max(self._last_seq, row[0]) if row else self._last_seq
            for (frame,) in self._db.execute("SELECT frame FROM events ORDER BY event_seq"):
                event = binproto.decode(frame)
                assert isinstance(event, binproto.TradeOpened | binproto.TradeClosed | binproto.TradeModified)
                self._events[event_key(event)] = event
                self._sent_at[event_key(event)] = 0.0

    def next_seq(self) -> int:
        """The number for the next trade event; stored before it is handed out, so it is never given twice."""
        self._last_seq += 1
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (self._last_seq,))
        return self._last_seq

    def add(self, event: TradeEvent) -> None:
        """Keep `event` until its EVENT_ACK (call before sending it: a crash in between must not lose it)."""
        key = event_key(event)
        self._events[key] = event
        self._sent_at[key] = 0.0
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)", (*key, binproto.encode(event)))

    def sent(self, event: TradeEvent) -> None:
        self._sent_at[event_key(event)] = time.monotonic()

    def ack(self, event_type: MsgType, ticket: int, event_seq: int) -> bool:
        """The server has the event (ACCEPTED, DUPLICATE or REJECTED all end the retries): False if unknown."""
        key = (event_type, ticket, event_seq)
        if self._events.pop(key, None) is None:
            return False
        self._sent_at.pop(key, None)
        if self._db is not None:
            self._db.execute("DELETE FROM events WHERE event_type = ? AND ticket = ? AND event_seq = ?", key)
        return True

    def pending(self) -> list[TradeEvent]:
        """Every unacknowledged event in `event_seq` order: what a new session resends first."""
        return sorted(self._events.values(), key=lambda event: event.event_seq)

    def overdue(self, retry_s: float) -> list[TradeEvent]:
        """Events sent more than `retry_s` ago (or never) and still unacknowledged, in order."""
        limit = time.monotonic() - retry_s
        return [event for event in self.pending() if self._sent_at.get(event_key(event), 0.0) < limit]

    def __len__(self) -> int:
        return len(self._events)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
