from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "core.events"
    label = "events"
    verbose_name = "Domain events"

    def ready(self) -> None:
        from core.events import retention  # noqa: F401  (registers its defaults ensurer; needs the app registry)
