"""The EA's side of one connection: its state (binproto/states.py's table), its tokens, and when to reconnect.

Kept apart from the socket code so each rule can be tested with plain numbers: which frames the state allows
(docs/protocol.md §6), when the access token is refreshed (step 5), how long to wait before the next attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import binproto
from binproto import AuthStatus, ConnState, MsgType
from binproto.states import ConnEvent, ea_may_send, next_state, server_may_send

TOKEN_REFRESH_MARGIN_S = 60.0  # refresh this long before the access token expires (at most 1/5 of its lifetime)
TOKEN_REUSE_MARGIN_S = 2 * TOKEN_REFRESH_MARGIN_S  # a reconnect presents the access token only if it lasts this long
REFRESH_RETRY_S = 30.0  # no AUTH_RESULT for a TOKEN_REFRESH: ask again after this long
BACKOFF_FIRST_S = 1.0


class Session:
    """One connection's protocol state: AWAITING_HELLO until AUTH_RESULT, then AUTHENTICATED, then CLOSING.

    The client asks it before each frame it sends and after each frame it reads, so a frame the state does not
    allow is never sent (a HELLO twice, a trade event after SESSION_CLOSING) and one the server should not have sent
    is dropped rather than acted on.
    """

    def __init__(self) -> None:
        self.state = ConnState.AWAITING_HELLO

    def on_auth_result(self, result: binproto.AuthResult) -> None:
        event = ConnEvent.AUTH_OK if result.status == AuthStatus.OK else ConnEvent.AUTH_FAILED
        self.state = next_state(self.state, event)

    def close(self) -> None:
        self.state = next_state(self.state, ConnEvent.CLOSE)

    @property
    def authenticated(self) -> bool:
        return self.state == ConnState.AUTHENTICATED

    @property
    def closing(self) -> bool:
        return self.state == ConnState.CLOSING

    def may_send(self, msg_type: MsgType) -> bool:
        return ea_may_send(self.state, msg_type)

    def may_receive(self, msg_type: MsgType) -> bool:
        return server_may_send(self.state, msg_type)


@dataclass
class Tokens:
    """The access and refresh tokens of the last AUTH_RESULT, with deadlines on the caller's monotonic clock.

    A reconnect presents the access token while it has a good while left (one Argon2 check of the API key saved on
    the server); the refresh is due a margin before expiry, at most a fifth of the token's lifetime.
    """

    access: str = field(default="", repr=False)
    refresh: str = field(default="", repr=False)
    expires_at: float = 0.0
    refresh_due: float = 0.0

    def keep(self, result: binproto.AuthResult, now: float) -> None:
        """A quick reconnect with the access token gets no new tokens: the ones held stay valid."""
        if result.access_token:
            self.access, self.refresh = result.access_token, result.refresh_token
        lifetime_s = max(0.0, (result.access_expires_us - result.server_time_us) / 1e6)
        self.expires_at = now + lifetime_s
        self.refresh_due = now + lifetime_s - min(TOKEN_REFRESH_MARGIN_S, lifetime_s / 5)

    def forget(self) -> None:
        self.access = self.refresh = ""
        self.expires_at = self.refresh_due = 0.0

    def usable(self, now: float) -> bool:
        """Present the access token in HELLO (rather than the API key)?"""
        return bool(self.access) and self.expires_at - now > TOKEN_REUSE_MARGIN_S

    def refresh_asked(self, now: float) -> None:
        """A TOKEN_REFRESH went out: if no answer comes, ask again later."""
        self.refresh_due = now + REFRESH_RETRY_S


class Backoff:
    """Exponential backoff with jitter, capped: 1, 2, 4 … `cap_s` seconds, each × a random 0.5–1.0 so that many
    EAs cut off together (a server restart) do not all come back in the same instant."""

    def __init__(self, cap_s: float, rng: random.Random | None = None):
        self.cap_s = cap_s
        self.failures = 0
        self._rng = rng or random.Random()

    def failed(self) -> None:
        self.failures += 1

    def succeeded(self) -> None:
        self.failures = 0

    def delay(self) -> float:
        step = min(self.cap_s, BACKOFF_FIRST_S * 2 ** max(self.failures - 1, 0))
        return step * self._rng.uniform(0.5, 1.0)

    def longest(self) -> float:
        """After a refused API key: waiting longer will not fix the key, so do not hammer the server."""
        return self.cap_s * self._rng.uniform(0.5, 1.0)
