"""The order and fill answers built over fields made once per class (``core.api_output``) are exactly
what DRF builds field by field, for every kind of order the API returns."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers

from trading.api.orders import FillOutput, OrderOutput
from trading.models import Fill, Order
from trading.orders.input import order_input
from trading.orders.place import order_place

pytestmark = pytest.mark.usefixtures("internalization_on")


def _drf(serializer: serializers.Serializer, instance: Any) -> Any:
    """What DRF's own ``Serializer.to_representation`` gives (fields built for this instance)."""
    return serializers.Serializer.to_representation(serializer, instance)


def test_order_and_fill_answers_match_drfs_own(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="79999", ask="80001")
    order_place(
        user=trader, inp=order_input(asset="BTC", side="BUY", order_type="MARKET", size="0.1", leverage=10)
    )
    order_place(
        user=trader,
        inp=order_input(
            asset="BTC",
            side="BUY",
            order_type="LIMIT",
            size="0.01",
            limit_price="70000",
            client_order_id="rest-1",
        ),
    )
    orders = list(Order.objects.filter(user=trader).order_by("id"))
    assert {o.status for o in orders} == {"FILLED", "OPEN"}
    rejected = Order.objects.get(pk=orders[0].pk)  # an answer with an error object (not saved)
    rejected.status, rejected.error_code, rejected.error_message = "REJECTED", "NO_ROUTE", "No venue."
    orders.append(rejected)
    for order in orders:
        assert dict(OrderOutput(order).data) == dict(_drf(OrderOutput(order), order)), order.status
    assert [dict(x) for x in OrderOutput(orders, many=True).data] == [
        dict(_drf(OrderOutput(o), o)) for o in orders
    ]
    fills = list(Fill.objects.filter(user=trader))
    assert fills
    for fill in fills:
        assert dict(FillOutput(fill).data) == dict(_drf(FillOutput(fill), fill))
