"""The official SDK's documented calls against the simulator, every answer checked against Hyperliquid's
documented shapes (issue 18): the SDK constructed as its examples do (spot and perp metadata fetched at
start-up, spot names resolvable), the subscriptions of its canonical websocket example (``webData2`` and
spot coins included), orders with TP/SL groups, transfers and their ledger updates, builder fees,
referrals, the info types — and what the simulator does not implement says so as HL would.

Shapes: HL's API docs (hyperliquid.gitbook.io, info and exchange endpoints, websocket subscriptions) as
spelled out by the SDK's types and the public TypeScript SDK's schemas. ``str`` numbers are decimal
strings; objects are checked strictly (no missing key, no unknown one) unless marked ``Partial``."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import eth_account
import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError

from sandbox.testing import SandboxProcess
from sandbox.tests.conftest import HL


@pytest.fixture(scope="module")
def hl() -> Any:
    """A simulator of this module's own (its clock is advanced here), real-time like HL."""
    with SandboxProcess(seed=18) as sb:
        yield HL(sb.urls["hyperliquid"])


# ------------------------------------------------------------------------------------------ a tiny schema
@dataclass(frozen=True)
class Opt:
    """``None`` or the schema."""

    schema: Any


@dataclass(frozen=True)
class OneOf:
    options: tuple[Any, ...]


@dataclass(frozen=True)
class Lit:
    value: Any


@dataclass(frozen=True)
class Tup:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class MapOf:
    """An object with any keys (coins), values of one schema."""

    value: Any


@dataclass(frozen=True)
class Partial:
    """Only the declared keys are checked (HL's object has more than the simulator models)."""

    fields: dict[str, Any]


NUM = re.compile(r"^-?\d+(\.\d+)?$")
ADDR = re.compile(r"^0x[0-9a-f]{40}$")
HASH = re.compile(r"^0x[0-9a-f]{64}$")
HEX = re.compile(r"^0x[0-9a-f]+$")
INT, STR, BOOL, ANY = int, str, bool, object


