from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "xbit_admin.events"
    label = "events"
    verbose_name = "Domain events"
