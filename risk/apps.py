from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "risk"
    verbose_name = "Risk"

    def ready(self) -> None:
        # imported once the app registry is ready: these modules use the models of every room
        from risk import (
            config,  # noqa: F401  (registers risk_defaults_ensure)
            tasks,  # noqa: F401  (registers the tasks and the beat schedule)
            watcher,
        )

        watcher.register()
