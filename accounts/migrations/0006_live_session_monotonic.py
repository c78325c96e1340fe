"""The live-session epoch never goes back (decision 0017): a full-row save of a stale copy of an account (the admin,
a form) would otherwise write an older epoch over a newer claim and let the replaced session's frames count again."""

from django.db import migrations

LIVE_SESSION_KEEP = """
CREATE OR REPLACE FUNCTION suho_live_session_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.live_session_epoch < OLD.live_session_epoch THEN
    NEW.live_session_epoch := OLD.live_session_epoch;
    NEW.live_session_id := OLD.live_session_id;
    NEW.live_session_node := OLD.live_session_node;
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS live_session_keep ON mt5_user_accounts;
CREATE TRIGGER live_session_keep BEFORE UPDATE OF live_session_epoch ON mt5_user_accounts
  FOR EACH ROW EXECUTE FUNCTION suho_live_session_keep();
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_account_live_session")]
    operations = [
        migrations.RunSQL(
            LIVE_SESSION_KEEP,
            "DROP TRIGGER IF EXISTS live_session_keep ON mt5_user_accounts;"
            "DROP FUNCTION IF EXISTS suho_live_session_keep()",
        ),
    ]
