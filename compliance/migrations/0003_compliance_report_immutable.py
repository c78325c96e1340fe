"""Compliance reports are immutable once generated: no role may change one (retention may still delete)."""

from django.db import migrations

REPORT_IMMUTABLE = """
CREATE OR REPLACE FUNCTION suho_compliance_report_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'mt5_compliance_reports is immutable: UPDATE refused' USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS compliance_report_immutable ON mt5_compliance_reports;
CREATE TRIGGER compliance_report_immutable BEFORE UPDATE ON mt5_compliance_reports
  FOR EACH ROW EXECUTE FUNCTION suho_compliance_report_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0002_row_security_and_audit")]
    operations = [
        migrations.RunSQL(
            REPORT_IMMUTABLE,
            "DROP TRIGGER IF EXISTS compliance_report_immutable ON mt5_compliance_reports;"
            "DROP FUNCTION IF EXISTS suho_compliance_report_immutable()",
        ),
    ]
