"""The demo's market: one price path per symbol, a pure function of time, seen by both sides of `make run`'s demo.

`python -m eaclient.market --turn-at T` prints its reference quotes as JSON lines, the half hour before now first,
then live (`make run` pipes them into `manage.py reference_feed --file -`); the demo EA's simulated broker quotes the
same path with a small fixed offset, its own spread and a little jitter of its own. So the broker and the
reference disagree by what real ones disagree by (fractions of a pip), and the deviation check stays quiet unless a
test moves the broker on purpose. Two independent random walks, as before, drifted 0.27 % apart within minutes.

The path, in pips of the symbol from its start price, around `turn_at` (unix seconds): a gentle drift towards the
turn for the half hour before it (the reference feed writes that half hour as history), then a move away from it
that eases off over a few minutes, then swings of 9, 23 and 61 minutes. Each symbol moves one way at the turn
(EURUSD and USDJPY up, GBPUSD and XAUUSD down), so the reference strategy's 5/20-minute crossover fires on the first
minute bar after the turn: a BUY and a SELL, and more crossovers later from the swings. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

# symbol: (start mid, pip size, digits, pips the path moves per unit of the shape below, direction at the turn)
SYMBOLS: dict[str, tuple[float, float, int, float, int]] = {
    "EURUSD": (1.08500, 0.0001, 5, 1.0, 1),
    "GBPUSD": (1.27000, 0.0001, 5, 1.4, -1),
    "USDJPY": (149.500, 0.01, 3, 1.2, 1),
    "USDCHF": (0.88000, 0.0001, 5, 1.0, -1),
    "AUDUSD": (0.66000, 0.0001, 5, 1.0, 1),
    "USDCAD": (1.36000, 0.0001, 5, 1.1, -1),
    "NZDUSD": (0.60000, 0.0001, 5, 1.0, 1),
    "XAUUSD": (2400.00, 0.1, 2, 4.0, -1),
    "XAGUSD": (28.500, 0.01, 3, 0.5, 1),
    "BTCUSD": (67000.00, 1.0, 2, 20.0, 1),
}
HISTORY_S = 30 * 60  # how far before the turn the path is defined for history (the strategy needs 21 minutes)
DRIFT_PIPS_PER_MIN = 0.03  # towards the turn, before it: the fast average sits just on the far side of the slow one
MOVE_PIPS, MOVE_MIN = 8.0, 2.0  # after the turn: 8 pips, eased in with a 2-minute time constant
SWINGS = ((2.0, 9.0), (4.0, 23.0), (6.0, 61.0))  # (pips, period in minutes), faded in over SWING_FADE_IN_MIN
SWING_FADE_IN_MIN = 10.0
JITTER_PIPS = 0.15  # per quarter second, the same for everyone who asks about that instant
REFERENCE_SPREAD_PIPS = 0.8
BROKER_OFFSET_PIPS = 0.2  # the broker's mid sits this far above the reference mid
BROKER_JITTER_PIPS = 0.1  # the broker's own, on top of the market's
BROKER_SPREAD_POINTS = {"EURUSD": 12, "GBPUSD": 16, "USDJPY": 14, "XAUUSD": 25}  # others: 15


def _unit(*parts: object) -> float:
    """A deterministic number in [-1, 1) from its arguments (the same in every process, unlike hash())."""
    return zlib.crc32(":".join(map(str, parts)).encode()) / 2**31 - 1.0


def _shape(minutes: float) -> float:
    """The path's shape in pips, `minutes` from the turn, for a symbol that moves up at the turn."""
    if minutes <= 0:
        return -DRIFT_PIPS_PER_MIN * minutes
    move = MOVE_PIPS * (1.0 - math.exp(-minutes / MOVE_MIN))
    fade = min(1.0, minutes / SWING_FADE_IN_MIN)
    return move + fade * sum(pips * math.sin(2 * math.pi * minutes / period) for pips, period in SWINGS)


@dataclass(frozen=True)
class DemoMarket:
    turn_at: float  # unix seconds

    def known(self, symbol: str) -> bool:
        return symbol in SYMBOLS

    def mid(self, symbol: str, at: float) -> float:
        start, pip, _digits, scale, direction = SYMBOLS[symbol]
        shape = _shape((at - self.turn_at) / 60) * direction * scale
        return start + (shape + JITTER_PIPS * _unit(symbol, int(at * 4))) * pip

    def reference(self, symbol: str, at: float) -> tuple[float, float]:
        """(bid, ask) of the reference feed at `at`."""
        _start, pip, digits, _scale, _direction = SYMBOLS[symbol]
        mid, half = self.mid(symbol, at), REFERENCE_SPREAD_PIPS * pip / 2
        return round(mid - half, digits + 1), round(mid + half, digits + 1)

    def broker(self, symbol: str, at: float) -> tuple[float, float, int]:
        """(bid, ask, spread in points) of the demo broker at `at`: the market plus the broker's offset and jitter."""
        _start, pip, digits, _scale, _direction = SYMBOLS[symbol]
        point = 10.0**-digits
        jitter = BROKER_JITTER_PIPS * _unit("broker", symbol, int(at * 4))
        mid = self.mid(symbol, at) + (BROKER_OFFSET_PIPS + jitter) * pip
        spread = max(1, round(BROKER_SPREAD_POINTS.get(symbol, 15) * (1 + 0.3 * _unit("spread", symbol, int(at)))))
        bid = round(mid - spread * point / 2, digits)
        return bid, round(bid + spread * point, digits), spread


def reference_lines(market: DemoMarket, symbols: list[str], at: float) -> str:
    """One instant's reference quotes as JSON lines (reference_feed's recording format)."""
    moment = datetime.fromtimestamp(at, UTC).isoformat()
    return "".join(
        json.dumps({"symbol": s, "bid": bid, "ask": ask, "time": moment}) + "\n"
        for s in symbols
        for bid, ask in [market.reference(s, at)]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eaclient.market", description=__doc__.splitlines()[0])
    parser.add_argument("--turn-at", type=float, default=None, help="the turn, unix seconds (default now)")
    parser.add_argument("--symbols", default="EURUSD,GBPUSD,USDJPY,XAUUSD", help="comma-separated")
    parser.add_argument("--history-step", type=float, default=5.0, help="seconds between history quotes")
    parser.add_argument("--step", type=float, default=0.5, help="seconds between live quotes")
    args = parser.parse_args(argv)
    market = DemoMarket(turn_at=time.time() if args.turn_at is None else args.turn_at)
    symbols = [s for s in args.symbols.split(",") if market.known(s)]
    now = time.time()
    try:
        sys.stdout.writelines(reference_lines(market, symbols, now - HISTORY_S + i * args.history_step)
                              for i in range(int(HISTORY_S / args.history_step)))  # fmt: skip
        while True:
            sys.stdout.write(reference_lines(market, symbols, time.time()))
            sys.stdout.flush()
            time.sleep(args.step)
    except (BrokenPipeError, KeyboardInterrupt):  # the reader is gone, or Ctrl-C
        return 0


if __name__ == "__main__":
    sys.exit(main())
