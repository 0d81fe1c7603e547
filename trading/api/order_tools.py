"""Trader API: the order tools traders expect from a venue — modify an open order, cancel all, batch
place / batch cancel (a result per order, each independent) and the dead-man's switch (HL's
``scheduleCancel``). Thin: parse → one service → serialise."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.accounts.selectors import request_user
from core.api_input import DecimalStringField, InputSerializer
from core.api_schema import api_errors
from core.errors import ApplicationError, ErrorCode
from core.money import PRICE_INPUT, SIZE_INPUT
from core.platform.state import platform_ready
from trading.api import orders
from trading.api.orders import ORDER_REJECTIONS, OrderInputSerializer, OrderOutput, order_input_validated
from trading.models import Order
from trading.orders.bulk import BulkResult, orders_cancel_all, orders_cancel_batch, orders_place_batch
from trading.orders.deadman import DeadmanView, deadman_get, deadman_set
from trading.orders.input import OrderInput, order_validate
from trading.orders.modify import order_modify, replaced_order_id


class ErrorOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class BulkResultOutput(serializers.Serializer):
    index = serializers.IntegerField(help_text="the entry's position in the request")
    order_id = serializers.IntegerField(allow_null=True)
    ok = serializers.BooleanField()
    order = OrderOutput(allow_null=True)
    error = ErrorOutput(allow_null=True)


def bulk_output(results: list[BulkResult]) -> list[dict[str, Any]]:
    return [
        {
            "index": r.index,
            "order_id": r.order_id,
            "ok": r.error is None,
            "order": OrderOutput(r.order).data if r.order is not None else None,
            "error": r.error,
        }
        for r in results
    ]


class BulkOutput(serializers.Serializer):
    results = BulkResultOutput(many=True)


# ------------------------------------------------------------------------------------------ modify


class OrderModifyInputSerializer(InputSerializer):
    size = DecimalStringField(
        shape=SIZE_INPUT,
        code=ErrorCode.INVALID_SIZE,
        required=False,
        allow_null=True,
        help_text="what is left to fill after the change, as on HL (default: what is left now)",
    )
    limit_price = DecimalStringField(
        shape=PRICE_INPUT, code=ErrorCode.INVALID_PRICE, required=False, allow_null=True
    )


class OrderModifyOutput(OrderOutput):
    replaces = serializers.SerializerMethodField(help_text="the order this one replaced (HL's modify)")

    class Meta(OrderOutput.Meta):
        fields = [*OrderOutput.Meta.fields, "replaces"]

    def get_replaces(self, order: Order) -> int | None:
        return replaced_order_id(order)


MODIFY_SCHEMA: dict[str, Any] = {
    "request": OrderModifyInputSerializer,
    "responses": OrderModifyOutput,
    "description": "Change an open limit order's price and/or size. An INTERNAL order is changed in "
    "place (its margin hold re-computed; a price the book already reaches fills at once as a taker, "
    "an ALO order refuses it). A HYPERLIQUID order is modified with HL's semantics: cancelled and "
    "replaced by a new order (a new ``id``; ``replaces`` names the old one); if the replacement is "
    "refused the old order stays cancelled. Repeating the request answers the same result.",
}
MODIFY_ERRORS = (*ORDER_REJECTIONS, ErrorCode.MIN_NOTIONAL, ErrorCode.INVALID_STATE)


def modify(request: Request, order_id: int) -> Response:
    data = OrderModifyInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    order = order_modify(
        user=request_user(request),
        order_id=order_id,
        size=data.validated_data.get("size"),
        limit_price=data.validated_data.get("limit_price"),
    )
    return Response(OrderModifyOutput(order).data)


class OrderModifyApi(APIView):
    key_scope = "trade"
    rate_budget = "orders"

    @extend_schema(operation_id="orders_modify", **MODIFY_SCHEMA)
    @api_errors(*MODIFY_ERRORS)
    def post(self, request: Request, order_id: int) -> Response:
        return modify(request, order_id)


class OrderDetailApi(orders.OrderDetailApi):
    """``GET /orders/<id>`` and ``PATCH /orders/<id>``, the same modification as ``POST …/modify``."""

    key_scope = None  # GET needs read, PATCH needs trade
    rate_budget = "orders"  # PATCH spends the order budget; GET the reads (safe methods always do)

    @extend_schema(operation_id="orders_modify_patch", **MODIFY_SCHEMA)
    @api_errors(*MODIFY_ERRORS)
    def patch(self, request: Request, order_id: int) -> Response:
        return modify(request, order_id)


# ------------------------------------------------------------------------------------------ cancel all


class OrdersCancelAllApi(APIView):
    key_scope = "trade"
    rate_budget = "orders"

    class CancelAllInputSerializer(InputSerializer):
        symbol = serializers.CharField(max_length=20, required=False, allow_blank=True, allow_null=True)

    class CancelAllOutput(serializers.Serializer):
        results = BulkResultOutput(many=True)
        tpsl_cancelled = serializers.ListField(child=serializers.IntegerField(), help_text="TP/SL ids")

    @extend_schema(
        request=CancelAllInputSerializer,
        responses=CancelAllOutput,
        operation_id="orders_cancel_all",
        description="Cancel every open order (of ``symbol`` when given) and every live TP/SL trigger. "
        "One result per order; an order that could not be cancelled (already filled, still being placed, "
        "HL not answering) says why and the others are cancelled regardless. Safe to repeat.",
    )
    def post(self, request: Request) -> Response:
        data = self.CancelAllInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = orders_cancel_all(
            user=request_user(request), asset=data.validated_data.get("symbol") or None
        )
        return Response({"results": bulk_output(result.orders), "tpsl_cancelled": result.tpsl_cancelled})


# ------------------------------------------------------------------------------------------ batches


class BatchPlaceInputSerializer(InputSerializer):
    orders = OrderInputSerializer(many=True, help_text="up to the configured batch size (20)")


def entry_input(raw: Any) -> OrderInput | ApplicationError:
    """One batch entry parsed as a single order would be; its error instead of raising it."""
    try:
        entry = OrderInputSerializer(data=raw)
        if not entry.is_valid():
            return ApplicationError(ErrorCode.VALIDATION_ERROR, "Invalid order.", {"fields": entry.errors})
        return order_input_validated(entry.validated_data)
    except ApplicationError as exc:
        return exc


def gated_entry(inp: OrderInput | ApplicationError, reason: str) -> OrderInput | ApplicationError:
    """One batch entry while the platform is not ready: a reduction passes; an entry that is malformed
    keeps its own error (the client's mistake whatever the platform's state, as a single order); any
    other is SERVICE_UNAVAILABLE with the gate's reason."""
    if isinstance(inp, ApplicationError) or inp.reduce_only:
        return inp
    try:
        order_validate(inp)
    except ApplicationError as exc:
        return exc
    return ApplicationError(ErrorCode.SERVICE_UNAVAILABLE, reason)


