"""suho.server defers the formatting of autobahn's debug log arguments: nothing is formatted per socket read or write
unless a debug line is written, and a written line reads as before."""

from __future__ import annotations

from autobahn import util
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol

from suho.server import DEBUG_FORMATTERS, autobahn_debug_arguments_deferred


class Peer:
    peer = "tcp4:127.0.0.1:50000"

    def dataReceived(self, data: bytes) -> None:  # autobahn's name
        pass


def test_debug_arguments_are_formatted_only_when_written_and_read_as_before(monkeypatch):
    for module in (protocol, twisted_websocket):  # restored after the test
        for name in DEBUG_FORMATTERS:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(protocol.Timings, "__str__", protocol.Timings.__str__)
    peer = Peer()
    expected = (util.hltype(peer.dataReceived), util.hlval(peer.peer), util.hlval(144), protocol.pformat([("a", 1)]))
    calls = []
    highlight = util.hl
    monkeypatch.setattr(util, "hl", lambda *args, **kwargs: calls.append(args) or highlight(*args, **kwargs))

    autobahn_debug_arguments_deferred()
    autobahn_debug_arguments_deferred()  # twice: not wrapped twice
    arguments = (twisted_websocket.hltype(peer.dataReceived), twisted_websocket.hlval(peer.peer),
                 protocol.hlval(144), protocol.pformat([("a", 1)]))  # fmt: skip

    assert calls == [], "formatted although no debug line was written"
    assert tuple(str(argument) for argument in arguments) == expected
    assert f"{arguments[0]} got {arguments[2]:>3}" == f"{expected[0]} got {expected[2]:>3}"  # as a logger formats
    assert calls, "str() formats"


def test_the_one_formatter_whose_text_autobahn_returns_still_gives_text(monkeypatch):
    for name in DEBUG_FORMATTERS:
        monkeypatch.setattr(protocol, name, getattr(protocol, name))
    monkeypatch.setattr(protocol.Timings, "__str__", protocol.Timings.__str__)
    timings = protocol.Timings()
    timings.track("onOpen")

    autobahn_debug_arguments_deferred()

    assert str(timings).startswith("{'onOpen': ")
