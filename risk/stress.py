"""The stress view (spec 05 "what-if"): for chosen per-asset price shocks, what would happen — computed
from current state with the same detection core the liquidation engine uses, changing nothing.

For ``{"BTC": Decimal("-0.15")}`` (BTC −15 %, other assets unchanged):

* positions that would be liquidated (count, notional at the shocked mark, by venue), isolated by
  their liquidation price and cross accounts by equity ≤ maintenance margin (the whole close plan);
* the platform's B-book P&L change (the mirror of the users' INTERNAL unrealized P&L change);
* the hedge account's P&L change (its positions move with the shock);
* the risk reserve after the bankrupt remainders of the liquidated positions (loss beyond margin);
* both HL accounts' margin ratios after the shock (value moves with their positions' P&L,
  maintenance margin with their notional).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from risk.detection import books_of, isolated_of, open_positions
from risk.liquidation_core import LiquidationIndex
from risk.marks import effective_marks
from trading.models import HLAccountSnapshot, MarginMode, Position, Source
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind
from xbit_admin.money import ZERO

SIGN: dict[str, int] = {Position.Direction.LONG: 1, Position.Direction.SHORT: -1}


@dataclass
class StressResult:
    shocks: dict[str, Decimal]
    marks_before: dict[str, Decimal]
    marks_after: dict[str, Decimal]
    liquidations: dict[str, dict[str, Decimal | int]] = field(default_factory=dict)  # venue → count, notional
    liquidated_position_ids: list[int] = field(default_factory=list)
    bbook_pnl_change: Decimal = ZERO
    hedge_pnl_change: Decimal = ZERO
    bankrupt_total: Decimal = ZERO
    reserve_before: Decimal = ZERO
    reserve_after: Decimal = ZERO
    hl_margin_ratios: dict[str, dict[str, Decimal | None]] = field(default_factory=dict)

    @property
    def liquidation_count(self) -> int:
        return len(self.liquidated_position_ids)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["liquidation_count"] = self.liquidation_count
        return out


def stress_run(*, shocks: dict[str, Decimal]) -> StressResult:
    """Evaluate ``shocks`` (asset → relative move, e.g. ``Decimal("-0.15")``) against current state."""
    positions = open_positions()
    assets = {p.asset for p in positions} | set(shocks)
    before = effective_marks(assets)
    after = {a: m * (1 + shocks.get(a, ZERO)) for a, m in before.items()}
    result = StressResult(shocks=dict(shocks), marks_before=before, marks_after=after)

    index = LiquidationIndex()
    index.marks.update(after)
    index.load(
        (isolated_of(p) for p in positions if p.margin_mode == MarginMode.ISOLATED and p.asset in after),
        books_of(p for p in positions if p.margin_mode == MarginMode.CROSS),
    )
    hit_ids: list[int] = []
    for hit in index.scan(after):
        hit_ids.extend(hit.position_ids)
    by_id = {p.pk: p for p in positions}
    venues: dict[str, dict[str, Decimal | int]] = defaultdict(lambda: {"count": 0, "notional": ZERO})
    for pid in dict.fromkeys(hit_ids):  # a position once, in detection order
        p = by_id.get(pid)
        if p is None:
            continue
        mark = after.get(p.asset, p.entry_price)
        venue = venues[p.source]
        venue["count"] = int(venue["count"]) + 1
        venue["notional"] = Decimal(venue["notional"]) + p.size * mark
        result.liquidated_position_ids.append(pid)
        if p.margin_mode == MarginMode.ISOLATED:
            loss = -Decimal(SIGN[p.direction]) * (mark - p.entry_price) * p.size
            result.bankrupt_total += max(ZERO, loss - p.isolated_margin)
    result.liquidations = dict(venues)

    # users' INTERNAL uPnL change is the B-book's P&L change with the opposite sign
    for p in positions:
        if p.source == Source.INTERNAL and p.asset in shocks:
            move = after[p.asset] - before[p.asset]
            result.bbook_pnl_change -= Decimal(SIGN[p.direction]) * move * p.size

    result.hedge_pnl_change = _hedge_pnl_change(before, after)
    result.reserve_before = account_balance(AccountRef.platform(AccountKind.RISK_RESERVE))
    result.reserve_after = result.reserve_before - result.bankrupt_total
    for account in ("trading", "hedge"):
        result.hl_margin_ratios[account] = _margin_ratio_after(account, before, after)
    return result


def _hedge_pnl_change(before: dict[str, Decimal], after: dict[str, Decimal]) -> Decimal:
    try:
        from risk.hedge_models import HedgePosition
    except ImportError:  # the hedge engine is not installed
        return ZERO
    change = ZERO
    for row in HedgePosition.objects.exclude(size=0):
        if row.asset in before:
            change += row.size * (after[row.asset] - before[row.asset])
    return change


def _margin_ratio_after(
    account: str, before: dict[str, Decimal], after: dict[str, Decimal]
) -> dict[str, Decimal | None]:
    """An HL account after the shock, from its latest snapshot: value moves with its positions' P&L,
    maintenance margin scales with each position's notional."""
    snapshot = HLAccountSnapshot.objects.filter(account=account).order_by("-created_at").first()
    if snapshot is None:
        return {"before": None, "after": None}
    value = snapshot.account_value
    mm_before = snapshot.maintenance_margin_used
    mm_after = mm_before
    for entry in snapshot.positions or []:
        pos = entry.get("position", {})
        coin = pos.get("coin")
        if coin not in before or coin not in after or not before[coin]:
            continue
        szi = Decimal(pos.get("szi", "0"))
        value += szi * (after[coin] - before[coin])
        ratio = after[coin] / before[coin]
        notional = abs(Decimal(pos.get("positionValue", "0")))
        share = (notional / snapshot.total_notional) if snapshot.total_notional else ZERO
        mm_after += mm_before * share * (ratio - 1)
    return {
        "before": snapshot.margin_ratio,
        "after": (value / mm_after).quantize(Decimal("0.0001")) if mm_after > 0 else None,
    }
