"""The user page's liquidations, funding payments and drift records (spec 07 §9; the desk's client card:
"liquidations with mark and margin ratio at the trigger"). Nothing here writes.

A liquidation row is one closed position of a liquidation (``LiquidationRecord``) with its command
(``LiquidationTrigger``): trigger mark, close price, venue, margin zeroed and the loss's split between
the platform and the risk reserve (spec 03, 80/20 by default), bankrupt remainder and HL drift. A
command that closed nothing yet (pending, failed, escalated, cancelled) is one row without a close.

The margin ratio at the trigger — equity ÷ maintenance margin at the trigger marks, as HL states an
account's (≤ 100 % is liquidatable) — is not stored; it is recomputed from what is:

* isolated: (isolated margin zeroed + P&L at the trigger mark) ÷ MM of size × mark — exact;
* cross: (cash + order holds just before detection + Σ uPnL at the trigger's marks) ÷ Σ MM over the
  account's cross positions then open; the closed ones from their records (exact), the others from
  their rows, exact when they have not changed since (``ratio_exact`` False otherwise).

MM uses the asset's current margin table (tables change rarely; a change would shift old ratios).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum

from risk.models import DeviationLog, FundingSettlement, LiquidationTrigger
from trading import margin
from trading.account import margin_table_for_asset
from trading.models import MarginMode, Position
from wallets.models import AccountKind, BalanceLog

ZERO = Decimal(0)
SIGN = {"LONG": 1, "SHORT": -1}

LIQUIDATION_FIELDS = (
    "pk",
    "trigger_id",
    "kind",
    "status",
    "venue",
    "asset",
    "detected_at",
    "completed_at",
    "trigger_price",
    "marks",
    "attempts",
    "position_id",
    "position_version",
    "position__isolated_margin",
    "position__entry_price",
    "position__size",
    "position__direction",
    "position__margin_mode",
    "position__updated_at",
    "records__id",
    "records__position_id",
    "records__asset",
    "records__venue",
    "records__margin_mode",
    "records__direction",
    "records__trigger_price",
    "records__close_price",
    "records__size",
    "records__margin_zeroed",
    "records__loss",
    "records__platform_share",
    "records__reserve_share",
    "records__bankrupt_amount",
    "records__xbit_pnl",
    "records__hl_pnl",
    "records__drift_amount",
    "records__fee",
    "records__created_at",
)


@dataclass
class LiquidationRow:
    trigger_pk: int
    trigger_id: str
    kind: str  # ISOLATED / CROSS
    status: str
    detected_at: datetime
    completed_at: datetime | None
    asset: str
    venue: str
    position_id: int | None
    margin_mode: str
    direction: str
    size: Decimal | None
    trigger_price: Decimal  # the mark of the detecting update (the close's own asset for cross)
    marks: dict[str, str]
    closed: bool  # a LiquidationRecord exists: the position was closed
    close_price: Decimal | None = None
    margin_zeroed: Decimal | None = None
    loss: Decimal | None = None
    platform_share: Decimal | None = None
    reserve_share: Decimal | None = None
    bankrupt_amount: Decimal | None = None
    xbit_pnl: Decimal | None = None
    hl_pnl: Decimal | None = None
    drift_amount: Decimal | None = None
    fee: Decimal | None = None
    margin_ratio: Decimal | None = None
    ratio_exact: bool = True
    ratio_note: str = ""

    @property
    def reserve_pct(self) -> Decimal | None:
        """The reserve's part of the loss (spec 03: 20 % by default)."""
        if not self.loss or self.reserve_share is None:
            return None
        return self.reserve_share / self.loss

    @property
    def latency_ms(self) -> int | None:
        if self.completed_at is None:
            return None
        return int((self.completed_at - self.detected_at).total_seconds() * 1000)


def liquidations_qs(user_id: int) -> QuerySet[Any]:
    """The user's liquidation commands (shadow ones are not liquidations) joined to the positions they
    closed, newest first: one row per closed position, or one per command that closed none."""
    return (
        LiquidationTrigger.objects.filter(user_id=user_id)
        .exclude(status=LiquidationTrigger.Status.SHADOW)
        .order_by("-detected_at", "-id", "records__id")
        .values(*LIQUIDATION_FIELDS)
    )


def liquidation_rows(user_id: int, values: Iterable[dict[str, Any]]) -> list[LiquidationRow]:
    """Rows of :func:`liquidations_qs` with their margin ratio at the trigger (one more query for the
    cash and holds at each cross detection, one for the cross positions then open — only when there is
    a cross liquidation among them)."""
    values = list(values)
    rows = [_row(v) for v in values]
    for row, v in zip(rows, values, strict=True):
        if row.kind == LiquidationTrigger.Kind.ISOLATED:
            _isolated_ratio(row, v)
    crosses = [r for r in rows if r.kind == LiquidationTrigger.Kind.CROSS]
    if crosses:
        _cross_ratios(user_id, crosses)
    return rows


def _row(v: dict[str, Any]) -> LiquidationRow:
    closed = v["records__id"] is not None
    position = v["position__margin_mode"] is not None
    return LiquidationRow(
        trigger_pk=v["pk"],
        trigger_id=v["trigger_id"],
        kind=v["kind"],
        status=v["status"],
        detected_at=v["detected_at"],
        completed_at=v["completed_at"],
        asset=v["records__asset"] if closed else v["asset"],
        venue=v["records__venue"] if closed else v["venue"],
        position_id=v["records__position_id"] if closed else v["position_id"],
        margin_mode=v["records__margin_mode"] if closed else (v["position__margin_mode"] or v["kind"]),
        direction=v["records__direction"] if closed else (v["position__direction"] if position else ""),
        size=v["records__size"] if closed else (v["position__size"] if position else None),
        trigger_price=v["records__trigger_price"] if closed else v["trigger_price"],
        marks=v["marks"] or {},
        closed=closed,
        close_price=v["records__close_price"],
        margin_zeroed=v["records__margin_zeroed"],
        loss=v["records__loss"],
        platform_share=v["records__platform_share"],
        reserve_share=v["records__reserve_share"],
        bankrupt_amount=v["records__bankrupt_amount"],
        xbit_pnl=v["records__xbit_pnl"],
        hl_pnl=v["records__hl_pnl"],
        drift_amount=v["records__drift_amount"],
        fee=v["records__fee"],
    )


