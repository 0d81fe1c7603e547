"""A refused risk-config edit shows the operator what they typed, in the field, with the reason next to
it and the value that stays in force — not the current value as if nothing had been typed."""

from __future__ import annotations

from typing import Any

import pytest

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from risk.config import risk_config
from routing.models import GLOBAL, RoutingConfig

pytestmark = pytest.mark.django_db


def row(html: str, scope: str, field: str) -> str:
    return html.split(f'id="f-{scope}-{field}"', 1)[1].split("</tr>", 1)[0]


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("0", "daily_loss_alert must be greater than zero (got 0)"),
        ("-250", "daily_loss_alert must be greater than zero (got -250)"),
        ("12abc", "daily_loss_alert: &#x27;12abc&#x27; is not a number."),
    ],
)
def test_the_refused_value_is_shown_again_with_the_reason(console_as: Any, typed: str, reason: str) -> None:
    client = console_as(Role.RISK_MANAGER)
    current = risk_config().daily_loss_alert
    response = client.post(
        "/risk-config/", {"scope": "risk", "field": "daily_loss_alert", "value": typed, "reason": "desk"}
    )
    assert response.status_code == 400
    field = row(response.content.decode(), "risk", "daily_loss_alert")
    assert f'name="value" value="{typed}" class="num invalid"' in field and 'aria-invalid="true"' in field
    error = field.split('class="field-error error"', 1)[1]
    assert "Refused: " + reason in error and f"Unchanged: {current:,.0f} USD." in error
    assert risk_config().daily_loss_alert == current
    assert not AuditEntry.objects.filter(action="risk.config_update").exists()
    # other fields keep showing their current values
    other = row(response.content.decode(), "risk", "daily_loss_trip")
    assert 'class="num invalid"' not in other and "field-error" not in other


def test_a_refused_routing_threshold_keeps_the_typed_value(console_as: Any) -> None:
    before = RoutingConfig.objects.get(asset=GLOBAL).normal_threshold
    response = console_as(Role.RISK_MANAGER).post(
        "/risk-config/", {"scope": "routing", "field": "normal_threshold", "value": "-0.5", "reason": "x"}
    )
    field = row(response.content.decode(), "routing", "normal_threshold")
    assert response.status_code == 400 and 'value="-0.5" class="num invalid"' in field
    assert "normal_threshold must be greater than zero" in field
    assert RoutingConfig.objects.get(asset=GLOBAL).normal_threshold == before


def test_after_a_valid_edit_the_field_shows_the_new_value(console_as: Any) -> None:
    client = console_as(Role.RISK_MANAGER)
    response = client.post(
        "/risk-config/",
        {"scope": "risk", "field": "daily_loss_alert", "value": "123,456", "reason": "desk"},
        follow=True,
    )
    field = row(response.content.decode(), "risk", "daily_loss_alert")
    assert 'value="123,456" class="num"' in field and "field-error" not in field
