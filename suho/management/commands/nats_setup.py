"""`manage.py nats_setup`: create or update the JetStream streams (idempotent; fails clearly without JetStream)."""

from django.core.management.base import BaseCommand, CommandError

from suho.streams import streams_ensure


class Command(BaseCommand):
    help = "Create or update the JetStream streams and their limits."

    def handle(self, *args, **options):
        try:
            for line in streams_ensure():
                self.stdout.write(line)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
