"""Trader API: take-profit / stop-loss triggers on the mark, attached to a position (either venue)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.accounts.selectors import request_user
from core.api_input import DecimalStringField, InputSerializer, QueryParamsSerializer, query_params
from core.api_output import BuiltOnce
from core.api_schema import api_errors
from core.errors import ErrorCode
from core.money import PRICE_INPUT, SIZE_INPUT
from core.pagination import CursorPagination
from trading.models import TpslOrder
from trading.orders.triggers import tpsl_cancel, tpsl_create


class TpslOutput(BuiltOnce, serializers.ModelSerializer):
    symbol = serializers.CharField(source="asset")
    type = serializers.CharField(source="kind")
    order_id = serializers.IntegerField(allow_null=True)
    position_id = serializers.IntegerField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = TpslOrder
        fields = [
            "id",
            "position_id",
            "symbol",
            "type",
            "side",
            "trigger_price",
            "trigger_above",
            "size",
            "limit_price",
            "status",
            "trigger_mark",
            "order_id",
            "error",
            "created_at",
            "triggered_at",
            "updated_at",
        ]

    def get_error(self, row: TpslOrder) -> dict[str, str] | None:
        return {"code": row.error_code, "message": row.error_message} if row.error_code else None


class PositionTpslApi(APIView):
    key_scope = "trade"
    rate_budget = "orders"

    class TpslInputSerializer(InputSerializer):
        type = serializers.ChoiceField(choices=TpslOrder.Kind.choices)
        trigger_price = DecimalStringField(shape=PRICE_INPUT, code=ErrorCode.INVALID_PRICE)
        size = DecimalStringField(
            shape=SIZE_INPUT,
            code=ErrorCode.INVALID_SIZE,
            required=False,
            allow_null=True,
            help_text="omit to close the whole position (as it is when the trigger fires)",
        )
        limit_price = DecimalStringField(
            shape=PRICE_INPUT,
            code=ErrorCode.INVALID_PRICE,
            required=False,
            allow_null=True,
            help_text="omit for a market close",
        )

    @extend_schema(
        request=TpslInputSerializer,
        responses={201: TpslOutput},
        operation_id="positions_tpsl",
        description="Attach a take-profit or stop-loss to an open position. When the MARK crosses "
        "``trigger_price`` (a long's take-profit / a short's stop-loss: mark ≥ trigger; the others: mark ≤ "
        "trigger) a reduce-only order closing ``size`` (default: the whole position) is placed once, on "
        "the position's venue. A trigger the mark has already crossed is INVALID_TRIGGER. Triggers of a "
        "position that is closed are cancelled. The same trigger asked for again while it is live answers "
        "the live one (safe to retry).",
    )
    @api_errors(
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.INVALID_PRICE,
        ErrorCode.INVALID_SIZE,
        ErrorCode.INVALID_TRIGGER,
        ErrorCode.STALE_PRICE,
    )
    def post(self, request: Request, position_id: int) -> Response:
        data = self.TpslInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        row = tpsl_create(
            user=request_user(request),
            position_id=position_id,
            kind=v["type"],
            trigger_price=v["trigger_price"],
            size=v.get("size"),
            limit_price=v.get("limit_price"),
        )
        return Response(TpslOutput(row).data, status=201)


class TpslListApi(APIView):
    key_scope = "read"
    pagination_class = CursorPagination

    class TpslFilterSerializer(QueryParamsSerializer):
        symbol = serializers.CharField(required=False, allow_blank=True)
        status = serializers.CharField(required=False, allow_blank=True, help_text="comma-separated")
        position_id = serializers.IntegerField(required=False)

    @extend_schema(
        parameters=[TpslFilterSerializer], responses=TpslOutput(many=True), operation_id="tpsl_list"
    )
    @api_errors(ErrorCode.VALIDATION_ERROR)
    def get(self, request: Request) -> Response:
        v = query_params(self.TpslFilterSerializer, request)
        qs = TpslOrder.objects.filter(user=request_user(request))
        if v.get("symbol"):
            qs = qs.filter(asset=v["symbol"].upper())
        if v.get("status"):
            qs = qs.filter(status__in=[s.strip().upper() for s in v["status"].split(",")])
        if v.get("position_id") is not None:
            qs = qs.filter(position_id=v["position_id"])
        paginator = CursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(TpslOutput(page, many=True).data)


class TpslCancelApi(APIView):
    key_scope = "trade"

    @extend_schema(request=None, responses=TpslOutput, operation_id="tpsl_cancel")
    @api_errors(ErrorCode.INVALID_STATE)
    def post(self, request: Request, tpsl_id: int) -> Response:
        return Response(TpslOutput(tpsl_cancel(user=request_user(request), tpsl_id=tpsl_id)).data)
