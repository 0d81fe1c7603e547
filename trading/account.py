"""A user's margin account as HL would see it (spec 03): equity, maintenance and initial margin,
available to trade, withdrawable, and per-position liquidation prices — from open positions, the
ledger's cash balance and live marks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from core.money import ZERO
from trading import margin, margin_cross
from trading.marketdata import Quote, get_quotes
from trading.models import MarginMode, Position
from trading.selectors import margin_table_for, market_get
from wallets.models import USDC, LedgerAccount

SIGN: dict[str, margin.Side] = {
    Position.Direction.LONG: margin.Side.LONG,
    Position.Direction.SHORT: margin.Side.SHORT,
}


@dataclass(frozen=True)
class PositionView:
    position: Position
    mark: Decimal
    unrealized_pnl: Decimal
    notional: Decimal
    maintenance_margin: Decimal
    liquidation_price: Decimal | None


@dataclass(frozen=True)
class AccountState:
    cash: Decimal
    order_holds: Decimal
    isolated_margin: Decimal
    cross: margin_cross.CrossSummary
    positions: list[PositionView]

    @property
    def equity(self) -> Decimal:
        """Everything the user owns at mark: cross equity plus isolated equity plus holds."""
        isolated_equity = sum(
            (
                v.position.isolated_margin + v.unrealized_pnl
                for v in self.positions
                if v.position.margin_mode == MarginMode.ISOLATED
            ),
            ZERO,
        )
        return self.cross.equity + isolated_equity + self.order_holds

    @property
    def available_to_trade(self) -> Decimal:
        return self.cross.available_to_trade

    @property
    def withdrawable(self) -> Decimal:
        return self.cross.withdrawable


def user_balances(user_id: int) -> dict[str, Decimal]:
    """The user's ledger balances summed per account kind (order holds and isolated margins have one
    account per order / position)."""
    rows = (
        LedgerAccount.objects.filter(user_id=user_id, asset=USDC)
        .values("kind")
        .annotate(total=Sum("balance"))
        .values_list("kind", "total")
    )
    return dict(rows)


def margin_table_for_asset(asset: str) -> margin.MarginTable:
    return margin_table_for(market_get(asset))


def mark_of(asset: str, quotes: dict[str, Quote], fallback: Decimal) -> Decimal:
    quote = quotes.get(asset)
    return quote.mark if quote is not None and quote.mark else fallback


def cross_positions(
    positions: Iterable[Position], quotes: dict[str, Quote], extra_leverage: int | None = None
) -> list[margin_cross.CrossPosition]:
    out = []
    crosses = [p for p in positions if p.margin_mode == MarginMode.CROSS and p.status == Position.Status.OPEN]
    stand_in = margin_cross.stand_in_marks((p.asset, p.entry_price) for p in crosses)
    for p in crosses:
        out.append(
            margin_cross.CrossPosition(
                asset=p.asset,
                side=SIGN[p.direction],
                size=p.size,
                entry=p.entry_price,
                mark=mark_of(p.asset, quotes, stand_in[p.asset]),
                leverage=p.leverage,
                table=margin_table_for_asset(p.asset),
                ref=p.pk,
            )
        )
    return out


def account_state(
    *, cash: Decimal, order_holds: Decimal, positions: list[Position], quotes: dict[str, Quote]
) -> AccountState:
    crosses = cross_positions(positions, quotes)
    # holds sit in their own ledger accounts; as on HL they still count as collateral (equity) but not
    # as available or withdrawable
    account = margin_cross.CrossAccount(
        cash_collateral=cash + order_holds, positions=tuple(crosses), order_holds=order_holds
    )
    summary = account.summary()
    cross_liq: dict[str, Decimal | None] = {}
    for asset in {cp.asset for cp in crosses}:
        # HL's definition: the mark of this asset at which the account hits MM, other marks held fixed
        try:
            cross_liq[asset] = margin_cross.cross_liquidation_price(account, asset)
        except ValueError:
            cross_liq[asset] = None
    views = []
    isolated_total = ZERO
    # an asset without a quote: its cross positions' one stand-in mark (what the summary used), else
    # the position's entry
    cross_marks = {cp.asset: cp.mark for cp in crosses}
    for p in positions:
        if p.status != Position.Status.OPEN:
            continue
        mark = mark_of(p.asset, quotes, cross_marks.get(p.asset, p.entry_price))
        side = SIGN[p.direction]
        table = margin_table_for_asset(p.asset)
        notional = margin.notional(p.size, mark)
        if p.margin_mode == MarginMode.ISOLATED:
            isolated_total += p.isolated_margin
            liq = margin.isolated_liquidation_price(side, p.entry_price, p.size, p.isolated_margin, table)
        else:
            liq = cross_liq.get(p.asset)
        views.append(
            PositionView(
                position=p,
                mark=mark,
                unrealized_pnl=margin.unrealized_pnl(side, p.entry_price, mark, p.size),
                notional=notional,
                maintenance_margin=margin.maintenance_margin(notional, table),
                liquidation_price=liq,
            )
        )
    return AccountState(
        cash=cash, order_holds=order_holds, isolated_margin=isolated_total, cross=summary, positions=views
    )


def account_view(user_id: int) -> dict[str, object]:
    """The trader's account as the API shows it (live marks)."""
    positions = list(Position.objects.filter(user_id=user_id, status=Position.Status.OPEN).order_by("id"))
    balances = user_balances(user_id)
    assets = sorted({p.asset for p in positions})
    quotes = get_quotes(assets) if assets else {}
    state = account_state(
        cash=balances.get("cash", ZERO),
        order_holds=balances.get("order_hold", ZERO),
        positions=positions,
        quotes=quotes,
    )
    return account_dict(state)


