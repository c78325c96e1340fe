"""The latest-value cache (Redis/Dragonfly) with the seed's keys and TTLs (§9.3): JSON values others can read.

Redis is a cache here, never the record: when it is down or slow, a read is a miss (the caller reads PostgreSQL)
and a write is skipped, logged once a minute per process, and nothing a client is told depends on it. Django's
cache (the auth back-off counters) falls back to counting in the process instead (accounts/throttle.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis
from django.conf import settings

QUOTE_TTL_S = 5
BALANCE_TTL_S = 30
POSITIONS_TTL_S = 10
REFERENCE_QUOTE_TTL_S = 10  # the reference feed ticks several times a second while the market is open

REDIS_DOWN_LOG_INTERVAL_S = 60

log = logging.getLogger(__name__)
_client: redis.Redis | None = None
_lock = threading.Lock()
_logged_at = 0.0


def cache_client() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"], **settings.REDIS_OPTIONS)
        return _client


def redis_unavailable(exc: redis.RedisError) -> None:
    """Log that Redis failed, at most once per REDIS_DOWN_LOG_INTERVAL_S: an outage must not flood the log."""
    global _logged_at
    now = time.monotonic()
    if now - _logged_at >= REDIS_DOWN_LOG_INTERVAL_S or not _logged_at:
        _logged_at = now
        log.warning("Redis unavailable (%s: %s): cache reads miss and writes are skipped", type(exc).__name__, exc)


def quote_key(account_id, symbol: str) -> str:
    return f"broker_quote:{account_id}:{symbol}"


def reference_quote_key(symbol: str) -> str:
    return f"reference_quote:{symbol}"


def balance_key(account_id) -> str:
    return f"balance:{account_id}"


def positions_key(account_id) -> str:
    return f"positions:{account_id}"


# SET … EX for each key, looped in Redis: one command per TTL to pack and one reply to parse instead of one each per
# key. The gateway writes a batch's latest quotes (hundreds of keys) from its database thread, which holds the GIL
# while redis-py packs and parses, and the event loop that decodes frames and publishes live ticks waits behind it.
SET_MANY_EX = """
for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1]) end
return #KEYS
"""


def cache_set_many(entries: list[tuple[str, int, dict | list]]) -> None:
    """(key, ttl_s, value) triples, one command per distinct TTL (SET_MANY_EX)."""
    by_ttl: dict[int, list[tuple[str, str]]] = {}
    for key, ttl, value in entries:
        by_ttl.setdefault(ttl, []).append((key, json.dumps(value, default=str)))
    for ttl, items in by_ttl.items():
        cache_set_many_json(ttl, items)


def cache_set_many_json(ttl_s: int, items: list[tuple[str, str]]) -> None:
    """(key, JSON text) pairs with one TTL, in one command: for a hot path that writes its JSON by hand."""
    if not items:
        return
    try:
        set_many = cache_client().register_script(SET_MANY_EX)
        set_many(keys=[key for key, _text in items], args=[ttl_s, *[text for _key, text in items]])
    except redis.RedisError as exc:
        redis_unavailable(exc)


def cache_delete(key: str) -> None:
    """Forget a value the database has just made stale; the next read loads it again (read-through). With Redis
    unreachable the value cannot be read either; if Redis kept it, its TTL (at most 30 s) ends it."""
    try:
        cache_client().delete(key)
    except redis.RedisError as exc:
        redis_unavailable(exc)


def cache_fill(key: str, ttl_s: int, value: dict | list) -> bool:
    """Read-through: put a value just loaded from the database, unless the key was written meanwhile (SET NX).

    The gateway's own writes are plain SETs of what the EA just sent, so they always win over a fill; a fill never
    replaces them. Returns whether this value was stored.
    """
    try:
        return bool(cache_client().set(key, json.dumps(value, default=str), ex=ttl_s, nx=True))
    except redis.RedisError as exc:
        redis_unavailable(exc)
        return False


def cache_get(key: str):
    """The cached value, or None: not cached, or Redis unreachable (the caller reads the database)."""
    try:
        raw = cache_client().get(key)
    except redis.RedisError as exc:
        redis_unavailable(exc)
        return None
    return None if raw is None else json.loads(raw)
