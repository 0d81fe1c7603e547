"""Orders in bulk: cancel every open order (of one asset or all), and batch place / batch cancel. Each
order is handled on its own through the single-order services (``order_place``, ``order_cancel``): one
failure leaves the others as they went, and each result says what happened to its order."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.accounts.models import User
from core.errors import ApplicationError, ErrorCode
from trading.config import trading_settings
from trading.models import Order, TpslOrder
from trading.orders.cancel import order_cancel
from trading.orders.input import OrderInput
from trading.orders.place import order_place
from trading.orders.state import OPEN_STATUSES

logger = logging.getLogger(__name__)


@dataclass
class BulkResult:
    """One order's outcome in a bulk call: the order (as it now is) or the error that refused it."""

    index: int
    order: Order | None = None
    order_id: int | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def failed(cls, index: int, exc: ApplicationError, order_id: int | None = None) -> BulkResult:
        details = dict(exc.details or {})
        return cls(
            index=index,
            order_id=order_id if order_id is not None else details.get("order_id"),
            error={"code": str(exc.code), "message": exc.message, "details": details},
        )


@dataclass
class CancelAllResult:
    orders: list[BulkResult] = field(default_factory=list)
    tpsl_cancelled: list[int] = field(default_factory=list)


def batch_limit_check(count: int) -> None:
    limit = trading_settings().batch_max_orders
    if count < 1 or count > limit:
        raise ApplicationError(
            ErrorCode.BATCH_TOO_LARGE if count > limit else ErrorCode.VALIDATION_ERROR,
            f"A batch holds 1 to {limit} orders.",
            {"field": "orders", "max": limit, "count": count},
        )


def orders_place_batch(*, user: User, inputs: list[OrderInput | ApplicationError]) -> list[BulkResult]:
    """Place each order in turn. An entry that could not even be parsed comes in as its error and is
    reported at its index; the others are placed regardless."""
    batch_limit_check(len(inputs))
    results = []
    for i, inp in enumerate(inputs):
        if isinstance(inp, ApplicationError):
            results.append(BulkResult.failed(i, inp))
            continue
        try:
            order = order_place(user=user, inp=inp)
        except ApplicationError as exc:
            results.append(BulkResult.failed(i, exc))
        else:
            results.append(BulkResult(index=i, order=order, order_id=order.pk))
    return results


def orders_cancel_batch(*, user: User, order_ids: list[int]) -> list[BulkResult]:
    batch_limit_check(len(order_ids))
    return [_cancel_one(user, i, order_id) for i, order_id in enumerate(order_ids)]


def _cancel_one(user: User, index: int, order_id: int) -> BulkResult:
    try:
        order = order_cancel(user=user, order_id=order_id)
    except ApplicationError as exc:
        return BulkResult.failed(index, exc, order_id=order_id)
    return BulkResult(index=index, order=order, order_id=order.pk)


def orders_cancel_all(*, user: User, asset: str | None = None, tpsl: bool = True) -> CancelAllResult:
    """Cancel every open order of the user (of ``asset`` only when given), and with ``tpsl`` its live
    take-profit / stop-loss triggers. Safe to repeat: what is already cancelled is not touched again."""
    # the TP/SL triggers first: one that fired during the cancel would place a new order
    tpsl_ids: list[int] = []
    if tpsl:
        tpsl_ids = tpsl_cancel_all(user_id=user.pk, asset=asset)
    qs = Order.objects.filter(user=user, status__in=(*OPEN_STATUSES, Order.Status.ACCEPTED))
    if asset:
        qs = qs.filter(asset=asset.upper())
    ids = list(qs.order_by("id").values_list("id", flat=True))
    return CancelAllResult(
        orders=[_cancel_one(user, i, order_id) for i, order_id in enumerate(ids)], tpsl_cancelled=tpsl_ids
    )


def tpsl_cancel_all(*, user_id: int, asset: str | None = None) -> list[int]:
    """Cancel the user's live (not yet triggered) TP/SL triggers; returns their ids."""
    qs = TpslOrder.objects.filter(user_id=user_id, status=TpslOrder.Status.ACTIVE)
    if asset:
        qs = qs.filter(asset=asset.upper())
    with transaction.atomic():
        # locked, so a checker about to fire one of them waits and then finds it cancelled
        ids = list(qs.select_for_update().values_list("id", flat=True))
        if ids:
            TpslOrder.objects.filter(pk__in=ids).update(
                status=TpslOrder.Status.CANCELLED, error_message="cancel all", updated_at=timezone.now()
            )
    return ids
