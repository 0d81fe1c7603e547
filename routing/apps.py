from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing"

    def ready(self) -> None:
        from routing import (  # noqa: F401  (register their defaults ensurers)
            client_groups,
            services,
        )
