from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from compliance import receivers  # noqa: F401  (connects the audit receivers)
