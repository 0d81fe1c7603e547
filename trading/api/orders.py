"""Trader API: orders, positions, fills and the margin account. Thin: parse → one service → serialise.

The receipt is identical whichever venue filled the order: the route is an operator's concern and is
shown on the console, not to the trader."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading import services
from trading.account import account_view
from trading.models import Fill, Order
from xbit_admin.accounts.selectors import request_user
from xbit_admin.errors import ApplicationError, ErrorCode
from xbit_admin.pagination import CursorPagination
from xbit_admin.platform.state import platform_ready


class OrderOutput(serializers.ModelSerializer):
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


class OrderInputSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=20)
    side = serializers.ChoiceField(choices=["BUY", "SELL"])
    type = serializers.ChoiceField(choices=["MARKET", "LIMIT"])
    size = serializers.CharField(
        max_length=40, help_text="decimal string, a multiple of the market's size step"
    )
    limit_price = serializers.CharField(max_length=40, required=False, allow_null=True)
    leverage = serializers.IntegerField(required=False, min_value=1, max_value=200)
    margin_mode = serializers.ChoiceField(choices=["ISOLATED", "CROSS"], default="CROSS")
    reduce_only = serializers.BooleanField(default=False)
    time_in_force = serializers.ChoiceField(choices=["GTC", "IOC", "ALO"], default="GTC")
    slippage_bps = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    client_order_id = serializers.CharField(max_length=64, required=False)
    position_id = serializers.IntegerField(required=False)


def _filter_orders(qs: QuerySet[Order], params: Any) -> QuerySet[Order]:
    if params.get("symbol"):
        qs = qs.filter(asset=params["symbol"].upper())
    if params.get("status"):
        statuses = [s.strip().upper() for s in params["status"].split(",")]
        qs = qs.filter(status__in=statuses)
    if params.get("client_order_id"):
        qs = qs.filter(client_order_id=params["client_order_id"])
    for name, lookup in (("since", "created_at__gte"), ("until", "created_at__lt")):
        if params.get(name):
            moment = parse_datetime(params[name])
            if moment is None:
                raise ApplicationError(
                    ErrorCode.VALIDATION_ERROR, f"{name} must be an ISO 8601 time.", {"field": name}
                )
            qs = qs.filter(**{lookup: moment})
    return qs


class OrdersApi(APIView):
    key_scope = None  # GET needs read, POST needs trade (KeyScope's method default)
    pagination_class = CursorPagination  # documents GET's cursor envelope (next, previous, results)

    @extend_schema(
        parameters=[
            OpenApiParameter("symbol", str),
            OpenApiParameter("status", str, description="comma-separated"),
            OpenApiParameter("client_order_id", str),
            OpenApiParameter("since", str),
            OpenApiParameter("until", str),
        ],
        responses=OrderOutput(many=True),
        operation_id="orders_list",
    )
    def get(self, request: Request) -> Response:
        qs = _filter_orders(Order.objects.filter(user=request_user(request)), request.query_params)
        paginator = CursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(OrderOutput(page, many=True).data)

    @extend_schema(request=OrderInputSerializer, responses={201: OrderOutput}, operation_id="orders_place")
    def post(self, request: Request) -> Response:
        data = OrderInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        readiness = platform_ready()
        if not readiness.ready and not v["reduce_only"]:
            # restart recovery: new exposure waits until HL is resynced and the books reconcile
            raise ApplicationError(
                ErrorCode.SERVICE_UNAVAILABLE, readiness.reason or "The platform is starting."
            )
        inp = services.order_input(
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
        order = services.order_place(user=request_user(request), inp=inp)
        return Response(OrderOutput(order).data, status=201)


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderOutput, operation_id="orders_get")
    def get(self, request: Request, order_id: int) -> Response:
        order = Order.objects.filter(user=request_user(request), pk=order_id).first()
        if order is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such order.")
        return Response(OrderOutput(order).data)


class OrderCancelApi(APIView):
    key_scope = "trade"

    @extend_schema(request=None, responses=OrderOutput, operation_id="orders_cancel")
    def post(self, request: Request, order_id: int) -> Response:
        return Response(
            OrderOutput(services.order_cancel(user=request_user(request), order_id=order_id)).data
        )


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

    @extend_schema(responses=PositionOutput(many=True), operation_id="positions_list")
    def get(self, request: Request) -> Response:
        view = account_view(request_user(request).pk)
        positions = view["positions"]
        if request.query_params.get("symbol"):
            positions = [p for p in positions if p["symbol"] == request.query_params["symbol"].upper()]
        return Response(PositionOutput(positions, many=True).data)


class PositionCloseApi(APIView):
    key_scope = "trade"

    class InputSerializer(serializers.Serializer):
        size = serializers.CharField(
            required=False, allow_null=True, help_text="omit to close the whole position"
        )
        client_order_id = serializers.CharField(max_length=64, required=False)

    @extend_schema(request=InputSerializer, responses={201: OrderOutput}, operation_id="positions_close")
    def post(self, request: Request, position_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = services.position_close(
            user=request_user(request),
            position_id=position_id,
            size=data.validated_data.get("size"),
            client_order_id=data.validated_data.get("client_order_id"),
        )
        return Response(OrderOutput(order).data, status=201)


class PositionMarginApi(APIView):
    key_scope = "trade"

    class InputSerializer(serializers.Serializer):
        amount = serializers.CharField(help_text="positive adds margin, negative removes it")
        idempotency_key = serializers.CharField(max_length=64)

    @extend_schema(request=InputSerializer, responses=PositionOutput, operation_id="positions_margin")
    def post(self, request: Request, position_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request_user(request)
        services.position_margin_adjust(user=user, position_id=position_id, **data.validated_data)
        view = next(p for p in account_view(user.pk)["positions"] if p["id"] == position_id)
        return Response(PositionOutput(view).data)


class LeverageApi(APIView):
    key_scope = "trade"

    class InputSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=20)
        margin_mode = serializers.ChoiceField(choices=["ISOLATED", "CROSS"])
        leverage = serializers.IntegerField(min_value=1, max_value=200)

    @extend_schema(request=InputSerializer, responses=InputSerializer, operation_id="leverage_set")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        setting = services.leverage_set(
            user=request_user(request),
            asset=v["symbol"],
            margin_mode=v["margin_mode"],
            leverage=v["leverage"],
        )
        return Response(
            {"symbol": setting.asset, "margin_mode": setting.margin_mode, "leverage": setting.leverage}
        )


class FillOutput(serializers.ModelSerializer):
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

    @extend_schema(
        parameters=[OpenApiParameter("symbol", str), OpenApiParameter("order_id", int)],
        responses=FillOutput(many=True),
        operation_id="fills_list",
    )
    def get(self, request: Request) -> Response:
        qs = Fill.objects.filter(user=request_user(request))
        if request.query_params.get("symbol"):
            qs = qs.filter(asset=request.query_params["symbol"].upper())
        if request.query_params.get("order_id"):
            order_id = request.query_params["order_id"]
            if not order_id.isdigit():
                raise ApplicationError(
                    ErrorCode.VALIDATION_ERROR, "order_id must be an integer.", {"field": "order_id"}
                )
            qs = qs.filter(order_id=int(order_id))
        paginator = CursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(FillOutput(page, many=True).data)
