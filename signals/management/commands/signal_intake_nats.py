"""`manage.py signal_intake_nats`: serve ML-engine signals over NATS (`ml.signals`, request-reply) until stopped."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from signals.intake_nats import SUBJECT, signal_intake_serve


class Command(BaseCommand):
    help = f"Take ML-engine signals from NATS ({SUBJECT}, queue group) until SIGINT/SIGTERM."

    def handle(self, *args, **options):
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        self.stdout.write(f"Serving {SUBJECT}; Ctrl-C to stop.")
        await signal_intake_serve(stop=stop)
