"""`manage.py stream_tail`: read stored account events from JetStream, for operators (filter by account and kind)."""

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from suho.streams import stream_replay


class Command(BaseCommand):
    help = "Print account events from the MT5_ACCOUNT stream, oldest first, from a time or a sequence."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="account id (default: every account)")
        parser.add_argument("--kind", help="profile, balance, heartbeat, trades (default: all; ticks are not stored)")
        parser.add_argument("--since", help="ISO time, e.g. 2026-11-25T12:00:00Z")
        parser.add_argument("--seq", type=int, help="start at this stream sequence instead")
        parser.add_argument("--limit", type=int, default=100)

    def handle(self, *args, **options):
        since = None
        if options["since"]:
            try:
                since = datetime.fromisoformat(options["since"].replace("Z", "+00:00"))
            except ValueError as exc:
                raise CommandError(f"--since is not an ISO time: {options['since']!r}") from exc
        try:
            events = stream_replay(account_id=options["account"], kind=options["kind"], since=since,
                                   start_seq=options["seq"], limit=options["limit"])  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for event in events:
            self.stdout.write(
                f"{event.seq}\t{event.time.isoformat()}\t{event.subject}\t{event.data.decode(errors='replace')}"
            )
