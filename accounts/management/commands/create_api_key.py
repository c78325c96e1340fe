"""`manage.py create_api_key --account <id>`: issue an EA API key; the key alone is the last line (for scripts)."""

from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from accounts.models import MT5Account
from accounts.services import api_key_create
from suho.routers import operator_path

ACCOUNT_NOT_FOUND = "No MT5 account with id {account_id!r}."


class Command(BaseCommand):
    help = "Issue an API key for an MT5 account and print it once (last line of the output)."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="MT5 account id (UUID)")
        parser.add_argument("--label", default="", help="A note to recognise the key by (e.g. the VPS it runs on)")

    def handle(self, *args, account, label, **options):
        with operator_path():  # an operator's tool: the account is found across tenants
            found = MT5Account.objects.select_related("tenant").filter(account_id=_uuid(account)).first()
            if found is None:
                raise CommandError(ACCOUNT_NOT_FOUND.format(account_id=account))
            api_key, plaintext = api_key_create(account=found, label=label)
        self.stdout.write(f'Issued API key {api_key} for MT5 account "{found}" ({found.pk}, {found.tenant.name}).')
        self.stdout.write("It is shown once; store it in the EA's settings:")
        self.stdout.write(plaintext)


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None
