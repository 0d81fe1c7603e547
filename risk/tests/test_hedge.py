"""The hedge engine against the sandbox's HL hedge account, through the real SDK: tiers, gaps, the
de-hedge limit, capacity allocation, account health, SHADOW mode, manual hedges and retries."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from core.alerts.models import Alert
from core.audit.models import AuditEntry
from risk.hedge_account import HALT_REASON
from risk.hedge_config import hedge_mode_set
from risk.hedge_engine import DEBOUNCE_KEY, hedge_evaluate, hedge_on_event, hedge_schedule
from risk.hedge_models import HedgeInstruction, HedgePosition
from risk.hedge_orders import hedge_manual_order
from risk.models import ExposureAsset
from routing.models import RoutingState
from sandbox.testing import SandboxProcess
from trading.hl_accounts import hl_sandbox_accounts_setup
from trading.marketdata import quote_update
from trading.markets import hl_info, markets_sync
from trading.models import HLAccount
from trading.venues.hl import gateway, reset_gateways
from wallets.ledger import AccountRef, account_balance

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal


class Venue:
    def __init__(self, url: str) -> None:
        self.url = url

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.post(f"{self.url}/control/{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def mid(self, asset: str) -> Decimal:
        book = requests.post(f"{self.url}/info", json={"type": "l2Book", "coin": asset}, timeout=10).json()
        bid, ask = D(book["levels"][0][0]["px"]), D(book["levels"][1][0]["px"])
        return (bid + ask) / 2

    def refresh_quote(self, asset: str) -> Decimal:
        """Our quote cache from HL's own book, as the feed would write it."""
        mid = self.mid(asset)
        quote_update(
            asset, mark=mid, oracle=mid, mid=mid, bid=mid - 1, ask=mid + 1, bid_size=D(1), ask_size=D(1)
        )
        return mid

    @property
    def hedge_address(self) -> str:
        return HLAccount.objects.get(name="hedge").master_address

    def hedge_state(self) -> dict[str, Any]:
        return gateway("hedge").user_state()  # type: ignore[union-attr]

    def hedge_size(self, asset: str) -> Decimal:
        for p in self.hedge_state()["assetPositions"]:
            if p["position"]["coin"] == asset:
                return D(p["position"]["szi"])
        return D(0)

    def account_value(self) -> Decimal:
        return D(self.hedge_state()["marginSummary"]["accountValue"])


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with SandboxProcess(seed=33, config={"hyperliquid": {"clock": "real"}}) as sb:
        yield sb.urls["hyperliquid"]


@pytest.fixture
def venue(sandbox_url: str, settings: Any, internalization_on: None) -> Iterator[Venue]:
    settings.HL_API_URL = sandbox_url
    settings.HL_TIMEOUT_SECONDS = 3.0
    v = Venue(sandbox_url)
    v.control("reset")
    v.control("prices/pause")
    reset_gateways()
    markets_sync(info=hl_info(base_url=sandbox_url))
    hl_sandbox_accounts_setup(base_url=sandbox_url)
    for asset in ("BTC", "ETH"):
        v.refresh_quote(asset)
    yield v
    v.control("faults/clear")
    reset_gateways()


def set_exposure(asset: str, net: Decimal, mark: Decimal) -> None:
    """Users net long ``net`` at ``mark`` (what the exposure consumer would hold after their fills)."""
    size = abs(net) / mark
    long = net >= 0
    ExposureAsset.objects.update_or_create(
        asset=asset,
        defaults={
            "long_size": size if long else D(0),
            "short_size": D(0) if long else size,
            "long_cost": size * mark if long else D(0),
            "short_cost": D(0) if long else size * mark,
            "positions": 1 if net else 0,
        },
    )


def hedge_notional(venue: Venue, asset: str, mark: Decimal) -> Decimal:
    return venue.hedge_size(asset) * mark


