"""Trader API: listed markets with their HL parameters and the live quote. Thin: read → serialise."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_input import QueryParamsSerializer, query_params
from core.api_schema import api_errors
from core.errors import ApplicationError, ErrorCode
from trading.marketdata import Quote, get_quote, get_quotes
from trading.models import Market
from trading.selectors import market_get, markets_list


def _decimal() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=None, decimal_places=None, allow_null=True)


class QuoteOutput(serializers.Serializer):
    mark = _decimal()
    oracle = _decimal()
    mid = _decimal()
    bid = _decimal()
    ask = _decimal()
    bid_size = _decimal()
    ask_size = _decimal()
    funding_rate = _decimal()
    premium = _decimal()
    open_interest = _decimal()
    mark_age_ms = serializers.IntegerField(allow_null=True)
    book_age_ms = serializers.IntegerField(allow_null=True)
    mid_age_ms = serializers.IntegerField(allow_null=True)


class MarketOutput(serializers.Serializer):
    symbol = serializers.CharField(source="asset")
    sz_decimals = serializers.IntegerField()
    max_leverage = serializers.IntegerField()
    only_isolated = serializers.BooleanField()
    is_delisted = serializers.BooleanField()
    trading_state = serializers.CharField()
    state_reason = serializers.CharField()
    quote = QuoteOutput(allow_null=True)


def _age_ms(at: float | None, now: float) -> int | None:
    return None if at is None else max(0, int((now - at) * 1000))


def _quote_view(quote: Quote | None, now: float) -> dict[str, Any] | None:
    if quote is None:
        return None
    fields: dict[str, Decimal | int | None] = {
        name: getattr(quote, name)
        for name in (
            "mark",
            "oracle",
            "mid",
            "bid",
            "ask",
            "bid_size",
            "ask_size",
            "funding_rate",
            "premium",
            "open_interest",
        )
    }
    fields["mark_age_ms"] = _age_ms(quote.mark_at, now)
    fields["book_age_ms"] = _age_ms(quote.book_at, now)
    fields["mid_age_ms"] = _age_ms(quote.mid_at, now)
    return fields


def _market_view(market: Market, quote: Quote | None, now: float) -> dict[str, Any]:
    return {
        "asset": market.asset,
        "sz_decimals": market.sz_decimals,
        "max_leverage": market.max_leverage,
        "only_isolated": market.only_isolated,
        "is_delisted": market.is_delisted,
        "trading_state": market.trading_state,
        "state_reason": market.state_reason,
        "quote": _quote_view(quote, now),
    }


class MarketsApi(APIView):
    key_scope = "read"

    class MarketFilterSerializer(QueryParamsSerializer):
        include_delisted = serializers.BooleanField(default=False, help_text="also list delisted markets")

    @extend_schema(
        responses=MarketOutput(many=True), operation_id="markets_list", parameters=[MarketFilterSerializer]
    )
    @api_errors(ErrorCode.VALIDATION_ERROR)
    def get(self, request: Request) -> Response:
        params = query_params(self.MarketFilterSerializer, request)
        markets = markets_list(include_delisted=params["include_delisted"])
        quotes = get_quotes([m.asset for m in markets])
        now = time.time()
        rows = [_market_view(m, quotes.get(m.asset), now) for m in markets]
        return Response(MarketOutput(rows, many=True).data)


class MarketDetailApi(APIView):
    key_scope = "read"

    @extend_schema(responses=MarketOutput, operation_id="markets_get")
    @api_errors((ErrorCode.UNKNOWN_SYMBOL, 404))
    def get(self, request: Request, asset: str) -> Response:
        market = None
        for name in dict.fromkeys((asset, asset.upper())):  # HL names are case-sensitive (kPEPE)
            try:
                market = market_get(name)
                break
            except Market.DoesNotExist:
                continue
        if market is None:
            raise ApplicationError(ErrorCode.UNKNOWN_SYMBOL, f"Unknown symbol {asset}.", http_status=404)
        view = _market_view(market, get_quote(market.asset), time.time())
        return Response(MarketOutput(view).data)
