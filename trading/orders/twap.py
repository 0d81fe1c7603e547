"""Parent orders for large HYPERLIQUID orders (spec 02, large-order splitting): a TWAP (the size spread
over a duration in equal slices) or a size split (children of at most ``max_child_size``, sent one
after another). Each child is an ordinary HYPERLIQUID market order placed through ``order_place`` —
its own cloid, hold and crash-safety — sent by the scheduler (``trading.orders.algo_scheduler``).

* **Schedule** (deterministic): slice ``n`` is due at ``started_at + n × interval`` (randomized: plus a
  shift derived from the parent and the slice, below half an interval). A slice's size is the planned
  cumulative size up to it minus what is already filled or still in flight, so a slice that filled
  short (an IOC beyond its slippage, an order lost in a crash) is caught up by the next ones — a TWAP
  child at most ``catch_up_factor`` slices, a split child at most ``max_child_size``.
* **Margin** (checked up front, booked per child): at creation the whole size's initial margin and
  taker fee at mark ± slippage must fit the account's available margin less what the user's other
  running parents still need (refused INSUFFICIENT_MARGIN); nothing is frozen for the parent — each
  child freezes and books its own margin like any order, and a child refused for margin stops the
  parent (FAILED with the child's code). HL's own TWAP likewise checks margin per suborder.
* **Progress**: filled size, remaining size, children sent, fees and the average price — the
  volume-weighted average of the children's fills, which are HL's fill prices.
* **Cancel** stops the remaining slices and cancels a child still resting on HL; a child already on
  its way to HL when the cancel lands is booked as it fills."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from django.db import IntegrityError, transaction
from django.db.models import DecimalField, F, Sum
from django.utils import timezone

from core.accounts.models import User
from core.accounts.selectors import kyc_limits_for
from core.errors import ApplicationError, ErrorCode
from core.locks import user_lock
from core.money import PRICE_DECIMAL_PLACES, SIZE_INPUT, ZERO, q_usdc
from trading import margin, netting
from trading.account import account_view
from trading.config import trading_settings
from trading.models import Fill, LeverageSetting, MarginMode, Order, Position, Source
from trading.orders.algo_config import AlgoSettings, algo_settings
from trading.orders.cancel import order_cancel
from trading.orders.input import (
    DEFAULT_LEVERAGE,
    decimal_field,
    market_for,
    order_input,
    quote_or_fail,
    validate_against_market,
)
from trading.orders.parent_models import AlgoChild, AlgoOrder
from trading.orders.state import OPEN_STATUSES, route_fee_rate

Algo = AlgoOrder.Algo
PRICE_STEP = Decimal(1).scaleb(-PRICE_DECIMAL_PLACES)


# ------------------------------------------------------------------------------------------ create


def algo_order_create(
    *,
    user: User,
    algo: str,
    asset: str,
    side: str,
    size: Any,
    duration_seconds: int | None = None,
    slices: int | None = None,
    randomize: bool = False,
    max_child_size: Any = None,
    leverage: int | None = None,
    margin_mode: str = MarginMode.CROSS,
    slippage_bps: int | None = None,
    client_order_id: str | None = None,
    now: datetime | None = None,
) -> AlgoOrder:
    """Create a running parent order; its first slice is due at once. Idempotent on
    ``client_order_id`` (the same id answers the same parent; other parameters: IDEMPOTENCY_CONFLICT)."""
    config = algo_settings()
    if not config.enabled:
        raise ApplicationError(
            ErrorCode.SERVICE_UNAVAILABLE, "TWAP and split orders are switched off on this platform."
        )
    algo = str(algo).upper()
    if algo not in Algo.values:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "algo must be TWAP or SPLIT.", {"field": "type"})
    # the whole size as one market order: the same checks as any order (symbol, size step, leverage,
    # margin mode, slippage)
    inp = order_input(
        asset=asset,
        side=side,
        order_type=Order.Type.MARKET,
        size=size,
        leverage=leverage,
        margin_mode=margin_mode,
        slippage_bps=slippage_bps,
        client_order_id=client_order_id,
    )
    fingerprint = _fingerprint(inp.__dict__, algo, duration_seconds, slices, randomize, max_child_size)
    if client_order_id:
        existing = AlgoOrder.objects.filter(user=user, client_order_id=client_order_id).first()
        if existing is not None:
            return _replay(existing, fingerprint)
    settings = trading_settings()
    market = market_for(inp.asset)
    validate_against_market(inp, market, settings)
    if user.trading_blocked or user.trading_restricted or user.blacklisted:
        raise ApplicationError(
            ErrorCode.USER_RESTRICTED, "This account may not open positions at the moment."
        )
    quote = quote_or_fail(market.asset, settings)
    mark = cast(Decimal, quote.mark)
    if inp.size * mark < config.min_parent_notional:
        raise ApplicationError(
            ErrorCode.MIN_NOTIONAL,
            f"A TWAP or split order must be worth at least {config.min_parent_notional} USDC.",
            {"min_parent_notional": str(config.min_parent_notional)},
        )
    limit = kyc_limits_for(user)  # a parent is one order for the verification level's cap
    if inp.size * mark > limit.max_order_notional:
        raise ApplicationError(
            ErrorCode.KYC_LIMIT_EXCEEDED,
            f"Your verification level ({limit.status}) allows orders up to {limit.max_order_notional:,.0f} USDC.",
            {"max_order_notional": str(limit.max_order_notional)},
        )
    plan = _plan(config, algo, inp.size, market.sz_decimals, mark, duration_seconds, slices, max_child_size)
    child_min = plan["child_min"]
    if child_min * mark < settings.min_order_value:
        raise ApplicationError(
            ErrorCode.MIN_NOTIONAL,
            f"Each child order must be worth at least {settings.min_order_value} USDC: use fewer slices.",
            {"min_order_value": str(settings.min_order_value), "child_size": str(child_min)},
        )
    lev = _leverage(user, inp.asset, inp.margin_mode, inp.leverage, market.max_leverage)
    bps = inp.slippage_bps if inp.slippage_bps is not None else settings.market_default_slippage_bps
    worst = mark * (1 + Decimal(bps) / 10_000) if inp.side == "BUY" else mark
    fee_rate = route_fee_rate(settings, Source.HYPERLIQUID, maker=False)
    estimate = q_usdc(
        netting.initial_margin_for(inp.size, worst, lev) + netting.fee_for(inp.size, worst, fee_rate)
    )
    now = now or timezone.now()
    try:
        with transaction.atomic():
            user_lock(user.pk)  # one margin check at a time per user (the soft reservation below)
            others = sum(
                (
                    p.margin_estimate * (p.size - p.filled_size) / p.size
                    for p in AlgoOrder.objects.filter(user=user, status=AlgoOrder.Status.RUNNING)
                ),
                ZERO,
            )
            available = cast(Decimal, account_view(user.pk)["available_to_trade"])
            if estimate + others > available:
                raise ApplicationError(
                    ErrorCode.INSUFFICIENT_MARGIN,
                    "Not enough margin for the whole order (initial margin and fees at mark with "
                    "slippage, plus what your other running TWAP/split orders still need).",
                    {
                        "required": str(estimate),
                        "reserved_by_running_parents": str(q_usdc(others)),
                        "available": str(q_usdc(available)),
                    },
                )
            parent = AlgoOrder.objects.create(
                user=user,
                client_order_id=inp.client_order_id,
                request_hash=fingerprint,
                algo=algo,
                asset=inp.asset,
                side=inp.side,
                size=inp.size,
                leverage=lev,
                margin_mode=inp.margin_mode,
                slippage_bps=inp.slippage_bps,
                duration_seconds=duration_seconds if algo == Algo.TWAP else None,
                max_child_size=plan["max_child"],
                randomize=bool(randomize) and algo == Algo.TWAP,
                slices=plan["slices"],
                interval_ms=plan["interval_ms"],
                jitter_ms=int(plan["interval_ms"] * config.randomize_share) if randomize else 0,
                child_cap=plan["cap"],
                margin_estimate=estimate,
                started_at=now,
                next_at=now,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError as exc:
        if client_order_id and "algo_client_id_unique_per_user" in str(exc):
            return _replay(AlgoOrder.objects.get(user=user, client_order_id=client_order_id), fingerprint)
        raise
    return parent


def _fingerprint(inp: dict[str, Any], *extra: Any) -> str:
    body = {k: str(v) for k, v in inp.items() if k != "client_order_id"}
    return hashlib.sha256(json.dumps([body, [str(e) for e in extra]], sort_keys=True).encode()).hexdigest()


def _replay(parent: AlgoOrder, fingerprint: str) -> AlgoOrder:
    if parent.request_hash != fingerprint:
        raise ApplicationError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This client_order_id was already used with different parameters.",
            {"algo_order_id": parent.pk, "client_order_id": parent.client_order_id},
        )
    return parent


def _plan(
    config: AlgoSettings,
    algo: str,
    size: Decimal,
    sz_decimals: int,
    mark: Decimal,
    duration_seconds: int | None,
    slices: int | None,
    max_child_size: Any,
) -> dict[str, Any]:
    """Slice count, interval, largest child and smallest planned child of a parent."""
    step = Decimal(1).scaleb(-sz_decimals)
    if algo == Algo.SPLIT:
        if max_child_size is None:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, "A split order needs max_child_size.", {"field": "max_child_size"}
            )
        max_child = decimal_field(max_child_size, ErrorCode.INVALID_SIZE, "max_child_size", SIZE_INPUT)
        if not margin.is_valid_size(max_child, sz_decimals):
            raise ApplicationError(
                ErrorCode.INVALID_SIZE,
                f"max_child_size must be a multiple of {step}.",
                {"field": "max_child_size"},
            )
        count = math.ceil(size / max_child)
        if count > config.max_slices:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR,
                f"At most {config.max_slices} children: raise max_child_size.",
                {"field": "max_child_size"},
            )
        last = size - max_child * (count - 1)
        return {
            "slices": count,
            "interval_ms": config.split_interval_seconds * 1000,
            "cap": min(max_child, size),
            "max_child": max_child,
            "child_min": min(last, max_child) if count > 1 else size,
        }
    if duration_seconds is None:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "A TWAP order needs duration_seconds.", {"field": "duration_seconds"}
        )
    if not config.twap_min_duration_seconds <= duration_seconds <= config.twap_max_duration_seconds:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"duration_seconds must be {config.twap_min_duration_seconds}–{config.twap_max_duration_seconds}.",
            {"field": "duration_seconds"},
        )
    count = slices if slices is not None else max(1, duration_seconds // max(1, config.twap_slice_seconds))
    interval_ms = duration_seconds * 1000 // count if count else 0
    if not 1 <= count <= config.max_slices or (
        count > 1 and interval_ms < config.twap_min_slice_seconds * 1000
    ):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"slices must be 1–{config.max_slices}, at least {config.twap_min_slice_seconds} s apart.",
            {"field": "slices"},
        )
    base = margin.floor_size(size / count, sz_decimals)
    if base <= ZERO:
        raise ApplicationError(ErrorCode.INVALID_SIZE, "Too many slices for this size.", {"field": "slices"})
    cap = max(margin.floor_size(size / count * config.catch_up_factor, sz_decimals), base + step)
    return {
        "slices": count,
        "interval_ms": interval_ms,
        "cap": min(cap, size),
        "max_child": None,
        "child_min": base,
    }


def _leverage(user: User, asset: str, margin_mode: str, leverage: int | None, max_leverage: int) -> int:
    """The leverage every child uses: an open HL position's (HL keeps one per position), else the
    client's, else the user's setting, else the default."""
    open_position = Position.objects.filter(
        user=user,
        asset=asset,
        source=Source.HYPERLIQUID,
        margin_mode=margin_mode,
        status=Position.Status.OPEN,
    ).first()
    if open_position is not None:
        return open_position.leverage
    if leverage is not None:
        return leverage
    setting = LeverageSetting.objects.filter(user=user, asset=asset, margin_mode=margin_mode).first()
    return min(setting.leverage if setting else DEFAULT_LEVERAGE, max_leverage)


# ------------------------------------------------------------------------------------------ schedule


def slice_due_at(parent: AlgoOrder, n: int) -> datetime:
    """When slice ``n`` is due: ``started_at + n × interval``, shifted (randomize) by a jitter derived
    from the parent and the slice — the same in every process and after any restart."""
    offset_ms = n * parent.interval_ms
    if parent.jitter_ms and n > 0:
        digest = int(hashlib.sha256(f"{parent.pk}:{n}".encode()).hexdigest()[:8], 16)
        offset_ms += (digest % 2001 - 1000) * parent.jitter_ms // 1000
    return parent.started_at + timedelta(milliseconds=offset_ms)


def planned_through(parent: AlgoOrder, n: int, sz_decimals: int) -> Decimal:
    """The size the parent plans to have sent by the end of slice ``n`` (the last slice: all of it)."""
    if n >= parent.slices - 1:
        return parent.size
    if parent.algo == Algo.SPLIT:
        assert parent.max_child_size is not None
        return min(parent.size, parent.max_child_size * (n + 1))
    return margin.floor_size(parent.size * (n + 1) / parent.slices, sz_decimals)


def child_client_order_id(parent_id: int, n: int) -> str:
    """The child's idempotency key, derived from (parent, slice) under the prefix clients may not use."""
    return f"algo:{parent_id}:{n}"


