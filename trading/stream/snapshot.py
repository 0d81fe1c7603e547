"""What a subscriber gets first without ``resume_from``: open orders, open positions, the account."""

from __future__ import annotations

from typing import Any

from trading.account import account_view
from trading.api.orders import OrderOutput
from trading.models import Order
from trading.stream.mapping import balances_data, positions_data


def order_data(order: Order) -> dict[str, Any]:
    return {**OrderOutput(order).data, "route": order.route}


def snapshot(user_id: int, channels: list[str]) -> dict[str, Any]:
    """``{channel: data}`` for the snapshot channels among ``channels`` (a list for orders and
    positions, the account summary for balances)."""
    out: dict[str, Any] = {}
    if "orders" in channels:
        orders = Order.objects.filter(user_id=user_id).exclude(status__in=Order.TERMINAL).order_by("id")
        out["orders"] = [order_data(o) for o in orders]
    if "positions" in channels or "balances" in channels:
        view = account_view(user_id)
        if "positions" in channels:
            out["positions"] = positions_data(view)
        if "balances" in channels:
            out["balances"] = balances_data(view)
    return out
