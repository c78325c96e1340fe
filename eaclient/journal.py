"""The agent's journal: which signals it acted on and how, and what it knows of the positions it reported, kept in a
stdlib sqlite3 file under the agent's state folder so that it survives restarts.

Its one promise: an order is placed at most once per signal. Before `order_send` the agent writes the signal down as
SENDING with the exact comment and magic number the order carries (write-ahead: each write is committed at once);
after the answer it records DONE (with the position ticket), FAILED, UNKNOWN or REJECTED. A signal found in the
journal is never sent again: a repeated delivery gets the recorded answer. A SENDING entry left by a crash is settled
against the terminal (its positions and deals carry the comment and magic) before the agent serves anything.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from binproto import AckStatus, OrderType

SENDING, DONE, FAILED, UNKNOWN, REJECTED = "sending", "done", "failed", "unknown", "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    signal_id TEXT PRIMARY KEY, state TEXT NOT NULL, comment TEXT NOT NULL, magic INTEGER NOT NULL,
    ticket INTEGER NOT NULL DEFAULT 0, ack_status INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',
    reason_code INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    ticket INTEGER PRIMARY KEY, signal_id TEXT, symbol TEXT NOT NULL, order_type INTEGER NOT NULL,
    volume REAL NOT NULL, open_price REAL NOT NULL, stop_loss REAL NOT NULL, take_profit REAL NOT NULL,
    open_time_us INTEGER NOT NULL, magic INTEGER NOT NULL, closed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deals_seen (ticket INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class SignalEntry:
    signal_id: UUID
    state: str
    comment: str
    magic: int
    ticket: int
    ack_status: AckStatus | None
    reason: str
    reason_code: int
    created_us: int


@dataclass(frozen=True)
class KnownPosition:
    """A position as the agent reported it in TRADE_OPENED (or last TRADE_MODIFIED): what TRADE_CLOSED repeats."""

    ticket: int
    signal_id: UUID | None
    symbol: str
    order_type: OrderType
    volume: float
    open_price: float
    stop_loss: float
    take_profit: float
    open_time_us: int
    magic: int


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)  # autocommit
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- signals ----------------------------------------------------------------------------------------------------

    def signal(self, signal_id: UUID) -> SignalEntry | None:
        row = self._db.execute("SELECT * FROM signals WHERE signal_id = ?", (str(signal_id),)).fetchone()
        return None if row is None else _entry(row)

    def signals_in(self, state: str) -> list[SignalEntry]:
        return [_entry(row) for row in self._db.execute("SELECT * FROM signals WHERE state = ?", (state,))]

    def signal_by_ticket(self, ticket: int) -> SignalEntry | None:
        row = self._db.execute("SELECT * FROM signals WHERE ticket = ? AND state = ?", (ticket, DONE)).fetchone()
        return None if row is None else _entry(row)

    def signal_by_comment(self, comment: str, magic: int) -> SignalEntry | None:
        row = self._db.execute(
            "SELECT * FROM signals WHERE comment = ? AND magic = ? ORDER BY created_us DESC", (comment, magic)
        ).fetchone()
        return None if row is None else _entry(row)

    def sending(self, signal_id: UUID, *, comment: str, magic: int, now_us: int) -> None:
        """Write-ahead, before the order goes out. Raises sqlite3.IntegrityError if the signal is already here."""
        self._db.execute(
            "INSERT INTO signals (signal_id, state, comment, magic, created_us) VALUES (?, ?, ?, ?, ?)",
            (str(signal_id), SENDING, comment, magic, now_us),
        )

    def answered(
        self,
        signal_id: UUID,
        *,
        state: str,
        ack_status: AckStatus,
        reason: str = "",
        reason_code: int = 0,
        ticket: int = 0,
        now_us: int = 0,
    ) -> None:
        """The outcome and the ACK that tells it (inserted for a signal refused before any order, else updated)."""
        self._db.execute(
            "INSERT INTO signals (signal_id, state, comment, magic, ticket, ack_status, reason, reason_code,"
            " created_us) VALUES (?, ?, '', 0, ?, ?, ?, ?, ?)"
            " ON CONFLICT (signal_id) DO UPDATE SET state = excluded.state, ticket = excluded.ticket,"
            " ack_status = excluded.ack_status, reason = excluded.reason,"
            " reason_code = excluded.reason_code",
            (str(signal_id), state, ticket, int(ack_status), reason, reason_code, now_us),
        )

    def forget(self, signal_id: UUID) -> None:
        """A SENDING entry whose order provably never reached the terminal: the signal may be evaluated afresh."""
        self._db.execute("DELETE FROM signals WHERE signal_id = ? AND state = ?", (str(signal_id), SENDING))

    # --- positions and deals ----------------------------------------------------------------------------------------

    def position_keep(self, position: KnownPosition) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                position.ticket,
                str(position.signal_id) if position.signal_id else None,
                position.symbol,
                int(position.order_type),
                position.volume,
                position.open_price,
                position.stop_loss,
                position.take_profit,
                position.open_time_us,
                position.magic,
            ),
        )

    def position(self, ticket: int) -> KnownPosition | None:
        row = self._db.execute(
            "SELECT ticket, signal_id, symbol, order_type, volume, open_price, stop_loss, take_profit, open_time_us,"
            " magic FROM positions WHERE ticket = ?",
            (ticket,),
        ).fetchone()
        if row is None:
            return None
        return KnownPosition(row[0], UUID(row[1]) if row[1] else None, row[2], OrderType(row[3]), *row[4:])

    def deal_seen(self, ticket: int) -> bool:
        return self._db.execute("SELECT 1 FROM deals_seen WHERE ticket = ?", (ticket,)).fetchone() is not None

    def deals_mark_seen(self, tickets: list[int]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO deals_seen VALUES (?)", [(t,) for t in tickets])

    # --- small settings ---------------------------------------------------------------------------------------------

    def meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def meta_set(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))


def _entry(row: tuple) -> SignalEntry:
    signal_id, state, comment, magic, ticket, ack_status, reason, reason_code, created_us = row
    return SignalEntry(
        UUID(signal_id),
        state,
        comment,
        magic,
        ticket,
        AckStatus(ack_status) if ack_status else None,
        reason,
        reason_code,
        created_us,
    )
