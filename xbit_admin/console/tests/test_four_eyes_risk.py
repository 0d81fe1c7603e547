"""Issue #21, four eyes on risk: with the ``risk_four_eyes`` switch on, a Risk Manager's risk-config or
routing-threshold edit is a proposal; it is applied only when a second Risk Manager approves, never by
the proposer, and the switches page refuses to change those values directly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.accounts.models import StaffProposal
from core.accounts.roles import Role
from core.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def _on(console_as: Any) -> Any:
    admin = console_as(Role.SUPER_ADMIN)
    response = admin.post(
        "/switches/", {"action": "set", "key": "risk_four_eyes", "value": "True", "reason": "quarter close"}
    )
    assert response.status_code in (200, 302)
    from xbit_admin.console.four_eyes_risk import risk_four_eyes_on

    assert risk_four_eyes_on()
    return admin


def test_off_by_default_a_risk_manager_applies_directly(console_as: Any) -> None:
    from risk.config import risk_config

    risk = console_as(Role.RISK_MANAGER)
    risk.post(
        "/risk-config/", {"scope": "risk", "field": "daily_loss_trip", "value": "400000", "reason": "tighter"}
    )
    assert risk_config().daily_loss_trip == Decimal(400_000)
    assert not StaffProposal.objects.exists()


def test_a_risk_config_change_needs_a_second_risk_manager(console_as: Any) -> None:
    from risk.config import risk_config

    _on(console_as)
    first, second = console_as(Role.RISK_MANAGER), console_as(Role.RISK_MANAGER)
    before = risk_config().daily_loss_trip
    page = first.post(
        "/risk-config/",
        {"scope": "risk", "field": "daily_loss_trip", "value": "300000", "reason": "volatile week"},
        follow=True,
    ).content.decode()
    assert "proposed (#" in page and "a second person applies it" in page
    assert risk_config().daily_loss_trip == before
    proposal = StaffProposal.objects.get(kind="risk_config")
    assert proposal.payload["changes"] == {"daily_loss_trip": {"t": "decimal", "v": "300000"}}
    own = first.post(f"/proposals/{proposal.pk}/decide/", {"decision": "approve"}, follow=True)
    assert "(FOUR_EYES_REQUIRED)" in own.content.decode()
    assert risk_config().daily_loss_trip == before
    ops = console_as(Role.OPERATIONS)  # decides other proposals, not risk ones
    refused = ops.post(f"/proposals/{proposal.pk}/decide/", {"decision": "approve"}, follow=True)
    assert "(PERMISSION_DENIED)" in refused.content.decode()
    listing = second.get("/risk-config/").content.decode()
    assert f'data-proposal="{proposal.pk}"' in listing and "daily_loss_trip → 300000" in listing
    second.post(f"/proposals/{proposal.pk}/decide/", {"decision": "approve", "reason": "agreed"})
    proposal.refresh_from_db()
    assert proposal.status == "APPLIED" and risk_config().daily_loss_trip == Decimal(300_000)
    entry = AuditEntry.objects.filter(action="risk.config_update").order_by("-id").first()
    assert entry is not None and "four eyes" in entry.reason and entry.actor == proposal.decided_by


def test_the_switches_page_refuses_a_direct_risk_edit_under_four_eyes(console_as: Any) -> None:
    from risk.config import risk_config

    admin = _on(console_as)
    before = risk_config().daily_loss_trip
    page = admin.post(
        "/switches/", {"action": "set", "key": "daily_loss_trip", "value": "1", "reason": "x"}, follow=True
    ).content.decode()
    assert "Four eyes on risk is on" in page
    assert risk_config().daily_loss_trip == before


def test_a_routing_threshold_change_is_proposed_and_applied_by_a_second_person(
    console_as: Any, market: None
) -> None:
    from routing.selectors import resolved_config

    _on(console_as)
    first, second = console_as(Role.RISK_MANAGER), console_as(Role.RISK_MANAGER)
    before = resolved_config("BTC")["normal_threshold"]["value"]
    form = {"normal_threshold": "7500", "reason": "thin book"}
    first.post("/routing/BTC/", form)
    assert resolved_config("BTC")["normal_threshold"]["value"] == before
    proposal = StaffProposal.objects.get(kind="routing_config")
    assert proposal.payload["asset"] == "BTC"
    second.post(f"/proposals/{proposal.pk}/decide/", {"decision": "approve"})
    assert resolved_config("BTC")["normal_threshold"]["value"] == Decimal(7500)


def test_the_services_refuse_a_direct_staff_change_under_four_eyes(console_as: Any) -> None:
    """The ops API and any other caller go through the services, which ask the four-eyes guard."""
    from core.errors import ApplicationError
    from risk.config import risk_config_update
    from routing.services import routing_config_update

    _on(console_as)
    risk = console_as(Role.RISK_MANAGER).staff_user
    with pytest.raises(ApplicationError) as refused:
        risk_config_update(changes={"daily_loss_trip": "1"}, acting_user=risk, reason="direct")
    assert refused.value.code == "FOUR_EYES_REQUIRED"
    with pytest.raises(ApplicationError) as refused:
        routing_config_update(asset="*", changes={"normal_threshold": "1"}, acting_user=risk, reason="direct")
    assert refused.value.code == "FOUR_EYES_REQUIRED"
    # the platform switch and the whitelist are not thresholds; system callers (no staff) are not guarded
    routing_config_update(
        asset="*", changes={"global_internalization_enabled": True}, acting_user=risk, reason="ok"
    )
    routing_config_update(asset="*", changes={"normal_threshold": "9000"}, acting_user=None, reason="system")