def _table(asset: str) -> margin.MarginTable | None:
    try:
        return margin_table_for_asset(asset)
    except Exception:  # a delisted market missing from meta: no MM to divide by
        return None


def _mm(asset: str, size: Decimal, mark: Decimal) -> Decimal | None:
    table = _table(asset)
    if table is None or size <= 0 or mark <= 0:
        return None
    return margin.maintenance_margin(margin.notional(size, mark), table)


def _ratio(equity: Decimal, mm: Decimal | None) -> Decimal | None:
    return (equity / mm).quantize(Decimal("0.0001")) if mm else None


def _isolated_ratio(row: LiquidationRow, v: dict[str, Any]) -> None:
    mark = row.trigger_price
    if row.closed:
        mm = _mm(row.asset, row.size or ZERO, mark)
        row.margin_ratio = _ratio((row.margin_zeroed or ZERO) + (row.xbit_pnl or ZERO), mm)
    elif (
        v["position__updated_at"] is not None and _version(v["position__updated_at"]) == v["position_version"]
    ):
        # not closed (pending, failed, escalated): the position is as it was when detected
        size, entry = v["position__size"], v["position__entry_price"]
        upnl = SIGN[v["position__direction"]] * (mark - entry) * size
        row.margin_ratio = _ratio(v["position__isolated_margin"] + upnl, _mm(row.asset, size, mark))
    else:
        row.ratio_note = "the position changed after detection"
    if row.margin_ratio is None and not row.ratio_note:
        row.ratio_note = "no margin table for the asset"


def _version(updated_at: datetime) -> int:
    return int(updated_at.timestamp() * 1_000_000)  # trading.liquidation.position_version


def _cross_ratios(user_id: int, rows: list[LiquidationRow]) -> None:
    by_trigger: dict[int, list[LiquidationRow]] = {}
    for row in rows:
        by_trigger.setdefault(row.trigger_pk, []).append(row)
    logs = BalanceLog.objects.filter(user_id=user_id, created_at__lte=OuterRef("detected_at"))
    collateral = {
        pk: (cash or ZERO) + (holds or ZERO)
        for pk, cash, holds in LiquidationTrigger.objects.filter(pk__in=list(by_trigger))
        .annotate(
            cash=Subquery(logs.filter(account_kind=AccountKind.CASH).order_by("-id").values("after")[:1]),
            holds=Subquery(
                logs.filter(account_kind=AccountKind.ORDER_HOLD)
                .order_by()
                .values("user_id")
                .annotate(total=Sum("amount"))
                .values("total")[:1]
            ),
        )
        .values_list("pk", "cash", "holds")
    }
    first = min(r.detected_at for r in rows)
    last = max(r.detected_at for r in rows)
    positions = list(
        Position.objects.filter(user_id=user_id, margin_mode=MarginMode.CROSS, opened_at__lte=last)
        .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=first))
        .values("id", "asset", "direction", "size", "entry_price", "opened_at", "closed_at", "updated_at")
    )
    for pk, group in by_trigger.items():
        head = group[0]
        at = head.detected_at
        marks = {a: Decimal(m) for a, m in head.marks.items()}
        closed = {r.position_id: r for r in group if r.closed}
        equity = collateral.get(pk, ZERO)
        mm_total = ZERO
        exact = True
        missing = False
        for p in positions:
            if p["opened_at"] > at or (p["closed_at"] is not None and p["closed_at"] < at):
                continue
            mark = marks.get(p["asset"])
            if mark is None:
                continue  # not in the book the decision used
            record = closed.get(p["id"])
            if record is not None:
                size, upnl = record.size or ZERO, record.xbit_pnl or ZERO
            else:
                size, upnl = p["size"], SIGN[p["direction"]] * (mark - p["entry_price"]) * p["size"]
                exact = exact and p["updated_at"] <= at
                if size <= 0:  # closed later: its size at the trigger is not kept
                    missing = True
                    continue
            mm = _mm(p["asset"], size, mark)
            if mm is None:
                missing = True
                continue
            equity += upnl
            mm_total += mm
        ratio = None if missing else _ratio(equity, mm_total)
        for row in group:
            row.margin_ratio = ratio
            row.ratio_exact = exact
            if ratio is None:
                row.ratio_note = "a cross position of the account changed or lacks a margin table"


# --- funding payments and drift records ---------------------------------------------------------------


def funding_qs(user_id: int) -> QuerySet[Any]:
    """The user's funding payments (``FundingSettlement``: one per position and funding time), newest
    first. ``payment`` is the user's signed flow (negative = paid), ``collected`` what the ledger moved."""
    return FundingSettlement.objects.filter(user_id=user_id).order_by("-funding_time", "-id")


def drift_qs(user_id: int) -> QuerySet[Any]:
    """The drift records of the user's HYPERLIQUID positions (closes, liquidations, funding mirrors):
    HL's actual P&L against the P&L XBIT computed, newest first."""
    return DeviationLog.objects.filter(position__user_id=user_id).order_by("-created_at", "-id")
