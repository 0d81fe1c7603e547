from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "core.events"
    label = "events"
    verbose_name = "Domain events"
