"""`manage.py operator_totp_enable --username NAME`: give an operator a TOTP secret; prints it and the otpauth URI
once (add it to an authenticator app). The admin log-in then asks for the 6-digit code."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import operator_totp_enable

NOT_STAFF = "{username!r} is not an active staff user."


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)

    def handle(self, *args, username, **options):
        user = User.objects.filter(username=username, is_staff=True, is_active=True).first()
        if user is None:
            raise CommandError(NOT_STAFF.format(username=username))
        secret, uri = operator_totp_enable(user=user)
        self.stdout.write(f"secret: {secret}\nuri: {uri}")
