from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "core.alerts"
    label = "alerts"
    verbose_name = "Alerts"
