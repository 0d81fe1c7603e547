"""The displayed liquidation prices of a user's open positions, recomputed after a liquidation or a
funding settlement changed margin or cash, and the re-check of an isolated position before its close."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from core.money import ZERO
from trading import margin, margin_cross, netting
from trading.account import SIGN as ACCOUNT_SIGN
from trading.account import account_state, mark_of, user_balances
from trading.marketdata import Quote, get_quotes
from trading.models import MarginMode, Position
from wallets.models import AccountKind


def refresh_liquidation_prices(user_id: int) -> None:
    """Recompute the displayed liquidation price of the user's open positions (after a liquidation or
    a funding settlement changed margin or cash)."""
    positions = list(Position.objects.filter(user_id=user_id, status=Position.Status.OPEN))
    if not positions:
        return
    balances = user_balances(user_id)
    changed = _moved_liquidation_prices(
        positions,
        cash=balances.get(AccountKind.CASH, ZERO),
        holds=balances.get(AccountKind.ORDER_HOLD, ZERO),
        quotes=quotes_or_none(sorted({p.asset for p in positions})),
    )
    if changed:
        Position.objects.bulk_update(changed, ["liquidation_price"])


def quotes_or_none(assets: list[str]) -> dict[str, Quote]:
    try:
        return get_quotes(assets) if assets else {}
    except Exception:  # Redis down: entry prices stand in for marks (only cross prices depend on them)
        return {}


def _moved_liquidation_prices(
    positions: list[Position], *, cash: Decimal, holds: Decimal, quotes: dict[str, Quote]
) -> list[Position]:
    """Set the displayed liquidation price of ``positions`` (one user's open ones); returns those
    that moved."""
    state = account_state(cash=cash, order_holds=holds, positions=positions, quotes=quotes)
    changed = []
    for view in state.positions:
        liq = view.liquidation_price.quantize(netting.PRICE) if view.liquidation_price else None
        if view.position.liquidation_price != liq:
            view.position.liquidation_price = liq
            changed.append(view.position)
    return changed


def lean_liquidation_prices(
    positions: list[Position],
    *,
    cash: Decimal,
    holds: Decimal,
    quotes: dict[str, Quote],
    table: Callable[[str], margin.MarginTable],
) -> list[Position]:
    """:func:`_moved_liquidation_prices` computing only what the displayed prices need (the same
    formulas as ``account_state``: isolated from the position alone, cross from the cross account at
    the quotes' marks); ``table`` gives an asset's margin table (the batch keeps them)."""
    open_crosses = [
        p for p in positions if p.margin_mode == MarginMode.CROSS and p.status == Position.Status.OPEN
    ]
    stand_in = margin_cross.stand_in_marks((p.asset, p.entry_price) for p in open_crosses)
    crosses = [
        margin_cross.CrossPosition(
            asset=p.asset,
            side=ACCOUNT_SIGN[p.direction],
            size=p.size,
            entry=p.entry_price,
            mark=mark_of(p.asset, quotes, stand_in[p.asset]),
            leverage=p.leverage,
            table=table(p.asset),
            ref=p.pk,
        )
        for p in open_crosses
    ]
    cross_liq: dict[str, Decimal | None] = {}
    if crosses:
        account = margin_cross.CrossAccount(
            cash_collateral=cash + holds, positions=tuple(crosses), order_holds=holds
        )
        for asset in {cp.asset for cp in crosses}:
            try:
                cross_liq[asset] = margin_cross.cross_liquidation_price(account, asset)
            except ValueError:
                cross_liq[asset] = None
    changed = []
    for p in positions:
        if p.status != Position.Status.OPEN:
            continue
        if p.margin_mode == MarginMode.ISOLATED:
            price = margin.isolated_liquidation_price(
                ACCOUNT_SIGN[p.direction], p.entry_price, p.size, p.isolated_margin, table(p.asset)
            )
        else:
            price = cross_liq.get(p.asset)
        liq = price.quantize(netting.PRICE) if price else None
        if p.liquidation_price != liq:
            p.liquidation_price = liq
            changed.append(p)
    return changed


def isolated_still_liquidatable(position: Position, mark: Decimal, table: margin.MarginTable) -> bool:
    side = margin.Side.LONG if position.direction == Position.Direction.LONG else margin.Side.SHORT
    return margin.isolated_is_liquidatable(
        side, position.entry_price, mark, position.size, position.isolated_margin, table
    )
