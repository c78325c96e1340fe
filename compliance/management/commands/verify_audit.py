"""`manage.py verify_audit [--tenant ID|platform]`: walk the audit hash chains; exit 1 naming the first broken row."""

from django.core.management.base import BaseCommand, CommandError

from compliance.audit import PLATFORM, audit_verify

AUDIT_CHAIN_BROKEN = "Audit chain {chain} is broken at {first_break}"


class Command(BaseCommand):
    help = "Recompute every audit row's hash in chain order; name the first broken row of each chain (exit code 1)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help=f"Only this tenant's chain (a tenant id, or '{PLATFORM}')")

    def handle(self, *args, tenant=None, **options):
        try:
            reports = audit_verify(tenant=tenant)
        except ValueError as exc:
            raise CommandError(f"--tenant must be a tenant id or '{PLATFORM}': {exc}") from exc
        broken = [report for report in reports if not report.ok]
        for report in reports:
            if report.ok:
                self.stdout.write(f"chain {report.chain}: {report.rows} rows, intact")
            else:
                self.stderr.write(AUDIT_CHAIN_BROKEN.format(chain=report.chain, first_break=report.first_break))
        if broken:
            raise CommandError(f"{len(broken)} of {len(reports)} audit chain(s) broken", returncode=1)
        self.stdout.write(f"{len(reports)} audit chain(s) verified")
