"""Canary (spec 10): a stage sets its switches in one action; live criteria come from the order flow;
auto-rollback to the previous stage when the error rate crosses 1 % (or p99 latency rises > 20 %)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from core.accounts.roles import Role
from core.alerts.models import Alert
from core.switches import store
from routing.selectors import asset_routing
from trading.models import Order
from xbit_admin.switches.canary import canary_evaluate, canary_stage_set, canary_status


def _orders(user: Any, *, ok: int, bad: int) -> None:
    rows = [
        Order(
            user=user,
            asset="BTC",
            side="BUY",
            order_type="MARKET",
            size=Decimal("0.01"),
            leverage=10,
            margin_mode="ISOLATED",
            status=Order.Status.REJECTED if i < bad else Order.Status.CANCELLED,
            reference_price=Decimal("80000"),
        )
        for i in range(ok + bad)
    ]
    Order.objects.bulk_create(rows)


def test_a_stage_sets_its_switches_and_shows_its_criteria(make_staff: Any, markets: Any) -> None:
    admin = make_staff(Role.SUPER_ADMIN)
    canary_stage_set(stage="1", acting_user=admin, reason="launch day")
    assert store.core_value("canary_stage") == "1" and store.liquidation_mode() == "SHADOW"
    assert asset_routing("BTC").global_internalization_enabled is False
    result = canary_stage_set(stage="3a", acting_user=admin, reason="shadow clean for a week")
    assert store.liquidation_mode() == "LIVE"
    assert asset_routing("BTC").global_internalization_enabled is True
    assert str(asset_routing("BTC").normal_threshold.normalize()) == "1E+3"
    assert any(c.key == "normal_threshold" for c in result.changes)
    status = canary_status()
    assert status["stage"].key == "3a" and status["previous"].key == "2"
    assert [c["name"] for c in status["criteria"]] == ["p99", "errors", "recon"]


def test_the_canary_rolls_back_when_the_error_rate_crosses_one_percent(
    make_staff: Any, make_trader: Any, markets: Any
) -> None:
    admin = make_staff(Role.SUPER_ADMIN)
    user = make_trader()
    canary_stage_set(stage="2", acting_user=admin, reason="stage 2")
    canary_stage_set(stage="3a", acting_user=admin, reason="stage 3")
    _orders(user, ok=199, bad=1)  # 0.5 %: fine
    assert canary_evaluate() is None and store.core_value("canary_stage") == "3a"
    _orders(user, ok=0, bad=3)  # 4 / 203 ≈ 2 %: over the limit
    why = canary_evaluate()
    assert why is not None and "error rate" in why
    assert store.core_value("canary_stage") == "2" and store.liquidation_mode() == "SHADOW"
    assert asset_routing("BTC").global_internalization_enabled is False
    assert Alert.objects.filter(rule="switches.canary_rollback", subject="3a").exists()
    # the new stage judges only its own orders: no cascade on the same bad minutes
    assert canary_evaluate(now=timezone.now() + timedelta(seconds=1)) is None
    assert store.core_value("canary_stage") == "2"
