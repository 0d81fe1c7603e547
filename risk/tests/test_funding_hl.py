"""Funding at Hyperliquid's instants with what Hyperliquid booked (issue 18), over a simulated day on the
sandbox's manual clock: every HYPERLIQUID user pays or receives exactly their share of the trading
account's ``userFunding`` (the rounding is the platform's, so the account's books move by exactly what
HL booked); INTERNAL positions pay HL's rate on HL's oracle at HL's instant; the hedge account's funding
is posted; the funding-mirror reconciliation is OK, and CRITICAL once a user's payment goes missing."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.db import connection
from django.db.models import Q, Sum

from core.money import q_usdc
from risk.funding import funding_tick
from risk.models import FundingRun, FundingSettlement
from risk.reconciliation import reconciliation_run
from sandbox.testing import SandboxProcess
from trading import margin
from trading.hl_accounts import SANDBOX_ACCOUNT_INDEX, hl_sandbox_accounts_setup
from trading.markets import hl_info, markets_sync
from trading.models import Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.tests.hl_venue import Venue
from trading.venues.hl import gateway, meta_from_markets, reset_gateways
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind, LedgerTransfer, TransferKind

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal
HOURS = 24
# a funding rate large enough that one user's hourly payment is tens of dollars: 8-hour rate = the
# premium + 0.3 % (the clamp binds), paid 1/8 each hour
FUNDING = {"interest_rate_8h": "0.01", "clamp_8h": "0.003"}


@pytest.fixture(scope="module")
def manual_url() -> Iterator[str]:
    with SandboxProcess(seed=41, config={"hyperliquid": {"clock": "manual", "funding": FUNDING}}) as sb:
        yield sb.urls["hyperliquid"]


@pytest.fixture
def venue(manual_url: str, settings: Any, internalization_on: None) -> Iterator[Venue]:
    settings.HL_API_URL = manual_url
    settings.HL_TIMEOUT_SECONDS = 5.0
    reset_gateways()
    markets_sync(info=hl_info(base_url=manual_url))
    hl_sandbox_accounts_setup(base_url=manual_url)
    yield Venue(manual_url)
    reset_gateways()


def _open(user: Any, asset: str, side: str, notional: int, leverage: int, mode: str, route: str) -> Position:
    order = order_place(
        user=user,
        inp=order_input(
            asset=asset,
            side=side,
            order_type="MARKET",
            size=str(margin.floor_size(D(notional) / _mid(asset), 4 if asset == "ETH" else 5)),
            leverage=leverage,
            margin_mode=mode,
        ),
    )
    assert order.status == "FILLED" and order.route == route, (order.route, order.error_message)
    return Position.objects.get(pk=order.position_id)


_mids: dict[str, Decimal] = {}


def _mid(asset: str) -> Decimal:
    return _mids[asset]


def _hedge_position(url: str) -> None:
    """The hedge account holds ETH (its funding is the hedge's cost)."""
    from eth_account import Account
    from hyperliquid.exchange import Exchange

    accounts = requests.get(f"{url}/control/accounts", timeout=5).json()
    master = Account.from_key(accounts[SANDBOX_ACCOUNT_INDEX["hedge"]]["private_key"])
    exchange = Exchange(
        master, url, meta=meta_from_markets(), spot_meta={"universe": [], "tokens": []}, timeout=10
    )  # type: ignore[arg-type]
    result = exchange.market_open("ETH", False, 3.0)
    assert result["status"] == "ok" and "filled" in result["response"]["data"]["statuses"][0], result


def test_a_simulated_day_of_funding_mirrors_what_hl_booked(venue: Venue, make_trader: Any, fund: Any) -> None:
    url = venue.url
    for asset in ("BTC", "ETH"):
        _mids[asset] = venue.refresh_quote(asset)[2]
    users = []
    for _ in range(5):
        user = make_trader()
        fund(user, "100000")
        users.append(user)
    a, b, c, d, e = users
    hl_positions = [
        _open(a, "BTC", "BUY", 60_000, 10, "ISOLATED", "HYPERLIQUID"),
        _open(b, "BTC", "SELL", 20_000, 5, "CROSS", "HYPERLIQUID"),  # the account nets a long 40k
        _open(c, "ETH", "BUY", 30_000, 10, "ISOLATED", "HYPERLIQUID"),
    ]
    internal = [
        _open(d, "BTC", "BUY", 9_000, 10, "CROSS", "INTERNAL"),
        _open(e, "ETH", "SELL", 9_000, 10, "ISOLATED", "INTERNAL"),
    ]
    _hedge_position(url)
    hl_pnl_trading = AccountRef.platform(AccountKind.HL_PNL, sub="trading")

    # a day on HL's clock, one instant at a time: HL's oracle read at each instant, our beat's tick after
    oracles: dict[int, dict[str, Decimal]] = {}
    for _hour in range(HOURS):
        clock = requests.get(f"{url}/control/time", timeout=5).json()
        venue.control("advance", {"seconds": (clock["nextFundingTime"] - clock["time"]) / 1000})
        state = requests.get(f"{url}/control/state", timeout=5).json()
        assert state["time"] == clock["nextFundingTime"]
        oracles[state["time"]] = {c: D(v["oracle"]) for c, v in state["assets"].items()}
        funding_tick()
    runs = list(FundingRun.objects.order_by("funding_time"))
    assert [int(r.funding_time.timestamp() * 1000) for r in runs] == sorted(oracles)  # HL's instants
    assert all(r.status == "COMPLETED" for r in runs)
    assert {r.rates["BTC"]["source"] for r in runs} == {"hl:trading"}

    # what HL booked for the trading account, instant by instant
    start = min(oracles)
    booked: dict[tuple[int, str], tuple[Decimal, Decimal]] = {}
    for row in gateway("trading").user_funding(start, max(oracles)):  # type: ignore[union-attr]
        booked[(row["time"], row["delta"]["coin"])] = (D(row["delta"]["usdc"]), D(row["delta"]["szi"]))
    assert len(booked) == 2 * HOURS

    # every HYPERLIQUID user: exactly their share of each instant, summed to the cent over the day
    for p in hl_positions:
        signed = p.size if p.direction == "LONG" else -p.size
        rows = FundingSettlement.objects.filter(position=p)
        assert rows.count() == HOURS
        shares = [
            q_usdc(
                booked[(int(r.funding_time.timestamp() * 1000), p.asset)][0]
                * signed
                / booked[(int(r.funding_time.timestamp() * 1000), p.asset)][1]
            )
            for r in rows
        ]
        paid = sum((r.payment for r in rows), D(0))
        assert paid == sum(shares, D(0))
        exact = sum(
            (usdc * signed / szi for (t, coin), (usdc, szi) in booked.items() if coin == p.asset), D(0)
        )
        assert abs(paid - exact) < D("0.01"), (p.asset, paid, exact)
        assert paid != 0
    # the trading account's books moved by exactly what HL booked: users' shares + the platform's rounding
    funding_moves = LedgerTransfer.objects.filter(kind=TransferKind.FUNDING).filter(
        Q(debit__kind=AccountKind.HL_PNL, debit__sub="trading")
        | Q(credit__kind=AccountKind.HL_PNL, credit__sub="trading")
    )
    into = funding_moves.filter(credit__kind=AccountKind.HL_PNL).aggregate(s=Sum("amount"))["s"] or D(0)
    out = funding_moves.filter(debit__kind=AccountKind.HL_PNL).aggregate(s=Sum("amount"))["s"] or D(0)
    assert into - out == -sum((usdc for usdc, _szi in booked.values()), D(0))
    rounding = abs(account_balance(AccountRef.platform(AccountKind.FEE_REVENUE, sub="funding")))
    assert rounding < D("0.0001")  # micro-dollars per instant at most
    assert account_balance(hl_pnl_trading) != 0

    # INTERNAL: HL's rate, HL's oracle at HL's instant
    history = {
        coin: {
            r["time"]: D(r["fundingRate"])
            for r in requests.post(
                f"{url}/info", json={"type": "fundingHistory", "coin": coin, "startTime": start}, timeout=5
            ).json()
        }
        for coin in ("BTC", "ETH")
    }
    for p in internal:
        rows = list(FundingSettlement.objects.filter(position=p).order_by("funding_time"))
        assert len(rows) == HOURS
        for r in rows:
            at = int(r.funding_time.timestamp() * 1000)
            oracle, rate = oracles[at][p.asset], history[p.asset][at]
            assert r.rate == rate
            assert abs(r.price - oracle) / oracle < D("0.00001"), (r.price, oracle)  # 0.1 bp
            expected = q_usdc(margin.funding_payment(margin.Side[p.direction], p.size, oracle, rate))
            assert abs(r.payment - expected) < D("0.01"), (r.payment, expected)

    # the hedge account's funding is posted (its cost), to the micro-dollar of what HL booked
    hedge_booked = sum(
        (D(row["delta"]["usdc"]) for row in gateway("hedge").user_funding(start, max(oracles))),  # type: ignore[union-attr]
        D(0),
    )
    assert hedge_booked != 0
    hedge_pnl = account_balance(AccountRef.platform(AccountKind.BBOOK_PNL, sub="hedge"))
    hedge_fills = LedgerTransfer.objects.filter(
        kind__in=[TransferKind.HEDGE, TransferKind.TRADING_FEE], ref_type="hedge_fill"
    ).aggregate(s=Sum("amount"))["s"]
    assert hedge_fills is None  # the position was opened outside the hedge engine: funding only
    assert hedge_pnl == hedge_booked

    # the funding-mirror reconciliation: OK over every instant of the day; CRITICAL once one user's
    # payment goes missing from an hour long settled (not the latest)
    rows = reconciliation_run(dimensions=["funding_mirror"])
    assert {r.subject.split("@")[0]: r.status for r in rows} == {"BTC": "OK", "ETH": "OK"}, [
        (r.subject, r.expected, r.actual) for r in rows
    ]
    assert [r.details["instants"] for r in rows] == [HOURS, HOURS]
    earlier = runs[HOURS // 2].funding_time
    biggest = max(
        FundingSettlement.objects.filter(funding_time=earlier, source="HYPERLIQUID"),
        key=lambda r: abs(r.payment),
    )
    assert abs(biggest.payment) > 10
    FundingSettlement.objects.filter(pk=biggest.pk).delete()
    after = reconciliation_run(dimensions=["funding_mirror"])
    assert {r.subject: r.status for r in after if r.status != "OK"} == {
        f"{biggest.asset}@{earlier.isoformat()}": "CRITICAL"
    }, [(r.subject, r.status, r.expected, r.actual) for r in after]
    other = "ETH" if biggest.asset == "BTC" else "BTC"
    assert [r.status for r in after if r.subject.startswith(f"{other}@")] == ["OK"]


def test_hl_funding_events_on_the_user_stream_settle_the_instant_without_waiting_for_the_beat(
    venue: Venue, trader: Any, monkeypatch: Any
) -> None:
    import threading
    import time
    from datetime import UTC, datetime

    from trading.hl_stream import UserStream
    from xbit_admin.celery import app

    asked: list[str] = []
    done: list[threading.Event] = []

    def send_task(name: str, **_options: Any) -> None:  # the critical worker, in this process
        asked.append(name)
        finished = threading.Event()
        done.append(finished)
        try:
            funding_tick()
        finally:
            connection.close()  # this thread's own
            finished.set()

    monkeypatch.setattr(app, "send_task", send_task)
    _mids["BTC"] = venue.refresh_quote("BTC")[2]
    position = _open(trader, "BTC", "BUY", 20_000, 10, "CROSS", "HYPERLIQUID")
    stream = UserStream(backfill_every_s=3600, silence_s=30)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        clock = requests.get(f"{venue.url}/control/time", timeout=5).json()
        venue.control("advance", {"seconds": (clock["nextFundingTime"] - clock["time"]) / 1000})
        instant = datetime.fromtimestamp(clock["nextFundingTime"] / 1000, tz=UTC)  # HL's, not ours
        settled = FundingSettlement.objects.filter(position=position, funding_time=instant)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not settled.exists():
            time.sleep(0.1)
    finally:
        stream.stop()
        thread.join(10)
        # a tick may still be writing in the stream's own thread: the test's database is flushed at
        # teardown only once every one has finished and closed its connection
        for finished in list(done):
            assert finished.wait(30), "a funding tick started by the stream did not finish"
    assert asked and set(asked) == {"risk.funding_tick"}
    assert settled.exists()
