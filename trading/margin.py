"""Hyperliquid's margin model in plain Decimal arithmetic: margin tables, position quantities,
isolated margin, the equity = MM solver, and HL's tick and lot rules.

The pure core behind pre-trade checks, liquidation detection and the displayed liquidation price
(spec 03; style rules 7 and 11): no Django, no I/O, no floats. Every public function runs in the fixed
decimal context of :mod:`trading.margin_decimal`. Cross margin, built on these pieces, is in
:mod:`trading.margin_cross`.

Sizes are unsigned; the direction travels separately as :class:`Side`. Nothing here quantizes money
on its own — the ledger decides when to apply :func:`q_usdc` and in which direction.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import IntEnum
from typing import Any

from trading.margin_decimal import (
    checked_leverage,
    decimals_of,
    exact,
    finite,
    hl_decimal,
    non_negative,
    positive,
)

__all__ = [
    "MAX_PRICE_SIGNIFICANT_FIGURES",
    "PERP_MAX_PRICE_DECIMALS",
    "SINGLE_TIER_TABLE_IDS_BELOW",
    "SPOT_MAX_PRICE_DECIMALS",
    "USDC_QUANTUM",
    "MarginTable",
    "MarginTier",
    "PriceLeg",
    "Side",
    "floor_size",
    "funding_payment",
    "initial_margin",
    "is_valid_price",
    "is_valid_size",
    "isolated_equity",
    "isolated_is_liquidatable",
    "isolated_liquidation_price",
    "isolated_removable_margin",
    "maintenance_margin",
    "maintenance_margin_rate",
    "margin_roots",
    "margin_tables_from_meta",
    "meets_min_order_value",
    "notional",
    "q_usdc",
    "round_price",
    "round_size",
    "unrealized_pnl",
]

USDC_QUANTUM = Decimal("0.000001")
"""USDC has 6 decimals on HL and on chain; the one quantum for USDC amounts (style rule 7)."""

SINGLE_TIER_TABLE_IDS_BELOW = 50
"""HL: a ``marginTableId`` below 50 is a single tier whose max leverage is the id itself."""

MAX_PRICE_SIGNIFICANT_FIGURES = 5
PERP_MAX_PRICE_DECIMALS = 6
SPOT_MAX_PRICE_DECIMALS = 8

# Tier boundaries are compared with this slack: a root that lies exactly on a boundary is computed
# from both neighbouring tiers, and either computation may land a hair on the wrong side.
_BOUNDARY_SLACK = Decimal("1e-40")

_ZERO = Decimal(0)
_ONE = Decimal(1)


# --------------------------------------------------------------------------------------------------
# Direction


class Side(IntEnum):
    """Position direction: the sign in uPnL = direction × (mark − entry) × size (spec 03)."""

    LONG = 1
    SHORT = -1

    @classmethod
    def of_signed_size(cls, szi: Decimal) -> Side:
        """The side of HL's signed ``szi`` (positive long, negative short; zero has no side)."""
        if finite(szi, "szi") == 0:
            raise ValueError("a zero size has no side")
        return cls.LONG if szi > 0 else cls.SHORT


# --------------------------------------------------------------------------------------------------
# Margin tables


@exact
def maintenance_margin_rate(max_leverage: int) -> Decimal:
    """``mmr = 1 / (2 L)``: half the initial margin rate at the tier's max leverage (spec 03)."""
    return _ONE / (2 * checked_leverage(max_leverage, "max_leverage"))


@dataclass(frozen=True, slots=True)
class MarginTier:
    """One row of an HL margin table: from ``lower_bound`` of notional on, at most ``max_leverage``."""

    lower_bound: Decimal
    max_leverage: int

    def __post_init__(self) -> None:
        non_negative(self.lower_bound, "lower_bound")
        checked_leverage(self.max_leverage, "max_leverage")

    @property
    def mmr(self) -> Decimal:
        return maintenance_margin_rate(self.max_leverage)


