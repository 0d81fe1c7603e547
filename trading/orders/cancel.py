"""Cancelling an open order (an internal one releases its hold; an HL one is cancelled on HL) and
expiring GTC internal orders past their expiry."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.accounts.models import User
from core.errors import ApplicationError, ErrorCode
from core.locks import user_lock
from trading.models import (
    Order,
    Source,
)
from trading.orders.hyperliquid import hl_cancel
from trading.orders.state import OPEN_STATUSES, hold_release, order_status_set

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ public wrappers


def order_cancel(*, user: User, order_id: int) -> Order:
    """Cancel an open order; an internal one releases its hold. Cancelling a finished order is
    INVALID_STATE (with its status), cancelling twice returns the cancelled order."""
    with transaction.atomic():
        user_lock(user.pk)
        order = Order.objects.select_for_update().filter(user=user, pk=order_id).first()
        if order is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such order.")
        if order.status == Order.Status.CANCELLED:
            return order
        if order.status not in OPEN_STATUSES:
            raise ApplicationError(
                ErrorCode.INVALID_STATE, f"The order is {order.status}.", {"status": order.status}
            )
        if order.route == Source.HYPERLIQUID:
            return hl_cancel(order=order)
        hold_release(order)
        order_status_set(order, Order.Status.CANCELLED, by="user")
        order.save(update_fields=["status", "hold_amount", "updated_at"])
        return order


def orders_expire(*, now: Any = None, limit: int = 500) -> int:
    """Expire GTC internal orders past their ``expires_at`` (spec 02: 7 days), releasing holds."""
    now = now or timezone.now()
    expired = 0
    ids = list(
        Order.objects.filter(
            status__in=OPEN_STATUSES, route=Source.INTERNAL, expires_at__lte=now
        ).values_list("id", "user_id")[:limit]
    )
    for order_id, user_id in ids:
        with transaction.atomic():
            user_lock(user_id)
            order = Order.objects.select_for_update().get(pk=order_id)
            if order.status not in OPEN_STATUSES:
                continue
            hold_release(order)
            order_status_set(order, Order.Status.EXPIRED, reason="GTC expiry")
            order.save(update_fields=["status", "hold_amount", "updated_at"])
            expired += 1
    return expired
