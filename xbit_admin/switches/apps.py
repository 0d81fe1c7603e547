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

        from xbit_admin.audit.services import audit_recorded
        from xbit_admin.switches.history import on_audit_recorded

        audit_recorded.connect(on_audit_recorded, dispatch_uid="switches.history")
