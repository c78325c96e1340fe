from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The gateway and its outbound bookkeeping register their /metrics collectors when imported: import them in
        # every process, so a process that serves /metrics without holding EA sockets still reports them (zeros).
        from accounts import events
        from trading import gateway, outbound, outbound_batch  # noqa: F401

        # accounts (a layer below) announces configuration changes and commands; the gateway records and
        # publishes them after commit (accounts/events.py).
        events.account_config_changed.connect(outbound.account_config_changed_receive, dispatch_uid="trading")
        events.account_command_requested.connect(outbound.account_command_requested_receive, dispatch_uid="trading")
