from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import staff_auth  # noqa: F401  (connects the log-in signal that marks 2FA sessions)
