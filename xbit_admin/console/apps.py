from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "xbit_admin.console"
    label = "console"
    verbose_name = "Operator console"

    def ready(self) -> None:
        from core.observability import configure_structlog

        configure_structlog()
        from xbit_admin.console import explorers  # noqa: F401  (registers its defaults)
