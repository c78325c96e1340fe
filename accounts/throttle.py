"""Back-off after failed authentication (EA API keys, passwords) that an attacker cannot turn against the victim.

Failures are counted per (source, principal) pair, per source and, for passwords, per principal (user name), in
Redis. Past a limit's free failures each further failure blocks its counter for twice as long as the last one, up
to a cap: nobody is ever locked out for longer than the cap, and an attempt refused while blocked is not counted
(it costs one Redis read, no database and no hashing), so a flood cannot extend its own block or anyone else's.

- The pair limit stops guessing from one source at one account. It never touches the same account from another
  source: ten bad keys for someone else's account id do not stop the genuine EA.
- The source limit stops one address spraying many accounts. A pair that has succeeded before ("trusted", 30
  days) is exempt, so one bad EA behind a VPS host's NAT does not block the other EAs there.
- The principal limit (passwords only) slows guessing one user's password from many addresses; trusted pairs are
  exempt, so the user's own browser is not blocked by it.

A source is an IPv4 address or an IPv6 /64 (a client picks addresses from its /64 at will); it comes from
suho/client_addr.py, which decides how much of X-Forwarded-For to trust. Without Redis the counters live in this
process (bounded), so authentication keeps working and keeps its limits per process instead of failing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.status import HTTP_429_TOO_MANY_REQUESTS

from suho.api_errors import ApiError

log = logging.getLogger(__name__)

TRUST_TTL_S = 30 * 24 * 3600
LOCAL_MAX_KEYS = 100_000  # the in-process fallback forgets everything beyond this (it is a fallback)


@dataclass(frozen=True)
class Limit:
    free: int  # failures in the window before the back-off starts
    max_s: int  # the longest block
    window_s: int = 900  # failures are counted from the first one for this long


EA_PAIR = Limit(free=5, max_s=300)
EA_SOURCE = Limit(free=30, max_s=300)
LOGIN_PAIR = Limit(free=5, max_s=300)
LOGIN_SOURCE = Limit(free=30, max_s=300)
LOGIN_PRINCIPAL = Limit(free=20, max_s=60)


@dataclass(frozen=True)
class _Counter:
    kind: str  # "pair" | "source" | "principal"
    key: str
    limit: Limit
    exempt_when_trusted: bool

    @property
    def until_key(self) -> str:
        return f"{self.key}:until"


class AttemptThrottle:
    """The counters one authentication attempt is subject to. Call `wait_s()` before any verification; then
    `failed()` or `succeeded()` with the outcome."""

    def __init__(self, scope: str, *, source: str | None, principal: str, pair: Limit, per_source: Limit,
                 per_principal: Limit | None = None):  # fmt: skip
        network = source_network(source) if source else None
        who = hashlib.sha256(principal.encode()).hexdigest()[:24]  # no user names in Redis
        prefix = f"auth_throttle:{scope}"
        self.trust_key = f"{prefix}:trust:{network}:{who}" if network else None
        self.counters: list[_Counter] = []
        if network:
            self.counters.append(_Counter("pair", f"{prefix}:pair:{network}:{who}", pair, False))
            self.counters.append(_Counter("source", f"{prefix}:source:{network}", per_source, True))
        if per_principal is not None:
            self.counters.append(_Counter("principal", f"{prefix}:principal:{who}", per_principal, True))
        self.blocking: list[_Counter] = []

    def wait_s(self) -> int:
        """Seconds until this attempt may be verified (0: now). Sets `blocking` to the counters that block it."""
        keys = [counter.until_key for counter in self.counters] + ([self.trust_key] if self.trust_key else [])
        values = _store_call("get_many", keys)
        trusted = bool(self.trust_key and values.get(self.trust_key))
        now = time.time()
        self.blocking = [
            counter for counter in self.counters
            if (values.get(counter.until_key) or 0) > now and not (trusted and counter.exempt_when_trusted)
        ]  # fmt: skip
        if not self.blocking:
            return 0
        return max(1, math.ceil(max(values[counter.until_key] for counter in self.blocking) - now))

    def failed(self) -> None:
        now = time.time()
        for counter in self.counters:
            count = _store_call("incr_window", counter.key, counter.limit.window_s)
            if count > counter.limit.free:
                first_s = settings.AUTH_BACKOFF_FIRST_BLOCK_S  # each further failure doubles it
                block_s = min(counter.limit.max_s, first_s * 2 ** (count - counter.limit.free - 1))
                _store_call("set", counter.until_key, now + block_s, math.ceil(block_s))

    def succeeded(self) -> None:
        pair = [counter for counter in self.counters if counter.kind == "pair"]
        _store_call("delete_many", [key for counter in pair for key in (counter.key, counter.until_key)])
        if self.trust_key:
            _store_call("set", self.trust_key, 1, TRUST_TTL_S)


LOGIN_THROTTLED = "Too many failed log-ins; try again in {retry_after_s} s."


class LoginThrottled(ApiError):
    code = "rate_limited"
    http_status = HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, retry_after_s: int):
        super().__init__(LOGIN_THROTTLED.format(retry_after_s=retry_after_s))
        self.retry_after_s = retry_after_s


def login_throttle(request, username: str) -> AttemptThrottle:
    """The counters of one password log-in (portal, admin, API): per (client address, user name), per client
    address and per user name. The address is REMOTE_ADDR, which suho/client_addr.py has set from the proxies."""
    source = (getattr(request, "META", None) or {}).get("REMOTE_ADDR")
    return AttemptThrottle("login", source=source, principal=(username or "").strip().lower(), pair=LOGIN_PAIR,
                           per_source=LOGIN_SOURCE, per_principal=LOGIN_PRINCIPAL)  # fmt: skip


def password_login(*, request, username: str, password: str, accept: Callable[[object], bool] | None = None):
    """`authenticate()` behind the back-off: raises LoginThrottled before any look-up or hashing while blocked.

    `accept` is the caller's further check on the authenticated user (staff only, the second factor); a user it
    refuses is a failed log-in like a wrong password (counted, `user_login_failed` sent) and None is returned.
    A success clears the (address, user name) pair and trusts it.
    """
    attempt = login_throttle(request, username)
    blocked_s = attempt.wait_s()
    if blocked_s:
        raise LoginThrottled(blocked_s)
    user = authenticate(request, username=username, password=password)
    if user is not None and accept is not None and not accept(user):
        user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
        user = None
    if user is None:
        attempt.failed()
    else:
        attempt.succeeded()
    return user


def source_network(remote_addr: str) -> str | None:
    """The unit a source limit counts: an IPv4 address, or the /64 an IPv6 client can pick addresses from."""
    try:
        ip = ipaddress.ip_address(remote_addr)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


# --- where the counters live: Redis, or this process while Redis is unreachable -----------------------------------


def note_once(key: str, ttl_s: int) -> bool:
    """True the first time `key` is noted within `ttl_s` (records a refusal once per block, not per attempt)."""
    return _store_call("add", f"auth_throttle:note:{key}", 1, ttl_s)


class _RedisStore:
    def get_many(self, keys: list[str]) -> dict:
        return cache.get_many(keys)

    def add(self, key: str, value, timeout_s: int) -> bool:
        return cache.add(key, value, timeout=timeout_s)

    def incr_window(self, key: str, window_s: int) -> int:
        if cache.add(key, 1, timeout=window_s):
            return 1
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window_s)
            return 1

    def set(self, key: str, value, timeout_s: int) -> None:
        cache.set(key, value, timeout=timeout_s)

    def delete_many(self, keys: list[str]) -> None:
        cache.delete_many(keys)


class _LocalStore:
    """Expiring values in a dict, for one process; cleared when it grows past LOCAL_MAX_KEYS."""

    def __init__(self):
        self._values: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def _get(self, key: str, now: float):
        expires, value = self._values.get(key, (0.0, None))
        return value if expires > now else None

    def get_many(self, keys: list[str]) -> dict:
        now = time.monotonic()
        with self._lock:
            found = {key: self._get(key, now) for key in keys}
        return {key: value for key, value in found.items() if value is not None}

    def add(self, key: str, value, timeout_s: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._get(key, now) is not None:
                return False
            self._put(key, value, now + timeout_s)
        return True

    def incr_window(self, key: str, window_s: int) -> int:
        now = time.monotonic()
        with self._lock:
            count = (self._get(key, now) or 0) + 1
            expires = self._values[key][0] if count > 1 else now + window_s
            self._put(key, count, expires)
        return count

    def set(self, key: str, value, timeout_s: int) -> None:
        with self._lock:
            self._put(key, value, time.monotonic() + timeout_s)

    def delete_many(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._values.pop(key, None)

    def _put(self, key: str, value, expires: float) -> None:
        if len(self._values) >= LOCAL_MAX_KEYS and key not in self._values:
            self._values.clear()
        self._values[key] = (expires, value)


_redis_store = _RedisStore()
_local_store = _LocalStore()


def _store_call(method: str, *args):
    try:
        return getattr(_redis_store, method)(*args)
    except (RedisError, OSError) as exc:
        log.warning("auth throttle: Redis unreachable (%s); counting in this process", type(exc).__name__)
        return getattr(_local_store, method)(*args)
