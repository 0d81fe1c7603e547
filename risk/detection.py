"""Loading detection state from PostgreSQL, and the periodic sweep (spec 03: "a periodic sweep
re-checks everything, in case an update was missed")."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db.models import Q

from core.money import ZERO
from risk.liquidation_core import CrossBook, CrossLeg, Hit, IsolatedPosition, LiquidationIndex
from risk.liquidation_triggers import liquidation_wake, triggers_record
from risk.marks import liquidation_marks
from risk.models import LiquidationTrigger
from trading.account import SIGN as MARGIN_SIDE
from trading.account import margin_table_for_asset
from trading.liquidation.records import position_version
from trading.models import MarginMode, Position
from wallets.models import USDC, AccountKind, LedgerAccount

logger = logging.getLogger(__name__)

POSITION_FIELDS = (
    "id",
    "user_id",
    "asset",
    "source",
    "margin_mode",
    "direction",
    "size",
    "entry_price",
    "leverage",
    "isolated_margin",
    "status",
    "updated_at",
)


def isolated_of(p: Position) -> IsolatedPosition:
    return IsolatedPosition(
        position_id=p.pk,
        version=position_version(p),
        user_id=p.user_id,
        asset=p.asset,
        side=MARGIN_SIDE[p.direction],
        size=p.size,
        entry=p.entry_price,
        isolated_margin=p.isolated_margin,
        table=margin_table_for_asset(p.asset),
        source=p.source,
    )


def cross_leg_of(p: Position) -> CrossLeg:
    """A cross position as the detection core sees it (shared by detection and execution)."""
    return CrossLeg(
        p.pk,
        p.asset,
        MARGIN_SIDE[p.direction],
        p.size,
        p.entry_price,
        p.leverage,
        margin_table_for_asset(p.asset),
        p.source,
    )


def collateral_of(user_ids: Iterable[int]) -> dict[int, Decimal]:
    """Cross collateral per user: cash plus order holds (see ``margin_cross.CrossAccount``)."""
    out: dict[int, Decimal] = defaultdict(lambda: ZERO)
    rows = LedgerAccount.objects.filter(
        user_id__in=list(user_ids), asset=USDC, kind__in=[AccountKind.CASH, AccountKind.ORDER_HOLD]
    ).values_list("user_id", "balance")
    for user_id, balance in rows:
        out[user_id] += balance
    return out


def books_of(positions: Iterable[Position]) -> list[CrossBook]:
    by_user: dict[int, list[Position]] = defaultdict(list)
    for p in positions:
        by_user[p.user_id].append(p)
    collateral = collateral_of(by_user)
    books = []
    for user_id, rows in by_user.items():
        legs = tuple(cross_leg_of(p) for p in sorted(rows, key=lambda r: r.pk))
        version = max(position_version(p) for p in rows)
        books.append(CrossBook(user_id, version, collateral[user_id], legs))
    return books


def open_positions(extra: Q | None = None) -> list[Position]:
    qs = Position.objects.filter(status=Position.Status.OPEN)
    if extra is not None:
        qs = qs.filter(extra)
    return list(qs.only(*POSITION_FIELDS).order_by("id"))


def index_load(index: LiquidationIndex | None = None) -> LiquidationIndex:
    """Build (or refill) the detection index from every open position."""
    index = LiquidationIndex() if index is None else index
    positions = open_positions()
    index.load(
        (isolated_of(p) for p in positions if p.margin_mode == MarginMode.ISOLATED),
        books_of(p for p in positions if p.margin_mode == MarginMode.CROSS),
    )
    return index


def liquidation_sweep(*, marks: dict[str, Decimal] | None = None, wake: bool = True) -> dict[str, Any]:
    """Re-check every open position from the database at the current marks, store triggers for what is
    liquidatable and not yet triggered, and re-drive due triggers (stuck leases, retries)."""
    positions = open_positions()
    assets = {p.asset for p in positions}
    marks = marks if marks is not None else liquidation_marks(assets)
    index = LiquidationIndex()
    index.marks.update(marks)
    index.load(
        (isolated_of(p) for p in positions if p.margin_mode == MarginMode.ISOLATED and p.asset in marks),
        books_of(p for p in positions if p.margin_mode == MarginMode.CROSS),
    )
    hits: list[Hit] = index.scan(marks)
    created = triggers_record(hits, source="sweep", wake=False) if hits else 0
    due = LiquidationTrigger.objects.filter(status__in=LiquidationTrigger.OPEN).count()
    if wake and due:
        liquidation_wake(due)
    return {"positions": len(positions), "liquidatable": len(hits), "created": created, "open_triggers": due}
