"""Trader API: the user's funding payments (spec 08), from the ledger — every funding transfer that
moved the user's cash or isolated margin, with its position and the funding instant it settled."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.accounts.selectors import request_user
from core.api_input import QueryParamsSerializer, query_params
from core.api_schema import api_errors
from core.errors import ErrorCode
from core.pagination import CursorPagination
from core.text import ascii_int
from trading.models import Position
from wallets.models import BalanceLog, TransferKind


class FundingOutput(serializers.Serializer):
    id = serializers.IntegerField()
    symbol = serializers.CharField()
    position_id = serializers.IntegerField()
    amount = serializers.DecimalField(
        max_digits=28, decimal_places=6, help_text="signed USDC: positive received, negative paid"
    )
    funding_time = serializers.DateTimeField(allow_null=True, help_text="the funding instant settled")
    settled_at = serializers.DateTimeField()


class FundingFilterSerializer(QueryParamsSerializer):
    symbol = serializers.CharField(required=False, allow_blank=True)
    position_id = serializers.IntegerField(required=False)
    since = serializers.DateTimeField(required=False, help_text="settled at or after (ISO 8601)")
    until = serializers.DateTimeField(required=False, help_text="settled before (ISO 8601)")


def funding_instant(batch_key: str) -> datetime | None:
    """The funding instant from the settlement's ledger key (``funding:<epoch s>:…``)."""
    parts = batch_key.split(":")
    seconds = ascii_int(parts[1]) if len(parts) > 1 and parts[0] == "funding" else None
    if seconds is not None:
        return datetime.fromtimestamp(seconds, tz=UTC)
    return None


def funding_rows(user_id: int, v: dict[str, Any]) -> QuerySet[BalanceLog]:
    qs = BalanceLog.objects.filter(user_id=user_id, type=TransferKind.FUNDING, ref_type="position")
    positions = Position.objects.filter(user_id=user_id)
    if v.get("symbol"):
        positions = positions.filter(asset=v["symbol"].upper())
    if v.get("position_id") is not None:
        positions = positions.filter(pk=v["position_id"])
    if v.get("symbol") or v.get("position_id") is not None:
        qs = qs.filter(ref_id__in=[str(pk) for pk in positions.values_list("id", flat=True)])
    if v.get("since"):
        qs = qs.filter(created_at__gte=v["since"])
    if v.get("until"):
        qs = qs.filter(created_at__lt=v["until"])
    return qs.select_related("transfer__batch")


class FundingApi(APIView):
    key_scope = "read"
    pagination_class = CursorPagination  # documents the cursor envelope (next, previous, results)

    @extend_schema(
        parameters=[FundingFilterSerializer],
        responses=FundingOutput(many=True),
        operation_id="funding_list",
        description="Your funding payments, newest first: one row per position per funding instant "
        "(``amount`` is what moved: negative paid, positive received).",
    )
    @api_errors(ErrorCode.VALIDATION_ERROR)
    def get(self, request: Request) -> Response:
        user = request_user(request)
        v = query_params(FundingFilterSerializer, request)
        paginator = CursorPagination()
        page = paginator.paginate_queryset(funding_rows(user.pk, v), request, view=self) or []
        assets = dict(
            Position.objects.filter(user=user, pk__in={int(r.ref_id) for r in page}).values_list(
                "id", "asset"
            )
        )
        out = [
            {
                "id": r.pk,
                "symbol": assets.get(int(r.ref_id), ""),
                "position_id": int(r.ref_id),
                "amount": Decimal(r.amount),
                "funding_time": funding_instant(r.transfer.batch.key),
                "settled_at": r.created_at,
            }
            for r in page
        ]
        return paginator.get_paginated_response(FundingOutput(out, many=True).data)
