"""`manage.py data_bridge`: write the volume rows gateways publish (INGEST_MODE=bridge) to PostgreSQL."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from suho.streams import streams_ensure
from trading.bridge import ACK_WAIT_S, bridge_run


class Command(BaseCommand):
    help = "Consume suho.ingest.> from JetStream and commit it to PostgreSQL, acking after commit (Ctrl-C stops)."

    def add_arguments(self, parser):
        parser.add_argument("--fetch-batch", type=int, default=64, help="messages per pull (each is a batch of rows)")
        parser.add_argument("--durable", default="data-bridge", help="the JetStream durable consumer bridges share")
        parser.add_argument(
            "--ack-wait", type=float, default=ACK_WAIT_S, help="seconds until what a dead bridge fetched is redelivered"
        )

    def handle(self, *args, **options):
        streams_ensure()

        async def main() -> int:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            return await bridge_run(stop=stop, fetch_batch=options["fetch_batch"], durable=options["durable"],
                                    ack_wait_s=options["ack_wait"])  # fmt: skip

        applied = asyncio.run(main())
        self.stdout.write(f"data bridge stopped after applying {applied} messages")
