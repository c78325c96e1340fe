"""`manage.py trading_enable --account ID [--actor NAME]`: turn trading back on after the risk monitor disabled it
(accounts' `account_trading_start`, the counterpart of the stop the monitor used)."""

from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from accounts.models import MT5Account
from accounts.services import account_trading_start
from suho.routers import operator_path

ACCOUNT_NOT_FOUND = "No MT5 account with id {account_id!r}."


class Command(BaseCommand):
    help = "Re-enable trading on an MT5 account: flag on, risk parameters pushed, ENABLE_TRADING sent; audited."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="MT5 account id (UUID)")
        parser.add_argument("--actor", default="manage.py trading_enable", help="Who decided (audited)")

    def handle(self, *args, account, actor, **options):
        try:
            account_id = UUID(account)
        except ValueError as exc:
            raise CommandError(ACCOUNT_NOT_FOUND.format(account_id=account)) from exc
        with operator_path():  # found across tenants; the change itself runs under the account's tenant context
            found = MT5Account.objects.filter(account_id=account_id).first()
        if found is None:
            raise CommandError(ACCOUNT_NOT_FOUND.format(account_id=account))
        restored = account_trading_start(account=found, actor=actor, reason="trading restored by an operator")
        self.stdout.write(f"Trading enabled on {restored} (config version {restored.config_version})")
