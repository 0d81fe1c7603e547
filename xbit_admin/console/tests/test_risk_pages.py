"""Risk pages (spec 07 §1, §3–6, §10, §13): the overview's panels per role, the risk config edits
(permission, validation with the reason shown, audit), breaker reset and kill switch, liquidations and
drift, and the hedge page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from risk.config import risk_config
from risk.models import CircuitBreaker, DeviationLog, LiquidationTrigger
from routing.models import GLOBAL, RoutingConfig

pytestmark = pytest.mark.django_db


@pytest.fixture
def exposure(internal_order: Any) -> Any:
    """The exposure tables rebuilt from the database (the consumer is not running in page tests)."""
    from risk.exposure import exposure_recompute

    exposure_recompute(apply=True)
    return internal_order


def edit(client: Any, scope: str, field: str, value: str, reason: str = "desk review") -> Any:
    return client.post("/risk-config/", {"scope": scope, "field": field, "value": value, "reason": reason})


# --- overview --------------------------------------------------------------------------------------


def test_the_overview_shows_a_risk_manager_exposure_routing_accounts_reserve_and_breakers(
    console_as: Any, exposure: Any
) -> None:
    html = console_as(Role.RISK_MANAGER).get("/").content.decode()
    assert 'data-net-asset="BTC"' in html and "800<" in html  # users long 0.01 BTC at 80,000
    assert "Routing today (UTC)" in html and "Liquidations today" in html
    assert 'data-account="trading"' in html and 'data-account="hedge"' in html
    assert 'id="ov-reserve"' in html and "Circuit breakers" in html
    assert 'data-chart="bbook-data"' in html and "vendor/uplot/uPlot.iife.min.js" in html
    assert 'class="cover"' in html  # hedge coverage from risk.selectors.hedge_overview
    assert "Kill switch" in html


def test_support_sees_alerts_but_no_risk_figures_on_the_overview(console_as: Any, exposure: Any) -> None:
    html = console_as(Role.SUPPORT).get("/").content.decode()
    assert "Open alerts" in html
    assert "data-net-asset" not in html and "Kill switch" not in html and "B-book" not in html


def test_an_analyst_sees_the_figures_but_no_kill_switch(console_as: Any, exposure: Any) -> None:
    html = console_as(Role.DATA_ANALYST).get("/").content.decode()
    assert 'data-net-asset="BTC"' in html and "Kill switch" not in html


def test_the_overview_topic_pushes_the_live_region_and_then_only_its_age(
    make_staff: Any, exposure: Any
) -> None:
    from xbit_admin.console.tests.test_topics_consumer import _next, _open, _scope

    scope = _scope(make_staff(Role.RISK_MANAGER))

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        communicator, connected = await _open(scope)
        assert connected
        await communicator.send_json_to({"type": "subscribe", "topics": ["overview", "exposure"]})
        assert (await _next(communicator, "subscribed"))["topics"] == ["exposure", "overview"]
        first = await _next(communicator, "update")
        second = await _next(communicator, "update")
        await communicator.disconnect()
        return first, second

    first, second = async_to_sync(run)()
    assert first["topic"] == "overview" and 'data-net-asset="BTC"' in first["data"]["html"]
    assert second["topic"] == "overview" and "html" not in second["data"] and second["data"]["at"]


# --- risk config -----------------------------------------------------------------------------------


def test_the_risk_config_page_lists_every_threshold_with_its_default_and_last_change(console_as: Any) -> None:
    from risk.config import editable_fields

    client = console_as(Role.RISK_MANAGER)
    edit(client, "risk", "daily_loss_alert", "150000")
    html = client.get("/risk-config/").content.decode()
    for name in editable_fields():
        assert f'id="f-risk-{name}"' in html, name
    assert 'id="f-routing-hl_mode_exposure_threshold"' in html
    assert client.staff_user.email in html  # who changed daily_loss_alert
    assert "Effect: P1 alert above this." in html  # the confirmation states the consequence


def test_a_risk_manager_changes_a_threshold_and_it_is_audited(console_as: Any) -> None:
    client = console_as(Role.RISK_MANAGER)
    response = edit(client, "risk", "exposure_asset_alert", "600,000", reason="more headroom")
    assert response.status_code == 302
    assert risk_config().exposure_asset_alert == Decimal(600_000)
    entry = AuditEntry.objects.get(action="risk.config_update")
    assert entry.actor_id == client.staff_user.pk and entry.reason == "more headroom"
    assert entry.after == {"exposure_asset_alert": "600000"} or entry.after["exposure_asset_alert"] in (
        "600000",
        600000,
    )


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_threshold_of_zero_or_below_is_refused_with_the_reason(console_as: Any, value: str) -> None:
    client = console_as(Role.RISK_MANAGER)
    before = risk_config().daily_loss_alert
    response = edit(client, "risk", "daily_loss_alert", value)
    html = response.content.decode()
    assert response.status_code == 400
    assert "daily_loss_alert must be greater than zero" in html and "field-error" in html
    assert risk_config().daily_loss_alert == before
    assert not AuditEntry.objects.filter(action="risk.config_update").exists()


def test_a_routing_threshold_of_zero_is_refused_and_a_valid_one_saved(console_as: Any) -> None:
    client = console_as(Role.RISK_MANAGER)
    html = edit(client, "routing", "normal_threshold", "0").content.decode()
    assert "normal_threshold must be greater than zero" in html
    assert edit(client, "routing", "normal_threshold", "12000").status_code == 302
    assert RoutingConfig.objects.get(asset=GLOBAL).normal_threshold == Decimal(12000)
    assert AuditEntry.objects.get(action="routing.config_update").object_id == GLOBAL


@pytest.mark.parametrize(
    ("role", "scope", "field"),
    [
        (Role.DATA_ANALYST, "risk", "daily_loss_alert"),
        (Role.DATA_ANALYST, "routing", "normal_threshold"),
        (Role.OPERATIONS, "risk", "daily_loss_alert"),
        (Role.SUPPORT, "routing", "normal_threshold"),
    ],
)
def test_editing_without_the_permission_is_forbidden_and_changes_nothing(
    console_as: Any, role: Role, scope: str, field: str
) -> None:
    before_risk = risk_config().daily_loss_alert
    before_routing = RoutingConfig.objects.get(asset=GLOBAL).normal_threshold
    assert edit(console_as(role), scope, field, "123456").status_code == 403
    assert risk_config().daily_loss_alert == before_risk
    assert RoutingConfig.objects.get(asset=GLOBAL).normal_threshold == before_routing
    assert not AuditEntry.objects.filter(action__endswith="config_update").exists()


def test_an_analyst_reads_the_config_without_edit_controls(console_as: Any) -> None:
    html = console_as(Role.DATA_ANALYST).get("/risk-config/").content.decode()
    assert "read-only" in html and 'name="field"' not in html
    assert "/breakers/kill-switch/on/" not in html and "/reset/" not in html


# --- breakers --------------------------------------------------------------------------------------


@pytest.fixture
def drift_breaker(market: None) -> None:
    from risk.breakers import breaker_trip

    breaker_trip(kind=CircuitBreaker.Kind.DRIFT, scope="BTC", reason="drift 7% on BTC")


def test_a_risk_manager_resets_a_tripped_breaker_with_a_reason(console_as: Any, drift_breaker: None) -> None:
    client = console_as(Role.RISK_MANAGER)
    html = client.get("/risk-config/").content.decode()
    assert (
        'data-breaker="DRIFT:BTC"' in html
        and "drift 7% on BTC" in html
        and "/breakers/DRIFT/BTC/reset/" in html
    )
    response = client.post("/breakers/DRIFT/BTC/reset/", {"reason": "HL fills re-checked"}, follow=True)
    assert "DRIFT BTC reset." in response.content.decode()
    assert CircuitBreaker.objects.get(kind="DRIFT", scope="BTC").state == "OK"
    entry = AuditEntry.objects.get(action="risk.breaker_reset")
    assert entry.actor_id == client.staff_user.pk and entry.object_id == "DRIFT:BTC"


def test_a_breaker_reset_needs_a_reason(console_as: Any, drift_breaker: None) -> None:
    html = console_as(Role.RISK_MANAGER).post("/breakers/DRIFT/BTC/reset/", {"reason": ""}, follow=True)
    assert "A reason is required." in html.content.decode()
    assert CircuitBreaker.objects.get(kind="DRIFT", scope="BTC").state == "TRIPPED"


@pytest.mark.parametrize("role", [Role.DATA_ANALYST, Role.OPERATIONS, Role.SUPPORT])
def test_breakers_cannot_be_reset_or_killed_without_the_permission(
    console_as: Any, drift_breaker: None, role: Role
) -> None:
    client = console_as(role)
    assert client.post("/breakers/DRIFT/BTC/reset/", {"reason": "x"}).status_code == 403
    assert client.post("/breakers/kill-switch/on/", {"reason": "x"}).status_code == 403
    assert CircuitBreaker.objects.get(kind="DRIFT", scope="BTC").state == "TRIPPED"
    assert not CircuitBreaker.objects.filter(kind="KILL_SWITCH", state="TRIPPED").exists()
    assert not AuditEntry.objects.filter(action__in=["risk.breaker_reset", "risk.kill_switch"]).exists()


def test_the_kill_switch_halts_trading_and_is_audited(console_as: Any, market: None) -> None:
    from trading.models import Market

    client = console_as(Role.RISK_MANAGER)
    html = client.get("/").content.decode()
    assert "Halts all trading, reduce-only allowed" in html  # the confirmation's consequence
    response = client.post(
        "/breakers/kill-switch/on/", {"reason": "exchange incident", "next": "/"}, follow=True
    )
    assert "Kill switch ON" in response.content.decode()
    assert CircuitBreaker.objects.get(kind="KILL_SWITCH").state == "TRIPPED"
    assert set(Market.objects.values_list("trading_state", flat=True)) == {"HALTED"}
    assert AuditEntry.objects.get(action="risk.kill_switch").actor_id == client.staff_user.pk
    client.post("/breakers/kill-switch/off/", {"reason": "incident over"})
    assert CircuitBreaker.objects.get(kind="KILL_SWITCH").state == "OK"


def test_the_super_admin_may_use_the_kill_switch(console_as: Any, market: None) -> None:
    client = console_as(Role.SUPER_ADMIN)
    client.post("/breakers/kill-switch/on/", {"reason": "drill"})
    assert CircuitBreaker.objects.get(kind="KILL_SWITCH").state == "TRIPPED"


# --- liquidations, drift ---------------------------------------------------------------------------


def test_the_liquidations_page_lists_history_and_the_escalations_queue(console_as: Any, trader: Any) -> None:
    now = timezone.now()
    for n, status in enumerate(["COMPLETED", "ESCALATED"]):
        LiquidationTrigger.objects.create(
            trigger_id=f"liq-test-{n}",
            kind="ISOLATED",
            user=trader,
            position_version=1,
            asset="BTC",
            venue="INTERNAL",
            status=status,
            trigger_price=Decimal("72000"),
            close_price=Decimal("71990") if status == "COMPLETED" else None,
            size=Decimal("0.01"),
            margin_zeroed=Decimal("80"),
            detected_at=now,
            completed_at=now + timezone.timedelta(milliseconds=42) if status == "COMPLETED" else None,
            errors=[{"error": "HL timeout"}] if status == "ESCALATED" else [],
        )
    html = console_as(Role.DATA_ANALYST).get("/liquidations/").content.decode()
    queue = html.split('id="escalations"')[1].split("</section>")[0]
    assert "liq-test-1" in queue and "HL timeout" in queue and "liq-test-0" not in queue
    assert "71,990" in html and "42<span" in html  # close price, latency in ms
    filtered = console_as(Role.RISK_MANAGER).get("/liquidations/?status=ESCALATED").content.decode()
    assert 'data-trigger="liq-test-0"' not in filtered.split('id="liq-history"')[1]


def test_the_drift_page_shows_todays_total_the_ranking_and_records_over_one_percent(console_as: Any) -> None:
    for n, (asset, deviation, rate) in enumerate([("BTC", "-40", "0.02"), ("ETH", "5", "0.005")]):
        DeviationLog.objects.create(
            ref=f"drift-{n}",
            kind="CLOSE",
            asset=asset,
            xbit_pnl=Decimal(1000),
            hl_actual_pnl=Decimal(1000) + Decimal(deviation),
            deviation=Decimal(deviation),
            deviation_rate=Decimal(rate),
            level="ALERT" if Decimal(rate) > Decimal("0.01") else "LOG",
        )
    html = console_as(Role.RISK_MANAGER).get("/drift/").content.decode()
    assert "45.00" in html.split('id="drift-today"')[1][:80]  # Σ |drift| today
    ranking = html.split('id="drift-ranking"')[1].split("</section>")[0]
    assert ranking.index("BTC") < ranking.index("ETH")
    recent = html.split('id="drift-recent"')[1]
    assert 'data-ref="drift-0"' in recent and 'data-ref="drift-1"' not in recent
    assert 'data-chart="drift-data"' in html


# --- hedge, reconciliation, stress -----------------------------------------------------------------


def test_the_hedge_page_shows_each_asset_against_its_target_and_the_capacity(
    console_as: Any, exposure: Any
) -> None:
    """A user long 0.01 BTC INTERNAL (800 USD), the hedge long 0.004 BTC; the tier ratio lowered to 50 %
    from 500 USD so the policy wants a hedge of 400; a hedge account snapshot worth 1,000 USDC."""
    from risk.hedge_config import hedge_config_update, hedge_defaults_ensure
    from risk.hedge_models import HedgePosition
    from trading.models import HLAccountSnapshot

    hedge_defaults_ensure()  # as deployment does (a row made by hedge_config_update carries text defaults)
    hedge_config_update(
        changes={"tier1_threshold": Decimal(500), "tier2_threshold": Decimal(500000)},
        acting_user=None,
        reason="tests",
    )
    HedgePosition.objects.create(asset="BTC", size=Decimal("0.004"), entry_price=Decimal(79000), leverage=2)
    zero = Decimal(0)
    HLAccountSnapshot.objects.create(
        account="hedge",
        account_value=Decimal(1000),
        total_margin_used=zero,
        maintenance_margin_used=zero,
        withdrawable=Decimal(1000),
        total_notional=zero,
    )
    html = console_as(Role.RISK_MANAGER).get("/hedge/").content.decode()
    row = html.split('id="hedge-assets"')[1].split('data-asset="BTC"')[1].split("</tr>")[0]
    cells = [c.split(">", 1)[1].split("</td>")[0] for c in row.split("<td")[1:]]
    # net 800, target 400 (50 %), current 0.004 × 80,000 = 320, gap 80, 2×, entry 79,000
    assert cells[1:7] == ["800", "400", "320", "80", "2×", "79,000"]
    capacity = html.split('id="hedge-capacity"')[1].split("</p>")[0]
    assert 'need <span class="num">200</span> USDC' in capacity and "every target is covered" in capacity
    overview = console_as(Role.RISK_MANAGER).get("/").content.decode()
    assert "40% · 320" in overview  # the overview's coverage bar: 320 of 800


@pytest.mark.parametrize("role", [Role.DATA_ANALYST, Role.OPERATIONS])
def test_a_manual_hedge_needs_manage_hedge(console_as: Any, market: None, role: Role) -> None:
    from risk.hedge_models import HedgeInstruction

    response = console_as(role).post(
        "/hedge/manual/", {"asset": "BTC", "side": "BUY", "value": "5000", "reason": "x"}
    )
    assert response.status_code == 403 and not HedgeInstruction.objects.exists()


def test_a_risk_manager_sees_the_manual_hedge_form_with_its_consequence(
    console_as: Any, market: None
) -> None:
    html = console_as(Role.RISK_MANAGER).get("/hedge/").content.decode()
    assert 'action="/hedge/manual/"' in html and "Sends a hedge order of {value} USD notional" in html
