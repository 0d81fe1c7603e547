"""Hyperliquid simulator: orders, cancels, modifies, leverage, agents — through the unmodified SDK."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import eth_account
import pytest
from hyperliquid.utils.signing import get_timestamp_ms, order_wires_to_order_action, sign_l1_action
from hyperliquid.utils.types import Cloid

GTC: Any = {"limit": {"tif": "Gtc"}}
IOC: Any = {"limit": {"tif": "Ioc"}}
ALO: Any = {"limit": {"tif": "Alo"}}


def status(resp: dict[str, Any]) -> dict[str, Any]:
    assert resp["status"] == "ok", resp
    (st,) = resp["response"]["data"]["statuses"]
    return st


def mid(info: Any, coin: str) -> float:
    return float(info.all_mids()[coin])


def position(info: Any, address: str, coin: str) -> dict[str, Any] | None:
    for p in info.user_state(address)["assetPositions"]:
        if p["position"]["coin"] == coin:
            return p["position"]
    return None


def test_market_open_fills_with_taker_fee_and_opens_position(hl_manual: Any) -> None:
    w = hl_manual.wallet(100_000)
    ex, info = hl_manual.exchange(w), hl_manual.info()
    filled = status(ex.market_open("BTC", True, 0.05))["filled"]
    assert filled["totalSz"] == "0.05"
    avg = Decimal(filled["avgPx"])
    assert abs(avg / Decimal(info.all_mids()["BTC"]) - 1) < Decimal("0.001")
    pos = position(info, w.address, "BTC")
    assert pos is not None and pos["szi"] == "0.05" and Decimal(pos["entryPx"]) == avg
    assert pos["leverage"] == {"type": "cross", "value": 20}
    (fill,) = info.user_fills(w.address)
    assert fill["side"] == "B" and fill["dir"] == "Open Long" and fill["crossed"] is True
    assert fill["startPosition"] == "0.0" and fill["feeToken"] == "USDC" and fill["oid"] == filled["oid"]
    fee = (Decimal(fill["px"]) * Decimal(fill["sz"]) * Decimal("0.00045")).quantize(
        Decimal("0.000001"), rounding="ROUND_HALF_UP"
    )
    assert Decimal(fill["fee"]) == fee
    assert set(fill) >= {"coin", "px", "sz", "time", "hash", "tid", "closedPnl"}


def test_gtc_rests_then_cancel_and_order_status(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    px = round(mid(info, "ETH") * 0.95, 1)
    oid = status(ex.order("ETH", True, 0.1, px, GTC))["resting"]["oid"]
    (oo,) = info.open_orders(w.address)
    assert oo["oid"] == oid and oo["coin"] == "ETH" and oo["side"] == "B" and float(oo["limitPx"]) == px
    assert oo["sz"] == "0.1"
    front = info.frontend_open_orders(w.address)[0]
    assert front["orderType"] == "Limit" and front["tif"] == "Gtc" and front["isTrigger"] is False
    book_bids = info.l2_snapshot("ETH")["levels"][0]
    assert any(float(lv["px"]) == px for lv in book_bids) or float(book_bids[-1]["px"]) > px
    st = info.query_order_by_oid(w.address, oid)
    assert st["status"] == "order" and st["order"]["status"] == "open"
    assert status(ex.cancel("ETH", oid)) == "success"
    assert info.open_orders(w.address) == []
    assert info.query_order_by_oid(w.address, oid)["order"]["status"] == "canceled"
    again = status(ex.cancel("ETH", oid))
    assert again == {"error": "Order was never placed, already canceled, or filled. asset=1"}
    assert info.query_order_by_oid(w.address, 123) == {"status": "unknownOid"}


def test_alo_and_ioc_rules(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    book = info.l2_snapshot("SOL")["levels"]
    best_bid, best_ask = book[0][0]["px"], book[1][0]["px"]
    err = status(ex.order("SOL", True, 1, float(best_ask), ALO))["error"]
    assert err == f"Post only order would have immediately matched, bbo was {best_bid}@{best_ask}. asset=2"
    assert "resting" in status(ex.order("SOL", True, 1, float(best_bid), ALO))
    far = round(float(best_bid) * 0.9, 2)
    err = status(ex.order("SOL", True, 1, far, IOC))["error"]
    assert err == "Order could not immediately match against any resting orders. asset=2"
    filled = status(ex.order("SOL", False, 1, far, IOC))["filled"]
    assert filled["totalSz"] == "1.0" and float(filled["avgPx"]) <= float(best_bid)


def test_cancel_by_cloid_and_cloid_in_statuses(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    cloid = Cloid.from_int(42)
    px = round(mid(info, "BTC") * 0.9)
    resting = status(ex.order("BTC", True, 0.001, px, GTC, cloid=cloid))["resting"]
    assert resting["cloid"] == cloid.to_raw()
    by_cloid = info.query_order_by_cloid(w.address, cloid)
    assert by_cloid["order"]["order"]["oid"] == resting["oid"]
    assert status(ex.cancel_by_cloid("BTC", cloid)) == "success"
    assert info.open_orders(w.address) == []


def test_modify_order_replaces_price_and_size(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    m = mid(info, "ETH")
    oid = status(ex.order("ETH", False, 0.2, round(m * 1.05, 1), GTC))["resting"]["oid"]
    new_px = round(m * 1.06, 1)
    new = status(ex.modify_order(oid, "ETH", False, 0.3, new_px, GTC))["resting"]["oid"]
    (oo,) = info.open_orders(w.address)
    assert oo["oid"] == new and float(oo["limitPx"]) == new_px and oo["sz"] == "0.3"
    assert info.query_order_by_oid(w.address, oid)["order"]["status"] == "canceled"
    gone = status(ex.modify_order(oid, "ETH", False, 0.3, new_px, GTC))
    assert gone == {"error": "Cannot modify canceled or filled order"}
    ex.cancel("ETH", new)


def test_market_close_realises_pnl_and_flattens(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    status(ex.market_open("ETH", False, 0.5))
    closed = status(ex.market_close("ETH"))["filled"]
    assert closed["totalSz"] == "0.5"
    assert position(info, w.address, "ETH") is None
    fills = info.user_fills(w.address)
    assert [f["dir"] for f in fills] == ["Close Short", "Open Short"]  # most recent first
    close, opened = fills
    pnl = (Decimal(opened["px"]) - Decimal(close["px"])) * Decimal("0.5")
    assert Decimal(close["closedPnl"]) == pnl.quantize(Decimal("0.000001"), rounding="ROUND_HALF_UP")
    assert Decimal(close["startPosition"]) == Decimal("-0.5")


def test_reduce_only_and_flip(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    m = mid(info, "BTC")
    err = status(ex.order("BTC", True, 0.01, round(m * 1.01), IOC, reduce_only=True))["error"]
    assert err == "Reduce only order would increase position. asset=0"
    status(ex.market_open("BTC", True, 0.01))
    # a reduce-only order larger than the position is clipped to it
    assert (
        status(ex.order("BTC", False, 0.05, round(m * 0.99), IOC, reduce_only=True))["filled"]["totalSz"]
        == "0.01"
    )
    status(ex.market_open("BTC", True, 0.01))
    flip = status(ex.market_open("BTC", False, 0.03))["filled"]
    assert flip["totalSz"] == "0.03"
    assert position(info, w.address, "BTC")["szi"] == "-0.02"  # type: ignore[index]
    assert info.user_fills(w.address)[0]["dir"] == "Long > Short"


def test_update_leverage(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    assert ex.update_leverage(5, "SOL") == {"status": "ok", "response": {"type": "default"}}
    status(ex.market_open("SOL", True, 2))
    pos = position(info, w.address, "SOL")
    assert pos is not None and pos["leverage"] == {"type": "cross", "value": 5} and pos["maxLeverage"] == 20
    assert abs(Decimal(pos["marginUsed"]) - Decimal(pos["positionValue"]) / 5) < Decimal("0.00001")
    bad = ex.update_leverage(21, "SOL")
    assert bad["status"] == "err" and "leverage" in bad["response"].lower()
    switch = ex.update_leverage(5, "SOL", is_cross=False)
    assert switch == {"status": "err", "response": "Cannot switch leverage type with open position."}
    assert ex.update_leverage(10, "SOL")["status"] == "ok"
    assert position(info, w.address, "SOL")["leverage"]["value"] == 10  # type: ignore[index]


def test_update_isolated_margin(hl_manual: Any) -> None:
    w = hl_manual.wallet(10_000)
    ex, info = hl_manual.exchange(w), hl_manual.info()
    assert ex.update_leverage(10, "AVAX", is_cross=False)["status"] == "ok"
    status(ex.market_open("AVAX", True, 100))
    pos = position(info, w.address, "AVAX")
    assert pos is not None and pos["leverage"]["type"] == "isolated" and "rawUsd" in pos["leverage"]
    liq_before = Decimal(pos["liquidationPx"])
    margin_before = Decimal(pos["marginUsed"])
    assert ex.update_isolated_margin(50, "AVAX") == {"status": "ok", "response": {"type": "default"}}
    pos = position(info, w.address, "AVAX")
    assert pos is not None
    assert Decimal(pos["marginUsed"]) - margin_before == Decimal(50)
    assert Decimal(pos["liquidationPx"]) < liq_before
    too_much = ex.update_isolated_margin(-10_000, "AVAX")
    assert too_much["status"] == "err"
    assert ex.update_isolated_margin(-20, "AVAX")["status"] == "ok"
    none = ex.update_isolated_margin(10, "LINK")
    assert none["status"] == "err"


def test_agent_trades_for_master(hl_manual: Any) -> None:
    master = hl_manual.wallet()
    ex, info = hl_manual.exchange(master), hl_manual.info()
    resp, agent_key = ex.approve_agent("bot")
    assert resp == {"status": "ok", "response": {"type": "default"}}
    agent = eth_account.Account.from_key(agent_key)
    agent_ex = hl_manual.exchange(agent)
    agent_ex.account_address = master.address
    status(agent_ex.market_open("ETH", True, 0.1))
    assert position(info, master.address, "ETH")["szi"] == "0.1"  # type: ignore[index]
    assert info.user_state(agent.address)["assetPositions"] == []
    assert status(agent_ex.market_close("ETH"))["filled"]["totalSz"] == "0.1"
    assert position(info, master.address, "ETH") is None
    assert {a["address"] for a in info.extra_agents(master.address)} == {agent.address.lower()}


def test_unknown_signer_and_bad_signature_rejected(hl_manual: Any) -> None:
    stranger = eth_account.Account.create()
    resp = hl_manual.exchange(stranger).market_open("BTC", True, 0.01)
    assert resp == {
        "status": "err",
        "response": f"User or API Wallet {stranger.address.lower()} does not exist.",
    }
    w = hl_manual.wallet()
    ex = hl_manual.exchange(w)
    action = order_wires_to_order_action(
        [{"a": 0, "b": True, "p": "90000", "s": "0.001", "r": False, "t": GTC}]
    )
    nonce = get_timestamp_ms()
    sig = sign_l1_action(w, action, None, nonce, None, False)
    sig["s"] = hex(int(sig["s"], 16) ^ 1)
    bad = ex._post_action(action, sig, nonce)
    assert bad["status"] == "err" and bad["response"].startswith("User or API Wallet 0x")
    assert bad["response"].endswith(" does not exist.") and w.address.lower() not in bad["response"]


def test_nonce_rules(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex = hl_manual.exchange(w)
    action = order_wires_to_order_action(
        [{"a": 0, "b": True, "p": "50000", "s": "0.001", "r": False, "t": GTC}]
    )
    nonce = get_timestamp_ms()
    sig = sign_l1_action(w, action, None, nonce, None, False)
    assert ex._post_action(action, sig, nonce)["status"] == "ok"
    dup = ex._post_action(action, sig, nonce)
    assert dup == {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}
    old = nonce - 3 * 86_400_000
    sig_old = sign_l1_action(w, action, None, old, None, False)
    assert ex._post_action(action, sig_old, old)["response"].startswith("Invalid nonce")
    # HL keeps the 100 highest nonces: once 100 newer ones are used, an older unused nonce is too low
    base = nonce + 1_000
    cancel = {"type": "cancel", "cancels": []}
    for i in range(100):
        n = base + i
        assert ex._post_action(cancel, sign_l1_action(w, cancel, None, n, None, False), n)["status"] == "ok"
    low = nonce + 500
    resp = ex._post_action(cancel, sign_l1_action(w, cancel, None, low, None, False), low)
    assert resp["status"] == "err" and resp["response"].startswith("Invalid nonce")


@pytest.mark.parametrize(
    ("coin", "sz", "px_factor", "error"),
    [
        ("BTC", 0.01, None, "Order has invalid price."),  # 6 significant figures
        ("BTC", 0.000001, 0.9, "Order has invalid size."),  # finer than szDecimals=5
        ("ETH", 0.001, 0.9, "Order must have minimum value of $10."),
    ],
)
def test_order_validation_errors(
    hl_manual: Any, coin: str, sz: float, px_factor: float | None, error: str
) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    m = mid(info, coin)
    px = round(m * 0.9) + 0.5 if px_factor is None else round(m * px_factor)
    assert status(ex.order(coin, True, sz, px, GTC)) == {"error": error}


def test_insufficient_margin(hl_manual: Any) -> None:
    w = hl_manual.wallet(100)
    ex = hl_manual.exchange(w)
    assert status(ex.market_open("BTC", True, 1)) == {"error": "Insufficient margin to place order. asset=0"}
    assert "filled" in status(ex.market_open("BTC", True, 0.001))


def test_bulk_orders_one_status_each(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    m = mid(info, "ETH")
    reqs: Any = [
        {
            "coin": "ETH",
            "is_buy": True,
            "sz": 0.1,
            "limit_px": round(m * 0.95, 1),
            "order_type": GTC,
            "reduce_only": False,
        },
        {
            "coin": "ETH",
            "is_buy": True,
            "sz": 0.001,
            "limit_px": round(m * 0.95, 1),
            "order_type": GTC,
            "reduce_only": False,
        },
        {
            "coin": "ETH",
            "is_buy": True,
            "sz": 0.1,
            "limit_px": round(m * 1.02, 1),
            "order_type": IOC,
            "reduce_only": False,
        },
    ]
    statuses = ex.bulk_orders(reqs)["response"]["data"]["statuses"]
    assert [next(iter(s)) for s in statuses] == ["resting", "error", "filled"]
    assert ex.schedule_cancel(None) == {"status": "ok", "response": {"type": "default"}}


def test_rate_limit_and_info_shapes(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    status(ex.market_open("BTC", True, 0.01))
    rl = info.user_rate_limit(w.address)
    assert rl["nRequestsUsed"] == 1 and rl["nRequestsCap"] >= 10_000 and float(rl["cumVlm"]) > 0
    meta, ctxs = info.meta_and_asset_ctxs()
    names = [u["name"] for u in meta["universe"]]
    assert names[:3] == ["BTC", "ETH", "SOL"] and len(names) >= 8
    tables = {t[0]: t[1] for t in meta["marginTables"]}
    assert tables[56]["marginTiers"] == [
        {"lowerBound": "0.0", "maxLeverage": 40},
        {"lowerBound": "150000000.0", "maxLeverage": 20},
    ]
    assert set(ctxs[0]) >= {
        "dayNtlVlm",
        "funding",
        "impactPxs",
        "markPx",
        "midPx",
        "openInterest",
        "oraclePx",
    }
    book = info.l2_snapshot("BTC")
    assert book["coin"] == "BTC" and len(book["levels"][0]) == 20 and len(book["levels"][1]) == 20
    assert float(book["levels"][0][0]["px"]) < float(book["levels"][1][0]["px"])
    candles = info.candles_snapshot("BTC", "1m", 0, 2**50)
    assert candles and set(candles[-1]) == {"t", "T", "s", "i", "o", "c", "h", "l", "v", "n"}
    by_time = info.user_fills_by_time(w.address, 0)
    assert len(by_time) == 1 and by_time[0]["coin"] == "BTC"


def test_user_signed_transfers(hl_manual: Any) -> None:
    w = hl_manual.wallet(1_000)
    dest = eth_account.Account.create()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    assert ex.usd_transfer(100, dest.address) == {"status": "ok", "response": {"type": "default"}}
    assert info.user_state(dest.address)["withdrawable"] == "100.0"
    assert ex.withdraw_from_bridge(50, w.address)["status"] == "ok"
    assert info.user_state(w.address)["withdrawable"] == "850.0"
    # perp -> spot and back (issue 18: implemented, not a silent "ok")
    assert ex.usd_class_transfer(10, False)["status"] == "ok"
    assert info.spot_user_state(w.address)["balances"][0]["total"] == "10.0"
    assert info.user_state(w.address)["withdrawable"] == "840.0"
    assert ex.usd_class_transfer(10, True)["status"] == "ok"
    assert info.spot_user_state(w.address) == {"balances": []}
    assert ex.usd_class_transfer(10, True) == {
        "status": "err",
        "response": "Insufficient balance for transfer.",
    }
    too_much = ex.withdraw_from_bridge(10_000, w.address)
    assert too_much["status"] == "err"
