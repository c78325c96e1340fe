"""The connection state table: before HELLO only HELLO; after authentication everything but HELLO; nothing while
closing."""

import pytest

import binproto as bp
from binproto import ConnEvent, ConnState, MsgType
from binproto import errors as E


def test_before_hello_the_ea_may_send_only_hello():
    assert bp.EA_ALLOWED[ConnState.AWAITING_HELLO] == {MsgType.HELLO}
    with pytest.raises(bp.ProtocolError) as info:
        bp.check_ea_message(ConnState.AWAITING_HELLO, MsgType.PRICE_STREAM)
    assert str(info.value) == E.ERR_STATE.format(name="PRICE_STREAM", side="EA", state="AWAITING_HELLO")


def test_after_authentication_the_ea_may_send_every_ea_message_but_hello():
    for msg_type in MsgType:
        expected = msg_type < 0x80 and msg_type != MsgType.HELLO
        assert bp.ea_may_send(ConnState.AUTHENTICATED, msg_type) is expected, msg_type
    bp.check_ea_message(ConnState.AUTHENTICATED, MsgType.PRICE_STREAM)  # v1 and v2 price streams alike


def test_nothing_from_the_ea_is_accepted_while_closing():
    assert not any(bp.ea_may_send(ConnState.CLOSING, t) for t in MsgType)
    assert bp.server_may_send(ConnState.CLOSING, MsgType.SESSION_CLOSING)
    assert not bp.server_may_send(ConnState.CLOSING, MsgType.TRADING_SIGNAL)


def test_the_server_sends_signals_only_to_an_authenticated_ea():
    assert not bp.server_may_send(ConnState.AWAITING_HELLO, MsgType.TRADING_SIGNAL)
    assert bp.server_may_send(ConnState.AWAITING_HELLO, MsgType.AUTH_RESULT)
    assert bp.server_may_send(ConnState.AUTHENTICATED, MsgType.TRADING_SIGNAL)


def test_transitions():
    assert bp.next_state(ConnState.AWAITING_HELLO, ConnEvent.AUTH_OK) is ConnState.AUTHENTICATED
    assert bp.next_state(ConnState.AWAITING_HELLO, ConnEvent.AUTH_FAILED) is ConnState.CLOSING
    assert bp.next_state(ConnState.AUTHENTICATED, ConnEvent.AUTH_OK) is ConnState.AUTHENTICATED
    assert bp.next_state(ConnState.AUTHENTICATED, ConnEvent.CLOSE) is ConnState.CLOSING
    with pytest.raises(bp.ProtocolError) as info:
        bp.next_state(ConnState.CLOSING, ConnEvent.AUTH_OK)
    assert str(info.value) == E.ERR_TRANSITION.format(state="CLOSING", event="AUTH_OK")


def test_every_state_has_a_row_in_both_tables():
    assert set(bp.EA_ALLOWED) == set(ConnState) == set(bp.SERVER_ALLOWED)
