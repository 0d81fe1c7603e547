"""The services queue risk's tasks by name (``risk.enqueue``): every such name is a registered task."""

from __future__ import annotations

from celery import current_app

from risk import enqueue


def test_every_task_name_the_services_enqueue_is_a_registered_risk_task() -> None:
    names = {value for key, value in vars(enqueue).items() if key.isupper() and isinstance(value, str)}
    assert names == {
        "risk.liquidations_drain",
        "risk.liquidation_execute",
        "risk.liquidation_emails",
        "risk.hedge_evaluate",
    }
    assert names <= set(current_app.tasks)
