"""Ops API for routing: modes, thresholds, the decision log and the mode-switch log."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_input import InputSerializer, QueryParamsSerializer, query_params
from core.api_schema import api_errors
from core.errors import ErrorCode
from core.pagination import CursorPagination
from core.staff_api import StaffAPIView
from routing.decision import Mode
from routing.models import RoutingConfig, RoutingDecisionLog, RoutingModeLog, RoutingState
from routing.selectors import asset_routing, resolved_config
from routing.services import routing_config_update, routing_mode_switch


class ModeLogSerializer(serializers.ModelSerializer):
    operator = serializers.EmailField(source="operator.email", allow_null=True, default=None)

    class Meta:
        model = RoutingModeLog
        fields = [
            "id",
            "change_id",
            "asset",
            "from_mode",
            "to_mode",
            "trigger",
            "operator",
            "net_exposure_at_switch",
            "reason",
            "created_at",
        ]


class DecisionLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = RoutingDecisionLog
        fields = [
            "id",
            "order_id",
            "user_id",
            "asset",
            "notional",
            "route",
            "mode",
            "threshold",
            "reason",
            "latency_us",
            "created_at",
        ]


class RoutingOverviewApi(StaffAPIView):
    staff_permission = "view_risk"

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="ops_routing_overview")
    def get(self, request: Request) -> Response:
        assets = sorted(
            set(RoutingConfig.objects.exclude(asset="*").values_list("asset", flat=True))
            | set(RoutingState.objects.exclude(asset="*").values_list("asset", flat=True))
        )
        out = []
        for asset in assets:
            live = asset_routing(asset)
            out.append(
                {
                    "asset": asset,
                    "mode": live.mode.value,
                    "internalization_enabled": live.internalization_enabled,
                    "force_hl_reasons": list(live.force_hl_reasons),
                    "hl_halted": live.hl_halted,
                    "config": resolved_config(asset),
                }
            )
        return Response({"assets": out, "global": resolved_config("*")})


class ModeSwitchApi(StaffAPIView):
    staff_permission = "manage_routing"

    class ModeSwitchInputSerializer(InputSerializer):
        mode = serializers.ChoiceField(choices=[m.value for m in Mode])
        reason = serializers.CharField(max_length=500)
        change_id = serializers.CharField(max_length=80)

    class ModeSwitchOutputSerializer(serializers.Serializer):
        changed = serializers.BooleanField()
        message = serializers.CharField()
        log = ModeLogSerializer(allow_null=True)

    @extend_schema(
        request=ModeSwitchInputSerializer,
        responses=ModeSwitchOutputSerializer,
        operation_id="ops_routing_mode_switch",
    )
    @api_errors(ErrorCode.IDEMPOTENCY_CONFLICT)  # the change_id was used for another switch
    def post(self, request: Request, asset: str) -> Response:
        data = self.ModeSwitchInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = routing_mode_switch(asset=asset.upper(), **data.validated_data, **self.get_audit_context())
        return Response(
            {
                "changed": result.changed,
                "message": result.message,
                "log": ModeLogSerializer(result.log).data if result.log else None,
            }
        )


class ConfigUpdateApi(StaffAPIView):
    staff_permission = "manage_routing"

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
        operation_id="ops_routing_config_update",
        description="The routing settings to change, and ``reason``.",
    )
    def patch(self, request: Request, asset: str) -> Response:
        body: dict[str, Any] = dict(request.data)
        reason = str(body.pop("reason", ""))
        routing_config_update(
            asset=asset.upper() if asset != "*" else "*",
            changes=body,
            reason=reason,
            **self.get_audit_context(),
        )
        return Response({"asset": asset, "config": resolved_config(asset.upper() if asset != "*" else "*")})


class DecisionLogApi(StaffAPIView):
    staff_permission = "view_risk"

    class DecisionFilterSerializer(QueryParamsSerializer):
        asset = serializers.CharField(required=False, allow_blank=True)
        user_id = serializers.IntegerField(required=False)
        reason = serializers.CharField(required=False, allow_blank=True)
        route = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(
        parameters=[DecisionFilterSerializer],
        responses=DecisionLogSerializer(many=True),
        operation_id="ops_routing_decisions",
    )
    @api_errors(ErrorCode.VALIDATION_ERROR)
    def get(self, request: Request) -> Response:
        qs = RoutingDecisionLog.objects.all()
        for field, value in query_params(self.DecisionFilterSerializer, request).items():
            if value not in (None, ""):
                qs = qs.filter(**{field: value})
        paginator = CursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(DecisionLogSerializer(page, many=True).data)


class ModeLogApi(StaffAPIView):
    staff_permission = "view_risk"

    class ModeLogFilterSerializer(QueryParamsSerializer):
        asset = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(
        parameters=[ModeLogFilterSerializer],
        responses=ModeLogSerializer(many=True),
        operation_id="ops_routing_mode_logs",
    )
    @api_errors(ErrorCode.VALIDATION_ERROR)
    def get(self, request: Request) -> Response:
        qs = RoutingModeLog.objects.select_related("operator")
        asset = query_params(self.ModeLogFilterSerializer, request).get("asset")
        if asset:
            qs = qs.filter(asset=asset)
        paginator = CursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ModeLogSerializer(page, many=True).data)
