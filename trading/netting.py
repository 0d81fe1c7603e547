"""How a fill changes a one-way position (spec 02 / 04), as pure functions over Decimals.

Same side → size grows and the entry becomes the size-weighted average. Opposite side → the position
shrinks (realizing P&L on the closed part at the fill price, the rest keeping its entry), closes, or
flips (the excess opens a new position at the fill price). Isolated margin released on a reduction is
the closed fraction of the position's margin, rounded down so the remainder never goes negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

USDC = Decimal("0.000001")
PRICE = Decimal("0.00000001")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PositionState:
    direction: int  # +1 long, -1 short, 0 flat
    size: Decimal
    entry: Decimal
    isolated_margin: Decimal = ZERO

    @property
    def is_flat(self) -> bool:
        return self.size == ZERO


FLAT = PositionState(0, ZERO, ZERO)


@dataclass(frozen=True, slots=True)
class FillEffect:
    after: PositionState
    opened_size: Decimal  # size added in the fill's direction (increase or the new side of a flip)
    closed_size: Decimal  # size of the old position closed by this fill
    realized_pnl: Decimal  # on the closed size, before fees (USDC, exact to 6 dp, half-even)
    margin_released: Decimal  # isolated margin share of the closed size (USDC, rounded down)
    flipped: bool


def weighted_entry(size_a: Decimal, entry_a: Decimal, size_b: Decimal, entry_b: Decimal) -> Decimal:
    return ((size_a * entry_a + size_b * entry_b) / (size_a + size_b)).quantize(
        PRICE, rounding=ROUND_HALF_EVEN
    )


def initial_margin_for(size: Decimal, price: Decimal, leverage: int) -> Decimal:
    """IM = size × price / leverage, rounded up to the cent-of-a-micro so a position is never under-margined."""
    return (size * price / Decimal(leverage)).quantize(USDC, rounding=ROUND_UP)


def fee_for(size: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    return (size * price * rate).quantize(USDC, rounding=ROUND_HALF_EVEN)


def apply_fill(
    state: PositionState, fill_direction: int, fill_size: Decimal, fill_price: Decimal
) -> FillEffect:
    if fill_direction not in (1, -1):
        raise ValueError("fill direction must be +1 or -1")
    if fill_size <= ZERO or fill_price <= ZERO:
        raise ValueError("fill size and price must be positive")
    if state.is_flat:
        after = PositionState(fill_direction, fill_size, fill_price, ZERO)
        return FillEffect(after, fill_size, ZERO, ZERO, ZERO, False)
    if fill_direction == state.direction:
        after = PositionState(
            state.direction,
            state.size + fill_size,
            weighted_entry(state.size, state.entry, fill_size, fill_price),
            state.isolated_margin,
        )
        return FillEffect(after, fill_size, ZERO, ZERO, ZERO, False)

    closed = min(state.size, fill_size)
    realized = (Decimal(state.direction) * (fill_price - state.entry) * closed).quantize(
        USDC, rounding=ROUND_HALF_EVEN
    )
    if closed == state.size:
        released = state.isolated_margin
    else:
        released = (state.isolated_margin * closed / state.size).quantize(USDC, rounding=ROUND_DOWN)
    remaining = state.size - closed
    excess = fill_size - closed
    if excess > ZERO:
        after = PositionState(fill_direction, excess, fill_price, ZERO)
        return FillEffect(after, excess, closed, realized, released, True)
    if remaining == ZERO:
        return FillEffect(FLAT, ZERO, closed, realized, released, False)
    after = PositionState(state.direction, remaining, state.entry, state.isolated_margin - released)
    return FillEffect(after, ZERO, closed, realized, released, False)


def split_client_loss(loss: Decimal, reserve_share: Decimal) -> tuple[Decimal, Decimal]:
    """Spec 03/05: an INTERNAL client loss goes 80 % to platform P&L and 20 % to the risk reserve (the
    ratio is configurable). Returns (platform part, reserve part); they add up to the loss exactly."""
    if loss < ZERO:
        raise ValueError("loss must be non-negative")
    reserve = (loss * reserve_share).quantize(USDC, rounding=ROUND_HALF_EVEN)
    return loss - reserve, reserve