# ------------------------------------------------------------------------------------------ progress


def progress_apply(parent: AlgoOrder) -> None:
    """Filled size, average price (volume-weighted over the children's fills — HL's prices), fees and
    children sent, from the children's rows (not saved: the caller saves)."""
    product = F("size") * F("price")
    fills = Fill.objects.filter(order__algo_child__parent=parent).aggregate(
        filled=Sum("size"), notional=Sum(product, output_field=DecimalField(max_digits=60, decimal_places=20))
    )
    filled = fills["filled"] or ZERO
    parent.filled_size = filled
    parent.avg_price = (fills["notional"] / filled).quantize(PRICE_STEP) if filled else None
    parent.fee_total = (
        Order.objects.filter(algo_child__parent=parent).aggregate(fee=Sum("fee_total"))["fee"] or ZERO
    )
    parent.children_sent = AlgoChild.objects.filter(parent=parent, order__isnull=False).count()


def algo_order_get(*, user: User, algo_id: int) -> AlgoOrder:
    parent = AlgoOrder.objects.filter(user=user, pk=algo_id).first()
    if parent is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such TWAP or split order.")
    return parent


# ------------------------------------------------------------------------------------------ cancel


def algo_order_cancel(*, user: User, algo_id: int) -> AlgoOrder:
    """Stop the remaining slices and cancel a child resting on HL. Cancelling twice answers the
    cancelled parent; a finished one is INVALID_STATE."""
    with transaction.atomic():
        parent = AlgoOrder.objects.select_for_update().filter(user=user, pk=algo_id).first()
        if parent is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such TWAP or split order.")
        if parent.status == AlgoOrder.Status.RUNNING:
            now = timezone.now()
            parent.status = AlgoOrder.Status.CANCELLED
            parent.finished_at = now
            parent.next_at = None
            parent.updated_at = now
            parent.save(update_fields=["status", "finished_at", "next_at", "updated_at"])
        elif parent.status != AlgoOrder.Status.CANCELLED:
            raise ApplicationError(
                ErrorCode.INVALID_STATE, f"The order is {parent.status}.", {"status": parent.status}
            )
    resting = Order.objects.filter(algo_child__parent=parent, status__in=OPEN_STATUSES).values_list(
        "pk", flat=True
    )
    for order_id in resting:
        order_cancel(user=user, order_id=order_id)
    with transaction.atomic():
        parent = AlgoOrder.objects.select_for_update().get(pk=parent.pk)
        progress_apply(parent)
        parent.save(update_fields=["filled_size", "avg_price", "fee_total", "children_sent"])
    return parent