def test_exposure_from_0_to_103k_through_real_fills_hedges_51_5k_on_the_hedge_account(
    venue: Venue, trader: Any
) -> None:
    from django.core.cache import cache

    from core.events.models import OutboxEvent
    from core.events.services import Event, handle_once
    from risk.exposure import exposure_current, exposure_handle
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    mark = venue.refresh_quote("BTC")
    cache.delete(DEBOUNCE_KEY.format(asset="BTC"))
    size = (D(103_000) / mark / 11).quantize(D("0.00001"))  # 11 orders under the 10k internal cap
    for _ in range(11):
        order = order_place(
            user=trader,
            inp=order_input(asset="BTC", side="BUY", order_type="MARKET", size=str(size), leverage=10),
        )
        assert order.route == "INTERNAL" and order.status == "FILLED"
    opened = []
    for row in OutboxEvent.objects.filter(topic="trading.fill").order_by("id"):
        event = Event(str(row.event_id), row.topic, row.aggregate, row.payload)
        handle_once(consumer="risk-exposure", event=event, handler=exposure_handle)
        opened.append(hedge_schedule("BTC"))
        hedge_on_event(event)
    # the first change opens the 5 s window; the later ones merge into it
    assert opened[0] is True and not any(opened[1:])
    net = exposure_current()["BTC"].net_notional
    assert abs(net - D(103_000)) < D(100)

    (instruction,) = hedge_evaluate(assets=["BTC"])
    assert instruction.status == "FILLED" and instruction.is_buy and instruction.leverage == 2
    assert abs(instruction.target - net / 2) < D(1)
    hedged = hedge_notional(venue, "BTC", mark)
    assert abs(hedged - D(51_500)) < D(150), hedged
    mirror = HedgePosition.objects.get(asset="BTC")
    assert mirror.size == venue.hedge_size("BTC") and mirror.fees_to_date == instruction.fee > 0
    # the fee is a hedge cost: hl_pnl(hedge) credited, the platform's hedge P&L debited (Σ stays 0)
    assert account_balance(AccountRef.platform("hl_pnl", sub="hedge")) == instruction.fee.quantize(
        D("0.000001")
    )
    # nothing more to do on the next decision: the gap is below the minimum
    assert hedge_evaluate(assets=["BTC"]) == []


def test_a_tier_change_adjusts_the_hedge_by_the_gap_with_the_leverage_ladder(venue: Venue) -> None:
    mark = venue.refresh_quote("BTC")
    set_exposure("BTC", D(103_000), mark)
    hedge_evaluate(assets=["BTC"])
    before = hedge_notional(venue, "BTC", mark)
    set_exposure("BTC", D(600_000), mark)  # 80 % tier
    (instruction,) = hedge_evaluate(assets=["BTC"])
    assert abs(instruction.notional - (D(480_000) - before)) < D(100)
    assert instruction.leverage == 3  # 480k hedge: ≤ 600k → 3x
    assert abs(hedge_notional(venue, "BTC", mark) - D(480_000)) < D(200)
    (pos,) = [p["position"] for p in venue.hedge_state()["assetPositions"] if p["position"]["coin"] == "BTC"]
    assert pos["leverage"]["value"] == 3 and pos["leverage"]["type"] == "cross"


def test_a_concentrated_close_dehedges_no_faster_than_200k_a_minute(venue: Venue) -> None:
    mark = venue.refresh_quote("BTC")
    set_exposure("BTC", D(600_000), mark)
    hedge_evaluate(assets=["BTC"])
    assert abs(hedge_notional(venue, "BTC", mark) - D(480_000)) < D(200)
    set_exposure("BTC", D(0), mark)  # users closed everything at once
    (first,) = hedge_evaluate(assets=["BTC"])
    assert first.reduces and abs(first.notional + D(200_000)) < D(1)
    assert hedge_evaluate(assets=["BTC"]) == []  # the minute's budget is spent
    assert abs(hedge_notional(venue, "BTC", mark) - D(280_000)) < D(300)