@dataclass(frozen=True)
class MarginTable:
    """HL's tiered maintenance margin (spec 03, spec 09 ``meta.marginTables``).

    ``leverage_cap`` is the asset's own ``maxLeverage`` from ``meta.universe``. HL's docs state that
    the maintenance rate and deduction "depend only on the margin tiers, not the asset", so the cap
    limits the leverage a trader may choose (:meth:`max_leverage_at`) and never the MM.
    """

    tiers: tuple[MarginTier, ...]
    leverage_cap: int | None = None
    _bounds: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    _mmrs: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    _deductions: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tiers = tuple(self.tiers)
        if not tiers:
            raise ValueError("a margin table needs at least one tier")
        if tiers[0].lower_bound != 0:
            # Below the first bound MM would be undefined; HL's tables all start at 0.
            raise ValueError(f"the first tier must start at 0, got {tiers[0].lower_bound}")
        bounds = tuple(tier.lower_bound for tier in tiers)
        if any(lower >= upper for lower, upper in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"tier lower bounds must be strictly increasing, got {bounds}")
        if self.leverage_cap is not None:
            checked_leverage(self.leverage_cap, "leverage_cap")
        mmrs = tuple(tier.mmr for tier in tiers)
        object.__setattr__(self, "tiers", tiers)
        object.__setattr__(self, "_bounds", bounds)
        object.__setattr__(self, "_mmrs", mmrs)
        object.__setattr__(self, "_deductions", _deductions(bounds, mmrs))

    @classmethod
    def single(cls, max_leverage: int) -> MarginTable:
        """One tier from 0: what an HL table id below 50 means (spec 03)."""
        return cls(tiers=(MarginTier(lower_bound=_ZERO, max_leverage=max_leverage),))

    @classmethod
    def from_hl(cls, table_json: Mapping[str, Any], *, leverage_cap: int | None = None) -> MarginTable:
        """Parse HL's ``{"description": …, "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 40}, …]}``.

        Bounds go straight from HL's strings to Decimal (style rule 7); tiers are sorted by bound
        because nothing in HL's schema promises an order.
        """
        raw_tiers = table_json.get("marginTiers")
        if not isinstance(raw_tiers, Sequence) or isinstance(raw_tiers, str):
            raise ValueError("marginTiers must be a list")
        tiers = [
            MarginTier(
                lower_bound=hl_decimal(raw["lowerBound"], "lowerBound"),
                max_leverage=checked_leverage(raw["maxLeverage"], "maxLeverage"),
            )
            for raw in raw_tiers
        ]
        tiers.sort(key=lambda tier: tier.lower_bound)
        return cls(tiers=tuple(tiers), leverage_cap=leverage_cap)

    @classmethod
    def for_asset(
        cls, margin_table_id: int, max_leverage: int, tables: Mapping[int, MarginTable]
    ) -> MarginTable:
        """The table of one ``meta.universe`` entry: ids below 50 are single-tier at L = id (spec 03)."""
        checked_leverage(max_leverage, "max_leverage")
        if isinstance(margin_table_id, bool) or not isinstance(margin_table_id, int) or margin_table_id < 1:
            raise ValueError(f"margin_table_id must be a positive int, got {margin_table_id!r}")
        if margin_table_id < SINGLE_TIER_TABLE_IDS_BELOW:
            base = cls.single(margin_table_id)
        else:
            try:
                base = tables[margin_table_id]
            except KeyError:
                raise ValueError(f"margin table {margin_table_id} is not in meta.marginTables") from None
        return cls(tiers=base.tiers, leverage_cap=max_leverage)

    def tier_index(self, notional: Decimal) -> int:
        """Index of the tier whose ``lowerBound`` ≤ notional (the bound itself belongs to the tier)."""
        non_negative(notional, "notional")
        return bisect_right(self._bounds, notional) - 1

    def tier_for(self, notional: Decimal) -> tuple[Decimal, Decimal]:
        """``(mmr, deduction)`` of the tier that applies at ``notional`` (spec 03)."""
        index = self.tier_index(notional)
        return self._mmrs[index], self._deductions[index]

    def max_leverage_at(self, notional: Decimal) -> int:
        """The most leverage a position of this notional may use: its tier's, capped by the asset's."""
        tier_max = self.tiers[self.tier_index(notional)].max_leverage
        return tier_max if self.leverage_cap is None else min(tier_max, self.leverage_cap)

    def _terms(self) -> tuple[tuple[Decimal, Decimal, Decimal], ...]:
        return tuple(zip(self._bounds, self._mmrs, self._deductions, strict=True))


