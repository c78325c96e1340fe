"""`manage.py gdpr_erase --user ID [--actor NAME]`: pseudonymise a user's personal data (compliance.gdpr)."""

from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from compliance.gdpr import user_erase
from suho.routers import operator_path

USER_NOT_FOUND = "No user with id {user_id!r}."


class Command(BaseCommand):
    help = "Erase a user's personal data by pseudonymisation; trades, reports and the audit chain stay intact."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="User id (UUID)")
        parser.add_argument("--actor", default="manage.py gdpr_erase", help="Who asked (recorded in the audit row)")

    def handle(self, *args, user, actor, **options):
        try:
            user_id = UUID(user)
        except ValueError as exc:
            raise CommandError(USER_NOT_FOUND.format(user_id=user)) from exc
        with operator_path():
            found = User.objects.filter(pk=user_id).first()
        if found is None:
            raise CommandError(USER_NOT_FOUND.format(user_id=user))
        erased = user_erase(user=found, actor=actor)
        self.stdout.write(f"User {erased.pk} pseudonymised as {erased.username}")
