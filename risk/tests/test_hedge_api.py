"""The hedge ops API and selectors without HL: permissions, the audited mode switch, the overview."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from risk.hedge_config import hedge_config
from risk.models import ExposureAsset

pytestmark = pytest.mark.django_db
D = Decimal


def test_a_risk_manager_sets_the_hedge_mode_and_support_cannot(console_as: Any) -> None:
    risk = console_as(Role.RISK_MANAGER)
    response = risk.post(
        "/api/v1/ops/hedge/mode", {"mode": "SHADOW", "reason": "canary"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"hedge_mode": "SHADOW"} and hedge_config().hedge_mode == "SHADOW"
    entry = AuditEntry.objects.get(action="hedge.mode_set")
    assert entry.before == {"hedge_mode": "LIVE"} and entry.after == {"hedge_mode": "SHADOW"}
    denied = console_as(Role.SUPPORT).post(
        "/api/v1/ops/hedge/mode", {"mode": "OFF", "reason": "x"}, content_type="application/json"
    )
    assert denied.status_code == 403 and hedge_config().hedge_mode == "SHADOW"


def test_the_overview_shows_target_gap_and_the_hl_mode_banner_recommends_the_hedge(
    console_as: Any, set_quote: Any
) -> None:
    from risk.selectors import hl_mode_banner
    from routing.services import routing_mode_switch

    set_quote("BTC", "100000")
    ExposureAsset.objects.create(asset="BTC", long_size=D(6), long_cost=D(600_000), positions=3)
    response = console_as(Role.RISK_MANAGER).get("/api/v1/ops/hedge")
    assert response.status_code == 200, response.content
    btc = response.json()["assets"]["BTC"]
    assert D(btc["target_notional"]) == D(480_000) and D(btc["gap"]) == D(480_000)
    assert hl_mode_banner("BTC") is None
    routing_mode_switch(asset="BTC", mode="HL_MODE", acting_user=None, reason="test", change_id="b1")
    banner = hl_mode_banner("BTC")
    assert (
        banner is not None
        and banner["recommended_hedge"] == D(480_000)
        and banner["recommended_side"] == "BUY"
    )
