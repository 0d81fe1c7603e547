"""Routing page (spec 07 §2): a Risk Manager switches modes and edits thresholds through the audited
services; every other role gets 403 and nothing changes; the decision log filters and pages."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from routing.models import RoutingConfig, RoutingDecisionLog, RoutingModeLog
from routing.selectors import asset_routing

pytestmark = pytest.mark.django_db


def switch(
    client: Any, asset: str, mode: str, *, reason: str = "exposure high", change_id: str | None = None
) -> Any:
    return client.post(
        f"/routing/{asset}/mode/",
        {"mode": mode, "reason": reason, "change_id": change_id or uuid.uuid4().hex},
        follow=True,
    )


def test_the_page_shows_three_mode_buttons_per_asset_with_the_current_one_highlighted(
    console_as: Any, market: None
) -> None:
    html = console_as(Role.RISK_MANAGER).get("/routing/").content.decode()
    assert 'data-asset="BTC" data-mode="NORMAL_MODE"' in html
    assert 'class="mode mode-NORMAL_MODE current"' in html
    assert "BTC: NORMAL → HL. New BTC orders go to Hyperliquid." in html  # the confirmation's consequence
    assert html.count('name="change_id"') >= 2 * 8  # a fresh idempotency key per button


def test_a_risk_manager_switches_btc_to_hl_and_sees_the_banner_and_the_log_row(
    console_as: Any, market: None
) -> None:
    client = console_as(Role.RISK_MANAGER)
    response = switch(client, "BTC", "HL_MODE", reason="net exposure above 800k")
    html = response.content.decode()
    assert response.status_code == 200
    assert "BTC: NORMAL_MODE → HL_MODE." in html
    assert "BTC is in HL_MODE" in html and "net exposure is high, hedge now" in html
    assert asset_routing("BTC").mode == "HL_MODE"
    log = RoutingModeLog.objects.get(asset="BTC")
    assert (log.from_mode, log.to_mode, log.trigger, log.operator_id) == (
        "NORMAL_MODE",
        "HL_MODE",
        "MANUAL",
        client.staff_user.pk,
    )
    assert f'data-log-id="{log.pk}"' in html and "net exposure above 800k" in html
    entry = AuditEntry.objects.get(action="routing.mode_switch")
    assert entry.actor_id == client.staff_user.pk and entry.after["mode"] == "HL_MODE"
    assert entry.ip == "127.0.0.1"


def test_replaying_a_change_id_switches_once(console_as: Any, market: None) -> None:
    client = console_as(Role.RISK_MANAGER)
    change_id = uuid.uuid4().hex
    switch(client, "BTC", "BETTING_MODE", change_id=change_id)
    html = switch(client, "BTC", "BETTING_MODE", change_id=change_id).content.decode()
    assert "already applied" in html
    assert (
        RoutingModeLog.objects.count() == 1
        and AuditEntry.objects.filter(action="routing.mode_switch").count() == 1
    )


def test_a_mode_switch_needs_a_reason(console_as: Any, market: None) -> None:
    html = switch(console_as(Role.RISK_MANAGER), "BTC", "HL_MODE", reason=" ").content.decode()
    assert "A reason is required." in html
    assert not RoutingModeLog.objects.exists()


@pytest.mark.parametrize("role", [Role.OPERATIONS, Role.DATA_ANALYST, Role.SUPPORT])
def test_roles_without_manage_routing_get_403_and_nothing_changes(
    role: Role, console_as: Any, market: None
) -> None:
    client = console_as(role)
    assert switch(client, "BTC", "HL_MODE").status_code == 403
    toggle = client.post(
        "/routing/BTC/toggle/", {"field": "auto_switch_enabled", "value": "on", "reason": "x"}
    )
    assert toggle.status_code == 403
    edit = client.post("/routing/BTC/", {"normal_threshold": "5000", "reason": "x"})
    assert edit.status_code == 403
    assert asset_routing("BTC").mode == "NORMAL_MODE"
    assert not RoutingModeLog.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="routing.").exclude(actor=None).exists()


def test_an_analyst_sees_routing_read_only(console_as: Any, market: None) -> None:
    client = console_as(Role.DATA_ANALYST)
    html = client.get("/routing/").content.decode()
    assert "data-confirm" not in html.split('id="routing-assets"')[1].split("</section>")[0]
    assert 'class="mode mode-NORMAL_MODE current"' in html
    asset_page = client.get("/routing/BTC/").content.decode()
    assert "Read-only" in asset_page and "Save changes" not in asset_page


def _edit(client: Any, asset: str, **values: str) -> Any:
    current = client.get(f"/routing/{asset}/").context["fields"]
    data = {f["name"]: f["shown"] for f in current}
    data.update(values)
    return client.post(f"/routing/{asset}/", data)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_threshold_of_zero_or_below_is_refused_with_the_reason(
    value: str, console_as: Any, market: None
) -> None:
    client = console_as(Role.RISK_MANAGER)
    response = _edit(client, "BTC", normal_threshold=value, reason="tighten")
    assert response.status_code == 400
    assert f"normal_threshold must be greater than zero (got {value})." in response.content.decode()
    assert RoutingConfig.objects.get(asset="BTC").normal_threshold is None
    assert not AuditEntry.objects.filter(action="routing.config_update").exclude(actor=None).exists()


def test_a_per_asset_override_is_saved_audited_and_can_be_cleared(console_as: Any, market: None) -> None:
    client = console_as(Role.RISK_MANAGER)
    response = _edit(client, "BTC", normal_threshold="5,000", reason="tighten BTC")
    assert response.status_code == 302
    assert RoutingConfig.objects.get(asset="BTC").normal_threshold == Decimal("5000")
    assert asset_routing("BTC").normal_threshold == Decimal("5000")
    entry = AuditEntry.objects.filter(action="routing.config_update", actor=client.staff_user).get()
    assert entry.after == {"normal_threshold": "5000"} and entry.reason == "tighten BTC"
    page = client.get("/routing/").content.decode()
    assert 'class="num own" title="asset">5,000' in page

    _edit(client, "BTC", normal_threshold="", reason="back to global")
    assert RoutingConfig.objects.get(asset="BTC").normal_threshold is None
    assert asset_routing("BTC").normal_threshold == Decimal("10000")


def test_the_global_row_is_edited_on_its_own_page(console_as: Any, market: None) -> None:
    client = console_as(Role.RISK_MANAGER)
    assert _edit(client, "global", betting_threshold="40000", reason="risk appetite").status_code == 302
    assert RoutingConfig.objects.get(asset="*").betting_threshold == Decimal("40000")
    refused = _edit(client, "global", betting_threshold="", reason="x")
    assert refused.status_code == 400 and "The global row needs a value." in refused.content.decode()


def test_auto_switch_toggle_is_audited(console_as: Any, market: None) -> None:
    client = console_as(Role.RISK_MANAGER)
    client.post("/routing/ETH/toggle/", {"field": "auto_switch_enabled", "value": "on", "reason": "desk on"})
    assert RoutingConfig.objects.get(asset="ETH").auto_switch_enabled is True
    assert AuditEntry.objects.filter(action="routing.config_update", object_id="ETH").exists()
    missing = client.post(
        "/routing/ETH/toggle/", {"field": "auto_switch_enabled", "value": "off", "reason": ""}, follow=True
    )
    assert "A reason is required." in missing.content.decode()
    assert RoutingConfig.objects.get(asset="ETH").auto_switch_enabled is True


def _decisions(n: int) -> None:
    RoutingDecisionLog.objects.bulk_create(
        RoutingDecisionLog(
            order_id=10_000 + i,
            user_id=7 if i % 2 else 8,
            asset="BTC" if i % 3 else "ETH",
            notional=Decimal(1000 + i),
            route="INTERNAL" if i % 4 else "HYPERLIQUID",
            mode="NORMAL_MODE",
            threshold=Decimal(10000),
            reason="threshold" if i % 5 else "not_whitelisted",
            latency_us=40,
        )
        for i in range(n)
    )


def test_the_decision_log_filters_and_pages_by_cursor(console_as: Any, market: None) -> None:
    _decisions(120)
    client = console_as(Role.DATA_ANALYST)
    first = client.get("/routing/")
    rows = first.context["decisions"].rows
    assert len(rows) == 50 and rows[0].order_id == 10_119
    second = client.get("/routing/", {"before": first.context["decisions"].next_before})
    assert second.context["decisions"].rows[0].order_id == 10_069
    filtered = client.get(
        "/routing/", {"user_id": "7", "asset": "btc", "route": "INTERNAL", "reason": "threshold"}
    )
    got = filtered.context["decisions"].rows
    assert got and all(
        (d.user_id, d.asset, d.route, d.reason) == (7, "BTC", "INTERNAL", "threshold") for d in got
    )
    assert client.get("/routing/", {"user_id": "abc"}).context["decisions"].rows == []


def _row(html: str, asset: str) -> str:
    return html.split(f'<tr data-asset="{asset}"', 1)[1].split("</tr>", 1)[0]


def test_each_asset_says_what_a_new_order_meets_now(console_as: Any, market: None) -> None:
    live = asset_routing("BTC")
    limit = f"{min(live.normal_threshold, live.max_internal_order_notional):,.2f}"
    html = console_as(Role.RISK_MANAGER).get("/routing/").content.decode()
    effect = _row(html, "BTC").split('data-effect="BTC"')[1].split("</div>")[0]
    assert (
        f"New BTC orders up to {limit} USDC notional are internalized (B-book); larger ones go to Hyperliquid."
        in effect
    )


def test_while_a_breaker_forces_hyperliquid_the_copy_says_so_instead_of_internalizing(
    console_as: Any, market: None
) -> None:
    from routing.services import routing_force_hl_set, routing_hl_halt_set

    routing_force_hl_set(asset="BTC", reason="volatility", active=True, detail="1h move 6 %")
    html = console_as(Role.RISK_MANAGER).get("/routing/").content.decode()
    row = _row(html, "BTC")
    forced = "Every new BTC order goes to Hyperliquid: force-HL is active (volatility)."
    assert forced in row.split('data-effect="BTC"')[1].split("</div>")[0]
    # the mode buttons' confirmations too: switching mode does not internalize while it lasts
    assert f"BTC: NORMAL → BETTING. {forced}" in row and "are internalized" not in row
    assert "are internalized" in _row(html, "ETH")  # another asset is untouched

    routing_force_hl_set(asset="BTC", reason="volatility", active=False)
    routing_hl_halt_set(asset="BTC", halted=True, reason="critical drift")
    row = _row(console_as(Role.RISK_MANAGER).get("/routing/").content.decode(), "BTC")
    assert "are internalized (B-book); larger ones are rejected (HL routing is halted)." in row
    assert (
        "BTC: NORMAL → HL. New BTC orders are rejected: HL_MODE sends them to Hyperliquid, "
        "and HL routing is halted." in row
    )
