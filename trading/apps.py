from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading"

    def ready(self) -> None:
        from trading import config  # noqa: F401  (registers trading_defaults_ensure)
