"""The signal lifecycle (seed §7.1) as one transition table, enforced by services and by a database trigger.

Two transitions the seed's diagram lacks and a real system needs: a PENDING signal whose `valid_until` passes
before delivery EXPIRES, and a PENDING signal the risk gate refuses is REJECTED (with its reason).
"""

from __future__ import annotations

PENDING, SENT, EXECUTED, CLOSED = "pending", "sent", "executed", "closed"
REJECTED, EXPIRED, CANCELLED = "rejected", "expired", "cancelled"
STATUSES = (PENDING, SENT, EXECUTED, CLOSED, REJECTED, EXPIRED, CANCELLED)

TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (PENDING, SENT),
        (PENDING, CANCELLED),
        (PENDING, EXPIRED),
        (PENDING, REJECTED),
        (SENT, EXECUTED),
        (SENT, REJECTED),
        (SENT, EXPIRED),
        (EXECUTED, CLOSED),
    }
)
FINAL = frozenset({CLOSED, REJECTED, EXPIRED, CANCELLED})

ILLEGAL_TRANSITION = "signal cannot move from {old} to {new}"


def transition_allowed(old: str, new: str) -> bool:
    return (old, new) in TRANSITIONS


def transition_trigger_sql() -> str:
    allowed = ", ".join(f"('{old}', '{new}')" for old, new in sorted(TRANSITIONS))
    return f"""
    CREATE OR REPLACE FUNCTION suho_signal_transition_check() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status IS DISTINCT FROM OLD.status
         AND (OLD.status, NEW.status) NOT IN ({allowed}) THEN
        RAISE EXCEPTION 'signal cannot move from % to %', OLD.status, NEW.status
          USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$;
    DROP TRIGGER IF EXISTS signal_transition_check ON mt5_trading_signals;
    CREATE TRIGGER signal_transition_check BEFORE UPDATE OF status ON mt5_trading_signals
      FOR EACH ROW EXECUTE FUNCTION suho_signal_transition_check();
    """
