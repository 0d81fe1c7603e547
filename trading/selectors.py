"""Reads for trading. Hot-path reads come from process memory (``LiveConfig``, invalidated on write)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from core.live_config import LiveConfig
from trading import margin
from trading.markets import MARKETS_CACHE_NAME
from trading.models import FeedStatus, MarginTable, Market

# ================================================================================================
# Markets (listing data synced from HL meta; trading_state pushed down by risk)
#
# Every write to Market / MarginTable must call ``core.live_config.invalidate("markets")`` in
# its transaction (``trading.markets.markets_sync`` does) so every process reloads on commit.

FEED_NAME = "hl"
FEED_MAX_SILENCE_S = 10.0


@dataclass(frozen=True)
class MarketsSnapshot:
    by_asset: dict[str, Market]
    tables: dict[str, margin.MarginTable]  # asset -> the asset's table (capped by its maxLeverage)


def _margin_tables() -> dict[int, margin.MarginTable]:
    out = {}
    for row in MarginTable.objects.all():
        out[row.table_id] = margin.MarginTable.from_hl({"marginTiers": row.tiers})
    return out


def _load_markets() -> MarketsSnapshot:
    markets = {m.asset: m for m in Market.objects.all()}
    raw = _margin_tables()
    tables: dict[str, margin.MarginTable] = {}
    for asset, market in markets.items():
        try:
            tables[asset] = margin.MarginTable.for_asset(market.margin_table_id, market.max_leverage, raw)
        except ValueError:
            continue  # a table missing from meta: margin_table_for() raises for this asset only
    return MarketsSnapshot(by_asset=markets, tables=tables)


MARKETS_CACHE: LiveConfig[MarketsSnapshot] = LiveConfig(MARKETS_CACHE_NAME, _load_markets)


def market_get(asset: str) -> Market:
    """The market (listed or delisted) from memory. Raises ``Market.DoesNotExist`` for an unknown
    asset. The instance is shared: read it, never save it."""
    market = MARKETS_CACHE.get().by_asset.get(asset)
    if market is None:
        raise Market.DoesNotExist(f"no market {asset!r}")
    return market


def markets_list(*, include_delisted: bool = False) -> list[Market]:
    """Markets in HL index order (from memory)."""
    markets = sorted(MARKETS_CACHE.get().by_asset.values(), key=lambda m: m.hl_index)
    return markets if include_delisted else [m for m in markets if not m.is_delisted]


def listed_assets() -> list[str]:
    """Assets the feed subscribes to: listed, not delisted, in HL index order (read from the
    database, not the cache: the feed process polls it for new listings)."""
    return list(Market.objects.filter(is_delisted=False).order_by("hl_index").values_list("asset", flat=True))


def margin_table_for(market: Market) -> margin.MarginTable:
    """The asset's HL margin table (tiers from ``meta.marginTables``, or single-tier for ids < 50),
    with the asset's ``maxLeverage`` as leverage cap. Raises ``ValueError`` if meta lacks the table."""
    table = MARKETS_CACHE.get().tables.get(market.asset)
    if table is None or table.leverage_cap != market.max_leverage:
        table = margin.MarginTable.for_asset(market.margin_table_id, market.max_leverage, _margin_tables())
    return table


def feed_status(name: str = FEED_NAME) -> FeedStatus | None:
    return FeedStatus.objects.filter(name=name).first()


def feed_readiness() -> dict[str, Any]:
    """Readiness check (``core.health``): the HL feed is connected and heard from HL in the
    last 10 s. With no listed market there is nothing to feed, so that is ready."""
    status = feed_status()
    if status is None:
        if not Market.objects.filter(is_delisted=False).exists():
            return {"ok": True, "detail": "no listed markets"}
        return {"ok": False, "error": "the market-data feed has never reported"}
    age = (timezone.now() - status.last_message_at).total_seconds() if status.last_message_at else None
    stale = status.detail.get("stale_assets") or []
    ok = bool(status.connected) and age is not None and age <= FEED_MAX_SILENCE_S
    out: dict[str, Any] = {
        "ok": ok,
        "connected": status.connected,
        "last_message_age_s": round(age, 3) if age is not None else None,
        "reconnects": status.reconnects,
        "stale_assets": stale,
        "latency_ms": status.detail.get("latency_ms"),
        "checked_at": time.time(),
    }
    if not ok:
        out["error"] = "feed disconnected" if not status.connected else "no HL message for over 10 s"
    return out


# ================================================================================================
