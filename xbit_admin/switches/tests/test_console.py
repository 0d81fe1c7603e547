"""The switches page: every switch on one page (current, default, last change), edit with a confirmation
stating the consequence, rollback, degradation and canary controls — each shown only to who may use it,
and its endpoint answers 403 to the others."""

from __future__ import annotations

from typing import Any

from core.accounts.roles import Role
from core.switches import store
from core.switches.models import SwitchChange


def test_a_super_admin_sees_every_switch_and_changes_one_with_a_reason(console_as: Any) -> None:
    admin = console_as(Role.SUPER_ADMIN)
    page = admin.get("/switches/").content.decode()
    for key in (
        "global_internalization_enabled",
        "api_mode",
        "liquidation_mode",
        "routing_mode:BTC",
        "withdrawals_enabled:TRON",
    ):
        assert f'data-switch="{key}"' in page, key
    assert "REDUCE_ONLY: Opening orders are refused" not in page  # consequences are per option
    assert "Opening orders are refused (REDUCE_ONLY)" in page and 'data-level="3"' in page
    response = admin.post(
        "/switches/", {"action": "set", "key": "api_mode", "value": "REDUCE_ONLY", "reason": "drill"}
    )
    assert response.status_code == 302 and store.api_mode() == "REDUCE_ONLY"
    page = admin.get("/switches/").content.decode()
    assert "OPEN → REDUCE_ONLY" in page or "OPEN → <strong>REDUCE_ONLY</strong>" in page
    missing_reason = admin.post(
        "/switches/", {"action": "set", "key": "api_mode", "value": "OPEN", "reason": ""}
    )
    assert missing_reason.status_code == 302 and store.api_mode() == "REDUCE_ONLY"
    admin.post("/switches/", {"action": "degrade", "level": "3", "reason": "outage"})
    assert store.api_mode() == "MAINTENANCE" and store.core_value("degradation_level") == 3


def test_a_risk_manager_sees_only_their_controls_and_gets_403_for_the_others(console_as: Any) -> None:
    risk = console_as(Role.RISK_MANAGER)
    page = risk.get("/switches/").content.decode()
    assert 'data-set="HL_MODE"' in page  # routing modes are theirs
    api_row = page.split('data-switch="api_mode"')[1].split("</tr>")[0]
    assert "read-only" in api_row and "data-set=" not in api_row
    assert 'data-level="' not in page and 'data-stage="' not in page
    for data in (
        {"action": "set", "key": "api_mode", "value": "MAINTENANCE", "reason": "x"},
        {"action": "rollback", "key": "liquidation_mode", "to": "2024-01-01T00:00:00", "reason": "x"},
        {"action": "degrade", "level": "3", "reason": "x"},
        {"action": "canary", "stage": "1", "reason": "x"},
    ):
        assert risk.post("/switches/", data).status_code == 403, data
    assert store.api_mode() == "OPEN" and not SwitchChange.objects.exists()
    risk.post(
        "/switches/", {"action": "set", "key": "routing_mode:BTC", "value": "HL_MODE", "reason": "hedge"}
    )
    assert SwitchChange.objects.get().name == "routing_mode:BTC"


def test_support_cannot_open_the_page(console_as: Any) -> None:
    assert console_as(Role.SUPPORT).get("/switches/").status_code == 403


def test_a_refused_typed_value_stays_in_its_field_with_the_reason_and_changes_nothing(
    console_as: Any,
) -> None:
    risk = console_as(Role.RISK_MANAGER)
    response = risk.post(
        "/switches/", {"action": "set", "key": "normal_threshold", "value": "-5", "reason": "typo"}
    )
    assert response.status_code == 400
    row = response.content.decode().split('data-switch="normal_threshold"')[1].split("</tr>")[0]
    assert 'value="-5"' in row and 'aria-invalid="true"' in row and "is not a money value" in row
    assert not SwitchChange.objects.filter(name="normal_threshold").exists()
    assert (
        'value="10000"' in risk.get("/switches/").content.decode().split('data-switch="normal_threshold"')[1]
    )


def test_every_process_is_asked_what_it_serves(console_as: Any) -> None:
    """The check button asks every running process (here: this test process's own listener) which values
    it serves, and shows each with whether all are current."""
    from core.switches import store as switch_store

    switch_store.api_mode()  # this process reads a switch: its listener runs and answers
    page = console_as(Role.SUPER_ADMIN).post("/switches/", {"action": "probe"}).content.decode()
    table = page.split('id="probe-table"')[1].split("</table>")[0]
    assert 'data-process="' in table and "current" in table and "stale" not in table


def test_process_labels_come_from_how_the_process_was_started() -> None:
    from core.live_config import process_label

    assert process_label(["/x/site-packages/uvicorn/__main__.py", "xbit_admin.asgi:application"]) == "web"
    assert process_label(["/x/bin/celery", "-A", "xbit_admin", "worker", "-Q", "critical"]) == "worker"
    assert process_label(["/x/bin/celery", "-A", "xbit_admin", "beat"]) == "beat"
    assert process_label(["manage.py", "run_feed"]) == "feed"
    assert process_label(["manage.py", "migrate"]) is None
    assert process_label(["/x/bin/pytest", "-q"]) is None
