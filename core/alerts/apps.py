from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "core.alerts"
    label = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        # registers the tasks (and the tick's beat entry) in every process, so a delivery can be
        # enqueued by task name from the notifier below them
        from core.alerts import tasks  # noqa: F401