class OrdersBatchApi(APIView):
    key_scope = "trade"
    rate_budget = "orders"

    @extend_schema(
        request=BatchPlaceInputSerializer,
        responses=BulkOutput,
        operation_id="orders_batch_place",
        description="Place up to 20 orders (``batch_max_orders``). Each is placed on its own, in order: "
        "one refused does not undo the others. One result per entry with the order or its error "
        "(the same codes as a single placement). Each entry's ``client_order_id`` makes a retry safe. "
        "While the platform is starting only reduce-only entries are taken (the others: "
        "SERVICE_UNAVAILABLE in their result).",
    )
    @api_errors(ErrorCode.VALIDATION_ERROR, ErrorCode.BATCH_TOO_LARGE)
    def post(self, request: Request) -> Response:
        raw = request.data.get("orders") if isinstance(request.data, dict) else None
        if not isinstance(raw, list):
            raise ApplicationError(ErrorCode.VALIDATION_ERROR, "orders must be a list.", {"field": "orders"})
        inputs = [entry_input(entry) for entry in raw]
        readiness = platform_ready()
        if not readiness.ready:
            reason = readiness.reason or "The platform is starting."
            inputs = [gated_entry(inp, reason) for inp in inputs]
        results = orders_place_batch(user=request_user(request), inputs=inputs)
        return Response({"results": bulk_output(results)})


