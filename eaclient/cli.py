"""`suho-ea`: the agent on a trader's machine, joining a MetaTrader 5 terminal to Suho.

    suho-ea --server wss://suho.example/ws/ea/ --account <account id> --key-file suho-key.txt --symbols EURUSD,XAUUSD

The API key comes from --key-file, the SUHO_EA_KEY environment variable or --key (in that order of preference: a
command line is visible to other users of the machine); it is never printed or logged. The terminal is MetaTrader 5
through MetaQuotes' MetaTrader5 package (Windows, `pip install "suho-ea[mt5]"`), or `--terminal simulated` to try
everything without one. State (the journal of signals acted on, unacknowledged trade events) lives in --state-dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from eaclient.agent import Agent

KEY_ENV = "SUHO_EA_KEY"
MT5_PASSWORD_ENV = "SUHO_MT5_PASSWORD"  # noqa: S105  (the variable's name)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="suho-ea",
        description="Join a MetaTrader 5 terminal to Suho: stream its prices, account and trades; execute signals.",
        epilog=f"The API key: --key-file, or the {KEY_ENV} environment variable, or --key. It is never printed.",
    )
    p.add_argument("--server", required=True, help="the EA endpoint, e.g. wss://suho.example/ws/ea/")
    p.add_argument("--account", required=True, type=UUID, help="the Suho account id the API key belongs to")
    p.add_argument("--key", default="", help=f"the API key (prefer --key-file or {KEY_ENV})")
    p.add_argument("--key-file", type=Path, help="a file holding the API key")
    p.add_argument("--symbols", default="EURUSD", help="comma-separated symbols to stream, as the broker names them")
    p.add_argument("--state-dir", type=Path, help="where the journal and outbox live (default ~/.suho-ea/<account>)")
    p.add_argument("--magic", type=int, default=None, help="magic number of the agent's orders (else the server's)")
    p.add_argument("--terminal", choices=("mt5", "simulated"), default="mt5")
    p.add_argument("--mt5-path", default="", help="terminal64.exe to start or attach to (default: the one running)")
    p.add_argument("--mt5-login", type=int, default=0, help="trading account to log in to (default: the terminal's)")
    p.add_argument("--mt5-server", default="", help="the broker's trade server for --mt5-login")
    p.add_argument("--mt5-password-file", type=Path, help=f"its password (or the {MT5_PASSWORD_ENV} variable)")
    p.add_argument("--sim-state", type=Path, help="simulated terminal: its account file (kept across runs)")
    p.add_argument("--sim-seed", type=int, default=None)
    p.add_argument("--sim-order-delay-s", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--poll-interval-s", type=float, default=0.25)
    p.add_argument("--balance-interval-s", type=float, default=30.0)
    p.add_argument("--heartbeat-interval-s", type=float, default=30.0)
    p.add_argument("--log-level", default="INFO")
    return p


def read_secret(file: Path | None, env: str, given: str) -> str:
    if file is not None:
        return file.read_text(encoding="utf-8").strip()
    return os.environ.get(env, "").strip() or given.strip()


def build(args: argparse.Namespace) -> Agent:
    from eaclient.agent import DEFAULT_MAGIC, Agent, AgentConfig
    from eaclient.terminal import Terminal

    key = read_secret(args.key_file, KEY_ENV, args.key)
    if not key:
        raise SystemExit(f"suho-ea: no API key: give --key-file, set {KEY_ENV}, or --key")
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    state_dir = args.state_dir or Path.home() / ".suho-ea" / str(args.account)
    if args.terminal == "simulated":
        from eaclient.terminals.simulated import SimulatedTerminal

        terminal: Terminal = SimulatedTerminal(
            symbols=symbols, seed=args.sim_seed, state_path=args.sim_state, order_delay_s=args.sim_order_delay_s
        )
    else:
        from eaclient.terminals.mt5 import Mt5Terminal

        password = read_secret(args.mt5_password_file, MT5_PASSWORD_ENV, "")
        terminal = Mt5Terminal(path=args.mt5_path, login=args.mt5_login, password=password, server=args.mt5_server)
    config = AgentConfig(
        url=args.server,
        account_id=args.account,
        api_key=key,
        state_dir=state_dir,
        symbols=symbols,
        magic=args.magic if args.magic is not None else DEFAULT_MAGIC,
        poll_interval_s=args.poll_interval_s,
        balance_interval_s=args.balance_interval_s,
        heartbeat_interval_s=args.heartbeat_interval_s,
        terminal_kind=args.terminal,
    )
    return Agent(config, terminal)


async def serve(agent: Agent) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            loop.add_signal_handler(sig, agent.stop)
    await agent.run()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = build(args)
    logging.getLogger("suho-ea").info(
        "suho-ea for account %s → %s (%s terminal, state in %s)",
        args.account,
        args.server,
        args.terminal,
        agent.config.state_dir,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(agent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
