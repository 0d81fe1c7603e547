"""An order as a client states it: ``OrderInput`` parsed strictly from the request (sizes and prices by
the money input rules), and the checks against the market made before anything is written (symbol,
size and price steps, notional, leverage) — a rejected request freezes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.errors import ApplicationError, ErrorCode
from core.money import (
    PRICE_INPUT,
    SIZE_INPUT,
    DecimalInputError,
    DecimalShape,
    decimal_from_input,
)
from trading import margin
from trading.config import TradingSettings, trading_settings
from trading.execution import (
    DIRECTION,
)
from trading.marketdata import Quote, get_quote, quote_wait_refill
from trading.models import (
    MarginMode,
    Market,
    Order,
)
from trading.selectors import market_get

logger = logging.getLogger(__name__)
DEFAULT_LEVERAGE = 10
# client_order_id prefix reserved for algo orders' children (``trading.orders.twap``)
ALGO_CHILD_PREFIX = "algo:"


# ------------------------------------------------------------------------------------------ input


@dataclass(frozen=True)
class OrderInput:
    asset: str
    side: str
    order_type: str
    size: Decimal
    limit_price: Decimal | None
    leverage: int | None
    margin_mode: str
    reduce_only: bool
    tif: str
    slippage_bps: int | None
    client_order_id: str | None
    position_id: int | None

    def fingerprint(self) -> str:
        body = {
            "asset": self.asset,
            "side": self.side,
            "type": self.order_type,
            "size": format(self.size.normalize(), "f"),
            "price": format(self.limit_price.normalize(), "f") if self.limit_price is not None else None,
            "leverage": self.leverage,
            "mode": self.margin_mode,
            "reduce_only": self.reduce_only,
            "tif": self.tif,
            "slippage_bps": self.slippage_bps,
            "position_id": self.position_id,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def decimal_field(value: Any, code: ErrorCode, field: str, shape: DecimalShape) -> Decimal:
    """A size or price from a client (or our own code): the strict input parser."""
    try:
        number = decimal_from_input(value if not isinstance(value, float) else repr(value), shape)
    except DecimalInputError as exc:
        raise ApplicationError(
            code, f"{field} {exc.message}.", {"field": field, "reason": exc.reason}
        ) from None
    return number


def order_input(
    *,
    asset: str,
    side: str,
    order_type: str,
    size: Any,
    limit_price: Any = None,
    leverage: int | None = None,
    margin_mode: str = MarginMode.CROSS,
    reduce_only: bool = False,
    tif: str = Order.Tif.GTC,
    slippage_bps: int | None = None,
    client_order_id: str | None = None,
    position_id: int | None = None,
) -> OrderInput:
    side = str(side).upper()
    order_type = str(order_type).upper()
    margin_mode = str(margin_mode).upper()
    tif = str(tif).upper()
    if side not in DIRECTION:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "side must be BUY or SELL.", {"field": "side"})
    if order_type not in Order.Type.values:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "type must be MARKET or LIMIT.", {"field": "type"})
    if margin_mode not in MarginMode.values:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "margin_mode must be ISOLATED or CROSS.", {"field": "margin_mode"}
        )
    if tif not in Order.Tif.values:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "time_in_force must be GTC, IOC or ALO.", {"field": "time_in_force"}
        )
    price = None
    if order_type == Order.Type.LIMIT:
        if limit_price is None:
            raise ApplicationError(
                ErrorCode.INVALID_PRICE, "A limit order needs a limit price.", {"field": "limit_price"}
            )
        price = decimal_field(limit_price, ErrorCode.INVALID_PRICE, "limit_price", PRICE_INPUT)
    elif limit_price is not None:
        raise ApplicationError(
            ErrorCode.INVALID_PRICE, "A market order takes no limit price.", {"field": "limit_price"}
        )
    if leverage is not None and (not isinstance(leverage, int) or isinstance(leverage, bool) or leverage < 1):
        raise ApplicationError(
            ErrorCode.LEVERAGE_EXCEEDED, "leverage must be a whole number ≥ 1.", {"field": "leverage"}
        )
    if slippage_bps is not None and (not isinstance(slippage_bps, int) or slippage_bps < 0):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "slippage_bps must be a whole number ≥ 0.", {"field": "slippage_bps"}
        )
    if client_order_id is not None and not (1 <= len(client_order_id) <= 64):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            "client_order_id must be 1–64 characters.",
            {"field": "client_order_id"},
        )
    if client_order_id is not None and client_order_id.startswith(ALGO_CHILD_PREFIX):
        raise ApplicationError(  # the algo scheduler's children's ids: a client's must never collide
            ErrorCode.VALIDATION_ERROR,
            f"client_order_id may not start with {ALGO_CHILD_PREFIX!r}.",
            {"field": "client_order_id"},
        )
    return OrderInput(
        asset=str(asset).upper(),
        side=side,
        order_type=order_type,
        size=decimal_field(size, ErrorCode.INVALID_SIZE, "size", SIZE_INPUT),
        limit_price=price,
        leverage=leverage,
        margin_mode=margin_mode,
        reduce_only=bool(reduce_only),
        tif=tif if order_type == Order.Type.LIMIT else Order.Tif.IOC,
        slippage_bps=slippage_bps,
        client_order_id=client_order_id or None,
        position_id=position_id,
    )


# ------------------------------------------------------------------------------------------ helpers


def market_for(asset: str) -> Market:
    try:
        return market_get(asset)
    except Market.DoesNotExist:
        raise ApplicationError(
            ErrorCode.UNKNOWN_SYMBOL, f"Unknown symbol {asset}.", {"field": "symbol"}
        ) from None


def validate_against_market(inp: OrderInput, market: Market, settings: TradingSettings) -> None:
    if market.is_delisted:
        raise ApplicationError(ErrorCode.SYMBOL_SUSPENDED, f"{market.asset} is delisted.")
    if not margin.is_valid_size(inp.size, market.sz_decimals):
        raise ApplicationError(
            ErrorCode.INVALID_SIZE,
            f"Size must be a multiple of {Decimal(1).scaleb(-market.sz_decimals)} for {market.asset}.",
            {
                "field": "size",
                "sz_decimals": market.sz_decimals,
                "nearest": str(margin.round_size(inp.size, market.sz_decimals)),
            },
        )
    if inp.limit_price is not None and not margin.is_valid_price(inp.limit_price, market.sz_decimals):
        raise ApplicationError(
            ErrorCode.INVALID_PRICE,
            "Price must have at most 5 significant figures and "
            f"{6 - market.sz_decimals} decimals for {market.asset}.",
            {"field": "limit_price", "nearest": str(margin.round_price(inp.limit_price, market.sz_decimals))},
        )
    if inp.leverage is not None and inp.leverage > market.max_leverage:
        raise ApplicationError(
            ErrorCode.LEVERAGE_EXCEEDED,
            f"{market.asset} allows at most {market.max_leverage}x.",
            {"field": "leverage", "max_leverage": market.max_leverage},
        )
    if market.only_isolated and inp.margin_mode != MarginMode.ISOLATED and not inp.reduce_only:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"{market.asset} trades in isolated margin only.",
            {"field": "margin_mode"},
        )
    if inp.slippage_bps is not None and inp.slippage_bps > settings.max_slippage_bps:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"slippage_bps may be at most {settings.max_slippage_bps}.",
            {"field": "slippage_bps"},
        )


def quote_or_fail(asset: str, settings: TradingSettings) -> Quote:
    """The asset's quote with a mark, or ``503 STALE_PRICE``. A quote missing because Redis came back
    empty and the feed is rewriting it is waited for, up to ``quote_refill_wait_ms``."""
    quote = get_quote(asset)
    if (quote is None or not quote.mark or quote.book_at is None) and settings.quote_refill_wait_ms:
        quote = quote_wait_refill(asset, settings.quote_refill_wait_ms / 1000)
    if quote is None or not quote.mark:
        raise ApplicationError(
            ErrorCode.STALE_PRICE, f"No live price for {asset}; try again shortly.", http_status=503
        )
    return quote


# ------------------------------------------------------------------------------------------ place


def order_validate(inp: OrderInput) -> None:
    """The checks ``order_place`` makes against the market before anything is written (symbol, size and
    price steps, notional, leverage): raises the same errors, writes nothing."""
    settings = trading_settings()
    validate_against_market(inp, market_for(inp.asset), settings)
