"""The stress view (spec 05 "what-if"): for chosen per-asset price shocks, what would happen — computed
from current state with the same detection core the liquidation engine uses, changing nothing.

For ``{"BTC": Decimal("-0.15")}`` (BTC −15 %, other assets unchanged):

* positions that would be liquidated (count, notional at the shocked mark, by venue), isolated by
  their liquidation price and cross accounts by equity ≤ maintenance margin (the whole close plan);
* the platform's B-book P&L change (the mirror of the users' INTERNAL unrealized P&L change);
* the hedge account's P&L change (its positions move with the shock);
* the risk reserve after the bankrupt remainders of the liquidated positions (loss beyond margin);
* both HL accounts' margin ratios after the shock (value moves with their positions' P&L,
  maintenance margin with their notional);
* per asset (``per_asset``): the users' net INTERNAL exposure before and after, the B-book's and the
  hedge's P&L change, the hedge coverage and the positions the shock would liquidate (count, notional,
  bankrupt remainder); and the same summed up (``liquidation_notional``, ``platform_pnl_change``,
  ``hedge_coverage``).

Hedge coverage is the share of the B-book's move the hedge offsets: ``−hedge P&L ÷ B-book P&L`` (per
asset equal to hedge size ÷ users' net INTERNAL size, so it is shown for unshocked assets too); 1 is
fully hedged, 0 unhedged, negative means the hedge adds to the B-book's risk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from core.money import ZERO
from risk.detection import books_of, isolated_of, open_positions
from risk.hedge_models import HedgePosition
from risk.liquidation_core import LiquidationIndex
from risk.marks import effective_marks
from trading.models import HLAccountSnapshot, MarginMode, Position, Source
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind

SIGN: dict[str, int] = {Position.Direction.LONG: 1, Position.Direction.SHORT: -1}
RATIO_Q = Decimal("0.0001")


@dataclass
class AssetStress:
    """One asset under the shock. Notionals in USD at the mark named; sizes in coins; + = users long."""

    asset: str
    shock: Decimal
    mark_before: Decimal | None
    mark_after: Decimal | None
    positions: int = 0  # open positions, every venue
    users_net_size: Decimal = ZERO  # INTERNAL only: what the B-book is the counterparty of
    net_exposure: Decimal = ZERO  # users' net INTERNAL notional at the mark before
    net_exposure_after: Decimal = ZERO  # … at the shocked mark
    bbook_pnl_change: Decimal = ZERO
    hedge_size: Decimal = ZERO
    hedge_notional: Decimal = ZERO  # at the mark before
    hedge_pnl_change: Decimal = ZERO
    liquidations: int = 0
    liquidation_notional: Decimal = ZERO  # at the shocked mark
    liquidations_by_venue: dict[str, int] = field(default_factory=dict)
    bankrupt: Decimal = ZERO  # isolated losses beyond margin (the reserve absorbs them)

    @property
    def platform_pnl_change(self) -> Decimal:
        return self.bbook_pnl_change + self.hedge_pnl_change

    @property
    def hedge_coverage(self) -> Decimal | None:
        if not self.users_net_size:
            return None
        return (self.hedge_size / self.users_net_size).quantize(RATIO_Q)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["platform_pnl_change"] = self.platform_pnl_change
        out["hedge_coverage"] = self.hedge_coverage
        return out


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
    per_asset: dict[str, AssetStress] = field(default_factory=dict)
    positions_evaluated: int = 0

    @property
    def liquidation_count(self) -> int:
        return len(self.liquidated_position_ids)

    @property
    def liquidation_notional(self) -> Decimal:
        return sum((Decimal(v["notional"]) for v in self.liquidations.values()), ZERO)

    @property
    def platform_pnl_change(self) -> Decimal:
        """B-book + hedge P&L change (before bankrupt remainders, which the reserve absorbs)."""
        return self.bbook_pnl_change + self.hedge_pnl_change

    @property
    def hedge_coverage(self) -> Decimal | None:
        """Share of the B-book's P&L change the hedge offsets (None when the B-book does not move)."""
        if not self.bbook_pnl_change:
            return None
        return (-self.hedge_pnl_change / self.bbook_pnl_change).quantize(RATIO_Q)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["liquidation_count"] = self.liquidation_count
        out["liquidation_notional"] = self.liquidation_notional
        out["platform_pnl_change"] = self.platform_pnl_change
        out["hedge_coverage"] = self.hedge_coverage
        out["per_asset"] = [row.as_dict() for _, row in sorted(self.per_asset.items())]
        return out


def stress_run(*, shocks: dict[str, Decimal]) -> StressResult:
    """Evaluate ``shocks`` (asset → relative move, e.g. ``Decimal("-0.15")``) against current state."""
    positions = open_positions()
    hedges = _hedge_sizes()
    assets = {p.asset for p in positions} | set(shocks) | set(hedges)
    before = effective_marks(assets)
    after = {a: m * (1 + shocks.get(a, ZERO)) for a, m in before.items()}
    result = StressResult(
        shocks=dict(shocks), marks_before=before, marks_after=after, positions_evaluated=len(positions)
    )
    rows = {
        a: AssetStress(asset=a, shock=shocks.get(a, ZERO), mark_before=before.get(a), mark_after=after.get(a))
        for a in sorted(assets)
    }
    result.per_asset = rows

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
        notional = p.size * mark
        venue = venues[p.source]
        venue["count"] = int(venue["count"]) + 1
        venue["notional"] = Decimal(venue["notional"]) + notional
        row = rows[p.asset]
        row.liquidations += 1
        row.liquidation_notional += notional
        row.liquidations_by_venue[p.source] = row.liquidations_by_venue.get(p.source, 0) + 1
        result.liquidated_position_ids.append(pid)
        if p.margin_mode == MarginMode.ISOLATED:
            loss = -Decimal(SIGN[p.direction]) * (mark - p.entry_price) * p.size
            bankrupt = max(ZERO, loss - p.isolated_margin)
            row.bankrupt += bankrupt
            result.bankrupt_total += bankrupt
    result.liquidations = dict(venues)

    # users' INTERNAL uPnL change is the B-book's P&L change with the opposite sign
    for p in positions:
        row = rows[p.asset]
        row.positions += 1
        if p.source != Source.INTERNAL:
            continue
        signed = Decimal(SIGN[p.direction]) * p.size
        row.users_net_size += signed
        if p.asset in after:
            row.bbook_pnl_change -= signed * (after[p.asset] - before[p.asset])
    for asset, row in rows.items():
        if asset in before:
            row.net_exposure = row.users_net_size * before[asset]
            row.net_exposure_after = row.users_net_size * after[asset]
            row.hedge_size = hedges.get(asset, ZERO)
            row.hedge_notional = row.hedge_size * before[asset]
            row.hedge_pnl_change = row.hedge_size * (after[asset] - before[asset])
        result.bbook_pnl_change += row.bbook_pnl_change
        result.hedge_pnl_change += row.hedge_pnl_change

    result.reserve_before = account_balance(AccountRef.platform(AccountKind.RISK_RESERVE))
    result.reserve_after = result.reserve_before - result.bankrupt_total
    for account in ("trading", "hedge"):
        result.hl_margin_ratios[account] = _margin_ratio_after(account, before, after)
    return result


def _hedge_sizes() -> dict[str, Decimal]:
    """The hedge account's signed size per asset (its mirror)."""
    return dict(HedgePosition.objects.exclude(size=0).values_list("asset", "size"))


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