def test_two_assets_competing_for_too_little_capacity_the_larger_is_covered_the_other_goes_to_hl(
    venue: Venue,
) -> None:
    btc, eth = venue.refresh_quote("BTC"), venue.refresh_quote("ETH")
    venue.control("debit", {"address": venue.hedge_address, "usdc": str(venue.account_value() - 100_000)})
    set_exposure("BTC", D(300_000), btc)  # target 150k at 2x → 75k margin
    set_exposure("ETH", D(-200_000), eth)  # target −100k at 2x → 50k margin: 125k > 100k
    made = hedge_evaluate()
    assert [i.asset for i in made] == ["BTC"]
    assert abs(hedge_notional(venue, "BTC", btc) - D(150_000)) < D(200) and venue.hedge_size("ETH") == 0
    eth_state = RoutingState.objects.get(asset="ETH")
    assert "hedge_capacity" in eth_state.force_hl_reasons
    assert "hedge_capacity" not in RoutingState.objects.get_or_create(asset="BTC")[0].force_hl_reasons
    alert = Alert.objects.get(rule="risk.hedge.capacity")
    assert alert.state != "RESOLVED" and D(alert.details["top_up"]) > 0
    # a top-up covers ETH: the force-HL lifts and ETH is hedged short
    venue.control("fund", {"address": venue.hedge_address, "usdc": "100000"})
    made = hedge_evaluate()
    assert [i.asset for i in made] == ["ETH"] and not made[0].is_buy
    assert "hedge_capacity" not in RoutingState.objects.get(asset="ETH").force_hl_reasons


def test_the_hedge_account_below_150_percent_halts_new_hl_opens_and_never_grows_a_hedge(venue: Venue) -> None:
    mark = venue.refresh_quote("BTC")
    set_exposure("BTC", D(103_000), mark)
    hedge_evaluate(assets=["BTC"])
    state = venue.hedge_state()
    mm = D(state["crossMaintenanceMarginUsed"])
    venue.control(
        "debit", {"address": venue.hedge_address, "usdc": str(venue.account_value() - mm * D("1.4"))}
    )
    size_before = venue.hedge_size("BTC")
    set_exposure("BTC", D(600_000), mark)  # would be an increase to 480k
    made = hedge_evaluate(assets=["BTC"])
    star = RoutingState.objects.get(asset="*")
    assert star.hl_halted and star.hl_halt_reason == HALT_REASON
    assert Alert.objects.filter(rule="risk.hedge.halt", severity="P0").exclude(state="RESOLVED").exists()
    assert all(i.reduces for i in made) and abs(venue.hedge_size("BTC")) <= abs(size_before)
    # recovered: the halt lifts
    venue.control("fund", {"address": venue.hedge_address, "usdc": "500000"})
    set_exposure("BTC", D(103_000), mark)
    hedge_evaluate(assets=["BTC"])
    assert not RoutingState.objects.get(asset="*").hl_halted


def test_shadow_mode_records_the_instruction_live_would_send_and_sends_nothing(
    venue: Venue, make_staff: Any
) -> None:
    from core.accounts.roles import Role

    manager = make_staff(Role.RISK_MANAGER)
    hedge_mode_set(mode="SHADOW", acting_user=manager, reason="canary stage 1")
    assert AuditEntry.objects.filter(action="hedge.mode_set").exists()
    mark = venue.refresh_quote("BTC")
    set_exposure("BTC", D(103_000), mark)
    (shadow,) = hedge_evaluate(assets=["BTC"])
    assert shadow.status == "SHADOW" and abs(shadow.notional - D(51_500)) < D(100) and shadow.leverage == 2
    assert venue.hedge_size("BTC") == 0
    assert hedge_evaluate(assets=["BTC"]) == []  # the same decision is not logged again every tick
    hedge_mode_set(mode="LIVE", acting_user=manager, reason="canary stage 3")
    (live,) = hedge_evaluate(assets=["BTC"])
    assert live.status == "FILLED" and live.size == shadow.size


