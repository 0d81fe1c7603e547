"""The hedge policy (spec 05), as pure functions over Decimals — no Django, no I/O.

Exposure → target hedge → the order to send. Signs: a positive net exposure means users are net long
(the platform is net short); the hedge takes the users' direction, so a positive target is a long hedge.

* Tiers (configurable): |exposure| < 100k → none; ≥ 100k → 50 %; ≥ 500k → 80 %; > 1M → 80 % and stop
  internalizing the asset.
* Act on the gap = target − current hedge, ignoring gaps below a minimum (e.g. $1,000; never below
  HL's $10). Reducing a hedge (de-hedging) is limited to a budget per minute per asset.
* Leverage ladder by hedge notional (≤ 300k 2x, ≤ 600k 3x, above 5x), never above the hard cap (5x).
* Capacity: when the hedge account cannot carry every target, the largest exposures are covered
  first; the rest are reported uncovered (the engine sends them to HL_MODE and alerts).
* Orders are IOC limits at mark ± max slippage, split across the visible book when it is thin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Tier:
    threshold: Decimal  # |net exposure| at or above which the ratio applies
    ratio: Decimal


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    tiers: tuple[Tier, ...] = (Tier(Decimal(100_000), Decimal("0.5")), Tier(Decimal(500_000), Decimal("0.8")))
    stop_internalization_above: Decimal = Decimal(1_000_000)
    min_order_notional: Decimal = Decimal(1_000)
    venue_min_notional: Decimal = Decimal(10)
    leverage_ladder: tuple[tuple[Decimal, int], ...] = ((Decimal(300_000), 2), (Decimal(600_000), 3))
    leverage_above_ladder: int = 5
    max_leverage: int = 5  # hard cap (spec 10: hedge_max_leverage, never above 5)
    max_slippage: Decimal = Decimal("0.01")
    dehedge_per_minute: Decimal = Decimal(200_000)
    stop_loss_margin_fraction: Decimal = Decimal("0.5")

    def __post_init__(self) -> None:
        thresholds = [t.threshold for t in self.tiers]
        if thresholds != sorted(thresholds) or any(t.ratio < 0 or t.ratio > 1 for t in self.tiers):
            raise ValueError("tiers must be sorted by threshold with ratios in [0, 1]")
        if not 1 <= self.max_leverage <= 5:
            raise ValueError("the hedge leverage cap is at most 5x")


@dataclass(frozen=True, slots=True)
class Target:
    notional: Decimal  # signed: + long hedge (users net long), − short hedge
    ratio: Decimal
    stop_internalizing: bool


def target_hedge(net_exposure: Decimal, policy: HedgePolicy) -> Target:
    size = abs(net_exposure)
    ratio = ZERO
    for tier in policy.tiers:
        if size >= tier.threshold:
            ratio = tier.ratio
    sign = Decimal(1) if net_exposure >= 0 else Decimal(-1)
    return Target(sign * size * ratio, ratio, size > policy.stop_internalization_above)


def leverage_for(hedge_notional: Decimal, policy: HedgePolicy) -> int:
    notional = abs(hedge_notional)
    leverage = policy.leverage_above_ladder
    for ceiling, lev in policy.leverage_ladder:
        if notional <= ceiling:
            leverage = lev
            break
    return max(1, min(leverage, policy.max_leverage))


@dataclass(frozen=True, slots=True)
class Plan:
    """Change the hedge by ``notional`` (signed: + buy, − sell) at ``limit_price``; ``reduces`` when it
    moves the hedge toward zero (a de-hedge, rate limited)."""

    notional: Decimal
    size: Decimal
    is_buy: bool
    limit_price: Decimal
    reduces: bool
    leverage: int


def plan_order(
    *,
    target: Decimal,
    current: Decimal,
    mark: Decimal,
    sz_decimals: int,
    policy: HedgePolicy,
    dehedge_used_last_minute: Decimal = ZERO,
) -> Plan | None:
    """The one order that moves the hedge from ``current`` toward ``target`` (both signed notionals at
    mark), or None when the gap is too small or the de-hedge budget is spent."""
    if mark <= 0:
        raise ValueError("mark must be positive")
    gap = target - current
    reduces = abs(target) < abs(current) and (target == 0 or (target > 0) == (current > 0))
    if reduces:
        budget = max(ZERO, policy.dehedge_per_minute - dehedge_used_last_minute)
        if abs(gap) > budget:
            gap = budget if gap > 0 else -budget
    minimum = max(policy.min_order_notional, policy.venue_min_notional)
    if abs(gap) < minimum:
        return None
    step = Decimal(1).scaleb(-sz_decimals)
    size = (abs(gap) / mark).quantize(step, rounding=ROUND_DOWN)
    if size <= 0 or size * mark < policy.venue_min_notional:
        return None
    is_buy = gap > 0
    slip = Decimal(1) + policy.max_slippage if is_buy else Decimal(1) - policy.max_slippage
    limit = round_price_away(mark * slip, sz_decimals, up=is_buy)
    return Plan(gap, size, is_buy, limit, reduces, leverage_for(target, policy))


def round_price_away(px: Decimal, sz_decimals: int, *, up: bool) -> Decimal:
    """HL price rules (≤ 5 significant figures, ≤ 6 − szDecimals decimals), rounded away from the
    market so a hedge IOC is never less aggressive than intended."""
    if px <= 0:
        raise ValueError("price must be positive")
    rounding = ROUND_UP if up else ROUND_DOWN
    max_decimals = 6 - sz_decimals
    digits = px.adjusted() + 1  # digits before the decimal point
    decimals = min(max_decimals, max(0, 5 - digits))
    value = px.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)
    if value.adjusted() + 1 > digits and value.adjusted() + 1 <= 5:  # rounding up gained a digit
        value = value.quantize(
            Decimal(1).scaleb(-min(max_decimals, max(0, 5 - (value.adjusted() + 1)))), rounding=rounding
        )
    if digits > 5:  # integers are always valid, but keep 5 significant figures for large prices
        value = px.quantize(Decimal(1), rounding=rounding)
    if value <= 0:  # below one tick: the smallest valid price
        value = Decimal(1).scaleb(-max_decimals)
    return value


@dataclass(frozen=True, slots=True)
class Allocation:
    covered: dict[str, Decimal]  # asset → hedge notional the account can carry (signed)
    uncovered: dict[str, Decimal]  # asset → target notional left uncovered (signed)
    margin_needed: Decimal
    top_up: Decimal  # extra account value that would cover everything


def allocate(targets: Mapping[str, Decimal], *, available_margin: Decimal, policy: HedgePolicy) -> Allocation:
    """Cover the largest exposures first with the margin the hedge account has (spec 05 capacity).
    An asset is covered fully or not at all, so what is hedged is hedged at its tier ratio."""
    covered: dict[str, Decimal] = {}
    uncovered: dict[str, Decimal] = {}
    used = ZERO
    total_needed = ZERO
    for asset, notional in sorted(targets.items(), key=lambda kv: (-abs(kv[1]), kv[0])):
        need = abs(notional) / leverage_for(notional, policy) if notional else ZERO
        total_needed += need
        if used + need <= available_margin:
            covered[asset] = notional
            used += need
        else:
            uncovered[asset] = notional
    return Allocation(covered, uncovered, total_needed, max(ZERO, total_needed - available_margin))


def split_across_book(
    size: Decimal,
    levels: Sequence[tuple[Decimal, Decimal]],
    *,
    limit: Decimal,
    is_buy: bool,
    max_chunks: int = 5,
) -> list[Decimal]:
    """Chunks no larger than the visible liquidity within the limit price (thin book), at most
    ``max_chunks``; the last chunk takes the remainder (the IOC takes what is there)."""
    within = sum((sz for px, sz in levels if (px <= limit if is_buy else px >= limit)), ZERO)
    if within <= 0 or size <= within:
        return [size]
    chunks: list[Decimal] = []
    remaining = size
    while remaining > 0 and len(chunks) < max_chunks - 1:
        chunk = min(within, remaining)
        chunks.append(chunk)
        remaining -= chunk
    if remaining > 0:
        chunks.append(remaining)
    return chunks


def stop_loss_triggered(*, unrealized_pnl: Decimal, margin: Decimal, policy: HedgePolicy) -> bool:
    """A hedge position losing more than half its margin is reduced (spec 05)."""
    return margin > 0 and -unrealized_pnl > margin * policy.stop_loss_margin_fraction


def health_level(margin_ratio: Decimal | None) -> str:
    """Hedge account margin ratio (account value / maintenance margin used) → spec 05 level."""
    if margin_ratio is None or margin_ratio > Decimal(5):
        return "safe"
    if margin_ratio >= Decimal(3):
        return "watch"
    if margin_ratio >= Decimal(2):
        return "alert"  # < 300 %: top-up request
    if margin_ratio >= Decimal("1.5"):
        return "deleverage"  # < 200 %: P0 + de-leverage
    return "halt"  # < 150 %: P0 + halt new HL opens


def net_exposure(positions: Iterable[tuple[int, Decimal, Decimal]]) -> Decimal:
    """Σ direction × size × mark over INTERNAL positions (users' view: + = users net long)."""
    return sum((Decimal(direction) * size * mark for direction, size, mark in positions), ZERO)