def check(value: Any, schema: Any, path: str = "$") -> list[str]:
    """Where ``value`` departs from ``schema`` (empty when it conforms)."""
    if schema is ANY:
        return []
    if isinstance(schema, Opt):
        return [] if value is None else check(value, schema.schema, path)
    if isinstance(schema, OneOf):
        attempts = [check(value, option, path) for option in schema.options]
        return (
            []
            if any(not a for a in attempts)
            else [f"{path}: matches none of {len(attempts)} shapes: {value!r:.200}"]
        )
    if isinstance(schema, Lit):
        return [] if value == schema.value else [f"{path}: {value!r} is not {schema.value!r}"]
    if isinstance(schema, re.Pattern):
        return (
            []
            if isinstance(value, str) and schema.match(value)
            else [f"{path}: {value!r} is not {schema.pattern}"]
        )
    if schema is INT:
        return (
            []
            if isinstance(value, int) and not isinstance(value, bool)
            else [f"{path}: {value!r} is not an int"]
        )
    if schema in (STR, BOOL):
        return [] if isinstance(value, schema) else [f"{path}: {value!r} is not a {schema.__name__}"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: {value!r:.100} is not a list"]
        return [e for i, item in enumerate(value) for e in check(item, schema[0], f"{path}[{i}]")]
    if isinstance(schema, Tup):
        if not isinstance(value, list) or len(value) != len(schema.items):
            return [f"{path}: {value!r:.100} is not a {len(schema.items)}-tuple"]
        return [
            e
            for i, (v, s) in enumerate(zip(value, schema.items, strict=True))
            for e in check(v, s, f"{path}[{i}]")
        ]
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        return [e for k, v in value.items() for e in check(v, schema.value, f"{path}.{k}")]
    strict = isinstance(schema, dict)
    fields = schema if strict else schema.fields
    if not isinstance(value, dict):
        return [f"{path}: {value!r:.100} is not an object"]
    errors = []
    declared = {k.rstrip("?") for k in fields}
    for key, sub in fields.items():
        name = key.rstrip("?")
        if name in value:
            errors += check(value[name], sub, f"{path}.{name}")
        elif not key.endswith("?"):
            errors.append(f"{path}: missing {name}")
    if strict:
        errors += [f"{path}: unknown key {k}" for k in value if k not in declared]
    return errors


def conforms(value: Any, schema: Any) -> None:
    errors = check(value, schema)
    assert not errors, "\n".join(errors[:20])


# ------------------------------------------------------------------------------------------ HL's shapes
MARGIN_TABLE = Tup((INT, {"description": STR, "marginTiers": [{"lowerBound": NUM, "maxLeverage": INT}]}))
META = {
    "universe": [
        {
            "szDecimals": INT,
            "name": STR,
            "maxLeverage": INT,
            "marginTableId": INT,
            "onlyIsolated?": BOOL,
            "isDelisted?": BOOL,
        }
    ],
    "marginTables": [MARGIN_TABLE],
    "collateralToken?": INT,
}
SPOT_META = {
    "universe": [{"tokens": [INT], "name": STR, "index": INT, "isCanonical": BOOL}],
    "tokens": [
        {
            "name": STR,
            "szDecimals": INT,
            "weiDecimals": INT,
            "index": INT,
            "tokenId": HEX,
            "isCanonical": BOOL,
            "evmContract": ANY,
            "fullName": Opt(STR),
            "deployerTradingFeeShare?": NUM,
        }
    ],
}
ASSET_CTX = {
    "funding": NUM,
    "openInterest": NUM,
    "prevDayPx": NUM,
    "dayNtlVlm": NUM,
    "premium": Opt(NUM),
    "oraclePx": NUM,
    "markPx": NUM,
    "midPx": Opt(NUM),
    "impactPxs": Opt([NUM]),
    "dayBaseVlm": NUM,
}
SPOT_CTX = {
    "prevDayPx": NUM,
    "dayNtlVlm": NUM,
    "markPx": NUM,
    "midPx": Opt(NUM),
    "circulatingSupply": NUM,
    "coin": STR,
    "totalSupply": NUM,
    "dayBaseVlm": NUM,
}
LEVEL = {"px": NUM, "sz": NUM, "n": INT}
L2_BOOK = {"coin": STR, "time": INT, "levels": Tup(([LEVEL], [LEVEL]))}
CANDLE = {"t": INT, "T": INT, "s": STR, "i": STR, "o": NUM, "c": NUM, "h": NUM, "l": NUM, "v": NUM, "n": INT}
LEVERAGE = {"type": OneOf((Lit("cross"), Lit("isolated"))), "value": INT, "rawUsd?": NUM}
SUMMARY = {"accountValue": NUM, "totalNtlPos": NUM, "totalRawUsd": NUM, "totalMarginUsed": NUM}
POSITION = {
    "coin": STR,
    "szi": NUM,
    "leverage": LEVERAGE,
    "entryPx": NUM,
    "positionValue": NUM,
    "unrealizedPnl": NUM,
    "returnOnEquity": NUM,
    "liquidationPx": Opt(NUM),
    "marginUsed": NUM,
    "maxLeverage": INT,
    "cumFunding": {"allTime": NUM, "sinceOpen": NUM, "sinceChange": NUM},
}
CLEARINGHOUSE = {
    "marginSummary": SUMMARY,
    "crossMarginSummary": SUMMARY,
    "crossMaintenanceMarginUsed": NUM,
    "withdrawable": NUM,
    "assetPositions": [{"type": Lit("oneWay"), "position": POSITION}],
    "time": INT,
}
SPOT_STATE = {"balances": [{"coin": STR, "token": INT, "hold": NUM, "total": NUM, "entryNtl": NUM}]}
SIDE = OneOf((Lit("A"), Lit("B")))
OPEN_ORDER = {
    "coin": STR,
    "side": SIDE,
    "limitPx": NUM,
    "sz": NUM,
    "oid": INT,
    "timestamp": INT,
    "origSz": NUM,
    "cloid?": HEX,
    "reduceOnly?": BOOL,
}
FRONTEND_ORDER = {
    "coin": STR,
    "side": SIDE,
    "limitPx": NUM,
    "sz": NUM,
    "oid": INT,
    "timestamp": INT,
    "triggerCondition": STR,
    "isTrigger": BOOL,
    "triggerPx": NUM,
    "children": [ANY],
    "isPositionTpsl": BOOL,
    "reduceOnly": BOOL,
    "orderType": STR,
    "origSz": NUM,
    "tif": Opt(STR),
    "cloid": Opt(HEX),
}
FILL = {
    "coin": STR,
    "px": NUM,
    "sz": NUM,
    "side": SIDE,
    "time": INT,
    "startPosition": NUM,
    "dir": STR,
    "closedPnl": NUM,
    "hash": HASH,
    "oid": INT,
    "crossed": BOOL,
    "fee": NUM,
    "tid": INT,
    "feeToken": STR,
    "cloid?": HEX,
    "liquidation?": ANY,
    "builderFee?": NUM,
}
ORDER_STATUS_ENTRY = {"order": FRONTEND_ORDER, "status": STR, "statusTimestamp": INT}
FUNDING_ROW = {"coin": STR, "fundingRate": NUM, "premium": NUM, "time": INT}
USER_FUNDING = {
    "time": INT,
    "hash": HASH,
    "delta": {
        "type": Lit("funding"),
        "coin": STR,
        "usdc": NUM,
        "szi": NUM,
        "fundingRate": NUM,
        "nSamples": Opt(INT),
    },
}
LEDGER_DELTA = OneOf(
    (
        {"type": Lit("deposit"), "usdc": NUM},
        {"type": Lit("withdraw"), "usdc": NUM, "nonce": INT, "fee": NUM},
        {"type": Lit("accountClassTransfer"), "usdc": NUM, "toPerp": BOOL},
        {
            "type": Lit("send"),
            "user": ADDR,
            "destination": ADDR,
            "sourceDex": STR,
            "destinationDex": STR,
            "token": STR,
            "amount": NUM,
            "usdcValue": NUM,
            "fee": NUM,
            "nativeTokenFee": NUM,
            "nonce": INT,
            "feeToken": STR,
        },
    )
)
LEDGER_UPDATE = {"time": INT, "hash": HASH, "delta": LEDGER_DELTA}
WEB_DATA2 = {
    "clearinghouseState": CLEARINGHOUSE,
    "leadingVaults": [ANY],
    "totalVaultEquity": NUM,
    "openOrders": [FRONTEND_ORDER],
    "agentAddress": Opt(ADDR),
    "agentValidUntil": Opt(INT),
    "cumLedger": NUM,
    "meta": META,
    "assetCtxs": [ASSET_CTX],
    "serverTime": INT,
    "isVault": BOOL,
    "user": ADDR,
    "twapStates": [ANY],
    "spotState?": SPOT_STATE,
    "spotAssetCtxs": [SPOT_CTX],
    "optOutOfSpotDusting?": BOOL,
    "perpsAtOpenInterestCap?": [STR],
}
STATUS = OneOf(
    (
        {"resting": {"oid": INT, "cloid?": HEX}},
        {"filled": {"totalSz": NUM, "avgPx": NUM, "oid": INT, "cloid?": HEX}},
        {"error": STR},
        Lit("waitingForFill"),
        Lit("waitingForTrigger"),
    )
)
ORDER_RESPONSE = {"status": Lit("ok"), "response": {"type": Lit("order"), "data": {"statuses": [STATUS]}}}
DEFAULT_OK = {"status": Lit("ok"), "response": {"type": Lit("default")}}
ERR = {"status": Lit("err"), "response": STR}
ACTIVE_ASSET_DATA = {
    "user": ADDR,
    "coin": STR,
    "leverage": LEVERAGE,
    "maxTradeSzs": Tup((NUM, NUM)),
    "availableToTrade": Tup((NUM, NUM)),
    "markPx?": NUM,
}
WS_DATA: dict[str, Any] = {
    "subscriptionResponse": {"method": Lit("subscribe"), "subscription": ANY},
    "allMids": {"mids": MapOf(NUM)},
    "l2Book": L2_BOOK,
    "trades": [
        {
            "coin": STR,
            "side": SIDE,
            "px": NUM,
            "sz": NUM,
            "time": INT,
            "hash": HASH,
            "tid": INT,
            "users": Tup((ADDR, ADDR)),
        }
    ],
    "user": OneOf(({"fills": [FILL]}, {"funding": ANY}, {"liquidation": ANY}, {"nonUserCancel": [ANY]})),
    "userFills": {"user": ADDR, "isSnapshot?": BOOL, "fills": [FILL]},
    "candle": CANDLE,
    "orderUpdates": [{"order": OPEN_ORDER, "status": STR, "statusTimestamp": INT}],
    "userFundings": {
        "user": ADDR,
        "isSnapshot?": BOOL,
        "fundings": [
            {"time": INT, "coin": STR, "usdc": NUM, "szi": NUM, "fundingRate": NUM, "nSamples": Opt(INT)}
        ],
    },
    "userNonFundingLedgerUpdates": {
        "user": ADDR,
        "isSnapshot?": BOOL,
        "nonFundingLedgerUpdates": [LEDGER_UPDATE],
    },
    "webData2": WEB_DATA2,
    "bbo": {"coin": STR, "time": INT, "bbo": Tup((Opt(LEVEL), Opt(LEVEL)))},
    "activeAssetCtx": {"coin": STR, "ctx": ASSET_CTX},
    "activeSpotAssetCtx": {"coin": STR, "ctx": SPOT_CTX},
    "activeAssetData": ACTIVE_ASSET_DATA,
    "pong": ANY,
}


# ------------------------------------------------------------------------------------------ helpers
def _wait(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _mid(info: Info, coin: str) -> float:
    return float(info.all_mids()[coin])


def _px(x: float) -> float:
    return float(f"{x:.5g}")  # HL: at most 5 significant figures


# ------------------------------------------------------------------------------------------ tests
def test_the_sdk_starts_as_its_examples_do_and_resolves_spot_names(hl: HL) -> None:
    info = Info(hl.url, skip_ws=True, timeout=10)  # no metadata passed in: the SDK fetches spotMeta and meta
    assert info.name_to_asset("PURR/USDC") == 10_000 and info.name_to_asset("@1") == 10_001
    assert info.name_to_asset("BTC") == 0
    conforms(info.meta(), META)
    conforms(info.spot_meta(), SPOT_META)
    meta, ctxs = info.meta_and_asset_ctxs()
    conforms(meta, META)
    conforms(ctxs, [ASSET_CTX])
    spot_meta, spot_ctxs = info.spot_meta_and_asset_ctxs()
    conforms(spot_meta, SPOT_META)
    conforms(spot_ctxs, [SPOT_CTX])
    # spot is known but not traded here: an order says so
    w = hl.wallet(1_000)
    ex = Exchange(w, hl.url, timeout=10)
    result = ex.order("PURR/USDC", True, 100, 0.2, {"limit": {"tif": "Gtc"}})
    conforms(result, ORDER_RESPONSE)
    assert result["response"]["data"]["statuses"] == [
        {"error": "Spot trading is not supported by the sandbox."}
    ]


def test_the_canonical_websocket_example_subscribes_to_everything_and_gets_hl_shapes(hl: HL) -> None:
    w = hl.wallet(10_000)
    address = w.address
    info = Info(hl.url, skip_ws=False, timeout=10)
    messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
    lock = threading.Lock()

    def collect(message: dict[str, Any]) -> None:
        with lock:
            messages[message["channel"]].append(message["data"])

    try:
        # the SDK's examples/basic_ws.py, in order
        for sub in (
            {"type": "allMids"},
            {"type": "l2Book", "coin": "ETH"},
            {"type": "trades", "coin": "PURR/USDC"},
            {"type": "userEvents", "user": address},
            {"type": "userFills", "user": address},
            {"type": "candle", "coin": "ETH", "interval": "1m"},
            {"type": "orderUpdates", "user": address},
            {"type": "userFundings", "user": address},
            {"type": "userNonFundingLedgerUpdates", "user": address},
            {"type": "webData2", "user": address},
            {"type": "bbo", "coin": "ETH"},
            {"type": "activeAssetCtx", "coin": "BTC"},  # perp
            {"type": "activeAssetCtx", "coin": "@1"},  # spot
            {"type": "activeAssetData", "user": address, "coin": "BTC"},  # perp only
        ):
            info.subscribe(sub, collect)  # type: ignore[arg-type]
        expected = {
            "allMids",
            "l2Book",
            "userFills",
            "candle",
            "userFundings",
            "userNonFundingLedgerUpdates",
            "webData2",
            "bbo",
            "activeAssetCtx",
            "activeSpotAssetCtx",
            "activeAssetData",
        }
        assert _wait(lambda: expected <= set(messages)), sorted(expected - set(messages))

        # account activity: an order and its fill, a transfer (a ledger update, also for its receiver)
        ex = Exchange(w, hl.url, timeout=10)
        filled = ex.market_open("ETH", True, 0.01)
        conforms(filled, ORDER_RESPONSE)
        dest = eth_account.Account.create().address
        conforms(ex.usd_transfer(25, dest), DEFAULT_OK)
        assert _wait(lambda: any(not m.get("isSnapshot") for m in messages["userNonFundingLedgerUpdates"]))
        assert _wait(lambda: {"orderUpdates", "user"} <= set(messages) and len(messages["webData2"]) > 1)
        sent = [u for m in messages["userNonFundingLedgerUpdates"] for u in m["nonFundingLedgerUpdates"]]
        assert any(u["delta"]["type"] == "send" and u["delta"]["destination"] == dest.lower() for u in sent)
        with lock:
            seen = {channel: list(data) for channel, data in messages.items()}
        for channel, data in seen.items():
            for item in data:
                conforms(item, WS_DATA[channel])
        assert seen["webData2"][-1]["user"] == address.lower()
        assert seen["activeSpotAssetCtx"][0]["coin"] == "@1"
    finally:
        info.disconnect_websocket()


def test_grouped_tp_sl_orders_answer_waiting_for_fill_then_trigger(hl: HL) -> None:
    w = hl.wallet(100_000)
    ex = Exchange(w, hl.url, timeout=10)
    info = hl.info()
    mid = _mid(info, "ETH")

    # the SDK's examples/basic_tpsl.py: an IOC parent that fills at once, TP and SL children
    parent = {
        "coin": "ETH",
        "is_buy": True,
        "sz": 0.1,
        "limit_px": _px(mid * 1.01),
        "order_type": {"limit": {"tif": "Ioc"}},
        "reduce_only": False,
    }
    tp = {
        "coin": "ETH",
        "is_buy": False,
        "sz": 0.1,
        "limit_px": _px(mid * 1.05),
        "order_type": {"trigger": {"isMarket": True, "triggerPx": _px(mid * 1.05), "tpsl": "tp"}},
        "reduce_only": True,
    }
    sl = {
        "coin": "ETH",
        "is_buy": False,
        "sz": 0.1,
        "limit_px": _px(mid * 0.95),
        "order_type": {"trigger": {"isMarket": True, "triggerPx": _px(mid * 0.95), "tpsl": "sl"}},
        "reduce_only": True,
    }
    result = ex.bulk_orders([parent, tp, sl], grouping="normalTpsl")
    conforms(result, ORDER_RESPONSE)
    statuses = result["response"]["data"]["statuses"]
    assert "filled" in statuses[0] and statuses[1:] == ["waitingForTrigger", "waitingForTrigger"], statuses
    triggers = [o for o in info.frontend_open_orders(w.address) if o["isTrigger"]]
    assert sorted(o["orderType"] for o in triggers) == ["Stop Market", "Take Profit Market"]

    # a resting parent: its children wait for its fill, then become trigger orders
    bid = _px(mid * 0.99)
    parent = {**parent, "limit_px": bid, "order_type": {"limit": {"tif": "Gtc"}}}
    result = ex.bulk_orders([parent, tp, sl], grouping="normalTpsl")
    conforms(result, ORDER_RESPONSE)
    statuses = result["response"]["data"]["statuses"]
    assert "resting" in statuses[0] and statuses[1:] == ["waitingForFill", "waitingForFill"], statuses
    assert len([o for o in info.frontend_open_orders(w.address) if o["isTrigger"]]) == 2
    hl.control("price", {"coin": "ETH", "px": str(_px(mid * 0.985))})  # the market trades through the bid
    assert _wait(lambda: len([o for o in info.frontend_open_orders(w.address) if o["isTrigger"]]) == 4)
    conforms(info.frontend_open_orders(w.address), [FRONTEND_ORDER])

    # position TP/SL: trigger orders on the position
    result = ex.bulk_orders([{**tp, "sz": 0.2}], grouping="positionTpsl")
    conforms(result, ORDER_RESPONSE)
    assert result["response"]["data"]["statuses"] == ["waitingForTrigger"]
    assert any(o["isPositionTpsl"] for o in info.frontend_open_orders(w.address))
    hl.control("price", {"coin": "ETH", "px": str(mid)})


def test_the_documented_info_calls_answer_hl_shapes(hl: HL) -> None:
    w = hl.wallet(20_000)
    ex = Exchange(w, hl.url, timeout=10)
    info = hl.info()
    user = w.address
    order = ex.market_open("BTC", True, 0.01)
    oid = order["response"]["data"]["statuses"][0]["filled"]["oid"]
    mid = _mid(info, "ETH")
    resting = ex.order("ETH", True, 0.1, _px(mid * 0.8), {"limit": {"tif": "Gtc"}})
    assert "resting" in resting["response"]["data"]["statuses"][0]
    conforms(ex.usd_class_transfer(5, False), DEFAULT_OK)
    now = int(time.time() * 1000)
    hl.control("advance", {"seconds": 3600})  # a funding instant

    conforms(info.all_mids(), MapOf(NUM))
    conforms(info.user_state(user), CLEARINGHOUSE)
    conforms(info.spot_user_state(user), SPOT_STATE)
    conforms(info.open_orders(user), [OPEN_ORDER])
    conforms(info.frontend_open_orders(user), [FRONTEND_ORDER])
    conforms(info.user_fills(user), [FILL])
    conforms(info.user_fills_by_time(user, now - 60_000), [FILL])
    conforms(info.l2_snapshot("ETH"), L2_BOOK)
    conforms(info.candles_snapshot("ETH", "1m", now - 600_000, now + 7_200_000), [CANDLE])
    conforms(info.funding_history("BTC", now - 3_600_000), [FUNDING_ROW])
    funding = info.user_funding_history(user, now - 60_000)
    assert funding
    conforms(funding, [USER_FUNDING])
    conforms(info.historical_orders(user), [ORDER_STATUS_ENTRY])
    conforms(info.query_order_by_oid(user, oid), {"status": Lit("order"), "order": ORDER_STATUS_ENTRY})
    conforms(info.query_order_by_oid(user, 1), {"status": Lit("unknownOid")})
    conforms(
        info.user_fees(user),
        Partial(
            {
                "dailyUserVlm": [ANY],
                "feeSchedule": Partial({"cross": NUM, "add": NUM}),
                "userCrossRate": NUM,
                "userAddRate": NUM,
                "activeReferralDiscount": NUM,
            }
        ),
    )
    conforms(
        info.user_rate_limit(user),
        {"cumVlm": NUM, "nRequestsUsed": INT, "nRequestsCap": INT, "nRequestsSurplus?": INT},
    )
    conforms(info.user_role(user), {"role": Lit("user")})
    conforms(info.extra_agents(user), [{"name": STR, "address": ADDR, "validUntil": INT}])
    updates = info.user_non_funding_ledger_updates(user, 0)
    conforms(updates, [LEDGER_UPDATE])
    assert [u["delta"]["type"] for u in updates] == ["deposit", "accountClassTransfer"]
    conforms(info.post("/info", {"type": "webData2", "user": user}), WEB_DATA2)
    conforms(
        info.post("/info", {"type": "predictedFundings"}),
        [
            Tup(
                (
                    STR,
                    [Tup((STR, {"fundingRate": NUM, "nextFundingTime": INT, "fundingIntervalHours?": INT}))],
                )
            )
        ],
    )
    conforms(
        info.user_staking_summary(user),
        {"delegated": NUM, "undelegated": NUM, "totalPendingWithdrawal": NUM, "nPendingWithdrawals": INT},
    )
    assert info.user_staking_delegations(user) == [] and info.user_staking_rewards(user) == []
    assert info.user_twap_slice_fills(user) == [] and info.user_vault_equities(user) == []
    assert info.query_user_to_multi_sig_signers(user) is None

    # an info type the simulator does not serve: HL's answer to a type it does not know
    with pytest.raises(ClientError) as raised:
        info.portfolio(user)
    assert raised.value.status_code == 422
    assert "Failed to deserialize the JSON body into the target type: unknown variant `portfolio`" in str(
        raised.value.error_message
    )


def test_actions_the_simulator_does_not_implement_say_so_and_accepted_ones_take_effect(hl: HL) -> None:
    w = hl.wallet(20_000)
    ex = Exchange(w, hl.url, timeout=10)
    info = hl.info()
    other = hl.wallet(1_000)

    # unknown user-signed actions: refused as unsupported, not as an unknown signer
    for result in (
        ex.send_asset(other.address, "", "spot", "USDC", 1.0),
        ex.user_dex_abstraction(w.address, True),
        ex.sub_account_transfer(other.address, True, 1),
    ):
        conforms(result, ERR)
        assert "is not supported by the sandbox" in result["response"], result

    # referral codes: only one that exists, once, never one's own
    assert ex.set_referrer("NOSUCHCODE") == {"status": "err", "response": "Referral code does not exist."}
    owner = Exchange(other, hl.url, timeout=10)
    code = f"X{other.address[2:10].upper()}"
    register = {"type": "registerReferrer", "code": code}
    from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action

    nonce = get_timestamp_ms()
    signature = sign_l1_action(other, register, None, nonce, None, False)
    conforms(owner._post_action(register, signature, nonce), DEFAULT_OK)
    conforms(ex.set_referrer(code.lower()), DEFAULT_OK)
    assert ex.set_referrer(code) == {"status": "err", "response": "Referrer already set."}
    assert info.post("/info", {"type": "referral", "user": w.address})["referredBy"] == {
        "referrer": other.address.lower(),
        "code": code,
    }

    # a builder fee: refused until approved, then charged on the fill and paid to the builder
    builder = eth_account.Account.create().address.lower()
    refused = ex.market_open("ETH", True, 0.01, builder={"b": builder, "f": 10})
    assert refused == {"status": "err", "response": "Builder fee has not been approved."}
    conforms(ex.approve_builder_fee(builder, "0.01%"), DEFAULT_OK)
    result = ex.market_open("ETH", True, 0.01, builder={"b": builder, "f": 10})  # 1 bp
    conforms(result, ORDER_RESPONSE)
    fill = next(f for f in info.user_fills(w.address) if f.get("builderFee"))
    conforms(fill, FILL)
    expected = float(fill["px"]) * float(fill["sz"]) * 0.0001
    assert abs(float(fill["builderFee"]) - expected) < 1e-6
    assert float(info.user_state(builder)["withdrawable"]) == pytest.approx(expected, abs=1e-6)


def test_the_simulator_lists_its_routes_at_the_root_and_at_control(hl: HL) -> None:
    for path in ("/", "/control"):
        answer = hl.http.get(hl.url + path, timeout=5).json()
        routes = {(r["method"], r["path"].split("?")[0]) for r in answer["routes"]}
        assert ("POST", "/control/advance") in routes and ("POST", "/info") in routes
        assert "webData2" in answer["info_types"] and "portfolio" not in answer["info_types"]
