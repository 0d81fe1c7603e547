"""A console form that refuses a value shows the operator what they typed, with the reason next to that
field, and changes nothing (spec 07: every refused input says why). The routing per-asset settings
form is the one in this room; a refusal comes either from the form's own parsing (not a number) or from
the audited service (a threshold of 0 or below, an exit factor out of range)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from routing.models import RoutingConfig

pytestmark = pytest.mark.django_db


def _form(client: Any, asset: str) -> dict[str, str]:
    """What the page would post back untouched: every field as shown, and a reason."""
    fields = client.get(f"/routing/{asset}/").context["fields"]
    return {f["name"]: f["shown"] for f in fields} | {"reason": "operator edit"}


def _row(html: str, name: str) -> str:
    """The settings-table row of one field: its input, its inline error."""
    match = re.search(rf'<tr[^>]*>\s*<td><label for="id_{name}".*?</tr>', html, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def _input_value(row: str, name: str) -> str:
    match = re.search(rf'<input name="{name}" id="id_{name}" value="([^"]*)"', row)
    assert match, f"no input for {name}"
    return match.group(1)


def _unchanged(before: list[Any]) -> None:
    assert list(RoutingConfig.objects.order_by("asset").values()) == before
    assert not AuditEntry.objects.filter(action="routing.config_update").exclude(actor=None).exists()


@pytest.mark.parametrize(
    ("asset", "name", "typed", "reason"),
    [
        ("BTC", "normal_threshold", "0", "normal_threshold must be greater than zero (got 0)."),
        ("BTC", "betting_threshold", "-5", "betting_threshold must be greater than zero (got -5)."),
        ("BTC", "hl_exit_factor", "1.5", "hl_exit_factor must be in (0, 1]."),
        ("global", "normal_threshold", "0", "normal_threshold must be greater than zero (got 0)."),
    ],
)
def test_a_value_the_service_refuses_is_shown_as_typed_with_the_reason_beside_it(
    asset: str, name: str, typed: str, reason: str, console_as: Any, market: None
) -> None:
    client = console_as(Role.RISK_MANAGER)
    data = _form(client, asset)
    before = list(RoutingConfig.objects.order_by("asset").values())
    response = client.post(f"/routing/{asset}/", data | {name: typed})
    assert response.status_code == 400
    row = _row(response.content.decode(), name)
    assert _input_value(row, name) == typed
    assert 'class="has-error"' in row and f'<div class="error field-error" role="alert">{reason}</div>' in row
    _unchanged(before)


def test_a_malformed_number_is_shown_as_typed_and_the_other_typed_values_are_kept(
    console_as: Any, market: None
) -> None:
    client = console_as(Role.RISK_MANAGER)
    data = _form(client, "BTC")
    before = list(RoutingConfig.objects.order_by("asset").values())
    response = client.post(
        "/routing/BTC/",
        data | {"normal_threshold": "12k", "betting_threshold": "25,000", "reason": "widen BTC"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    row = _row(html, "normal_threshold")
    assert _input_value(row, "normal_threshold") == "12k"
    assert "&#x27;12k&#x27; is not a number." in row
    # the valid value typed beside it and the reason stay as typed, not reset to the stored ones
    assert _input_value(_row(html, "betting_threshold"), "betting_threshold") == "25,000"
    assert 'name="reason" value="widen BTC"' in html
    _unchanged(before)


def test_a_refused_value_on_a_field_left_blank_before_is_not_replaced_by_the_inherited_one(
    console_as: Any, market: None
) -> None:
    """BTC inherits its normal threshold (blank input, 10,000 in force): the refused 0 must not come
    back as blank or as 10,000."""
    client = console_as(Role.RISK_MANAGER)
    data = _form(client, "BTC")
    assert data["normal_threshold"] == ""
    html = client.post("/routing/BTC/", data | {"normal_threshold": "0"}).content.decode()
    row = _row(html, "normal_threshold")
    assert _input_value(row, "normal_threshold") == "0"
    assert RoutingConfig.objects.filter(asset="BTC", normal_threshold__isnull=False).count() == 0


def test_after_a_refusal_the_stored_values_come_back_on_the_next_visit(console_as: Any, market: None) -> None:
    client = console_as(Role.RISK_MANAGER)
    data = _form(client, "BTC")
    client.post("/routing/BTC/", data | {"normal_threshold": "0"})
    fresh = client.get("/routing/BTC/").content.decode()
    assert _input_value(_row(fresh, "normal_threshold"), "normal_threshold") == ""
    assert "must be greater than zero" not in fresh


def test_a_missing_reason_is_said_next_to_the_reason_field_and_the_typed_values_stay(
    console_as: Any, market: None
) -> None:
    client = console_as(Role.RISK_MANAGER)
    data = _form(client, "BTC")
    before = list(RoutingConfig.objects.order_by("asset").values())
    response = client.post("/routing/BTC/", data | {"normal_threshold": "7500", "reason": "  "})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(
        r'<input name="reason"[^>]*aria-invalid="true"></label>\s*'
        r'<div class="error field-error" role="alert">A reason is required.</div>',
        html,
    )
    assert _input_value(_row(html, "normal_threshold"), "normal_threshold") == "7500"
    _unchanged(before)


# --- filters: a value that cannot be applied is kept as typed and the page says it was not applied ---


@pytest.mark.parametrize("typed", ["2026-13-45", "yesterday"])
def test_an_unreadable_audit_date_is_shown_as_typed_with_the_reason(typed: str, console_as: Any) -> None:
    response = console_as(Role.DATA_ANALYST).get("/audit/", {"since": typed})
    assert response.status_code == 200  # "2026-13-45" used to be a server error
    html = response.content.decode()
    assert f'name="since" value="{typed}" aria-label="Since" aria-invalid="true">' in html
    assert f"&#x27;{typed}&#x27; is not a date (YYYY-MM-DD) or date-time: not applied." in html


def test_an_unreadable_date_on_the_user_page_is_shown_as_typed_with_the_reason(
    console_as: Any, trader: Any
) -> None:
    response = console_as(Role.SUPPORT).get(f"/users/{trader.pk}/", {"until": "2026-02-30"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="until" value="2026-02-30" aria-label="Until" aria-invalid="true">' in html
    assert "&#x27;2026-02-30&#x27; is not a date (YYYY-MM-DD) or date-time: not applied." in html


def test_a_user_id_that_is_not_a_number_is_shown_as_typed_in_the_decision_log_filter(
    console_as: Any, market: None
) -> None:
    response = console_as(Role.RISK_MANAGER).get("/routing/", {"user_id": "abc"})
    html = response.content.decode()
    assert 'name="user_id" value="abc"' in html
    assert "&#x27;abc&#x27; is not a user id (digits only)." in html
    assert response.context["decisions"].rows == []


def test_the_routing_page_overrides_max_internal_exposure_per_asset(console_as: Any, market: None) -> None:
    from routing.selectors import resolved_config

    client = console_as(Role.RISK_MANAGER)
    data = _form(client, "BTC")
    assert "max_internal_exposure" in data
    response = client.post("/routing/BTC/", data | {"max_internal_exposure": "250000"})
    assert response.status_code == 302, response.content[:300]
    assert resolved_config("BTC")["max_internal_exposure"] == {"value": 250_000, "source": "asset"}
    assert resolved_config("ETH")["max_internal_exposure"]["source"] == "global"
    refused = client.post("/routing/BTC/", _form(client, "BTC") | {"max_internal_exposure": "0"})
    assert refused.status_code == 400
    assert (
        _input_value(_row(refused.content.decode(), "max_internal_exposure"), "max_internal_exposure") == "0"
    )
