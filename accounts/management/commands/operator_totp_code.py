"""`manage.py operator_totp_code --username NAME`: print an operator's current TOTP code. Development only (DEBUG):
it lets `make run`'s demo operator log in to the admin without an authenticator app at hand."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.totp import totp_code

DEBUG_ONLY = "operator_totp_code runs only with DEBUG=1 (a production code comes from the operator's app)."
NO_SECRET = "{username!r} is not an active staff user with two-factor log-in enrolled."  # noqa: S105


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        if not settings.DEBUG:
            raise CommandError(DEBUG_ONLY)
        user = User.objects.filter(username=username, is_staff=True, is_active=True).exclude(totp_secret="").first()
        if user is None:
            raise CommandError(NO_SECRET.format(username=username))
        self.stdout.write(totp_code(user.totp_secret))