def test_the_hedge_switches_end_to_end_shadow_off_live_and_a_ratio_rolled_back(
    venue: Venue, make_staff: Any
) -> None:
    """Through the switch catalogue (what the switches page and the degradation levels call): SHADOW
    logs what LIVE would send and sends nothing, OFF computes nothing, a tier ratio change reaches the
    engine at once and rolls back to its earlier value in one action."""
    from django.utils import timezone

    from core.accounts.roles import Role
    from core.switches.models import SwitchChange
    from xbit_admin.switches.registry import REGISTRY
    from xbit_admin.switches.services import switch_rollback, switch_set

    manager = make_staff(Role.RISK_MANAGER)
    before = timezone.now()
    mark = venue.refresh_quote("BTC")
    set_exposure("BTC", D(103_000), mark)

    assert switch_set(name="hedge_mode", value="SHADOW", acting_user=manager, reason="stage 1").changed
    (shadow,) = hedge_evaluate(assets=["BTC"])
    assert shadow.status == "SHADOW" and abs(shadow.notional - D(51_500)) < D(100)
    assert venue.hedge_size("BTC") == 0

    switch_set(name="hedge_mode", value="OFF", acting_user=manager, reason="engine suspect")
    assert hedge_evaluate(assets=["BTC"]) == [] and venue.hedge_size("BTC") == 0

    switch_set(name="hedge_tier1_ratio", value="0.6", acting_user=manager, reason="more cover")
    switch_set(name="hedge_mode", value="LIVE", acting_user=manager, reason="stage 3")
    (live,) = hedge_evaluate(assets=["BTC"])
    assert live.status == "FILLED"
    assert abs(hedge_notional(venue, "BTC", mark) - D(61_800)) < D(150)  # 60 % of 103k

    switch_rollback(name="hedge_tier1_ratio", to=before, acting_user=manager, reason="back to spec")
    assert D(REGISTRY["hedge_tier1_ratio"].read("")) == D("0.5")
    (trim,) = hedge_evaluate(assets=["BTC"])
    assert trim.status == "FILLED"
    assert abs(hedge_notional(venue, "BTC", mark) - D(51_500)) < D(150)
    assert SwitchChange.objects.filter(name="hedge_mode").count() == 3
    assert SwitchChange.objects.filter(name="hedge_tier1_ratio", source="ROLLBACK").count() == 1


def test_a_manual_hedge_is_audited_and_sent(venue: Venue, make_staff: Any) -> None:
    from core.accounts.roles import Role

    manager = make_staff(Role.RISK_MANAGER)
    venue.refresh_quote("ETH")
    inst = hedge_manual_order(
        acting_user=manager, asset="ETH", side="SELL", notional="20000", reason="pre-CPI"
    )
    assert inst.status == "FILLED" and inst.kind == "MANUAL" and inst.acting_user == manager
    assert venue.hedge_size("ETH") < 0 and HedgePosition.objects.get(asset="ETH").size == venue.hedge_size(
        "ETH"
    )
    entry = AuditEntry.objects.get(action="hedge.manual_order")
    assert entry.reason == "pre-CPI" and entry.object_id == inst.instruction_id


def test_a_refused_hedge_is_retried_then_fails_with_an_alert_and_hl_mode(venue: Venue) -> None:
    mark = venue.refresh_quote("BTC")
    set_exposure("BTC", D(103_000), mark)
    # HL refuses the leverage update and all four order attempts (100, 200, 400 ms backoff)
    venue.control("fail", {"mode": "err", "count": 5, "path": "exchange", "message": "busy"})
    (inst,) = hedge_evaluate(assets=["BTC"])
    assert inst.status == "FAILED" and inst.attempts == 4 and venue.hedge_size("BTC") == 0
    assert "hedge_capacity" in RoutingState.objects.get(asset="BTC").force_hl_reasons
    assert Alert.objects.filter(rule="risk.hedge.order_failed", subject="BTC").exists()
    # the leverage update and the first attempt refused: the retry after 100 ms fills it
    venue.control("fail", {"mode": "err", "count": 2, "path": "exchange", "message": "busy"})
    (again,) = hedge_evaluate(assets=["BTC"])
    assert again.status == "FILLED" and again.attempts == 2
    assert HedgeInstruction.objects.count() == 2
