"""The latest-value cache (Redis/Dragonfly) with the seed's keys and TTLs (§9.3): JSON values others can read."""

from __future__ import annotations

import json
import threading

import redis
from django.conf import settings

QUOTE_TTL_S = 5
BALANCE_TTL_S = 30
POSITIONS_TTL_S = 10
REFERENCE_QUOTE_TTL_S = 10  # the reference feed ticks several times a second while the market is open

_client: redis.Redis | None = None
_lock = threading.Lock()


def cache_client() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"], socket_timeout=2)
        return _client


def quote_key(account_id, symbol: str) -> str:
    return f"broker_quote:{account_id}:{symbol}"


def reference_quote_key(symbol: str) -> str:
    return f"reference_quote:{symbol}"


def balance_key(account_id) -> str:
    return f"balance:{account_id}"


def positions_key(account_id) -> str:
    return f"positions:{account_id}"


def cache_set_many(entries: list[tuple[str, int, dict | list]]) -> None:
    """(key, ttl_s, value) triples in one round trip."""
    pipe = cache_client().pipeline(transaction=False)
    for key, ttl, value in entries:
        pipe.set(key, json.dumps(value, default=str), ex=ttl)
    pipe.execute()


def cache_delete(key: str) -> None:
    """Forget a value the database has just made stale; the next read loads it again (read-through)."""
    cache_client().delete(key)


def cache_fill(key: str, ttl_s: int, value: dict | list) -> bool:
    """Read-through: put a value just loaded from the database, unless the key was written meanwhile (SET NX).

    The gateway's own writes are plain SETs of what the EA just sent, so they always win over a fill; a fill never
    replaces them. Returns whether this value was stored.
    """
    return bool(cache_client().set(key, json.dumps(value, default=str), ex=ttl_s, nx=True))


def cache_get(key: str):
    raw = cache_client().get(key)
    return None if raw is None else json.loads(raw)
