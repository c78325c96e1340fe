from django.db import migrations

from suho.timeseries import EnableRowSecurity


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [
        EnableRowSecurity("suho_users"),
        EnableRowSecurity("mt5_user_accounts"),
        EnableRowSecurity("mt5_api_keys"),
        EnableRowSecurity("mt5_ea_sessions"),
    ]
