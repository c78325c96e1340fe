"""`manage.py restore_db --input FILE --database NAME`: roles and database via db_setup, then pg_restore."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Restore a backup_db dump into a new database (made with the three roles); then run verify_audit."

    def add_arguments(self, parser):
        parser.add_argument("--input", required=True, help="Dump file written by backup_db / pg_dump -Fc")
        parser.add_argument("--database", required=True, help="Database to create and restore into")
        parser.add_argument("--drop-first", action="store_true", help="Drop that database first if it exists")

    def handle(self, *args, input, database, drop_first, **options):
        from suho.backup import database_restore

        database_restore(
            admin_url=settings.DATABASE_ADMIN_URL, database=database, path=Path(input),
            owner=settings.DB_OWNER_USER, service=settings.DB_SERVICE_USER, operator=settings.DB_OPERATOR_USER,
            passwords=settings.DB_ROLE_PASSWORDS, timescale=settings.TIMESCALEDB, drop_first=drop_first,
        )  # fmt: skip
        self.stdout.write(f"{input} restored into {database}")
