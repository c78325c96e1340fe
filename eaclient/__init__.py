"""The EA side of Suho: one client library for the Suho Binary Protocol (docs/protocol.md), for every EA we run.

`EAClient` (client.py) speaks the protocol and keeps the connection alive; a `Handler` is the terminal behind it.
`SimulatedEA` (simulated.py) is the reference EA on a simulated market, `python -m eaclient.simulate` runs it.
Imports binproto, websockets and the standard library only (an import contract in `make lint`): an EA runs on a
trader's machine, without Django or the server's dependencies, and no server package imports it.
"""
