"""Trading configuration read on the hot path (process cache, invalidated on write)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.defaults import register
from core.live_config import LiveConfig, invalidate
from trading.models import FeeSchedule, TradingConfig


@dataclass(frozen=True, slots=True)
class FeeRates:
    taker: Decimal
    maker: Decimal
    markup: Decimal

    def rate(self, *, maker: bool) -> Decimal:
        return (self.maker if maker else self.taker) + self.markup


@dataclass(frozen=True, slots=True)
class TradingSettings:
    min_order_value: Decimal
    market_default_slippage_bps: int
    max_slippage_bps: int
    book_stale_seconds: float
    gtc_expiry_days: int
    max_open_orders_per_user: int
    client_loss_reserve_share: Decimal
    fees: dict[str, FeeRates]
    batch_max_orders: int
    deadman_min_lead_seconds: int
    trigger_check_interval_ms: int
    quote_refill_wait_ms: int
    hl_cancel_retry_ms: int


def _load() -> TradingSettings:
    row = TradingConfig.objects.get(key="default")
    fees = {f.route: FeeRates(f.taker_rate, f.maker_rate, f.markup_rate) for f in FeeSchedule.objects.all()}
    return TradingSettings(
        min_order_value=row.min_order_value,
        market_default_slippage_bps=row.market_default_slippage_bps,
        max_slippage_bps=row.max_slippage_bps,
        book_stale_seconds=float(row.book_stale_seconds),
        gtc_expiry_days=row.gtc_expiry_days,
        max_open_orders_per_user=row.max_open_orders_per_user,
        client_loss_reserve_share=row.client_loss_reserve_share,
        fees=fees,
        batch_max_orders=row.batch_max_orders,
        deadman_min_lead_seconds=row.deadman_min_lead_seconds,
        trigger_check_interval_ms=row.trigger_check_interval_ms,
        quote_refill_wait_ms=row.quote_refill_wait_ms,
        hl_cancel_retry_ms=row.hl_cancel_retry_ms,
    )


TRADING_CACHE: LiveConfig[TradingSettings] = LiveConfig("trading", _load)


def trading_settings() -> TradingSettings:
    return TRADING_CACHE.get()


DEFAULT_FEES = {
    "INTERNAL": {
        "taker_rate": Decimal("0.00045"),
        "maker_rate": Decimal("0.00015"),
        "markup_rate": Decimal(0),
    },
    # HL tier 0 plus the platform's builder markup on HL-routed orders (spec 02)
    "HYPERLIQUID": {
        "taker_rate": Decimal("0.00045"),
        "maker_rate": Decimal("0.00015"),
        "markup_rate": Decimal("0.0002"),
    },
}


@register
def trading_defaults_ensure() -> None:
    created = TradingConfig.objects.get_or_create(key="default")[1]
    for route, rates in DEFAULT_FEES.items():
        created |= FeeSchedule.objects.get_or_create(route=route, defaults=rates)[1]
    if created:
        invalidate(TRADING_CACHE.name)
