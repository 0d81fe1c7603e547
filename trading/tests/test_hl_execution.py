"""HYPERLIQUID execution against the sandbox through the real SDK: fills at HL's prices, closes realizing
HL's P&L, resting orders filled later (stream backfill), timeouts resolved by cloid without a second
send, HL errors freezing nothing."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from core.errors import ApplicationError
from core.live_config import invalidate
from trading import margin
from trading.config import TRADING_CACHE
from trading.models import Fill, Order, OrderEvent, Position, TradingConfig
from trading.orders.cancel import order_cancel
from trading.orders.hl_fills import backfill
from trading.orders.hyperliquid import hl_orders_resolve
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.positions import position_close
from trading.tests.hl_venue import Venue, cash, hl_position, hl_trades, holds
from trading.venues.hl import gateway
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind, LedgerTransfer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal


def test_a_20k_order_in_normal_mode_fills_on_the_trading_account_at_hl_prices(
    venue: Venue, trader: Any
) -> None:
    bid, ask, mid = venue.refresh_quote("BTC")
    size = margin.floor_size(D(20_000) / mid, 5)
    before = hl_position("BTC")
    order = order_place(
        user=trader,
        inp=order_input(
            asset="BTC", side="BUY", order_type="MARKET", size=str(size), leverage=10, margin_mode="ISOLATED"
        ),
    )
    # booked from HL's answer, before anything else is asked of HL
    assert order.route == "HYPERLIQUID" and order.status == "FILLED" and order.hl_oid is not None
    fills = list(Fill.objects.filter(order=order))
    hl_fills = hl_trades(order.hl_oid)
    vwap = sum((f.price * f.size for f in hl_fills), D(0)) / sum((f.size for f in hl_fills), D(0))
    position = Position.objects.get(user=trader, source="HYPERLIQUID", status="OPEN")
    assert position.size == size and abs(position.entry_price - vwap) < D("0.00000001")
    assert hl_position("BTC") - before == size
    # margin = IM at HL's fill prices; user fee = HL schedule + builder markup on notional
    im = sum(margin.initial_margin(f.size, f.price, 10) for f in hl_fills)
    assert abs(position.isolated_margin - im) <= D("0.00001")
    assert order.fee_total == sum((f.fee for f in fills), D(0)) > 0
    assert holds(trader) == 0 and cash(trader) == D(100_000) - position.isolated_margin - order.fee_total
    assert all(f.hl_fee is None for f in fills)  # HL's own fee comes with its trades

    # HL's trades (the user stream, or its backfill) complete the record: trade ids and HL's exact fee,
    # booked once against the fee revenue
    fee_revenue = AccountRef.platform(AccountKind.FEE_REVENUE)
    revenue_before = account_balance(fee_revenue)
    backfill(since_ms=0)
    hl_fee = sum((f.fee for f in hl_fills), D(0))
    assert hl_fee > 0
    fills = list(Fill.objects.filter(order=order))
    assert sum((f.hl_fee or D(0) for f in fills), D(0)) == hl_fee
    trades = OrderEvent.objects.get(order=order, status="HL_TRADES").detail["trades"]
    assert sorted(t["tid"] for t in trades) == sorted(f.tid for f in hl_fills)
    booked = LedgerTransfer.objects.filter(ref_type="hl_fill", ref_id__in=[str(f.tid) for f in hl_fills])
    assert sorted((int(t.ref_id), t.amount) for t in booked) == sorted((f.tid, f.fee) for f in hl_fills)
    assert account_balance(fee_revenue) == revenue_before - hl_fee
    backfill(since_ms=0)  # seen again: nothing changes
    assert account_balance(fee_revenue) == revenue_before - hl_fee
    assert OrderEvent.objects.filter(order=order, status="HL_TRADES").count() == 1

    # closing realizes the P&L of HL's own close fill
    venue.refresh_quote("BTC")
    close = position_close(user=trader, position_id=position.pk)
    assert close.status == "FILLED" and close.route == "HYPERLIQUID"
    position.refresh_from_db()
    close_fills = hl_trades(close.hl_oid)
    close_vwap = sum((f.price * f.size for f in close_fills), D(0)) / sum((f.size for f in close_fills), D(0))
    expected = (close_vwap - vwap) * size
    assert position.status == "CLOSED" and abs(position.realized_pnl - expected) <= D("0.00001")
    assert hl_position("BTC") == before


def test_a_resting_hl_limit_order_fills_later_and_is_picked_up_by_the_backfill(
    venue: Venue, trader: Any
) -> None:
    bid, ask, mid = venue.refresh_quote("ETH")
    limit = margin.round_price(bid * D("0.995"), 4)
    size = margin.floor_size(D(15_000) / limit, 4)
    since = int(time.time() * 1000)
    order = order_place(
        user=trader,
        inp=order_input(
            asset="ETH", side="BUY", order_type="LIMIT", size=str(size), limit_price=str(limit), leverage=5
        ),
    )
    assert order.route == "HYPERLIQUID" and order.status == "OPEN" and order.hold_amount > 0
    venue.control("shock", {"coin": "ETH", "pct": -2})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        backfill(since_ms=since - 1000)  # what the stream process does after every reconnect
        order.refresh_from_db()
        if order.status == "FILLED":
            break
        time.sleep(0.3)
    assert order.status == "FILLED" and order.avg_fill_price == limit
    assert holds(trader) == 0
    assert Position.objects.get(user=trader, source="HYPERLIQUID", asset="ETH", status="OPEN").size == size
    backfill(since_ms=since - 1000)
    assert Fill.objects.filter(order=order).count() == len(hl_trades(order.hl_oid))  # type: ignore[union-attr]


def resting_eth_buy(venue: Venue, trader: Any) -> Order:
    bid, _ask, _mid = venue.refresh_quote("ETH")
    limit = margin.round_price(bid * D("0.9"), 4)
    order = order_place(
        user=trader,
        inp=order_input(
            asset="ETH",
            side="BUY",
            order_type="LIMIT",
            size=str(margin.floor_size(D(12_000) / limit, 4)),
            limit_price=str(limit),
            leverage=5,
        ),
    )
    assert order.status == "OPEN" and order.hl_oid is not None
    return order


def test_cancelling_a_resting_hl_order_cancels_it_on_hl_and_releases_the_hold(
    venue: Venue, trader: Any
) -> None:
    order = resting_eth_buy(venue, trader)
    assert holds(trader) > 0
    cancelled = order_cancel(user=trader, order_id=order.pk)
    assert cancelled.status == "CANCELLED" and holds(trader) == 0 and cash(trader) == D(100_000)
    assert all(o["oid"] != order.hl_oid for o in gateway("trading").open_orders())  # type: ignore[union-attr]


def test_a_cancel_hl_answers_with_5xx_is_sent_again_and_succeeds(venue: Venue, trader: Any) -> None:
    order = resting_eth_buy(venue, trader)
    # HL answers the first three cancels 502
    venue.control("fail", {"mode": "5xx", "path": "exchange", "count": 3, "status": 502})
    started = time.monotonic()
    cancelled = order_cancel(user=trader, order_id=order.pk)
    took = time.monotonic() - started
    assert cancelled.status == "CANCELLED" and holds(trader) == 0 and cash(trader) == D(100_000)
    assert all(o["oid"] != order.hl_oid for o in gateway("trading").open_orders())  # type: ignore[union-attr]
    assert took < 2.0, f"three retries took {took:.2f} s"


def test_a_lone_cancel_rides_out_the_soaks_burst_of_ten_5xx_within_the_default_budget(
    venue: Venue, trader: Any
) -> None:
    """The soak's HL fault is ten 502s in a row. When a cancel is the only request HL sees during it,
    the cancel alone meets all ten: its retries must outlast them inside ``hl_cancel_retry_ms``
    (3 s by default), not give up on the tenth."""
    order = resting_eth_buy(venue, trader)
    venue.control("fail", {"mode": "5xx", "path": "exchange", "count": 10, "status": 502})
    started = time.monotonic()
    cancelled = order_cancel(user=trader, order_id=order.pk)
    took = time.monotonic() - started
    assert cancelled.status == "CANCELLED" and holds(trader) == 0
    assert took < 3.0, f"ten retries took {took:.2f} s"


def test_a_cancel_hl_keeps_failing_answers_502_within_its_budget_and_changes_nothing(
    venue: Venue, trader: Any
) -> None:
    order = resting_eth_buy(venue, trader)
    TradingConfig.objects.filter(key="default").update(hl_cancel_retry_ms=400)
    invalidate(TRADING_CACHE.name)
    venue.control("fail", {"mode": "5xx", "path": "exchange", "count": 1000, "status": 502})
    started = time.monotonic()
    with pytest.raises(ApplicationError) as exc:
        order_cancel(user=trader, order_id=order.pk)
    took = time.monotonic() - started
    venue.control("faults/clear")
    assert exc.value.code == "VENUE_ERROR" and 0.3 <= took < 1.5, took
    order.refresh_from_db()
    assert order.status == "OPEN" and holds(trader) == order.hold_amount > 0
    # HL back: the same cancel goes through
    assert order_cancel(user=trader, order_id=order.pk).status == "CANCELLED" and holds(trader) == 0


def test_a_cancel_hl_refuses_for_certain_is_not_sent_again(venue: Venue, trader: Any) -> None:
    order = resting_eth_buy(venue, trader)
    venue.control("fail", {"mode": "err", "path": "exchange", "count": 1, "message": "Sandbox: refused"})
    with pytest.raises(ApplicationError) as exc:
        order_cancel(user=trader, order_id=order.pk)
    assert exc.value.code == "VENUE_ERROR" and "refused" in exc.value.message
    order.refresh_from_db()
    assert order.status == "OPEN"


def test_a_timeout_after_hl_accepted_the_order_is_resolved_by_cloid_without_a_second_send(
    venue: Venue, trader: Any
) -> None:
    _bid, _ask, mid = venue.refresh_quote("BTC")
    size = margin.floor_size(D(15_000) / mid, 5)
    before = hl_position("BTC")
    venue.control("fail", {"mode": "timeout", "path": "exchange", "count": 1, "hang_s": 4})
    order = order_place(
        user=trader,
        inp=order_input(asset="BTC", side="BUY", order_type="MARKET", size=str(size), leverage=10),
    )
    venue.control("faults/clear")
    for _ in range(20):
        if order.status != "ACCEPTED":
            break
        time.sleep(0.25)
        hl_orders_resolve(older_than_s=0)
        order.refresh_from_db()
    assert order.status == "FILLED", (order.status, order.error_message)
    assert hl_position("BTC") - before == size  # exactly one HL order executed
    assert Position.objects.get(user=trader, source="HYPERLIQUID", status="OPEN").size == size
    assert holds(trader) == 0


def test_an_hl_market_order_is_two_short_transactions_around_the_send(venue: Venue, trader: Any) -> None:
    """Before the send: BEGIN, one locking read, one write (order, events, decision log, hold, cloid,
    submitted mark), COMMIT. After HL's answer: BEGIN, one locking read (with the order), one write
    (fill, position, ledger, order, event, outbox, the relay's NOTIFY), COMMIT. No HL query besides the
    order itself."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from trading.venues import hl

    _bid, _ask, mid = venue.refresh_quote("BTC")
    size = str(margin.floor_size(D(15_000) / mid, 5))
    place: dict[str, Any] = {"asset": "BTC", "order_type": "MARKET", "size": size, "leverage": 10}
    order_place(user=trader, inp=order_input(side="BUY", **place))  # warm: config caches, accounts exist
    requests_made: list[str] = []
    post = hl.HLGateway._post

    def counting_post(self: Any, path: str, payload: dict[str, Any], endpoint: str) -> Any:
        requests_made.append(endpoint)
        return post(self, path, payload, endpoint)

    hl.HLGateway._post = counting_post  # type: ignore[method-assign]
    try:
        with CaptureQueriesContext(connection) as ctx:
            order = order_place(user=trader, inp=order_input(side="SELL", **place))
    finally:
        hl.HLGateway._post = post  # type: ignore[method-assign]
    assert order.status == "FILLED" and not Position.objects.filter(user=trader, status="OPEN").exists()
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert len(sqls) == 8, "\n".join(q[:100] for q in sqls)
    assert [sqls[0], sqls[3], sqls[4], sqls[7]] == ["BEGIN", "COMMIT", "BEGIN", "COMMIT"]
    assert "pg_notify" in sqls[6]
    assert requests_made == ["order"]


def test_an_order_booked_from_hls_answer_is_never_booked_again_from_its_trades(
    venue: Venue, trader: Any
) -> None:
    from trading.orders.hl_fills import apply_fills
    from trading.orders.hyperliquid import resolve

    _bid, _ask, mid = venue.refresh_quote("ETH")
    size = margin.floor_size(D(12_000) / mid, 4)
    order = order_place(
        user=trader, inp=order_input(asset="ETH", side="BUY", order_type="MARKET", size=str(size), leverage=5)
    )
    assert order.status == "FILLED" and order.hl_oid is not None
    position = Position.objects.get(user=trader, source="HYPERLIQUID", status="OPEN")
    cash_after = cash(trader)
    trades = hl_trades(order.hl_oid)
    # a resolver that raced the answer, the stream, a backfill: all find the order booked
    apply_fills(order_id=order.pk, fills=trades, final=True)
    Order.objects.filter(pk=order.pk).update(status="ACCEPTED")  # as a late resolver would still see it
    order.refresh_from_db()
    Order.objects.filter(pk=order.pk).update(status="FILLED")
    resolve(order=order)
    backfill(since_ms=0)
    backfill(since_ms=0)
    position.refresh_from_db()
    assert position.size == size and Fill.objects.filter(order=order).count() == 1
    assert cash(trader) == cash_after and holds(trader) == 0
    assert Order.objects.get(pk=order.pk).filled_size == size


def test_the_user_stream_completes_an_answered_orders_trade_details(venue: Venue, trader: Any) -> None:
    import threading

    from trading.hl_stream import UserStream

    stream = UserStream(backfill_every_s=3600, silence_s=30)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        _bid, _ask, mid = venue.refresh_quote("ETH")
        order = order_place(
            user=trader,
            inp=order_input(
                asset="ETH",
                side="SELL",
                order_type="MARKET",
                size=str(margin.floor_size(D(12_000) / mid, 4)),
                leverage=5,
            ),
        )
        assert order.status == "FILLED"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not OrderEvent.objects.filter(order=order, status="HL_TRADES"):
            time.sleep(0.1)
        fill = Fill.objects.get(order=order)
        trades = hl_trades(order.hl_oid)
        assert fill.hl_fee == sum((t.fee for t in trades), D(0)) > 0  # from the stream, no backfill
    finally:
        stream.stop()
        thread.join(10)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"mode": "5xx", "path": "exchange", "count": 1}, "VENUE_ERROR"),
        (
            {"mode": "err", "path": "exchange", "count": 1, "message": "Insufficient margin to place order."},
            "VENUE_ERROR",
        ),
    ],
)
def test_hl_errors_end_the_order_with_nothing_frozen(
    venue: Venue, trader: Any, fault: dict[str, Any], code: str
) -> None:
    _bid, _ask, mid = venue.refresh_quote("BTC")
    before = hl_position("BTC")
    venue.control("fail", fault)
    with pytest.raises(ApplicationError) as exc:
        order = order_place(
            user=trader,
            inp=order_input(
                asset="BTC",
                side="BUY",
                order_type="MARKET",
                size=str(margin.floor_size(D(15_000) / mid, 5)),
                leverage=10,
            ),
        )
        # a 5xx is an unknown outcome: HL never got the order, the resolver fails it after the expiry
        if order.status == "ACCEPTED":
            Order.objects.filter(pk=order.pk).update(hl_submitted_at=order.hl_submitted_at.replace(year=2020))
            hl_orders_resolve(older_than_s=0)
            order.refresh_from_db()
            raise ApplicationError(order.error_code, order.error_message)  # type: ignore[arg-type]
    assert exc.value.code == code
    assert cash(trader) == D(100_000) and holds(trader) == 0
    assert hl_position("BTC") == before and not Position.objects.filter(user=trader).exists()


