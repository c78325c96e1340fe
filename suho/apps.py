from django.apps import AppConfig


class SuhoConfig(AppConfig):
    name = "suho"
    verbose_name = "Suho platform"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        import suho.celery  # noqa: F401  — the project's Celery app becomes current, so shared tasks use it
        from suho.dbpool import pool_check_install
        from suho.sql import psycopg_statement_cache_widen

        connection_created.connect(pool_check_install, dispatch_uid="suho.dbpool")
        psycopg_statement_cache_widen()
