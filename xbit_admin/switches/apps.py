from celery.signals import worker_process_init
from django.apps import AppConfig

from core import live_config


class SwitchesConfig(AppConfig):
    """What a switch does when it changes (adapters into each room, history, canary, the probe
    answerer); the stored values are ``core.switches``."""

    name = "xbit_admin.switches"
    label = "switch_controls"
    verbose_name = "Control switch behaviour"

    def ready(self) -> None:
        # imported here, once the app registry is loaded: these modules define or query models
        from core.audit.services import audit_recorded
        from xbit_admin.switches import (
            adapters,
            tasks,  # noqa: F401  (registers the beat schedule)
        )
        from xbit_admin.switches.history import on_audit_recorded
        from xbit_admin.switches.services import switch_values_served

        adapters.register_all()
        audit_recorded.connect(on_audit_recorded, dispatch_uid="switches.history")
        live_config.set_probe_answerer(switch_values_served)
        live_config.start_for_this_process()  # web, worker, feed…: answer probes from the start
        worker_process_init.connect(_start_in_pool_child, weak=False, dispatch_uid="switches.probe")


def _start_in_pool_child(**kwargs: object) -> None:
    live_config.start_for_this_process()
