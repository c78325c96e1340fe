"""`python -m eaclient.simulate`: run reference EAs (eaclient/simulated.py) against a Suho server, one per account.

A plain program, no Django: it runs wherever an EA would. `--demo` reads the demo account's key that `seed_demo`
wrote into the state directory (`--demo-file`, default `$SUHO_STATE_DIR/demo_ea.txt`, else `.state/demo_ea.txt`):
`make run` with `SUHO_DEMO_EA=1` starts it that way (suho/supervise.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from uuid import UUID

from eaclient.simulated import DEFAULT_SYMBOLS, SimulatedEA, SimulatorConfig, simulators_run

DEFAULT_URL = "ws://127.0.0.1:8000/ws/ea/"
DEMO_EA_FILE = "demo_ea.txt"  # accounts/demo.py writes it (a test checks the two names agree)
NO_ACCOUNTS = "Name the accounts: --account ID --key KEY (repeatable), --accounts-file PATH, or --demo."
KEYS_MISMATCH = "Give one --key per --account (got {accounts} accounts and {keys} keys)."
BAD_LINE = '{path}, line {number}: expected "account_id api_key".'
NO_DEMO_FILE = (
    "No demo EA key at {path}: seed_demo writes it only when it creates the demo API key. Issue a new key with "
    "`manage.py create_api_key --account <demo account id>` and pass --account/--key, or start from a clean state."
)
TOO_FEW = "--count {count} needs {count} accounts, got {available}: every simulated EA needs its own account."
DUPLICATE_ACCOUNT = "An account is named twice: every simulated EA needs its own account (one session per account)."
NONE_CONNECTED = "No simulated EA authenticated (last refusal: {refusal})."


class UsageError(Exception):
    """A command line that cannot run: the message says what to change."""


def demo_file_default() -> Path:
    return Path(os.environ.get("SUHO_STATE_DIR") or ".state") / DEMO_EA_FILE


def parser_build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eaclient.simulate",
        description="Run simulated MT5 EAs (one per account) that speak the Suho protocol end to end; print a summary.",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the EA WebSocket (default {DEFAULT_URL})")
    parser.add_argument("--account", action="append", default=[], help="MT5 account id; repeat, with --key")
    parser.add_argument("--key", action="append", default=[], help="that account's API key, in --account order")
    parser.add_argument("--accounts-file", type=Path, help='lines "account_id api_key" (keeps keys out of ps)')
    parser.add_argument("--demo", action="store_true", help="the demo account and key written by seed_demo")
    parser.add_argument("--demo-file", type=Path, help="where seed_demo wrote it (default $SUHO_STATE_DIR/demo_ea.txt)")
    parser.add_argument("--count", type=int, help="run the first N accounts only")
    parser.add_argument("--ticks-per-second", type=float, default=2.0, help="per symbol (default 2)")
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS), help="comma-separated")
    parser.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--protocol-version", type=int, choices=(1, 2), default=2, help="for ticks (default 2)")
    parser.add_argument("--balance-interval", type=float, default=30.0, help="seconds between ACCOUNT_FINANCE")
    parser.add_argument("--heartbeat-interval", type=float, default=30.0, help="seconds between HEARTBEAT")
    parser.add_argument("--seed", type=int, help="price walk seed (EA number i uses seed + i)")
    parser.add_argument("--market-turn-at", type=float, help="quote the demo market (eaclient/market.py) that turned "
                        "at this unix time, as `make run`'s reference feed does, instead of a random walk")  # fmt: skip
    parser.add_argument("--max-hold", type=float, help="close each position this many seconds after it opened")
    return parser


def simulators_build(options: argparse.Namespace) -> list[SimulatedEA]:
    """One SimulatedEA per named account; UsageError when the accounts or options do not add up."""
    credentials = credentials_read(options)
    if options.count is not None:
        if options.count > len(credentials):
            raise UsageError(TOO_FEW.format(count=options.count, available=len(credentials)))
        credentials = credentials[: options.count]
    symbols = tuple(s.strip() for s in options.symbols.split(",") if s.strip())
    try:
        return [
            SimulatedEA(
                SimulatorConfig(
                    url=options.url, account_id=account_id, api_key=key, symbols=symbols,
                    ticks_per_second=options.ticks_per_second, protocol_version=options.protocol_version,
                    balance_interval_s=options.balance_interval, heartbeat_interval_s=options.heartbeat_interval,
                    seed=None if options.seed is None else options.seed + i,
                    market_turn_at=options.market_turn_at, max_hold_s=options.max_hold,
                )
            )
            for i, (account_id, key) in enumerate(credentials)
        ]  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def credentials_read(options: argparse.Namespace) -> list[tuple[UUID, str]]:
    pairs: list[tuple[str, str]] = []
    if len(options.account) != len(options.key):
        raise UsageError(KEYS_MISMATCH.format(accounts=len(options.account), keys=len(options.key)))
    pairs += zip(options.account, options.key, strict=True)
    if options.accounts_file is not None:
        path = options.accounts_file
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                parts = line.split()
                if len(parts) != 2:
                    raise UsageError(BAD_LINE.format(path=path, number=number))
                pairs.append((parts[0], parts[1]))
    if options.demo:
        path = options.demo_file or demo_file_default()
        try:
            account_id, api_key = path.read_text().split()
        except (FileNotFoundError, ValueError):
            raise UsageError(NO_DEMO_FILE.format(path=path)) from None
        pairs.append((account_id, api_key))
    if not pairs:
        raise UsageError(NO_ACCOUNTS)
    if len({account for account, _key in pairs}) != len(pairs):
        raise UsageError(DUPLICATE_ACCOUNT)
    try:
        return [(UUID(account), key) for account, key in pairs]
    except ValueError as exc:
        raise UsageError(f"not an account id (UUID): {exc}") from exc


def summary(eas: list[SimulatedEA], elapsed_s: float) -> list[str]:
    lines = []
    for ea in eas:
        c = ea.counters
        line = (
            f"EA {ea.config.account_id}: connects {c.connects} (reconnects {c.reconnects}), ticks {c.ticks_sent}, "
            f"signals {c.signals_executed} executed / {c.signals_rejected} rejected, trades {c.trades_opened} "
            f"opened / {c.trades_closed} closed, commands {c.commands_executed + c.commands_failed}, "
            f"unacknowledged events {len(ea.unacknowledged())}"
        )
        lines.append(line + (f", last refusal: {c.last_refusal}" if c.last_refusal else ""))
    ticks = sum(ea.counters.ticks_sent for ea in eas)
    lines.append(f"Total: {len(eas)} EA(s), {ticks} ticks in {elapsed_s:.1f} s ({ticks / max(elapsed_s, 1e-9):.0f}/s)")
    return lines


async def _run(eas: list[SimulatedEA], duration_s: float | None) -> None:
    def stop_all() -> None:
        for ea in eas:
            ea.stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_all)
    await simulators_run(eas, duration_s=duration_s)


def main(argv: list[str] | None = None) -> int:
    options = parser_build().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        eas = simulators_build(options)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Simulating {len(eas)} EA(s) against {options.url}; Ctrl-C stops.", flush=True)
    started = time.monotonic()
    asyncio.run(_run(eas, options.duration))
    print("\n".join(summary(eas, time.monotonic() - started)), flush=True)
    if not any(ea.counters.connects for ea in eas):
        refusal = next((ea.counters.last_refusal for ea in eas if ea.counters.last_refusal), "none")
        print(f"error: {NONE_CONNECTED.format(refusal=refusal)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
