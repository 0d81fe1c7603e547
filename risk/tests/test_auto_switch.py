"""Automatic mode switching (spec 01): both ways, with hysteresis and no flapping, only where enabled."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.alerts.models import Alert
from risk.auto_switch import auto_switch_evaluate
from risk.models import ExposureAsset
from routing.models import RoutingModeLog
from routing.selectors import asset_routing
from routing.services import routing_config_update

pytestmark = pytest.mark.django_db
D = Decimal


def exposure(asset: str, net: int, mark: int = 100_000) -> None:
    size = D(abs(net)) / mark
    ExposureAsset.objects.update_or_create(
        asset=asset,
        defaults={
            "long_size": size if net >= 0 else D(0),
            "short_size": D(0) if net >= 0 else size,
            "long_cost": size * mark if net >= 0 else D(0),
            "short_cost": D(0) if net >= 0 else size * mark,
        },
    )


@pytest.fixture
def auto_btc(set_quote: Any) -> None:
    set_quote("BTC", "100000")
    set_quote("ETH", "100000")
    routing_config_update(asset="BTC", changes={"auto_switch_enabled": True}, acting_user=None, reason="test")


def mode(asset: str = "BTC") -> str:
    return asset_routing(asset).mode.value


def test_high_exposure_enters_hl_mode_and_leaves_it_only_below_80_percent_of_the_trigger(
    auto_btc: None,
) -> None:
    exposure("BTC", 850_000)  # ≥ 800k trigger
    assert auto_switch_evaluate() == [("BTC", "NORMAL_MODE", "HL_MODE")]
    log = RoutingModeLog.objects.get()
    assert log.trigger == "AUTO" and log.net_exposure_at_switch == D(850_000) and log.operator is None
    assert Alert.objects.filter(rule="risk.auto_switch", subject="BTC").exists()
    for net in (790_000, 700_000, 640_000, -650_000):  # inside the band: no flapping
        exposure("BTC", net)
        assert auto_switch_evaluate() == [] and mode() == "HL_MODE"
    exposure("BTC", 639_000)
    assert auto_switch_evaluate() == [("BTC", "HL_MODE", "NORMAL_MODE")]
    assert auto_switch_evaluate() == [] and RoutingModeLog.objects.count() == 2


def test_low_exposure_enters_betting_mode_and_leaves_it_only_above_120_percent(auto_btc: None) -> None:
    exposure("BTC", 55_000)  # above the 50k trigger: stays NORMAL
    assert auto_switch_evaluate() == [] and mode() == "NORMAL_MODE"
    exposure("BTC", -40_000)
    assert auto_switch_evaluate() == [("BTC", "NORMAL_MODE", "BETTING_MODE")]
    for net in (55_000, 60_000, -59_000):
        exposure("BTC", net)
        assert auto_switch_evaluate() == [] and mode() == "BETTING_MODE"
    exposure("BTC", 61_000)
    assert auto_switch_evaluate() == [("BTC", "BETTING_MODE", "NORMAL_MODE")]


def test_an_asset_without_auto_switching_is_never_switched(auto_btc: None) -> None:
    exposure("ETH", 2_000_000)
    assert auto_switch_evaluate() == [] and mode("ETH") == "NORMAL_MODE"
    assert not RoutingModeLog.objects.filter(asset="ETH").exists()


def test_internal_exposure_above_max_internal_exposure_forces_the_asset_to_hl_until_back_below(
    set_quote: Any,
) -> None:
    from routing.decision import Route, decide

    set_quote("BTC", "100000")
    routing_config_update(
        asset="*",
        changes={"max_internal_exposure": D(300_000), "global_internalization_enabled": True},
        acting_user=None,
        reason="test",
    )
    routing_config_update(
        asset="BTC", changes={"internalization_enabled": True}, acting_user=None, reason="t"
    )
    exposure("BTC", 250_000)
    auto_switch_evaluate()  # auto-switch itself is off for BTC: the limit applies regardless
    assert decide(notional=D(100), config=asset_routing("BTC")).route is Route.INTERNAL

    exposure("BTC", -310_000)  # |net| above the limit, either side
    auto_switch_evaluate()
    routed = decide(notional=D(100), config=asset_routing("BTC"))
    assert (routed.route, routed.reason) == (Route.HYPERLIQUID, "max_internal_exposure")
    assert Alert.objects.filter(rule="risk.max_internal_exposure", subject="BTC", state="open").exists()
    assert mode() == "NORMAL_MODE"  # a force-HL reason, not a mode change

    for net in (290_000, 245_000):  # below the limit but not below limit × 0.8: still forced (no flapping)
        exposure("BTC", net)
        auto_switch_evaluate()
        assert "max_internal_exposure" in asset_routing("BTC").force_hl_reasons
    exposure("BTC", 239_000)
    auto_switch_evaluate()
    assert asset_routing("BTC").force_hl_reasons == ()
    assert not Alert.objects.filter(rule="risk.max_internal_exposure", state="open").exists()

    # a per-asset override on the routing page wins over the global value
    routing_config_update(
        asset="BTC", changes={"max_internal_exposure": D(1_000_000)}, acting_user=None, reason="t"
    )
    exposure("BTC", 900_000)
    auto_switch_evaluate()
    assert "max_internal_exposure" not in asset_routing("BTC").force_hl_reasons
