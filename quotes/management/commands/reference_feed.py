"""`manage.py reference_feed`: stream Polygon, replayed or demo-market quotes into mt5_reference_quotes and the cache.

`--file -` replays JSON lines from standard input as they arrive, each with its own time: `make run`'s demo pipes
the demo market into it (`python -m eaclient.market`, the market the demo EA's broker quotes too), history first."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from quotes.feeds import PolygonForexFeed, ReplayFeed, StreamFeed, feed_pump, random_walk, recorded_ticks
from quotes.services import reference_quotes_record
from suho.asyncdb import db_thread

POLYGON_KEY_MISSING = "POLYGON_API_KEY is not set: the Polygon feed needs an API key (or use --source replay)."


class Command(BaseCommand):
    help = "Stream reference (Polygon or replayed) quotes: stored in batches, latest per symbol cached."

    def add_arguments(self, parser):
        parser.add_argument("--source", choices=["polygon", "replay"], default="replay")
        parser.add_argument("--symbols", nargs="+", default=None, help="default: REFERENCE_SYMBOLS")
        parser.add_argument("--file", type=Path, help="replay: a recording (.jsonl or .csv), or - for JSON lines on "
                            "standard input as they come; default a random walk")  # fmt: skip
        parser.add_argument("--seed", type=int, default=1, help="replay: random-walk seed")
        parser.add_argument("--limit", type=int, default=None, help="stop after this many ticks")
        parser.add_argument("--fast", action="store_true", help="replay: as fast as possible, not in real time")
        parser.add_argument("--publish", action="store_true", help="also publish to mt5.reference.quotes.{symbol}")

    def handle(self, *args, source, symbols, file, seed, limit, fast, publish, **options):
        symbols = symbols or settings.REFERENCE_SYMBOLS
        if source == "polygon":
            if not settings.POLYGON_API_KEY:
                raise CommandError(POLYGON_KEY_MISSING)
            feed = PolygonForexFeed(api_key=settings.POLYGON_API_KEY, symbols=symbols, url=settings.POLYGON_WS_URL)
        elif str(file) == "-":
            feed = StreamFeed(sys.stdin)
        else:
            ticks = recorded_ticks(file) if file else random_walk(
                symbols=symbols, seed=seed, start=datetime.now(UTC), count=limit)  # fmt: skip
            feed = ReplayFeed(ticks, realtime=not fast)
        record = db_thread(partial(reference_quotes_record, source=source, publish=publish))
        total = asyncio.run(feed_pump(feed, lambda batch: record(ticks=batch), limit=limit))
        self.stdout.write(f"{total} reference quotes stored")
