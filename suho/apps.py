from django.apps import AppConfig


class SuhoConfig(AppConfig):
    name = "suho"
    verbose_name = "Suho platform"

    def ready(self) -> None:
        import suho.celery  # noqa: F401  — the project's Celery app becomes current, so shared tasks use it
