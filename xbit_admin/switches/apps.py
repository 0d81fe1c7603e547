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

        from celery.signals import worker_process_init

        from xbit_admin import live_config
        from xbit_admin.switches.services import switch_values_served

        live_config.set_probe_answerer(switch_values_served)
        live_config.start_for_this_process()  # web, worker, feed…: answer probes from the start
        worker_process_init.connect(_start_in_pool_child, weak=False, dispatch_uid="switches.probe")


def _start_in_pool_child(**kwargs: object) -> None:
    from xbit_admin import live_config

    live_config.start_for_this_process()
