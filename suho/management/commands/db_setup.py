"""`manage.py db_setup`: create the database, its roles and grants (idempotent; needs DATABASE_ADMIN_URL)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from suho.dbsetup import database_setup


class Command(BaseCommand):
    help = "Create the database, the owner/service/operator roles and their grants (idempotent)."

    def handle(self, *args, **options):
        timescale = database_setup(
            admin_url=settings.DATABASE_ADMIN_URL,
            database=settings.DATABASES["default"]["NAME"],
            owner=settings.DB_OWNER_USER,
            service=settings.DB_SERVICE_USER,
            operator=settings.DB_OPERATOR_USER,
            passwords=settings.DB_ROLE_PASSWORDS,
            timescale=settings.TIMESCALEDB,
        )
        path = "TimescaleDB" if timescale else "plain PostgreSQL (native partitioning)"
        self.stdout.write(f"database ready: {settings.DATABASES['default']['NAME']} on {path}")
