"""Placing an order (spec 02): idempotent on ``client_order_id``, routed before the transaction (the
venue depends only on notional and routing config), then under the user's lock: an INTERNAL order is
filled or rests (``orders.internal``), a HYPERLIQUID one is prepared with its hold and, after the
commit, sent (``orders.hyperliquid``)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from django.db import IntegrityError
from django.utils import timezone

from core import metrics
from core.accounts.models import User
from core.accounts.selectors import kyc_limits_for
from core.errors import ApplicationError, ErrorCode
from core.money import (
    q_usdc,
)
from core.observability import bind_order
from core.sql.batch import new_instance
from core.sql.transaction import atomic_commit_with_last_batch
from routing.client_groups import client_routing
from routing.decision import Decision, Reason, Route, decide
from routing.models import RoutingDecisionLog
from routing.selectors import asset_routing, in_canary_cohort
from trading.config import TradingSettings, trading_settings
from trading.marketdata import Quote
from trading.models import (
    Market,
    Order,
    Source,
    TradingState,
)
from trading.orders.hyperliquid import available, hl_prepare, send_and_apply
from trading.orders.input import OrderInput, market_for, quote_or_fail, validate_against_market
from trading.orders.internal import internal_execute
from trading.orders.state import (
    LockedRead,
    OrderWrites,
    leverage_for,
    lock_and_read,
    order_event,
    position_for_key,
    reduce_target_of,
    reject_order,
)

logger = logging.getLogger(__name__)


PLACED_BY = ("client", "staff", "system")


def order_place(*, user: User, inp: OrderInput, by: str = "client", venue: Route | None = None) -> Order:
    """Place an order (spec 02). Idempotent on ``client_order_id``: the same id returns the same order
    (or the same rejection); the same id with other parameters is IDEMPOTENCY_CONFLICT.

    ``by``: who places it — "client" (the API), "staff" (a dealer's close from the console) or
    "system" (liquidation and system closes). Staff's "no trading" restriction stops the client only:
    a dealer may still close the client's position and liquidation always runs.

    ``venue``: an opening order that must go to this venue whatever its notional (an algo order's
    child is a HYPERLIQUID order); routing's halts still apply.

    Side effects (one transaction): order + lifecycle events, routing decision log, and for an
    INTERNAL fill the fill, position, ledger transfers and an outbox ``trading.fill`` event; for a
    resting internal limit order a margin + fee hold."""
    if by not in PLACED_BY:
        raise ValueError(f"order_place(by={by!r}): one of {PLACED_BY}")
    fingerprint = inp.fingerprint()
    if inp.client_order_id:
        existing = Order.objects.filter(user=user, client_order_id=inp.client_order_id).first()
        if existing is not None:
            return _replay(existing, fingerprint)
    settings = trading_settings()
    market = market_for(inp.asset)
    validate_against_market(inp, market, settings)
    if user.trading_blocked and by == "client":  # staff's "no trading": the client's closes included
        raise ApplicationError(ErrorCode.USER_RESTRICTED, "This account may not trade at the moment.")
    if (user.trading_restricted or user.blacklisted) and not inp.reduce_only:
        raise ApplicationError(ErrorCode.USER_RESTRICTED, "This account may only reduce positions.")
    quote = quote_or_fail(market.asset, settings)
    started = time.perf_counter_ns()
    # An opening order's venue depends only on its notional and the routing config, not on locked
    # state: decide before the transaction (and draw fill/position ids with the locking read when the
    # order is likely to fill internally).
    decision = None if inp.reduce_only else route_decide(inp, market, quote, settings, user.pk, venue=venue)
    latency_us = (time.perf_counter_ns() - started) // 1000
    if decision is not None:
        metrics.ROUTING_DECISIONS.labels(decision.route.value, str(decision.reason)).inc()
        metrics.ROUTING_DECISION_SECONDS.observe(latency_us / 1_000_000)
    try:
        with atomic_commit_with_last_batch() as commit:
            locked = lock_and_read(
                user.pk, inp, draw_fill_ids=decision is None or decision.route is Route.INTERNAL
            )
            locked.commit = commit  # an internal fill's writes are the last: the COMMIT goes with them
            order = _place_locked(
                user=user,
                inp=inp,
                market=market,
                quote=quote,
                settings=settings,
                fingerprint=fingerprint,
                decision=decision,
                latency_us=latency_us,
                locked=locked,
            )
    except IntegrityError as exc:
        if inp.client_order_id and "order_client_id_unique_per_user" in str(exc):
            return _replay(Order.objects.get(user=user, client_order_id=inp.client_order_id), fingerprint)
        raise
    bind_order(order.pk)
    if locked.rejection is not None:  # the REJECTED order has committed; the caller gets the error
        raise locked.rejection
    if order.route == Source.INTERNAL and order.status == Order.Status.FILLED:
        metrics.INTERNAL_EXECUTION_SECONDS.observe((time.perf_counter_ns() - started) / 1e9)
    if order.route == Source.HYPERLIQUID and order.status == Order.Status.ACCEPTED:
        # the hold is committed; now (and only now) the order leaves for HL — no transaction is open
        # during the network call
        order = send_and_apply(order=order, quote=quote, signing=locked.hl_signing)
        if order.status == Order.Status.REJECTED and order.error_code:
            raise ApplicationError(ErrorCode(order.error_code), order.error_message, {"order_id": order.pk})
    return order


def _replay(order: Order, fingerprint: str) -> Order:
    if order.request_hash != fingerprint:
        raise ApplicationError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This client_order_id was already used with different parameters.",
            {"order_id": order.pk, "client_order_id": order.client_order_id},
        )
    if order.status == Order.Status.REJECTED and order.error_code:
        raise ApplicationError(
            ErrorCode(order.error_code), order.error_message, {"order_id": order.pk, "replayed": True}
        )
    return order


def route_decide(
    inp: OrderInput,
    market: Market,
    quote: Quote,
    settings: TradingSettings,
    user_id: int,
    venue: Route | None = None,
) -> Decision:
    assert quote.mark is not None  # quote_or_fail refused quotes without a mark
    if venue is Route.HYPERLIQUID:
        config = asset_routing(market.asset)
        if config.hl_halted:
            return Decision(Route.NONE, Reason.HL_HALTED, config.mode, None)
        return Decision(Route.HYPERLIQUID, "algo_child", config.mode, None)
    client = client_routing(user_id)
    decision = decide(
        notional=inp.size * quote.mark,
        config=asset_routing(market.asset),
        in_cohort=in_canary_cohort(user_id),
        client_group=client.group,
        shadow_group=client.shadow_group,
    )
    if decision.route is Route.INTERNAL and not quote.is_book_fresh(settings.book_stale_seconds):
        decision = replace(
            decision,
            route=Route.HYPERLIQUID,
            reason=Reason.STALE_PRICE,
            shadow_route=Route.HYPERLIQUID
            if decision.shadow_route is Route.INTERNAL
            else decision.shadow_route,
        )
    return decision


def _place_locked(
    *,
    user: User,
    inp: OrderInput,
    market: Market,
    quote: Quote,
    settings: TradingSettings,
    fingerprint: str,
    decision: Decision | None,
    latency_us: int,
    locked: LockedRead,
) -> Order:
    positions = locked.positions
    reduce_target = reduce_target_of(inp, positions) if inp.reduce_only else None
    if inp.reduce_only and reduce_target is None:
        raise ApplicationError(ErrorCode.REDUCE_ONLY, "Reduce-only order but there is no position to reduce.")
    if not inp.reduce_only:
        if market.trading_state == TradingState.HALTED:
            raise ApplicationError(
                ErrorCode.MARKET_HALTED,
                f"{market.asset} is halted: {market.state_reason or 'by risk control'}.",
            )
        if market.trading_state == TradingState.REDUCE_ONLY:
            raise ApplicationError(ErrorCode.REDUCE_ONLY, f"{market.asset} accepts reduce-only orders only.")
    mark = quote.mark
    assert mark is not None  # quote_or_fail refused quotes without a mark
    price_for_value = inp.limit_price or mark
    notional = inp.size * mark
    limit = kyc_limits_for(user) if not inp.reduce_only else None  # one cached read on the hot path
    if limit is not None and notional > limit.max_order_notional:
        raise ApplicationError(
            ErrorCode.KYC_LIMIT_EXCEEDED,
            f"Your verification level ({limit.status}) allows orders up to {limit.max_order_notional:,.0f} USDC.",
            {"max_order_notional": str(limit.max_order_notional)},
        )
    if not inp.reduce_only and inp.size * price_for_value < settings.min_order_value:
        raise ApplicationError(
            ErrorCode.MIN_NOTIONAL,
            f"Order value must be at least {settings.min_order_value} USDC.",
            {"min_order_value": str(settings.min_order_value)},
        )
    if reduce_target is not None and inp.size > reduce_target.size:
        raise ApplicationError(
            ErrorCode.REDUCE_ONLY,
            "A reduce-only order cannot be larger than the position.",
            {"position_size": str(reduce_target.size)},
        )

    # venue: a reduction goes where the position is; an opening order asked routing (order_place)
    if reduce_target is not None:
        decision = Decision(
            Route(reduce_target.source), "position_venue", asset_routing(market.asset).mode, None
        )
    assert decision is not None

    source = decision.route.value if decision.route is not Route.NONE else Source.HYPERLIQUID
    same_key = position_for_key(positions, asset=market.asset, source=source, margin_mode=inp.margin_mode)
    leverage = leverage_for(
        locked,
        inp,
        market,
        same_key
        if same_key is not None and same_key.direction == ("LONG" if inp.side == "BUY" else "SHORT")
        else None,
    )
    now = timezone.now()
    order = new_instance(
        Order,
        id=locked.order_id,
        user=user,
        client_order_id=inp.client_order_id,
        request_hash=fingerprint,
        asset=market.asset,
        side=inp.side,
        order_type=inp.order_type,
        size=inp.size,
        limit_price=inp.limit_price,
        leverage=leverage,
        margin_mode=inp.margin_mode,
        reduce_only=inp.reduce_only,
        tif=inp.tif,
        slippage_bps=inp.slippage_bps,
        position=reduce_target,
        status=Order.Status.ACCEPTED,
        route=decision.route.value if decision.route is not Route.NONE else None,
        reference_price=quote.mark,
        created_at=now,
        updated_at=now,
    )
    log = None
    if reduce_target is None:
        log = new_instance(
            RoutingDecisionLog,
            order_id=order.pk,
            user_id=user.pk,
            asset=market.asset,
            notional=q_usdc(notional),
            route=decision.route.value,
            mode=decision.mode.value,
            threshold=decision.threshold,
            reason=str(decision.reason),
            latency_us=latency_us,
            created_at=now,
            client_group=decision.client_group.value,
            shadow_group=decision.shadow_group.value if decision.shadow_group else "",
            shadow_route=decision.shadow_route.value if decision.shadow_route else "",
        )
    # written with the fill (one round trip) or, on any other path, before the order is next touched
    locked.new_order_writes = OrderWrites(
        order,
        [order_event(order, Order.Status.NEW), order_event(order, Order.Status.ACCEPTED, route=order.route)],
        log,
    )

    if decision.route is Route.NONE:
        return reject_order(
            locked,
            order,
            ErrorCode.NO_ROUTE,
            f"No venue can take this order now ({decision.reason}).",
            reason=str(decision.reason),
        )
    if decision.route is Route.HYPERLIQUID:
        if not available():
            return reject_order(
                locked,
                order,
                ErrorCode.NO_ROUTE,
                "Hyperliquid execution is not configured (no HL trading account).",
                reason=str(decision.reason),
            )
        return hl_prepare(order=order, market=market, quote=quote, settings=settings, locked=locked)
    return internal_execute(order=order, market=market, quote=quote, settings=settings, locked=locked)
