"""`manage.py ml_engine_key_create --tenant <slug>`: issue a tenant's ML-engine key; the key alone is the last line."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant
from signals.services import ml_engine_key_create

TENANT_NOT_FOUND = "No tenant with slug {slug!r}."


class Command(BaseCommand):
    help = "Issue an ML-engine key (Authorization: Bearer …) for POST /api/signals/ and print it once (last line)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--label", default="", help="A note to recognise the key by (e.g. the model's host)")

    def handle(self, *args, tenant, label, **options):
        found = Tenant.objects.filter(slug=tenant).first()  # identity rows: read through the operator role
        if found is None:
            raise CommandError(TENANT_NOT_FOUND.format(slug=tenant))
        key, plaintext = ml_engine_key_create(tenant_id=found.id, label=label)
        self.stdout.write(f'Issued {key} for tenant "{found.name}". It is shown once; give it to the ML engine:')
        self.stdout.write(plaintext)
