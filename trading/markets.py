"""Markets: the listed perpetuals and their margin tables, synced from HL's ``meta`` (spec 02 Markets).

``markets_sync`` is the only writer of listing data (Market rows other than ``trading_state`` /
``state_reason``, which risk owns). It never deletes a market: an asset HL stops listing is marked
delisted, so orders, positions and history keep their foreign keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from hyperliquid.info import Info

from core.live_config import invalidate
from trading.models import MarginTable, Market, MarketListingLog

logger = logging.getLogger(__name__)

MARKETS_CACHE_NAME = "markets"
EMPTY_SPOT_META: dict[str, Any] = {"universe": [], "tokens": []}
# An index no HL universe reaches: where a row waits while indices are reshuffled (hl_index is unique).
_PARKED_INDEX_BASE = 1_000_000
# pg_advisory_xact_lock key: one sync at a time (start-up, hourly beat and the command may overlap).
_SYNC_LOCK_KEY = 0x5842_4D4B  # "XBMK"

_LISTING_FIELDS = ("hl_index", "sz_decimals", "max_leverage", "margin_table_id", "only_isolated")


@dataclass
class SyncReport:
    """What one sync did. ``changes`` is the number of MarketListingLog rows written."""

    listed: list[str] = field(default_factory=list)
    delisted: list[str] = field(default_factory=list)
    relisted: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    tables_created: list[int] = field(default_factory=list)
    tables_updated: list[int] = field(default_factory=list)
    unchanged: int = 0
    changes: int = 0

    def summary(self) -> str:
        parts = [f"{self.unchanged} unchanged"]
        for name in ("listed", "delisted", "relisted", "changed", "tables_created", "tables_updated"):
            values = getattr(self, name)
            if values:
                parts.append(f"{name.replace('_', ' ')}: {', '.join(str(v) for v in values)}")
        return "; ".join(parts)


def hl_info(*, base_url: str | None = None, timeout: float = 5.0) -> Any:
    """A REST-only SDK ``Info`` with no start-up I/O (meta/spotMeta passed in, no websocket)."""

    return Info(
        base_url or settings.HL_API_URL,
        skip_ws=True,
        meta={"universe": []},
        spot_meta=EMPTY_SPOT_META,
        timeout=timeout,
    )


def _universe_row(index: int, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "hl_index": index,
        "sz_decimals": int(entry["szDecimals"]),
        "max_leverage": int(entry["maxLeverage"]),
        # HL omits marginTableId on old listings: a table id below 50 means "single tier at L = id".
        "margin_table_id": int(entry.get("marginTableId") or entry["maxLeverage"]),
        "only_isolated": bool(entry.get("onlyIsolated", False)),
        "is_delisted": bool(entry.get("isDelisted", False)),
    }


def _market_view(market: Market) -> dict[str, Any]:
    return {name: getattr(market, name) for name in (*_LISTING_FIELDS, "is_delisted")}


def _sync_tables(meta: dict[str, Any], report: SyncReport, now: Any) -> dict[int, list[Any]]:
    """Upsert ``meta.marginTables``; returns the tiers that changed (table id -> [before, after])."""
    changed: dict[int, list[Any]] = {}
    existing = {t.table_id: t for t in MarginTable.objects.select_for_update().order_by("table_id")}
    for table_id, body in meta.get("marginTables") or []:
        tiers = [
            {"lowerBound": str(t["lowerBound"]), "maxLeverage": int(t["maxLeverage"])}
            for t in body.get("marginTiers") or []
        ]
        description = str(body.get("description") or "")[:120]
        row = existing.get(int(table_id))
        if row is None:
            MarginTable.objects.create(
                table_id=int(table_id), description=description, tiers=tiers, updated_at=now
            )
            report.tables_created.append(int(table_id))
        elif row.tiers != tiers or row.description != description:
            if row.tiers != tiers:
                changed[row.table_id] = [row.tiers, tiers]
            row.tiers, row.description, row.updated_at = tiers, description, now
            row.save(update_fields=["tiers", "description", "updated_at"])
            report.tables_updated.append(row.table_id)
    return changed


@transaction.atomic
def _apply_meta(meta: dict[str, Any]) -> SyncReport:
    report = SyncReport()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SYNC_LOCK_KEY])
    changed_tiers = _sync_tables(meta, report, now)

    wanted: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(meta.get("universe") or []):
        wanted[str(entry["name"])] = _universe_row(index, entry)
    # Lock every market in pk order: the same order every sync uses, so two syncs cannot deadlock.
    existing = {m.asset: m for m in Market.objects.select_for_update().order_by("pk")}
    original_index = {asset: m.hl_index for asset, m in existing.items()}
    claimed = {row["hl_index"] for row in wanted.values()}

    # hl_index is unique and checked row by row: park every row whose index must move (or whose index
    # a new listing takes) before writing the final indices.
    for market in existing.values():
        target = wanted.get(market.asset)
        moves = target is not None and target["hl_index"] != market.hl_index
        if moves or (target is None and market.hl_index in claimed):
            market.hl_index = _PARKED_INDEX_BASE + market.pk
            Market.objects.filter(pk=market.pk).update(hl_index=market.hl_index)

    logs: list[MarketListingLog] = []
    for asset, row in wanted.items():
        market = existing.get(asset)
        if market is None:
            Market.objects.create(asset=asset, listed_at=now, updated_at=now, **row)
            logs.append(
                MarketListingLog(asset=asset, change="listed", before=None, after=row, created_at=now)
            )
            report.listed.append(asset)
            continue
        before_view = _market_view(market)
        diff_before = {k: v for k, v in before_view.items() if k != "hl_index" and row[k] != v}
        diff_after = {k: row[k] for k in diff_before}
        index_moved = original_index[asset] != row["hl_index"]
        if index_moved:
            diff_before["hl_index"], diff_after["hl_index"] = original_index[asset], row["hl_index"]
        for name, value in row.items():
            setattr(market, name, value)
        tiers = changed_tiers.get(row["margin_table_id"])
        if not diff_before and not index_moved and tiers is None:
            report.unchanged += 1
            continue
        market.updated_at = now
        market.save(update_fields=[*_LISTING_FIELDS, "is_delisted", "updated_at"])
        if "is_delisted" in diff_before:
            change = "delisted" if row["is_delisted"] else "relisted"
            (report.delisted if row["is_delisted"] else report.relisted).append(asset)
        elif diff_before or index_moved:
            change = "changed"
            report.changed.append(asset)
        else:
            change = "margin_tiers"
            report.changed.append(asset)
        if tiers is not None:
            diff_before["margin_tiers"], diff_after["margin_tiers"] = tiers
        logs.append(
            MarketListingLog(asset=asset, change=change, before=diff_before, after=diff_after, created_at=now)
        )

    for asset, market in existing.items():
        if asset in wanted or market.is_delisted:
            continue
        # Gone from HL's universe (HL itself keeps delisted assets with isDelisted): never delete.
        market.is_delisted = True
        market.updated_at = now
        market.save(update_fields=["is_delisted", "hl_index", "updated_at"])
        logs.append(
            MarketListingLog(
                asset=asset,
                change="delisted",
                before={"is_delisted": False},
                after={"is_delisted": True, "reason": "missing from meta"},
                created_at=now,
            )
        )
        report.delisted.append(asset)

    MarketListingLog.objects.bulk_create(logs)
    report.changes = len(logs)
    if logs or report.tables_created or report.tables_updated:
        invalidate(MARKETS_CACHE_NAME)  # every process reloads market_get() once this commits
    return report


def markets_sync(*, info: Any = None, meta: dict[str, Any] | None = None) -> SyncReport:
    """Fetch HL ``meta`` through the SDK and upsert markets and margin tables (one transaction).

    Side effects: Market / MarginTable rows created or updated, one MarketListingLog row per listing
    change (listed, delisted, relisted, changed parameters, changed margin tiers), the ``markets``
    live-config cache invalidated in every process on commit. Idempotent: a second run with the same
    meta writes nothing. Raises the SDK's errors (``requests`` exceptions, ``ServerError``) when HL
    cannot be reached; nothing is written then."""
    if meta is None:
        meta = (info or hl_info()).meta()
    if not isinstance(meta, dict) or not isinstance(meta.get("universe"), list):
        raise ValueError(f"unexpected meta from HL: {str(meta)[:200]}")
    report = _apply_meta(meta)
    if report.changes or report.tables_created or report.tables_updated:
        logger.info("markets synced: %s", report.summary())
    return report


def seed_markets_demo(command: Any) -> None:
    """``manage.py seed_demo`` hook: sync markets from the sandbox (or whatever HL_API_URL points at)
    when it answers; otherwise say so and carry on (the feed syncs again at start)."""
    try:
        report = markets_sync(info=hl_info(timeout=3))
    except Exception as exc:
        command.stdout.write(
            f"  markets: HL at {settings.HL_API_URL} not reachable ({type(exc).__name__}); skipped"
        )
        return
    command.stdout.write(f"  markets: {report.summary()}")
