"""Trader API: orders, positions, fills and the margin account. Thin: parse → one service → serialise.

The receipt is identical whichever venue filled the order: the route is an operator's concern and is
shown on the console, not to the trader."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.accounts.models import User
from core.accounts.selectors import request_user
from core.api_input import DecimalStringField, InputSerializer, QueryParamsSerializer, query_params
from core.api_output import BuiltOnce
from core.api_schema import api_errors
from core.errors import ApplicationError, ErrorCode
from core.money import MONEY_INPUT, PRICE_INPUT, SIZE_INPUT
from core.pagination import CursorPagination
from core.platform.state import platform_ready
from trading.account import account_view
from trading.models import Fill, MarginMode, Order, Side
from trading.orders.cancel import order_cancel
from trading.orders.input import OrderInput, order_input, order_validate
from trading.orders.place import order_place
from trading.positions import leverage_set, position_close, position_margin_adjust


class OrderOutput(BuiltOnce, serializers.ModelSerializer):
    symbol = serializers.CharField(source="asset")
    type = serializers.CharField(source="order_type")
    time_in_force = serializers.CharField(source="tif")
    error = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "client_order_id",
            "symbol",
            "side",
            "type",
            "size",
            "limit_price",
            "leverage",
            "margin_mode",
            "reduce_only",
            "time_in_force",
            "slippage_bps",
            "status",
            "filled_size",
            "avg_fill_price",
            "fee_total",
            "position_id",
            "error",
            "created_at",
            "updated_at",
            "expires_at",
        ]

    def get_error(self, order: Order) -> dict[str, str] | None:
        return {"code": order.error_code, "message": order.error_message} if order.error_code else None


class OrderInputSerializer(InputSerializer):
    symbol = serializers.CharField(max_length=20)
    side = serializers.ChoiceField(choices=Side.choices)
    type = serializers.ChoiceField(choices=["MARKET", "LIMIT"])
    size = DecimalStringField(
        shape=SIZE_INPUT,
        code=ErrorCode.INVALID_SIZE,
        help_text="decimal string, a multiple of the market's size step",
    )
    limit_price = DecimalStringField(
        shape=PRICE_INPUT, code=ErrorCode.INVALID_PRICE, required=False, allow_null=True
    )
    leverage = serializers.IntegerField(required=False, min_value=1, max_value=200)
    margin_mode = serializers.ChoiceField(choices=MarginMode.choices, default="CROSS")
    reduce_only = serializers.BooleanField(default=False)
    time_in_force = serializers.ChoiceField(choices=["GTC", "IOC", "ALO"], default="GTC")
    slippage_bps = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    client_order_id = serializers.CharField(max_length=64, required=False)
    position_id = serializers.IntegerField(required=False)


# An order placement can be refused with these (besides the generic errors, see api_schema), whatever
# its venue: the order service's checks, the platform-readiness gate and, for a closing order, the same.
ORDER_REJECTIONS = (
    ErrorCode.VALIDATION_ERROR,
    ErrorCode.INVALID_SIZE,
    ErrorCode.INVALID_PRICE,
    ErrorCode.UNKNOWN_SYMBOL,
    ErrorCode.SYMBOL_SUSPENDED,
    ErrorCode.REDUCE_ONLY,
    ErrorCode.SLIPPAGE_EXCEEDED,
    ErrorCode.INSUFFICIENT_MARGIN,
    ErrorCode.IDEMPOTENCY_CONFLICT,
    ErrorCode.VENUE_ERROR,
    ErrorCode.STALE_PRICE,
    ErrorCode.NO_ROUTE,
)


class OrderFilterSerializer(QueryParamsSerializer):
    symbol = serializers.CharField(required=False, allow_blank=True)
    status = serializers.CharField(required=False, allow_blank=True, help_text="comma-separated")
    client_order_id = serializers.CharField(required=False, allow_blank=True)
    since = serializers.DateTimeField(required=False, help_text="created at or after (ISO 8601)")
    until = serializers.DateTimeField(required=False, help_text="created before (ISO 8601)")


def _filter_orders(qs: QuerySet[Order], request: Request) -> QuerySet[Order]:
    v = query_params(OrderFilterSerializer, request)
    if v.get("symbol"):
        qs = qs.filter(asset=v["symbol"].upper())
    if v.get("status"):
        qs = qs.filter(status__in=[s.strip().upper() for s in v["status"].split(",")])
    if v.get("client_order_id"):
        qs = qs.filter(client_order_id=v["client_order_id"])
    if v.get("since"):
        qs = qs.filter(created_at__gte=v["since"])
    if v.get("until"):
        qs = qs.filter(created_at__lt=v["until"])
    return qs


class OrdersApi(APIView):
    key_scope = None  # GET needs read, POST needs trade (KeyScope's method default)
    rate_budget = "orders"  # placing spends the order budget, listing the reads (core.rate_limit)
    pagination_class = CursorPagination  # documents GET's cursor envelope (next, previous, results)

    @extend_schema(
        parameters=[OrderFilterSerializer], responses=OrderOutput(many=True), operation_id="orders_list"
    )
    @api_errors(ErrorCode.VALIDATION_ERROR)
    def get(self, request: Request) -> Response:
        qs = _filter_orders(Order.objects.filter(user=request_user(request)), request)
        paginator = CursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(OrderOutput(page, many=True).data)

    @extend_schema(
        request=OrderInputSerializer,
        responses={201: OrderOutput},
        operation_id="orders_place",
        description="A rejection after the order was recorded carries ``details.order_id``; retrying "
        "with the same ``client_order_id`` answers the same order or the same error. While the platform "
        "is starting (restart recovery) only ``reduce_only`` orders are taken (503 "
        "SERVICE_UNAVAILABLE); in reduce-only mode (``api_mode``) an opening order is 403 REDUCE_ONLY.",
    )
    @api_errors(
        *ORDER_REJECTIONS,
        ErrorCode.MIN_NOTIONAL,
        ErrorCode.LEVERAGE_EXCEEDED,
        ErrorCode.USER_RESTRICTED,
        ErrorCode.KYC_LIMIT_EXCEEDED,
        (ErrorCode.REDUCE_ONLY, 403),  # ApiModeMiddleware in api_mode REDUCE_ONLY
        ErrorCode.RATE_LIMITED,  # too many resting orders
        ErrorCode.MARKET_HALTED,
        ErrorCode.SERVICE_UNAVAILABLE,  # the platform is not ready yet
    )
    def post(self, request: Request) -> Response:
        data = OrderInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = order_place_validated(request_user(request), data.validated_data)
        return Response(OrderOutput(order).data, status=201)


def order_input_validated(v: Mapping[str, Any]) -> OrderInput:
    """The order service's input from a validated body (``OrderInputSerializer``'s names and
    defaults): one mapping for single orders, the order lane and batch entries."""
    return order_input(
        asset=v["symbol"],
        side=v["side"],
        order_type=v["type"],
        size=v["size"],
        limit_price=v.get("limit_price"),
        leverage=v.get("leverage"),
        margin_mode=v["margin_mode"],
        reduce_only=v["reduce_only"],
        tif=v["time_in_force"],
        slippage_bps=v.get("slippage_bps"),
        client_order_id=v.get("client_order_id"),
        position_id=v.get("position_id"),
    )


def order_place_validated(user: User, v: Mapping[str, Any]) -> Order:
    """Place an order from a validated body: the readiness gate, then the order service. Shared by
    ``OrdersApi.post`` and the order lane (``xbit_admin.order_lane``), so both answer the same."""
    inp = order_input_validated(v)
    readiness = platform_ready()
    if not readiness.ready and not inp.reduce_only:
        # restart recovery: new exposure waits until HL is resynced and the books reconcile — but
        # a malformed order is the client's error whatever the platform's state: say that first
        order_validate(inp)
        raise ApplicationError(ErrorCode.SERVICE_UNAVAILABLE, readiness.reason or "The platform is starting.")
    return order_place(user=user, inp=inp)


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderOutput, operation_id="orders_get")
    def get(self, request: Request, order_id: int) -> Response:
        order = Order.objects.filter(user=request_user(request), pk=order_id).first()
        if order is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such order.")
        return Response(OrderOutput(order).data)


class OrderCancelApi(APIView):
    key_scope = "trade"
    rate_budget = "orders"

    @extend_schema(request=None, responses=OrderOutput, operation_id="orders_cancel")
    @api_errors(ErrorCode.INVALID_STATE, ErrorCode.VENUE_ERROR)
    def post(self, request: Request, order_id: int) -> Response:
        return Response(OrderOutput(order_cancel(user=request_user(request), order_id=order_id)).data)


class PositionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    symbol = serializers.CharField()
    direction = serializers.CharField()
    size = serializers.DecimalField(max_digits=28, decimal_places=8)
    entry_price = serializers.DecimalField(max_digits=28, decimal_places=8)
    mark_price = serializers.DecimalField(max_digits=28, decimal_places=8)
    leverage = serializers.IntegerField()
    margin_mode = serializers.CharField()
    isolated_margin = serializers.DecimalField(max_digits=28, decimal_places=6)
    unrealized_pnl = serializers.DecimalField(max_digits=28, decimal_places=6)
    realized_pnl = serializers.DecimalField(max_digits=28, decimal_places=6)
    notional = serializers.DecimalField(max_digits=28, decimal_places=6)
    maintenance_margin = serializers.DecimalField(max_digits=28, decimal_places=6)
    liquidation_price = serializers.DecimalField(max_digits=28, decimal_places=8, allow_null=True)
    cum_funding_all_time = serializers.DecimalField(max_digits=28, decimal_places=6)
    cum_funding_since_open = serializers.DecimalField(max_digits=28, decimal_places=6)
    opened_at = serializers.DateTimeField()


class AccountOutput(serializers.Serializer):
    equity = serializers.DecimalField(max_digits=28, decimal_places=6)
    cash = serializers.DecimalField(max_digits=28, decimal_places=6)
    order_holds = serializers.DecimalField(max_digits=28, decimal_places=6)
    isolated_margin = serializers.DecimalField(max_digits=28, decimal_places=6)
    cross_margin_used = serializers.DecimalField(max_digits=28, decimal_places=6)
    cross_maintenance_margin = serializers.DecimalField(max_digits=28, decimal_places=6)
    available_to_trade = serializers.DecimalField(max_digits=28, decimal_places=6)
    withdrawable = serializers.DecimalField(max_digits=28, decimal_places=6)
    unrealized_pnl = serializers.DecimalField(max_digits=28, decimal_places=6)
    positions = PositionOutput(many=True)


class AccountApi(APIView):
    key_scope = "read"

    @extend_schema(responses=AccountOutput, operation_id="account")
    def get(self, request: Request) -> Response:
        return Response(AccountOutput(account_view(request_user(request).pk)).data)


class PositionsApi(APIView):
    key_scope = "read"

    class PositionFilterSerializer(QueryParamsSerializer):
        symbol = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(
        parameters=[PositionFilterSerializer],
        responses=PositionOutput(many=True),
        operation_id="positions_list",
    )
    @api_errors(ErrorCode.VALIDATION_ERROR)
    def get(self, request: Request) -> Response:
        symbol = query_params(self.PositionFilterSerializer, request).get("symbol", "").upper()
        positions = account_view(request_user(request).pk)["positions"]
        if symbol:
            positions = [p for p in positions if p["symbol"] == symbol]
        return Response(PositionOutput(positions, many=True).data)


class PositionCloseApi(APIView):
    key_scope = "trade"
    rate_budget = "orders"

    class PositionCloseInputSerializer(InputSerializer):
        size = DecimalStringField(
            shape=SIZE_INPUT,
            code=ErrorCode.INVALID_SIZE,
            required=False,
            allow_null=True,
            help_text="omit to close the whole position",
        )
        client_order_id = serializers.CharField(max_length=64, required=False)

    @extend_schema(
        request=PositionCloseInputSerializer, responses={201: OrderOutput}, operation_id="positions_close"
    )
    @api_errors(*ORDER_REJECTIONS)
    def post(self, request: Request, position_id: int) -> Response:
        data = self.PositionCloseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = position_close(
            user=request_user(request),
            position_id=position_id,
            size=data.validated_data.get("size"),
            client_order_id=data.validated_data.get("client_order_id"),
        )
        return Response(OrderOutput(order).data, status=201)


class PositionMarginApi(APIView):
    key_scope = "trade"

    class PositionMarginInputSerializer(InputSerializer):
        amount = DecimalStringField(
            shape=MONEY_INPUT,
            code=ErrorCode.INVALID_AMOUNT,
            signed=True,
            help_text="positive adds margin, negative removes it",
        )
        idempotency_key = serializers.CharField(max_length=64)

    @extend_schema(
        request=PositionMarginInputSerializer, responses=PositionOutput, operation_id="positions_margin"
    )
    @api_errors(
        ErrorCode.INVALID_AMOUNT,
        ErrorCode.INSUFFICIENT_MARGIN,
        ErrorCode.INSUFFICIENT_BALANCE,
        ErrorCode.INVALID_STATE,  # not an isolated position
        ErrorCode.IDEMPOTENCY_CONFLICT,
        ErrorCode.STALE_PRICE,
    )
    def post(self, request: Request, position_id: int) -> Response:
        data = self.PositionMarginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request_user(request)
        position_margin_adjust(user=user, position_id=position_id, **data.validated_data)
        view = next((p for p in account_view(user.pk)["positions"] if p["id"] == position_id), None)
        if view is None:  # closed (liquidated) between the adjustment and this read
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such open position.")
        return Response(PositionOutput(view).data)


class LeverageApi(APIView):
    key_scope = "trade"

    class LeverageInputSerializer(InputSerializer):
        symbol = serializers.CharField(max_length=20)
        margin_mode = serializers.ChoiceField(choices=MarginMode.choices)
        leverage = serializers.IntegerField(min_value=1, max_value=200)

    @extend_schema(
        request=LeverageInputSerializer, responses=LeverageInputSerializer, operation_id="leverage_set"
    )
    @api_errors(
        ErrorCode.UNKNOWN_SYMBOL,
        ErrorCode.LEVERAGE_EXCEEDED,
        ErrorCode.INSUFFICIENT_MARGIN,
        ErrorCode.INVALID_STATE,  # an open isolated position keeps its leverage
    )
    def post(self, request: Request) -> Response:
        data = self.LeverageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        setting = leverage_set(
            user=request_user(request),
            asset=v["symbol"],
            margin_mode=v["margin_mode"],
            leverage=v["leverage"],
        )
        return Response(
            {"symbol": setting.asset, "margin_mode": setting.margin_mode, "leverage": setting.leverage}
        )


class FillOutput(BuiltOnce, serializers.ModelSerializer):
    symbol = serializers.CharField(source="asset")

    class Meta:
        model = Fill
        fields = [
            "id",
            "order_id",
            "position_id",
            "symbol",
            "side",
            "size",
            "price",
            "liquidity",
            "fee",
            "realized_pnl",
            "closed_size",
            "is_liquidation",
            "created_at",
        ]


class FillsApi(APIView):
    key_scope = "read"
    pagination_class = CursorPagination  # documents the cursor envelope (next, previous, results)

    class FillFilterSerializer(QueryParamsSerializer):
        symbol = serializers.CharField(required=False, allow_blank=True)
        order_id = serializers.IntegerField(required=False)

    @extend_schema(
        parameters=[FillFilterSerializer], responses=FillOutput(many=True), operation_id="fills_list"
    )
    @api_errors(ErrorCode.VALIDATION_ERROR)
    def get(self, request: Request) -> Response:
        v = query_params(self.FillFilterSerializer, request)
        qs = Fill.objects.filter(user=request_user(request))
        if v.get("symbol"):
            qs = qs.filter(asset=v["symbol"].upper())
        if v.get("order_id") is not None:
            qs = qs.filter(order_id=v["order_id"])
        paginator = CursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(FillOutput(page, many=True).data)
