"""Beat tasks of the switches app: thin, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from core.periodic import register_periodic
from core.switches import store
from xbit_admin.switches.adapters import liquidation_off_alert
from xbit_admin.switches.canary import canary_evaluate


@shared_task(name="switches.canary_evaluate", ignore_result=True)
def canary_evaluate_task() -> None:
    canary_evaluate()


@shared_task(name="switches.liquidation_off_reminder", ignore_result=True)
def liquidation_off_reminder_task() -> None:
    """Spec 10: a P0 stays raised while liquidation is OFF (re-raised if someone resolved it)."""

    if store.liquidation_mode() == store.LIQ_OFF:
        liquidation_off_alert()


register_periodic("switches.canary_evaluate", "switches.canary_evaluate", 30, queue="default")
register_periodic(
    "switches.liquidation_off_reminder", "switches.liquidation_off_reminder", 60, queue="critical"
)
