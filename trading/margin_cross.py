"""Cross margin in plain Decimal arithmetic (spec 03, cross positions): one account's equity, margin
and withdrawable figures, the per-asset cross liquidation price, and the liquidation plan.

Pure, like :mod:`trading.margin` that it builds on: no Django, no I/O, no floats; every public function
runs in the fixed decimal context of :mod:`trading.margin_decimal`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from trading.margin import (
    MarginTable,
    PriceLeg,
    Side,
    initial_margin,
    maintenance_margin,
    margin_roots,
    notional,
    unrealized_pnl,
)
from trading.margin_decimal import checked_leverage, exact, finite, non_negative, positive

__all__ = [
    "CrossAccount",
    "CrossPosition",
    "CrossSummary",
    "cross_account",
    "cross_liquidation_order",
    "cross_liquidation_plan",
    "cross_liquidation_price",
]

_ZERO = Decimal(0)


@dataclass(frozen=True)
class CrossPosition:
    """One cross-margin position at a mark snapshot (spec 03, cross positions).

    ``ref`` is the caller's own identifier (a position id), carried through untouched so that a
    liquidation plan can be mapped back to rows; two positions of one asset from different sources
    can coexist (spec 02) and are otherwise indistinguishable.
    """

    asset: str
    side: Side
    size: Decimal
    entry: Decimal
    mark: Decimal
    leverage: int
    table: MarginTable
    ref: Hashable = None

    def __post_init__(self) -> None:
        if not self.asset:
            raise ValueError("asset is required")
        object.__setattr__(self, "side", Side(self.side))
        positive(self.size, "size")
        positive(self.entry, "entry")
        positive(self.mark, "mark")
        checked_leverage(self.leverage)

    @property
    def notional(self) -> Decimal:
        return notional(self.size, self.mark)

    @property
    def unrealized_pnl(self) -> Decimal:
        return unrealized_pnl(self.side, self.entry, self.mark, self.size)

    @property
    def maintenance_margin(self) -> Decimal:
        return maintenance_margin(self.notional, self.table)

    @property
    def initial_margin(self) -> Decimal:
        """Margin in use at the current mark, as HL reports a cross position's ``marginUsed``."""
        return initial_margin(self.size, self.mark, self.leverage)


@dataclass(frozen=True)
class CrossSummary:
    """The cross-margin figures of spec 03 for one account at one mark snapshot."""

    equity: Decimal
    maintenance_margin: Decimal
    initial_margin_used: Decimal
    available_to_trade: Decimal
    withdrawable: Decimal
    liquidatable: bool


@dataclass(frozen=True)
class CrossAccount:
    """A user's cross-margin book: cash, cross positions and open-order holds.

    ``cash_collateral`` is the user's cash not locked in isolated margin, *including* what open
    orders hold: equity is cash + uPnL and orders never lower it (as on HL, where ``accountValue``
    ignores resting orders), while ``order_holds`` is subtracted from what can still be traded or
    withdrawn. Counting holds in both places would charge them twice.
    """

    cash_collateral: Decimal
    positions: tuple[CrossPosition, ...] = ()
    order_holds: Decimal = _ZERO

    def __post_init__(self) -> None:
        finite(self.cash_collateral, "cash_collateral")
        non_negative(self.order_holds, "order_holds")
        object.__setattr__(self, "positions", tuple(self.positions))

    def summary(self) -> CrossSummary:
        return cross_account(self.cash_collateral, self.positions, self.order_holds)


@exact
def cross_account(
    cash_collateral: Decimal,
    positions: Iterable[CrossPosition],
    order_holds: Decimal = _ZERO,
) -> CrossSummary:
    """Spec 03, cross positions.

    * equity = cash + Σ uPnL; liquidatable when equity ≤ Σ MM (and there is a position at all).
    * available to trade = max(0, equity − Σ IM − order holds).
    * withdrawable = max(0, min(available, cash − order holds − Σ IM)): unrealized profit is never
      withdrawable, unrealized loss always counts.

    See :class:`CrossAccount` for what ``cash_collateral`` includes.
    """
    finite(cash_collateral, "cash_collateral")
    non_negative(order_holds, "order_holds")
    held = tuple(positions)
    equity = cash_collateral + sum((p.unrealized_pnl for p in held), _ZERO)
    mm = sum((p.maintenance_margin for p in held), _ZERO)
    im = sum((p.initial_margin for p in held), _ZERO)
    available = max(_ZERO, equity - im - order_holds)
    withdrawable = max(_ZERO, min(available, cash_collateral - order_holds - im))
    return CrossSummary(
        equity=equity,
        maintenance_margin=mm,
        initial_margin_used=im,
        available_to_trade=available,
        withdrawable=withdrawable,
        liquidatable=bool(held) and equity <= mm,
    )


def stand_in_marks(entries: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    """Per asset, the mark to use where none is known (Redis lost the quotes, a breaker holds the
    price): the entry of the asset's first position in ``entries`` (``(asset, entry)`` pairs). One value
    per asset, never each position's own entry: every position in an asset moves with one mark, and
    ``cross_liquidation_price`` refuses a snapshot that mixes marks."""
    marks: dict[str, Decimal] = {}
    for asset, entry in entries:
        marks.setdefault(asset, entry)
    return marks


@exact
def cross_liquidation_price(account: CrossAccount, asset: str) -> Decimal | None:
    """The mark of ``asset`` at which the account's equity equals its MM, every other mark held
    fixed — HL's per-position cross liquidation price (spec 03), unrounded.

    Every position in ``asset`` moves with that mark (an INTERNAL and a HYPERLIQUID position of one
    asset share it). With one-way positions there is at most one such price; an opposite-direction
    pair of one asset can have two, and the one nearer the current mark is returned because the
    market reaches it first. ``None`` if no positive price exists.
    """
    moving = [p for p in account.positions if p.asset == asset]
    if not moving:
        raise ValueError(f"no cross position in {asset}")
    marks = {p.mark for p in moving}
    if len(marks) != 1:
        # One decision, one snapshot of marks (spec 03); disagreeing marks mean a mixed snapshot.
        raise ValueError(f"positions in {asset} carry different marks: {sorted(marks)}")
    current_mark = moving[0].mark
    fixed = [p for p in account.positions if p.asset != asset]
    constant = account.cash_collateral + sum((p.unrealized_pnl - p.maintenance_margin for p in fixed), _ZERO)
    legs = [PriceLeg(p.side, p.size, p.entry, p.table) for p in moving]
    roots = margin_roots(constant, legs)
    if not roots:
        return None
    return min(roots, key=lambda root: abs(root - current_mark))


def cross_liquidation_order(positions: Iterable[CrossPosition]) -> tuple[CrossPosition, ...]:
    """Most-losing first (lowest uPnL), ties kept in the given order (spec 03, orchestration)."""
    return tuple(sorted(positions, key=lambda p: p.unrealized_pnl))


@exact
def cross_liquidation_plan(account: CrossAccount) -> tuple[CrossPosition, ...]:
    """The cross positions to close, in order; empty if the account is not liquidatable.

    Spec 03: close the most-losing position, recompute, stop as soon as equity > remaining MM,
    otherwise continue until every cross position is closed. A close at the mark turns that
    position's uPnL into cash, so equity is unchanged and only its MM leaves the account.
    """
    summary = account.summary()
    if not summary.liquidatable:
        return ()
    remaining_mm = summary.maintenance_margin
    plan: list[CrossPosition] = []
    for position in cross_liquidation_order(account.positions):
        plan.append(position)
        remaining_mm -= position.maintenance_margin
        if summary.equity > remaining_mm:
            break
    return tuple(plan)
