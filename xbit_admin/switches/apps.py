from django.apps import AppConfig


class SwitchesConfig(AppConfig):
    name = "xbit_admin.switches"
    label = "switches"
    verbose_name = "Control switches"

    def ready(self) -> None:
        from xbit_admin.switches import (
            adapters,
            tasks,  # noqa: F401  (registers the beat schedule)
        )

        adapters.register_all()