class OrdersBatchCancelApi(APIView):
    key_scope = "trade"
    rate_budget = "orders"

    class BatchCancelInputSerializer(InputSerializer):
        order_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False)

    @extend_schema(
        request=BatchCancelInputSerializer,
        responses=BulkOutput,
        operation_id="orders_batch_cancel",
        description="Cancel up to 20 orders; one result per id (the cancelled order, or NOT_FOUND / "
        "INVALID_STATE / VENUE_ERROR), each independent of the others.",
    )
    @api_errors(ErrorCode.VALIDATION_ERROR, ErrorCode.BATCH_TOO_LARGE)
    def post(self, request: Request) -> Response:
        data = self.BatchCancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        results = orders_cancel_batch(user=request_user(request), order_ids=data.validated_data["order_ids"])
        return Response({"results": bulk_output(results)})


# ------------------------------------------------------------------------------------------ dead-man


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "description": "epoch milliseconds"},
            {"type": "string", "format": "date-time"},
        ],
        "nullable": True,
    }
)
class ScheduleTimeField(serializers.Field):  # type: ignore[type-arg]
    """Epoch milliseconds (HL's form) or an ISO 8601 time with its zone; null clears."""

    def to_internal_value(self, data: Any) -> datetime:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            if not 0 < data < 10**14:
                self.fail("invalid")
            return datetime.fromtimestamp(data / 1000, tz=UTC)
        if isinstance(data, str):
            try:
                parsed = datetime.fromisoformat(data)
            except ValueError:
                self.fail("invalid")
            if parsed.tzinfo is None:
                self.fail("naive")
            return parsed
        self.fail("invalid")

    def to_representation(self, value: datetime) -> int:
        return int(value.timestamp() * 1000)

    default_error_messages = {
        "invalid": "time is epoch milliseconds or an ISO 8601 time.",
        "naive": "An ISO time needs its time zone (e.g. Z).",
    }


class DeadmanOutput(serializers.Serializer):
    time = serializers.IntegerField(allow_null=True, help_text="epoch ms of the scheduled cancel, or null")
    time_iso = serializers.DateTimeField(allow_null=True)
    last_fired_at = serializers.DateTimeField(allow_null=True)
    fired_count = serializers.IntegerField()


def deadman_output(view: DeadmanView) -> dict[str, Any]:
    return DeadmanOutput(
        {
            "time": int(view.cancel_at.timestamp() * 1000) if view.cancel_at else None,
            "time_iso": view.cancel_at,
            "last_fired_at": view.last_fired_at,
            "fired_count": view.fired_count,
        }
    ).data


class ScheduleCancelApi(APIView):
    key_scope = None  # GET needs read, POST needs trade

    class ScheduleCancelInputSerializer(InputSerializer):
        time = ScheduleTimeField(allow_null=True, help_text="epoch ms or ISO 8601; null clears")

    @extend_schema(responses=DeadmanOutput, operation_id="orders_schedule_cancel_get")
    def get(self, request: Request) -> Response:
        return Response(deadman_output(deadman_get(user=request_user(request))))

    @extend_schema(
        request=ScheduleCancelInputSerializer,
        responses=DeadmanOutput,
        operation_id="orders_schedule_cancel",
        description="The dead-man's switch (HL's ``scheduleCancel``): at ``time`` every open order and "
        "TP/SL trigger of the account is cancelled unless the time was moved or cleared (``null``) "
        "before. Renew it while your program runs. The time must be at least the configured lead "
        "(``deadman_min_lead_seconds``, 5 s) ahead: SCHEDULE_TOO_SOON otherwise. Setting the same time "
        "again changes nothing.",
    )
    @api_errors(ErrorCode.VALIDATION_ERROR, ErrorCode.SCHEDULE_TOO_SOON)
    def post(self, request: Request) -> Response:
        data = self.ScheduleCancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "time" not in data.validated_data:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, "time is required (null clears).", {"field": "time"}
            )
        view = deadman_set(user=request_user(request), cancel_at=data.validated_data["time"])
        return Response(deadman_output(view))
