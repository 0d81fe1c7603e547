"""Hyperliquid simulator: margin numbers per spec 03, liquidations, funding, price-driven fills.

Runs on the manual-clock sandbox so marks only move when a test moves them.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from sandbox.hyperliquid.engine import wall_ms

CENT = Decimal("0.01")
GTC: Any = {"limit": {"tif": "Gtc"}}


def ok_status(resp: dict[str, Any]) -> dict[str, Any]:
    assert resp["status"] == "ok", resp
    (st,) = resp["response"]["data"]["statuses"]
    return st


def marks(info: Any) -> dict[str, Decimal]:
    meta, ctxs = info.meta_and_asset_ctxs()
    return {u["name"]: Decimal(c["markPx"]) for u, c in zip(meta["universe"], ctxs, strict=True)}


def positions(info: Any, address: str) -> dict[str, dict[str, Any]]:
    return {p["position"]["coin"]: p["position"] for p in info.user_state(address)["assetPositions"]}


def close_to(a: Decimal | str, b: Decimal, tol: Decimal = CENT) -> bool:
    return abs(Decimal(a) - b) <= tol


@pytest.fixture
def restore_prices(hl_manual: Any) -> Iterator[None]:
    """Put every oracle back (and resume every price process) after a test that moves prices."""
    before = {c: v["oracle"] for c, v in hl_manual.get("state")["assets"].items()}
    yield
    for coin, px in before.items():
        hl_manual.control("price", {"coin": coin, "px": px})
    hl_manual.control("prices/resume", {})


def test_cross_account_matches_spec03_formulas(hl_manual: Any) -> None:
    w = hl_manual.wallet(5_000)
    ex, info = hl_manual.exchange(w), hl_manual.info()
    assert ex.update_leverage(10, "BTC")["status"] == "ok"
    assert ex.update_leverage(5, "ETH")["status"] == "ok"
    ok_status(ex.market_open("BTC", True, 0.2))
    ok_status(ex.market_open("ETH", False, 2))
    state = info.user_state(w.address)
    mk = marks(info)
    fees = sum(Decimal(f["fee"]) for f in info.user_fills(w.address))
    cash = Decimal(5_000) - fees
    pos = {p["position"]["coin"]: p["position"] for p in state["assetPositions"]}
    mmr = {"BTC": Decimal(1) / 80, "ETH": Decimal(1) / 50}  # 1 / (2 * max leverage), first tier
    lev = {"BTC": 10, "ETH": 5}
    upnl: dict[str, Decimal] = {}
    mm: dict[str, Decimal] = {}
    for coin in ("BTC", "ETH"):
        p = pos[coin]
        szi, entry = Decimal(p["szi"]), Decimal(p["entryPx"])
        ntl = abs(szi) * mk[coin]
        upnl[coin] = szi * (mk[coin] - entry)
        mm[coin] = ntl * mmr[coin]
        assert close_to(p["positionValue"], ntl)
        assert close_to(p["unrealizedPnl"], upnl[coin])
        assert close_to(p["marginUsed"], ntl / lev[coin])
        assert p["leverage"] == {"type": "cross", "value": lev[coin]}
    assert close_to(state["crossMaintenanceMarginUsed"], mm["BTC"] + mm["ETH"])
    equity = cash + upnl["BTC"] + upnl["ETH"]
    assert close_to(state["marginSummary"]["accountValue"], equity)
    assert close_to(state["crossMarginSummary"]["accountValue"], equity)
    im = sum(abs(Decimal(pos[c]["szi"])) * mk[c] / lev[c] for c in ("BTC", "ETH"))
    assert close_to(
        state["withdrawable"], max(Decimal(0), cash - im + min(upnl["BTC"] + upnl["ETH"], Decimal(0)))
    )
    # cross liquidation price: the mark at which equity == MM with the other mark held fixed
    for coin, other in (("BTC", "ETH"), ("ETH", "BTC")):
        szi, entry = Decimal(pos[coin]["szi"]), Decimal(pos[coin]["entryPx"])
        liq = (mm[other] - cash - upnl[other] + szi * entry) / (szi - abs(szi) * mmr[coin])
        assert close_to(pos[coin]["liquidationPx"], liq), (coin, pos[coin]["liquidationPx"], liq)


def test_isolated_liquidation_price_matches_spec03(hl_manual: Any) -> None:
    w = hl_manual.wallet(5_000)
    ex, info = hl_manual.exchange(w), hl_manual.info()
    assert ex.update_leverage(5, "LINK", is_cross=False)["status"] == "ok"
    ok_status(ex.market_open("LINK", True, 100))
    p = positions(info, w.address)["LINK"]
    szi, entry = Decimal(p["szi"]), Decimal(p["entryPx"])
    iso_margin = Decimal(p["leverage"]["rawUsd"]) + szi * entry
    assert close_to(iso_margin, szi * entry / 5)  # IM at open = size x price / leverage
    mmr = Decimal(1) / 20  # LINK: single tier, max leverage 10
    assert close_to(p["liquidationPx"], (entry - iso_margin / szi) / (1 - mmr))
    mark = marks(info)["LINK"]
    assert close_to(p["marginUsed"], iso_margin + szi * (mark - entry))
    # adding margin moves the liquidation price per the same formula
    assert ex.update_isolated_margin(25, "LINK")["status"] == "ok"
    p = positions(info, w.address)["LINK"]
    assert close_to(p["liquidationPx"], (entry - (iso_margin + 25) / szi) / (1 - mmr))


def test_resting_order_fills_when_price_crosses(hl_manual: Any, restore_prices: None) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    m = Decimal(info.all_mids()["DOGE"])
    px = float(round(m * Decimal("0.97"), 5))
    oid = ok_status(ex.order("DOGE", True, 1000, px, GTC))["resting"]["oid"]
    hl_manual.control("price", {"coin": "DOGE", "px": str(m * Decimal("0.95"))})
    assert info.open_orders(w.address) == []
    (fill,) = info.user_fills(w.address)
    assert fill["oid"] == oid and fill["crossed"] is False and float(fill["px"]) == px
    assert Decimal(fill["fee"]) == (Decimal(fill["px"]) * 1000 * Decimal("0.00015")).quantize(
        Decimal("0.000001"), rounding="ROUND_HALF_UP"
    )
    assert info.query_order_by_oid(w.address, oid)["order"]["status"] == "filled"
    assert positions(info, w.address)["DOGE"]["szi"] == "1000.0"


def test_stop_loss_trigger_fires_on_mark(hl_manual: Any, restore_prices: None) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    ok_status(ex.market_open("HYPE", True, 10))
    m = Decimal(info.all_mids()["HYPE"])
    trigger = float(round(m * Decimal("0.98"), 2))
    sl: Any = {"trigger": {"triggerPx": trigger, "isMarket": True, "tpsl": "sl"}}
    oid = ok_status(ex.order("HYPE", False, 10, float(round(m * Decimal("0.9"), 2)), sl, reduce_only=True))[
        "resting"
    ]["oid"]
    front = info.frontend_open_orders(w.address)[0]
    assert front["isTrigger"] is True and front["orderType"] == "Stop Market"
    hl_manual.control("price", {"coin": "HYPE", "px": str(m * Decimal("0.97"))})
    assert "HYPE" not in positions(info, w.address)
    assert info.user_fills(w.address)[0]["oid"] == oid


def _liq_prices(pos: dict[str, Any], mmr: Decimal, equity: Decimal) -> tuple[Decimal, Decimal]:
    """(price where equity == MM, price where equity == 2/3 MM) for a lone cross long."""
    szi, entry = Decimal(pos["szi"]), Decimal(pos["entryPx"])
    cash = equity - szi * (Decimal(pos["positionValue"]) / szi - entry)
    liq = (szi * entry - cash) / (szi - szi * mmr)
    backstop = (szi * entry - cash) / (szi - szi * mmr * 2 / 3)
    return liq, backstop


def test_market_liquidation_when_value_below_maintenance(hl_manual: Any, restore_prices: None) -> None:
    w = hl_manual.wallet(1_000)
    ex, info = hl_manual.exchange(w), hl_manual.info()
    assert ex.update_leverage(20, "SOL")["status"] == "ok"
    m = Decimal(info.all_mids()["SOL"])
    size = float((Decimal(18_000) / m).quantize(Decimal("0.01")))
    ok_status(ex.market_open("SOL", True, size))
    state = info.user_state(w.address)
    pos = state["assetPositions"][0]["position"]
    liq, backstop = _liq_prices(pos, Decimal(1) / 40, Decimal(state["marginSummary"]["accountValue"]))
    assert close_to(pos["liquidationPx"], liq)
    hl_manual.control("prices/pause", {"coins": ["SOL"]})
    hl_manual.control("price", {"coin": "SOL", "px": str(liq * Decimal("1.002"))})
    assert "SOL" in positions(info, w.address)  # above the liquidation price: untouched
    target = liq - (liq - backstop) * Decimal("0.3")
    hl_manual.control("price", {"coin": "SOL", "px": str(target)})
    assert "SOL" not in positions(info, w.address)
    fills = info.user_fills(w.address)
    liq_fill = fills[0]
    assert liq_fill["dir"] == "Close Long" and liq_fill["crossed"] is True
    assert liq_fill["liquidation"]["liquidatedUser"] == w.address.lower()
    assert liq_fill["liquidation"]["method"] == "market"
    assert Decimal(liq_fill["liquidation"]["markPx"]) == marks(info)["SOL"]
    left = Decimal(info.user_state(w.address)["marginSummary"]["accountValue"])
    assert 0 < left < 1_000  # market liquidation returns what is left of the margin


def test_large_position_liquidated_in_20pct_steps_with_cooldown(hl_manual: Any, restore_prices: None) -> None:
    w = hl_manual.wallet(10_000)
    ex, info = hl_manual.exchange(w), hl_manual.info()
    hl_manual.control("prices/pause", {"coins": ["BTC"]})
    assert ex.update_leverage(40, "BTC")["status"] == "ok"
    m = Decimal(info.all_mids()["BTC"])
    size = float((Decimal(350_000) / m).quantize(Decimal("0.001")))
    ok_status(ex.market_open("BTC", True, size))
    state = info.user_state(w.address)
    pos = state["assetPositions"][0]["position"]
    liq, backstop = _liq_prices(pos, Decimal(1) / 80, Decimal(state["marginSummary"]["accountValue"]))
    # equity ~0.77 MM: still below maintenance after one 20% step, above the backstop threshold
    hl_manual.control("price", {"coin": "BTC", "px": str(liq - (liq - backstop) * Decimal("0.65"))})
    first = Decimal(positions(info, w.address)["BTC"]["szi"])
    chunk = (Decimal(str(size)) * Decimal("0.2")).quantize(Decimal("0.00001"), rounding="ROUND_DOWN")
    assert first == Decimal(str(size)) - chunk
    assert info.user_fills(w.address)[0]["liquidation"]["method"] == "market"
    hl_manual.control("advance", {"seconds": 15})
    assert Decimal(positions(info, w.address)["BTC"]["szi"]) == first  # 30 s cooldown
    hl_manual.control("advance", {"seconds": 16})
    second = Decimal(positions(info, w.address)["BTC"]["szi"])
    assert second < first
    liq_fills = [f for f in info.user_fills(w.address) if "liquidation" in f]
    assert len({f["oid"] for f in liq_fills}) == 2  # two liquidation orders (each may hit several levels)


def test_backstop_takes_over_below_two_thirds_of_maintenance(hl_manual: Any, restore_prices: None) -> None:
    w = hl_manual.wallet(1_000)
    ex, info = hl_manual.exchange(w), hl_manual.info()
    assert ex.update_leverage(10, "ARB")["status"] == "ok"
    m = Decimal(info.all_mids()["ARB"])
    ok_status(ex.market_open("ARB", False, float((Decimal(9_000) / m).quantize(Decimal("0.1")))))
    hl_manual.control("prices/pause", {"coins": ["ARB"]})
    hl_manual.control("price", {"coin": "ARB", "px": str(m * Decimal("1.2"))})
    assert "ARB" not in positions(info, w.address)
    fill = info.user_fills(w.address)[0]
    assert fill["liquidation"]["method"] == "backstop" and fill["dir"] == "Close Short"
    assert fill["px"] == fill["liquidation"]["markPx"]
    assert info.user_state(w.address)["marginSummary"]["accountValue"] == "0.0"


def test_funding_paid_hourly_on_oracle(hl_manual: Any, restore_prices: None) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    ok_status(ex.market_open("ETH", True, 1))
    hl_manual.control("prices/pause", {"coins": ["ETH"]})
    t = hl_manual.get("time")
    hl_manual.control("advance", {"seconds": (t["nextFundingTime"] - t["time"]) / 1000 + 1})
    (rec,) = info.user_funding_history(w.address, 0)
    assert rec["time"] == t["nextFundingTime"] and set(rec) == {"time", "hash", "delta"}
    delta = rec["delta"]
    assert delta["type"] == "funding" and delta["coin"] == "ETH" and delta["szi"] == "1.0"
    assert delta["nSamples"] > 0
    meta, ctxs = info.meta_and_asset_ctxs()
    oracle = Decimal(ctxs[1]["oraclePx"])
    rate = Decimal(delta["fundingRate"])
    assert abs(rate) <= Decimal("0.04")
    assert Decimal(delta["usdc"]) == (-oracle * rate).quantize(Decimal("0.000001"), rounding="ROUND_HALF_UP")
    hist = [h for h in info.funding_history("ETH", 0) if h["time"] == rec["time"]]
    assert hist and hist[0]["fundingRate"] == delta["fundingRate"] and "premium" in hist[0]
    cum = positions(info, w.address)["ETH"]["cumFunding"]
    assert Decimal(cum["allTime"]) == -Decimal(delta["usdc"]) == Decimal(cum["sinceOpen"])


def test_funding_is_paid_on_the_positions_held_at_the_hour_not_at_the_next_step() -> None:
    """The real-time clock's steps are not on whole seconds: the hour used to be settled at the first
    step after it, on a position a trade had changed in between (the soak's funding-mirror alarm:
    a 0.14968 BTC buy at hour + 67 ms was in HL's funding, and rightly not in ours)."""
    from sandbox.tests.conftest import HL, SandboxProcess

    hour = 3_600_000
    start = (wall_ms() // hour + 1) * hour - 10_000 + 500  # steps at …:59:50.5, …, 00:00:00.5
    config = {"hyperliquid": {"clock": "manual", "start_time_ms": start, "ws_idle_timeout_s": 2}}
    with SandboxProcess(seed=11, config=config) as sb:
        hl = HL(sb.urls["hyperliquid"])
        w = hl.wallet()
        ex, info = hl.exchange(w), hl.info()
        ok_status(ex.market_open("ETH", True, 1))
        t = hl.get("time")
        assert t["nextFundingTime"] == start + 9_500
        hl.control("advance", {"seconds": (t["nextFundingTime"] + 67 - t["time"]) / 1000})  # hour + 67 ms
        ok_status(ex.market_open("ETH", True, 1))  # between the hour and the next step
        hl.control("advance", {"seconds": 2})
        (rec,) = info.user_funding_history(w.address, 0)
        assert rec["time"] == t["nextFundingTime"]
        assert rec["delta"]["szi"] == "1.0", rec  # the position at the hour, not the 2.0 after the trade
