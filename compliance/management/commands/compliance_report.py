"""`manage.py compliance_report --tenant ID --type mifid_transactions|best_execution --start D --end D`: on demand."""

from datetime import UTC, date, datetime, time

from django.core.management.base import BaseCommand, CommandError

from compliance.reports import BEST_EXECUTION, MIFID_TRANSACTIONS, compliance_report_generate


def _moment(value: str) -> datetime:
    """An ISO date (midnight UTC) or an ISO date-time (UTC when it names no zone)."""
    try:
        parsed = datetime.fromisoformat(value) if "T" in value or " " in value else None
        if parsed is None:
            return datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError as exc:
        raise CommandError(f"not an ISO date or date-time: {value!r}") from exc


class Command(BaseCommand):
    help = "Generate and store one compliance report for a tenant and a period [start, end); prints its id."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant id")
        parser.add_argument("--type", required=True, choices=[MIFID_TRANSACTIONS, BEST_EXECUTION], dest="report_type")
        parser.add_argument("--start", required=True, help="ISO date or date-time, inclusive")
        parser.add_argument("--end", required=True, help="ISO date or date-time, exclusive")

    def handle(self, *args, tenant, report_type, start, end, **options):
        try:
            report = compliance_report_generate(
                tenant_id=tenant, report_type=report_type, start=_moment(start), end=_moment(end),
                generated_by="manage.py compliance_report",
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{report.report_type} report {report.id}: {report.content['count']} rows, "
                          f"sha256 {report.checksum}")  # fmt: skip
