"""Trader API: TWAP and size-split parent orders for large HYPERLIQUID orders (``trading.orders.twap``).

A separate resource next to ``/orders``: a parent has its own lifecycle (RUNNING → COMPLETED /
CANCELLED / FAILED) and progress, and its children are ordinary orders listed under ``/orders`` too."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.accounts.selectors import request_user
from core.api_input import DecimalStringField, InputSerializer
from core.api_output import BuiltOnce
from core.api_schema import api_errors
from core.errors import ApplicationError, ErrorCode
from core.money import SIZE_INPUT
from core.pagination import CursorPagination
from core.platform.state import platform_ready
from trading.models import AlgoChild, AlgoOrder, MarginMode, Order, Side
from trading.orders.input import order_input, order_validate
from trading.orders.twap import algo_order_cancel, algo_order_create, algo_order_get


class AlgoOrderOutput(BuiltOnce, serializers.ModelSerializer):
    type = serializers.CharField(source="algo", help_text="TWAP or SPLIT")
    symbol = serializers.CharField(source="asset")
    remaining_size = serializers.DecimalField(max_digits=28, decimal_places=8)
    avg_price = serializers.DecimalField(
        max_digits=28,
        decimal_places=8,
        allow_null=True,
        help_text="volume-weighted average of the children's fills (HL's prices)",
    )
    next_slice_at = serializers.DateTimeField(source="next_at", allow_null=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = AlgoOrder
        fields = [
            "id",
            "client_order_id",
            "type",
            "symbol",
            "side",
            "size",
            "filled_size",
            "remaining_size",
            "avg_price",
            "fee_total",
            "children_sent",
            "slices",
            "next_slice",
            "next_slice_at",
            "duration_seconds",
            "interval_ms",
            "randomize",
            "max_child_size",
            "leverage",
            "margin_mode",
            "slippage_bps",
            "status",
            "error",
            "started_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]

    def get_error(self, parent: AlgoOrder) -> dict[str, str] | None:
        return {"code": parent.error_code, "message": parent.error_message} if parent.error_code else None


class AlgoChildOutput(serializers.ModelSerializer):
    slice = serializers.IntegerField(source="slice_index")
    status = serializers.SerializerMethodField(help_text="the child order's status; SKIPPED: nothing sent")
    filled_size = serializers.SerializerMethodField()
    avg_fill_price = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = AlgoChild
        fields = [
            "slice",
            "size",
            "scheduled_at",
            "order_id",
            "status",
            "filled_size",
            "avg_fill_price",
            "error",
        ]

    def get_status(self, child: AlgoChild) -> str:
        return (
            child.order.status
            if child.order
            else ("SKIPPED" if child.error_code or not child.size else "PENDING")
        )

    def get_filled_size(self, child: AlgoChild) -> str:
        return str(child.order.filled_size if child.order else 0)

    def get_avg_fill_price(self, child: AlgoChild) -> str | None:
        price = child.order.avg_fill_price if child.order else None
        return str(price) if price is not None else None

    def get_error(self, child: AlgoChild) -> dict[str, str] | None:
        if child.error_code:
            return {"code": child.error_code, "message": child.error_message}
        if child.order and child.order.error_code:
            return {"code": child.order.error_code, "message": child.order.error_message}
        return None


class AlgoOrderDetailOutput(AlgoOrderOutput):
    children = serializers.SerializerMethodField()

    class Meta(AlgoOrderOutput.Meta):
        fields = [*AlgoOrderOutput.Meta.fields, "children"]

    @extend_schema_field(AlgoChildOutput(many=True))
    def get_children(self, parent: AlgoOrder) -> list[dict[str, Any]]:
        rows = AlgoChild.objects.filter(parent=parent).select_related("order").order_by("slice_index")
        return list(AlgoChildOutput(rows, many=True).data)


class AlgoOrderInput(InputSerializer):
    type = serializers.ChoiceField(choices=["TWAP", "SPLIT"])
    symbol = serializers.CharField(max_length=20)
    side = serializers.ChoiceField(choices=Side.choices)
    size = DecimalStringField(shape=SIZE_INPUT, code=ErrorCode.INVALID_SIZE, help_text="the whole size")
    duration_seconds = serializers.IntegerField(
        required=False, min_value=1, help_text="TWAP: the window the slices are spread over"
    )
    slices = serializers.IntegerField(
        required=False, min_value=1, help_text="TWAP: slice count (default: one every 30 s, configurable)"
    )
    randomize = serializers.BooleanField(
        default=False, help_text="TWAP: shift each slice by a deterministic jitter below half an interval"
    )
    max_child_size = DecimalStringField(
        shape=SIZE_INPUT, code=ErrorCode.INVALID_SIZE, required=False, help_text="SPLIT: the largest child"
    )
    leverage = serializers.IntegerField(required=False, min_value=1, max_value=200)
    margin_mode = serializers.ChoiceField(choices=MarginMode.choices, default="CROSS")
    slippage_bps = serializers.IntegerField(
        required=False, min_value=0, max_value=10_000, help_text="each child's limit from mid (IOC)"
    )
    client_order_id = serializers.CharField(max_length=64, required=False)


class AlgoOrdersApi(APIView):
    key_scope = None  # GET needs read, POST needs trade (KeyScope's method default)
    rate_budget = "orders"
    pagination_class = CursorPagination

    @extend_schema(responses=AlgoOrderOutput(many=True), operation_id="algo_orders_list")
    def get(self, request: Request) -> Response:
        qs = AlgoOrder.objects.filter(user=request_user(request))
        paginator = CursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(AlgoOrderOutput(page, many=True).data)

    @extend_schema(
        request=AlgoOrderInput,
        responses={201: AlgoOrderOutput},
        operation_id="algo_orders_place",
        description="A TWAP (``duration_seconds``, optional ``slices`` / ``randomize``) or a size split "
        "(``max_child_size``) executed on Hyperliquid as child market orders, each with its own cloid. "
        "Margin for the whole size is checked up front (initial margin + taker fee at mark with "
        "slippage, less what the user's other running parents still need); each child then freezes "
        "and books its own margin, and a child refused for margin stops the parent (FAILED). "
        "Retrying with the same ``client_order_id`` answers the same parent.",
    )
    @api_errors(
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.INVALID_SIZE,
        ErrorCode.UNKNOWN_SYMBOL,
        ErrorCode.SYMBOL_SUSPENDED,
        ErrorCode.LEVERAGE_EXCEEDED,
        ErrorCode.MIN_NOTIONAL,
        ErrorCode.INSUFFICIENT_MARGIN,
        ErrorCode.USER_RESTRICTED,
        ErrorCode.KYC_LIMIT_EXCEEDED,
        ErrorCode.IDEMPOTENCY_CONFLICT,
        ErrorCode.STALE_PRICE,
        ErrorCode.SERVICE_UNAVAILABLE,  # switched off, or the platform is not ready yet
    )
    def post(self, request: Request) -> Response:
        data = AlgoOrderInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        readiness = platform_ready()
        if not readiness.ready:
            # a malformed order is the client's error whatever the platform's state: say that first
            # (the whole size checked as one market order, as algo_order_create does)
            order_validate(
                order_input(
                    asset=v["symbol"],
                    side=v["side"],
                    order_type=Order.Type.MARKET,
                    size=v["size"],
                    leverage=v.get("leverage"),
                    margin_mode=v["margin_mode"],
                    slippage_bps=v.get("slippage_bps"),
                    client_order_id=v.get("client_order_id"),
                )
            )
            raise ApplicationError(
                ErrorCode.SERVICE_UNAVAILABLE, readiness.reason or "The platform is starting."
            )
        parent = algo_order_create(
            user=request_user(request),
            algo=v["type"],
            asset=v["symbol"],
            side=v["side"],
            size=v["size"],
            duration_seconds=v.get("duration_seconds"),
            slices=v.get("slices"),
            randomize=v["randomize"],
            max_child_size=v.get("max_child_size"),
            leverage=v.get("leverage"),
            margin_mode=v["margin_mode"],
            slippage_bps=v.get("slippage_bps"),
            client_order_id=v.get("client_order_id"),
        )
        return Response(AlgoOrderOutput(parent).data, status=201)


class AlgoOrderDetailApi(APIView):
    key_scope = "read"

    @extend_schema(responses=AlgoOrderDetailOutput, operation_id="algo_orders_get")
    def get(self, request: Request, algo_id: int) -> Response:
        parent = algo_order_get(user=request_user(request), algo_id=algo_id)
        return Response(AlgoOrderDetailOutput(parent).data)


class AlgoOrderCancelApi(APIView):
    key_scope = "trade"
    rate_budget = "orders"

    @extend_schema(request=None, responses=AlgoOrderDetailOutput, operation_id="algo_orders_cancel")
    @api_errors(ErrorCode.INVALID_STATE, ErrorCode.VENUE_ERROR)
    def post(self, request: Request, algo_id: int) -> Response:
        parent = algo_order_cancel(user=request_user(request), algo_id=algo_id)
        return Response(AlgoOrderDetailOutput(parent).data)
