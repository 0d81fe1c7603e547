"""liquidation_mode SHADOW (spec 10): detect and record exactly what LIVE would have liquidated — same
positions, same trigger prices — and close nothing. The same price path runs twice over the same
seeded positions: SHADOW first, then LIVE."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.accounts.roles import Role
from core.alerts.models import Alert
from risk.detection import liquidation_sweep
from risk.liquidation_execute import liquidations_drain
from risk.liquidation_triggers import liquidation_claim
from risk.models import LiquidationRecord, LiquidationTrigger
from trading.models import Position
from xbit_admin.switches.services import switch_set

D = Decimal
pytestmark = pytest.mark.usefixtures("btc_mmr_0_004")
PRICE_PATH = [
    "80000",
    "76000",
    "74000",
    "73000",
    "72600",
    "72280",
    "71000",
    "69000",
    "65000",
    "64000",
    "60000",
]


def _run(path: list[str]) -> None:
    for mark in path:
        liquidation_sweep(marks={"BTC": D(mark)}, wake=False)
        liquidations_drain()


def test_shadow_records_exactly_what_live_liquidates_and_closes_nothing(
    trader: Any, make_trader: Any, fund: Any, open_position: Any, make_staff: Any
) -> None:
    admin = make_staff(Role.SUPER_ADMIN)
    other = make_trader()
    fund(other, "100000")
    positions = [
        open_position(trader, size="0.1", entry="80000", leverage=10),  # liquidates at 72,280 marks
        open_position(other, size="0.05", entry="80000", leverage=5),  # at 64,000
        open_position(other, asset="ETH", size="0.1", entry="3000", leverage=3),  # another asset: never
    ]
    before = {p.pk: (p.status, p.size) for p in Position.objects.all()}

    switch_set(name="liquidation_mode", value="SHADOW", acting_user=admin, reason="canary stage 1")
    _run(PRICE_PATH)
    shadow = {
        (t.position_id, t.trigger_price, t.trigger_id.removeprefix("shadow:"))
        for t in LiquidationTrigger.objects.filter(status="SHADOW")
    }
    assert len(shadow) == 2
    assert {p.pk: (p.status, p.size) for p in Position.objects.all()} == before  # closed nothing
    assert not LiquidationRecord.objects.exists() and liquidation_claim() is None

    switch_set(name="liquidation_mode", value="LIVE", acting_user=admin, reason="canary stage 3")
    _run(PRICE_PATH)
    live = {
        (t.position_id, t.trigger_price, t.trigger_id)
        for t in LiquidationTrigger.objects.exclude(status="SHADOW")
    }
    assert live == shadow
    assert set(LiquidationTrigger.objects.exclude(status="SHADOW").values_list("status", flat=True)) == {
        "COMPLETED"
    }
    assert Position.objects.get(pk=positions[0].pk).status == "LIQUIDATED"
    assert Position.objects.get(pk=positions[2].pk).status == "OPEN"


def test_liquidation_off_detects_nothing_and_raises_a_p0_while_off(
    trader: Any, open_position: Any, make_staff: Any
) -> None:
    admin = make_staff(Role.SUPER_ADMIN)
    open_position(trader, size="0.1", entry="80000", leverage=10)
    switch_set(name="liquidation_mode", value="OFF", acting_user=admin, reason="engine bug, closing by hand")
    alert = Alert.objects.get(rule="switches.liquidation_off")
    assert alert.severity == "P0" and alert.state != Alert.State.RESOLVED
    assert liquidation_sweep(marks={"BTC": D("70000")}, wake=False)["created"] == 0
    assert not LiquidationTrigger.objects.exists()
    switch_set(name="liquidation_mode", value="LIVE", acting_user=admin, reason="fixed")
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED
