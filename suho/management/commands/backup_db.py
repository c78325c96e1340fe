"""`manage.py backup_db --output FILE`: a custom-format pg_dump of the database, as the administrator."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from suho.backup import database_backup


class Command(BaseCommand):
    help = "Dump the whole database (every tenant) with pg_dump -Fc through DATABASE_ADMIN_URL."

    def add_arguments(self, parser):
        parser.add_argument("--output", required=True, help="Dump file to write")
        parser.add_argument("--database", default=settings.DATABASES["owner"]["NAME"])

    def handle(self, *args, output, database, **options):
        path = database_backup(admin_url=settings.DATABASE_ADMIN_URL, database=database, path=Path(output))
        self.stdout.write(f"{database} dumped to {path} ({path.stat().st_size} bytes)")