def _state_for(user_id: int) -> AccountState:
    positions = list(Position.objects.filter(user_id=user_id, status=Position.Status.OPEN))
    balances = user_balances(user_id)
    quotes = get_quotes(sorted({p.asset for p in positions})) if positions else {}
    return account_state(
        cash=balances.get("cash", ZERO),
        order_holds=balances.get("order_hold", ZERO),
        positions=positions,
        quotes=quotes,
    )


def cross_margin_used_for(user_ids: list[int]) -> dict[int, Decimal]:
    """For ``wallets.hooks``: the initial margin each user's open cross positions use, at mark."""
    with_positions = set(
        Position.objects.filter(
            user_id__in=user_ids, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS
        )
        .values_list("user_id", flat=True)
        .distinct()
    )
    return {uid: _state_for(uid).cross.initial_margin_used for uid in user_ids if uid in with_positions}


def withdrawable_for(user_id: int) -> Decimal:
    """For ``wallets.hooks``: spec 03's withdrawable — never unrealized profit, never margin in use."""
    if not Position.objects.filter(
        user_id=user_id, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS
    ).exists():
        return user_balances(user_id).get("cash", ZERO)
    return _state_for(user_id).withdrawable


def account_dict(state: AccountState) -> dict[str, object]:
    """An account state in the API's shape (also the console's user page, which reads the state itself)."""
    return {
        "equity": state.equity,
        "cash": state.cash,
        "order_holds": state.order_holds,
        "isolated_margin": state.isolated_margin,
        "cross_margin_used": state.cross.initial_margin_used,
        "cross_maintenance_margin": state.cross.maintenance_margin,
        "available_to_trade": state.available_to_trade,
        "withdrawable": state.withdrawable,
        "unrealized_pnl": sum((v.unrealized_pnl for v in state.positions), ZERO),
        "positions": [
            {
                "id": v.position.pk,
                "symbol": v.position.asset,
                "direction": v.position.direction,
                "size": v.position.size,
                "entry_price": v.position.entry_price,
                "mark_price": v.mark,
                "leverage": v.position.leverage,
                "margin_mode": v.position.margin_mode,
                "isolated_margin": v.position.isolated_margin,
                "unrealized_pnl": v.unrealized_pnl,
                "realized_pnl": v.position.realized_pnl,
                "notional": v.notional,
                "maintenance_margin": v.maintenance_margin,
                "liquidation_price": v.liquidation_price,
                "cum_funding_all_time": v.position.cum_funding_all_time,
                "cum_funding_since_open": v.position.cum_funding_since_open,
                "opened_at": v.position.opened_at,
            }
            for v in state.positions
        ],
    }
