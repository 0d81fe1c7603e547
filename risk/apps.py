from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "risk"
    verbose_name = "Risk"

    def ready(self) -> None:
        from risk import (
            config,  # noqa: F401  (registers risk_defaults_ensure)
            tasks,  # noqa: F401  (registers the beat schedule)
            watcher,
        )

        watcher.register()
