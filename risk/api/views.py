"""Ops API for the hedge (staff session + second factor): overview, manual hedge orders, hedge mode."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_input import DecimalStringField, InputSerializer
from core.api_schema import api_errors
from core.errors import ErrorCode
from core.money import DecimalShape
from core.staff_api import StaffAPIView
from risk.hedge_config import hedge_mode_set
from risk.hedge_models import HedgeConfig, HedgeInstruction
from risk.hedge_orders import hedge_manual_order
from risk.selectors import hedge_overview
from trading.models import Side


class InstructionSerializer(serializers.ModelSerializer):
    class Meta:
        model = HedgeInstruction
        fields = [
            "instruction_id",
            "asset",
            "kind",
            "mode",
            "status",
            "notional",
            "size",
            "is_buy",
            "limit_price",
            "leverage",
            "attempts",
            "filled_size",
            "avg_price",
            "filled_notional",
            "slippage",
            "fee",
            "error",
            "reason",
            "created_at",
            "completed_at",
        ]


class HedgeOverviewApi(StaffAPIView):
    staff_permission = "view_risk"

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="ops_hedge_overview")
    def get(self, request: Request) -> Response:
        return Response(hedge_overview())


class HedgeManualOrderApi(StaffAPIView):
    staff_permission = "manage_hedge"

    class HedgeManualOrderInputSerializer(InputSerializer):
        asset = serializers.CharField(max_length=20)
        side = serializers.ChoiceField(choices=Side.choices)
        notional = DecimalStringField(shape=DecimalShape(14, 6), min_value=Decimal(10))
        reason = serializers.CharField(max_length=300)

    @extend_schema(
        request=HedgeManualOrderInputSerializer,
        responses={201: InstructionSerializer},
        operation_id="ops_hedge_manual_order",
    )
    @api_errors(
        (ErrorCode.VALIDATION_ERROR, 409),  # the hedge mode is OFF
        ErrorCode.STALE_PRICE,
        ErrorCode.NO_ROUTE,
    )
    def post(self, request: Request) -> Response:
        data = self.HedgeManualOrderInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        body = dict(data.validated_data)
        body["asset"] = body["asset"].upper()
        inst = hedge_manual_order(**body, **self.get_audit_context())
        return Response(InstructionSerializer(inst).data, status=201)


class HedgeModeApi(StaffAPIView):
    staff_permission = "manage_hedge"

    class HedgeModeInputSerializer(InputSerializer):
        mode = serializers.ChoiceField(choices=HedgeConfig.Mode.values)
        reason = serializers.CharField(max_length=300)

    class HedgeModeOutputSerializer(serializers.Serializer):
        hedge_mode = serializers.ChoiceField(choices=HedgeConfig.Mode.values)

    @extend_schema(
        request=HedgeModeInputSerializer, responses=HedgeModeOutputSerializer, operation_id="ops_hedge_mode"
    )
    def post(self, request: Request) -> Response:
        data = self.HedgeModeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = hedge_mode_set(**data.validated_data, **self.get_audit_context())
        return Response({"hedge_mode": row.hedge_mode})
