"""The connection's states and the one table of what each side may send in each (h11's _state.py, in small).

AWAITING_HELLO → (AUTH_RESULT ok) → AUTHENTICATED → (SESSION_CLOSING, or any reason to close) → CLOSING.
A legacy v1 EA that authenticated in the WebSocket handshake starts in AUTHENTICATED (the gateway decides).
"""

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final

from binproto import errors as E
from binproto.constants import ConnState, MsgType
from binproto.errors import ProtocolError


class ConnEvent(Enum):
    AUTH_OK = "auth_ok"  # the server sent AUTH_RESULT with status OK
    AUTH_FAILED = "auth_failed"  # … with any other status
    CLOSE = "close"  # either side starts closing (SESSION_CLOSING sent, close frame, error)


EA_TYPES: Final = frozenset(t for t in MsgType if t < 0x80)
SERVER_TYPES: Final = frozenset(t for t in MsgType if t >= 0x80)

# what the EA may send in each state; anything else is answered with ERROR NOT_AUTHENTICATED/NOT_ALLOWED_IN_STATE
EA_ALLOWED: Final[Mapping[ConnState, frozenset[MsgType]]] = MappingProxyType(
    {
        ConnState.AWAITING_HELLO: frozenset({MsgType.HELLO}),
        ConnState.AUTHENTICATED: EA_TYPES - {MsgType.HELLO},
        ConnState.CLOSING: frozenset(),  # read and dropped without an answer
    }
)
# what the server may send in each state
SERVER_ALLOWED: Final[Mapping[ConnState, frozenset[MsgType]]] = MappingProxyType(
    {
        ConnState.AWAITING_HELLO: frozenset({MsgType.AUTH_RESULT, MsgType.ERROR, MsgType.SESSION_CLOSING}),
        ConnState.AUTHENTICATED: SERVER_TYPES,  # AUTH_RESULT here answers TOKEN_REFRESH
        ConnState.CLOSING: frozenset({MsgType.SESSION_CLOSING, MsgType.ERROR}),
    }
)
TRANSITIONS: Final[Mapping[tuple[ConnState, ConnEvent], ConnState]] = MappingProxyType(
    {
        (ConnState.AWAITING_HELLO, ConnEvent.AUTH_OK): ConnState.AUTHENTICATED,
        (ConnState.AWAITING_HELLO, ConnEvent.AUTH_FAILED): ConnState.CLOSING,
        (ConnState.AWAITING_HELLO, ConnEvent.CLOSE): ConnState.CLOSING,
        (ConnState.AUTHENTICATED, ConnEvent.AUTH_OK): ConnState.AUTHENTICATED,  # token refreshed
        (ConnState.AUTHENTICATED, ConnEvent.AUTH_FAILED): ConnState.CLOSING,  # refresh refused
        (ConnState.AUTHENTICATED, ConnEvent.CLOSE): ConnState.CLOSING,
        (ConnState.CLOSING, ConnEvent.CLOSE): ConnState.CLOSING,
    }
)


def ea_may_send(state: ConnState, msg_type: MsgType) -> bool:
    return msg_type in EA_ALLOWED[state]


def server_may_send(state: ConnState, msg_type: MsgType) -> bool:
    return msg_type in SERVER_ALLOWED[state]


def check_ea_message(state: ConnState, msg_type: MsgType) -> None:
    """ProtocolError when the EA sent a message its connection's state does not allow."""
    if msg_type not in EA_ALLOWED[state]:
        raise ProtocolError(E.ERR_STATE.format(name=MsgType(msg_type).name, side="EA", state=state.name))


def next_state(state: ConnState, event: ConnEvent) -> ConnState:
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise ProtocolError(E.ERR_TRANSITION.format(state=state.name, event=event.name)) from None