@exact
def _deductions(bounds: tuple[Decimal, ...], mmrs: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
    # deduction_n = deduction_(n−1) + lowerBound_n × (mmr_n − mmr_(n−1)) keeps MM continuous at
    # every bound (spec 03): a position crossing a bound never jumps into liquidation.
    deductions = [_ZERO]
    for index in range(1, len(bounds)):
        deductions.append(deductions[-1] + bounds[index] * (mmrs[index] - mmrs[index - 1]))
    return tuple(deductions)


def margin_tables_from_meta(meta: Mapping[str, Any]) -> dict[int, MarginTable]:
    """``meta.marginTables`` — ``[[id, {description, marginTiers}], …]`` — keyed by id (spec 09)."""
    tables: dict[int, MarginTable] = {}
    for entry in meta.get("marginTables", ()):
        table_id, table_json = entry
        tables[checked_leverage(table_id, "margin table id")] = MarginTable.from_hl(table_json)
    return tables


# --------------------------------------------------------------------------------------------------
# Position quantities


@exact
def notional(size: Decimal, price: Decimal) -> Decimal:
    """notional = size × price (spec 03); size is unsigned."""
    return non_negative(size, "size") * non_negative(price, "price")


@exact
def maintenance_margin(notional: Decimal, table: MarginTable) -> Decimal:
    """MM = notional × mmr − deduction for the tier containing ``notional`` (spec 03)."""
    mmr, deduction = table.tier_for(notional)
    return notional * mmr - deduction


@exact
def initial_margin(size: Decimal, price: Decimal, leverage: int) -> Decimal:
    """IM = size × price / leverage (spec 03)."""
    return notional(size, price) / checked_leverage(leverage)


@exact
def unrealized_pnl(side: Side, entry: Decimal, mark: Decimal, size: Decimal) -> Decimal:
    """uPnL = direction × (mark − entry) × size (spec 03)."""
    positive(entry, "entry")
    positive(mark, "mark")
    return (mark - entry) * non_negative(size, "size") * Side(side)


@exact
def meets_min_order_value(size: Decimal, price: Decimal, min_order_value: Decimal) -> bool:
    """HL rejects orders under a minimum value ($10 today); operators configure ours (spec 02, 09)."""
    return notional(size, price) >= non_negative(min_order_value, "min_order_value")


@exact
def funding_payment(side: Side, size: Decimal, oracle_price: Decimal, rate: Decimal) -> Decimal:
    """The signed funding cash flow of one position: payment = size × oracle × rate (spec 09).

    A positive rate means longs pay shorts, so the result is negative (paid) for a long and positive
    (received) for a short; a negative rate reverses both.
    """
    amount = non_negative(size, "size") * positive(oracle_price, "oracle_price") * finite(rate, "rate")
    return -amount * Side(side)


# --------------------------------------------------------------------------------------------------
# Solving equity = MM


@dataclass(frozen=True, slots=True)
class PriceLeg:
    """A position whose mark moves with the solved price P."""

    direction: int
    size: Decimal
    entry: Decimal
    table: MarginTable


def margin_roots(constant: Decimal, legs: Sequence[PriceLeg]) -> list[Decimal]:
    """Every price P > 0 with ``constant + Σ [dir·(P − entry)·size − MM(size·P)] = 0``.

    Between two consecutive tier boundaries (the prices ``lowerBound / size`` of every leg) each leg
    stays in one tier, so the left side is linear in P there and has a closed-form root; a root only
    counts if it falls inside the stretch whose tiers produced it (spec 03: "solve per tier").
    """
    breaks = sorted({bound / leg.size for leg in legs for bound in leg.table._bounds[1:]})
    edges = [_ZERO, *breaks]
    roots: list[Decimal] = []
    for index, low in enumerate(edges):
        high = edges[index + 1] if index + 1 < len(edges) else None
        # Tiers are looked up strictly inside the stretch: size × (bound/size) can round to just
        # under the bound and pick the tier below.
        if high is not None:
            probe = (low + high) / 2
        else:
            probe = low * 2 if low > 0 else _ONE
        slope = _ZERO
        intercept = constant
        for leg in legs:
            mmr, deduction = leg.table.tier_for(leg.size * probe)
            slope += leg.size * (leg.direction - mmr)
            intercept += deduction - leg.direction * leg.entry * leg.size
        if slope == 0:
            continue
        root = -intercept / slope
        if root <= 0:
            continue
        if root < low * (_ONE - _BOUNDARY_SLACK):
            continue
        if high is not None and root > high * (_ONE + _BOUNDARY_SLACK):
            continue
        if roots and abs(root - roots[-1]) <= roots[-1] * _BOUNDARY_SLACK:
            continue
        roots.append(root)
    return roots


# --------------------------------------------------------------------------------------------------
# Isolated margin


@exact
def isolated_equity(isolated_margin: Decimal, upnl: Decimal) -> Decimal:
    """equity = isolated_margin + unrealized P&L (spec 03, isolated positions)."""
    return finite(isolated_margin, "isolated_margin") + finite(upnl, "upnl")


@exact
def isolated_is_liquidatable(
    side: Side,
    entry: Decimal,
    mark: Decimal,
    size: Decimal,
    isolated_margin: Decimal,
    table: MarginTable,
) -> bool:
    """Liquidate when equity ≤ MM at the mark (spec 03, isolated positions)."""
    equity = isolated_equity(isolated_margin, unrealized_pnl(side, entry, mark, size))
    return equity <= maintenance_margin(notional(size, mark), table)


@exact
def isolated_liquidation_price(
    side: Side,
    entry: Decimal,
    size: Decimal,
    isolated_margin: Decimal,
    table: MarginTable,
) -> Decimal | None:
    """The mark at which equity = MM for an isolated position (spec 03), unrounded.

    Within one tier this is the closed form of spec 03 with the tier's deduction folded in:
    long ``(entry − (margin + deduction)/size) / (1 − mmr)``, short
    ``(entry + (margin + deduction)/size) / (1 + mmr)``; with a single tier the deduction is 0 and
    these are exactly spec 03's formulas. Each tier's candidate is kept only if the notional at
    that price lies in that tier. Equity − MM is strictly monotonic in the mark (mmr ≤ ½ < 1) and
    MM is continuous, so there is at most one such price.

    ``None`` when no positive price exists — a long whose margin covers its whole notional can
    never be liquidated. Funding paid lowers ``isolated_margin`` and so raises a long's price.
    """
    positive(entry, "entry")
    positive(size, "size")
    finite(isolated_margin, "isolated_margin")
    roots = margin_roots(isolated_margin, [PriceLeg(Side(side), size, entry, table)])
    return roots[0] if roots else None


@exact
def isolated_removable_margin(
    side: Side,
    entry: Decimal,
    mark: Decimal,
    size: Decimal,
    isolated_margin: Decimal,
    leverage: int,
) -> Decimal:
    """The most margin a user may remove: equity must stay ≥ IM at the current mark (spec 03)."""
    equity = isolated_equity(isolated_margin, unrealized_pnl(side, entry, mark, size))
    headroom = equity - initial_margin(size, mark, leverage)
    return max(_ZERO, min(isolated_margin, headroom))


# --------------------------------------------------------------------------------------------------
# Tick and lot rules (spec 02, spec 09)


def _sz_decimals(sz_decimals: int) -> int:
    if isinstance(sz_decimals, bool) or not isinstance(sz_decimals, int) or sz_decimals < 0:
        raise ValueError(f"sz_decimals must be a non-negative int, got {sz_decimals!r}")
    return sz_decimals


@exact
def is_valid_size(size: Decimal, sz_decimals: int) -> bool:
    """HL accepts an order size > 0 that is a multiple of 10^−szDecimals (spec 02, 09)."""
    if not isinstance(size, Decimal) or not size.is_finite() or size <= 0:
        return False
    return decimals_of(size) <= _sz_decimals(sz_decimals)


@exact
def round_size(size: Decimal, sz_decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Size to ``szDecimals`` places, half-even by default — what the SDK's ``round(sz, szDecimals)``
    does. May return 0: the caller rejects it (INVALID_SIZE) rather than trade a different size.
    """
    finite(size, "size")
    return size.quantize(_ONE.scaleb(-_sz_decimals(sz_decimals)), rounding=rounding)


def floor_size(size: Decimal, sz_decimals: int) -> Decimal:
    """Size truncated toward zero to ``szDecimals`` places, for closes and for sizing from a budget
    (margin, balance, position) that a rounded-up size would overshoot.
    """
    return round_size(size, sz_decimals, rounding=ROUND_DOWN)


def _max_price_decimals(sz_decimals: int, max_decimals: int) -> int:
    return max(0, max_decimals - _sz_decimals(sz_decimals))


@exact
def is_valid_price(px: Decimal, sz_decimals: int, max_decimals: int = PERP_MAX_PRICE_DECIMALS) -> bool:
    """HL's tick rule (spec 02, 09): a positive price with at most 5 significant figures and at most
    ``6 − szDecimals`` decimals (``8 −`` for spot); any integer price is valid regardless.
    """
    if not isinstance(px, Decimal) or not px.is_finite() or px <= 0:
        return False
    if px == px.to_integral_value():
        return True
    places = decimals_of(px)
    significant = len(px.normalize().as_tuple().digits)
    return (
        places <= _max_price_decimals(sz_decimals, max_decimals)
        and significant <= MAX_PRICE_SIGNIFICANT_FIGURES
    )


@exact
def round_price(
    px: Decimal,
    sz_decimals: int,
    rounding: str = ROUND_HALF_EVEN,
    max_decimals: int = PERP_MAX_PRICE_DECIMALS,
) -> Decimal:
    """The nearest valid HL price (see :func:`is_valid_price`), in one rounding step.

    Both limits are a number of decimal places (5 significant figures of a price whose leading digit
    is at 10^a leave 4 − a decimals), so the stricter one is applied once. Prices of 100,000 and up
    round to an integer — valid on HL — where the SDK's ``f"{px:.5g}"`` would also drop units; both
    are accepted, ours moves the price less. Pass ``rounding=ROUND_CEILING``/``ROUND_FLOOR`` to keep
    a slippage bound on the safe side. May return 0 for a price below the smallest tick.
    """
    positive(px, "px")
    places = min(_max_price_decimals(sz_decimals, max_decimals), max(0, 4 - px.adjusted()))
    return px.quantize(_ONE.scaleb(-places), rounding=rounding)


@exact
def q_usdc(amount: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """An amount on the USDC quantum (6 dp); the ledger picks the rounding direction (style rule 7)."""
    return finite(amount, "amount").quantize(USDC_QUANTUM, rounding=rounding)
