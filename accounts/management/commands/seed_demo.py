"""`manage.py seed_demo`: the demo tenant, users, MT5 account and API key; secrets are printed only when made."""

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.demo import demo_ea_file_write, demo_seed


class Command(BaseCommand):
    help = "Create the demo tenant, trader, operator, MT5 account and API key if missing (idempotent)."

    def handle(self, *args, **options):
        seed = demo_seed(user_password=settings.DEMO_PASSWORD, admin_password=settings.DEMO_ADMIN_PASSWORD)

        def state(part: str) -> str:
            return "created" if part in seed.created else "exists"

        def login(secret: str | None, username: str) -> str:
            shown = f"password: {secret}" if secret else f"password not shown; manage.py changepassword {username}"
            return f"log in as user {username!r}, {shown}"

        write = self.stdout.write
        write(f'Demo tenant "{seed.tenant.name}": {state("tenant")}')
        write(f"Portal (trader, /accounts/login/): {state('user')}; {login(seed.user_password, seed.user.username)}")
        admin_login = login(seed.admin_password, seed.admin.username)
        write(f"Operator (admin, /admin/): {state('admin')}; {admin_login}, then the two-factor code")
        if seed.admin_totp_uri:
            write(f"Operator {seed.admin.username}: two-factor log-in enrolled; add this URI to an authenticator app:")
            write(seed.admin_totp_uri)
            if settings.DEBUG:
                write("(development: manage.py operator_totp_code --username admin prints the current code)")
        write(f'MT5 account "{seed.account.name}" ({seed.account.pk}): {state("account")}')
        if seed.api_key_plaintext is None:
            another = f"manage.py create_api_key --account {seed.account.pk}"
            write(f"EA API key {seed.api_key}: exists (not shown again; for another: {another})")
        else:
            path = demo_ea_file_write(account_id=seed.account.pk, api_key=seed.api_key_plaintext)
            write(f"Demo EA key file: {path} (mode 0600, read by `python -m eaclient.simulate --demo`)")
            write("EA API key: created. It is shown once; store it in the EA's settings:")
            write(seed.api_key_plaintext)
