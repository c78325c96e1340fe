from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The gateway and its outbound bookkeeping register their /metrics collectors when imported: import them in
        # every process, so a process that serves /metrics without holding EA sockets still reports them (zeros).
        from trading import gateway, outbound_batch  # noqa: F401