def test_an_order_hl_rejects_shows_hls_message_and_releases_the_hold(venue: Venue, trader: Any) -> None:
    _bid, ask, _mid = venue.refresh_quote("BTC")
    # an ALO that would cross is refused by HL itself
    limit = margin.round_price(ask * D("1.01"), 5)
    with pytest.raises(ApplicationError) as exc:
        order_place(
            user=trader,
            inp=order_input(
                asset="BTC",
                side="BUY",
                order_type="LIMIT",
                size=str(margin.floor_size(D(15_000) / limit, 5)),
                limit_price=str(limit),
                tif="ALO",
                leverage=10,
            ),
        )
    assert exc.value.code == "VENUE_ERROR" and "Post only" in exc.value.message
    assert holds(trader) == 0 and cash(trader) == D(100_000)


def test_the_request_is_signed_while_the_order_commits_and_sent_after_it(venue: Venue, trader: Any) -> None:
    """The HL request is signed on a helper thread between the order's write and its commit, and sent
    only once the commit has returned; when signing ahead fails, the send signs it itself."""
    import threading

    from django.db import connection

    from trading.venues import hl

    _bid, _ask, mid = venue.refresh_quote("BTC")
    size = str(margin.floor_size(D(15_000) / mid, 5))
    place: dict[str, Any] = {"asset": "BTC", "order_type": "MARKET", "size": size, "leverage": 10}
    log: list[tuple[str, str]] = []
    sign, post = hl.HLGateway.sign, hl.HLGateway._post

    def logged_sign(self: Any, *args: Any, **kwargs: Any) -> Any:
        log.append(("sign", threading.current_thread().name))
        return sign(self, *args, **kwargs)

    def logged_post(self: Any, path: str, payload: dict[str, Any], endpoint: str) -> Any:
        log.append(("post", "committed" if not connection.in_atomic_block else "in transaction"))
        return post(self, path, payload, endpoint)

    hl.HLGateway.sign = logged_sign  # type: ignore[method-assign]
    hl.HLGateway._post = logged_post  # type: ignore[method-assign]
    try:
        order = order_place(user=trader, inp=order_input(side="BUY", **place))
        assert order.status == "FILLED"
        assert log[0][0] == "sign" and log[0][1].startswith("hl-sign") and log[1:] == [("post", "committed")]

        log.clear()

        def failing_sign(self: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.current_thread().name.startswith("hl-sign"):
                raise ConnectionError("the nonce store is away")
            return logged_sign(self, *args, **kwargs)

        hl.HLGateway.sign = failing_sign  # type: ignore[method-assign]
        order = order_place(user=trader, inp=order_input(side="SELL", **place))
        assert order.status == "FILLED" and not Position.objects.filter(user=trader, status="OPEN").exists()
        assert log == [("sign", "MainThread"), ("post", "committed")]
    finally:
        hl.HLGateway.sign = sign  # type: ignore[method-assign]
        hl.HLGateway._post = post  # type: ignore[method-assign]
