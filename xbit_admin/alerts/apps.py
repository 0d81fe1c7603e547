from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "xbit_admin.alerts"
    label = "alerts"
    verbose_name = "Alerts"
