from django.apps import AppConfig


class SignalsConfig(AppConfig):
    name = "signals"
    default_auto_field = "django.db.models.BigAutoField"
