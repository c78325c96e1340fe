"""`manage.py tradingview_webhook_create --account <id>`: a secret TradingView alert URL for an MT5 account; the
URL path alone is the last line."""

from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from accounts.models import MT5Account
from signals.services import tradingview_webhook_create
from suho.routers import operator_path

ACCOUNT_NOT_FOUND = "No MT5 account with id {account_id!r}."


class Command(BaseCommand):
    help = "Issue a TradingView alert webhook for an MT5 account and print its secret URL path once (last line)."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="MT5 account id (UUID)")
        parser.add_argument("--label", default="", help="A note to recognise the webhook by (e.g. the chart)")

    def handle(self, *args, account, label, **options):
        try:
            account_id = UUID(account)
        except ValueError:
            account_id = None
        with operator_path():  # an operator's tool: the account is found across tenants
            found = MT5Account.objects.filter(account_id=account_id).first() if account_id else None
        if found is None:
            raise CommandError(ACCOUNT_NOT_FOUND.format(account_id=account))
        hook, token = tradingview_webhook_create(account=found, label=label)
        self.stdout.write(f'Issued {hook} for MT5 account "{found}". It is shown once; paste it into the alert:')
        self.stdout.write(f"/api/tv/{token}/")
