"""Reads for console pages that span several rooms. Nothing here writes."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from core.accounts.models import User
from core.text import ascii_int
from routing.decision import AssetRouting, Reason
from routing.models import GLOBAL, RoutingConfig, RoutingDecisionLog, RoutingModeLog, RoutingState
from routing.selectors import asset_routing, resolved_config
from trading.account import AccountState, account_dict, account_state, user_balances
from trading.marketdata import get_quotes
from trading.models import Order, Position, Source
from trading.selectors import listed_assets
from wallets.models import (
    AccountKind,
    ChainConfig,
    ChainState,
    Deposit,
    DepositAddress,
    LedgerAccount,
    Wallet,
    Withdrawal,
)
from wallets.selectors import WalletView, wallet_get

logger = logging.getLogger(__name__)
ZERO = Decimal(0)

# --- routing ---------------------------------------------------------------------------------------


@dataclass
class AssetRow:
    asset: str
    mode: str
    config: dict[str, dict[str, Any]]
    has_own_row: bool
    internalization_enabled: bool
    auto_switch_enabled: bool
    force_hl_reasons: dict[str, dict[str, Any]]
    hl_halted: bool
    hl_halt_reason: str
    users_net_size: Decimal | None = None
    mark: Decimal | None = None
    mark_at: float | None = None
    exposure: Decimal | None = None  # platform B-book exposure at mark = −(users' net INTERNAL notional)
    live: AssetRouting | None = None  # what the order path decides with (routing.selectors.asset_routing)

    @property
    def exposure_ratio(self) -> Decimal | None:
        trigger = self.config["hl_mode_exposure_threshold"]["value"]
        if self.exposure is None or not trigger:
            return None
        return min(abs(self.exposure) / trigger, Decimal(1))


def routing_assets() -> list[str]:
    own = set(RoutingConfig.objects.exclude(asset=GLOBAL).values_list("asset", flat=True))
    states = set(RoutingState.objects.exclude(asset=GLOBAL).values_list("asset", flat=True))
    return sorted(own | states | set(listed_assets()))


def internal_net_positions() -> dict[str, Decimal]:
    """Users' net open INTERNAL size per asset (long − short); the platform holds the opposite."""
    net: dict[str, Decimal] = defaultdict(lambda: ZERO)
    rows = (
        Position.objects.filter(source=Source.INTERNAL, status=Position.Status.OPEN)
        .values("asset", "direction")
        .annotate(total=Sum("size"))
    )
    for row in rows:
        sign = 1 if row["direction"] == Position.Direction.LONG else -1
        net[row["asset"]] += sign * row["total"]
    return dict(net)


def routing_overview() -> tuple[list[AssetRow], dict[str, Any]]:
    assets = routing_assets()
    own_rows = set(RoutingConfig.objects.exclude(asset=GLOBAL).values_list("asset", flat=True))
    states = {s.asset: s for s in RoutingState.objects.all()}
    net = internal_net_positions()
    quotes = get_quotes(assets) if assets else {}
    rows = []
    for asset in assets:
        live = asset_routing(asset)
        config = resolved_config(asset)
        state = states.get(asset)
        reasons = dict(state.force_hl_reasons) if state else {}
        platform = states.get(GLOBAL)
        if platform is not None:
            for reason, info in platform.force_hl_reasons.items():
                reasons.setdefault(reason, {**info, "platform": True})
        quote = quotes.get(asset)
        row = AssetRow(
            asset=asset,
            mode=live.mode.value,
            config=config,
            has_own_row=asset in own_rows,
            internalization_enabled=live.internalization_enabled,
            auto_switch_enabled=bool(config["auto_switch_enabled"]["value"]),
            force_hl_reasons=reasons,
            hl_halted=live.hl_halted,
            hl_halt_reason=(state.hl_halt_reason if state and state.hl_halted else "")
            or (platform.hl_halt_reason if platform and platform.hl_halted else ""),
            live=live,
        )
        size = net.get(asset)
        if quote is not None and quote.mark:
            row.mark, row.mark_at = quote.mark, quote.mark_at
        if size is not None:
            row.users_net_size = size
            if row.mark is not None:
                row.exposure = -size * row.mark
        rows.append(row)
    glob = resolved_config(GLOBAL)
    glob_row = RoutingConfig.objects.get(asset=GLOBAL)
    platform = states.get(GLOBAL)
    return rows, {
        "config": glob,
        "degraded": bool(glob_row.degraded),
        "global_internalization_enabled": bool(glob_row.global_internalization_enabled),
        "force_hl_reasons": dict(platform.force_hl_reasons) if platform else {},
        "hl_halted": bool(platform and platform.hl_halted),
        "updated_at": glob_row.updated_at,
        "updated_by": glob_row.updated_by,
    }


def mode_switches(limit: int = 30) -> list[RoutingModeLog]:
    return list(RoutingModeLog.objects.select_related("operator").order_by("-id")[:limit])


DECISION_FILTERS = ("user_id", "asset", "reason", "route")


def decision_log(filters: dict[str, str]) -> Any:
    qs = RoutingDecisionLog.objects.all()
    for name in DECISION_FILTERS:
        value = (filters.get(name) or "").strip()
        if not value:
            continue
        if name == "user_id":
            user_id = ascii_int(value)
            if user_id is None:
                return qs.none()
            qs = qs.filter(user_id=user_id)
        elif name == "asset":
            qs = qs.filter(asset=value.upper())
        else:
            qs = qs.filter(**{name: value})
    return qs


def decision_reasons() -> list[str]:
    return [r.value for r in Reason]


# --- user search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchHit:
    kind: str
    user_id: int
    user_email: str
    detail: str
    anchor: str = ""


HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def user_search(q: str, limit: int = 25) -> list[SearchHit]:
    """Find users by id, email, wallet address, deposit address, order id (ours, client or HL), or a
    deposit/withdrawal tx hash. Every lookup is an exact or prefix match on an indexed column."""
    q = q.strip()
    if not q:
        return []
    hits: list[SearchHit] = []
    emails: dict[int, str] = {}

    def email_of(user_id: int) -> str:
        if user_id not in emails:
            emails[user_id] = User.objects.filter(pk=user_id).values_list("email", flat=True).first() or "?"
        return emails[user_id]

    number = ascii_int(q)  # "²" or "١٢" is not a number: searched as text below
    if number is not None:
        for user in User.objects.filter(pk=number):
            hits.append(SearchHit("user id", user.pk, user.email, f"user {user.pk}"))
        for order in Order.objects.filter(Q(pk=number) | Q(hl_oid=number)).values("pk", "user_id", "asset"):
            hits.append(
                SearchHit(
                    "order id",
                    order["user_id"],
                    email_of(order["user_id"]),
                    f"order {order['pk']} ({order['asset']})",
                    f"order-{order['pk']}",
                )
            )
    if "@" in q or (number is None and not q.lower().startswith("0x") and len(q) >= 2):
        # an email, or its beginning ("trader03" finds trader03@…): prefix on the lower-cased address
        for user in User.objects.filter(Q(email__iexact=q) | Q(email__istartswith=q)).order_by("email")[
            :limit
        ]:
            hits.append(SearchHit("email", user.pk, user.email, user.email))
    address_q = Q(wallet_address=q) | (Q(wallet_address__iexact=q) if HEX_ADDRESS.match(q) else Q(pk__in=[]))
    for user in User.objects.filter(address_q)[:limit]:
        hits.append(SearchHit("wallet address", user.pk, user.email, user.wallet_address or ""))
    address_match = Q(address=q) | (Q(address__iexact=q) if HEX_ADDRESS.match(q) else Q(pk__in=[]))
    for address in DepositAddress.objects.filter(address_match).select_related("user")[:limit]:
        hits.append(
            SearchHit(
                "deposit address", address.user_id, address.user.email, f"{address.chain} {address.address}"
            )
        )
    chains = list(ChainConfig.objects.values_list("chain", flat=True)) or ["TRON", "ETH", "SOL", "ARBITRUM"]
    tx_values = {q, q.lower()} if q.lower().startswith("0x") else {q}
    # chain__in lets PostgreSQL use the (chain, tx_hash, log_index) unique index
    for deposit in Deposit.objects.filter(chain__in=chains, tx_hash__in=tx_values).select_related("user")[
        :limit
    ]:
        hits.append(
            SearchHit(
                "deposit tx",
                deposit.user_id,
                deposit.user.email,
                f"deposit {deposit.pk}: {deposit.amount:,.2f} {deposit.asset} on {deposit.chain} ({deposit.status})",
                f"deposit-{deposit.pk}",
            )
        )
    for withdrawal in Withdrawal.objects.filter(tx_hash__in=tx_values).select_related("user")[:limit]:
        hits.append(
            SearchHit(
                "withdrawal tx",
                withdrawal.user_id,
                withdrawal.user.email,
                f"withdrawal {withdrawal.pk}: {withdrawal.amount:,.2f} {withdrawal.asset} on {withdrawal.chain}",
                f"withdrawal-{withdrawal.pk}",
            )
        )
    for withdrawal in Withdrawal.objects.filter(address=q).select_related("user").order_by("-pk")[:limit]:
        hits.append(
            SearchHit(
                "withdrawal address",
                withdrawal.user_id,
                withdrawal.user.email,
                f"withdrawal {withdrawal.pk} to {withdrawal.address}",
                f"withdrawal-{withdrawal.pk}",
            )
        )
    for order in Order.objects.filter(Q(client_order_id=q) | Q(cloid=q)).values("pk", "user_id", "asset")[
        :limit
    ]:
        hits.append(
            SearchHit(
                "client order id",
                order["user_id"],
                email_of(order["user_id"]),
                f"order {order['pk']} ({order['asset']})",
                f"order-{order['pk']}",
            )
        )
    return hits[:limit]


# --- a user's money (support's user page) --------------------------------------------------------------


@dataclass
class UserMoney:
    """What the user page shows of a user's money, from one read of each source: the open positions
    (newest first, each with ``live``: its entry of ``account["positions"]``, or None), the account at
    mark as ``trading.account.account_view`` gives it (None when live marks or markets are
    unavailable, with ``account_error`` saying why) and the wallet card."""

    open_positions: list[Position]
    account: dict[str, Any] | None
    account_error: str
    wallet: WalletView


def user_money(user_id: int, *, open_positions: list[Position] | None = None) -> UserMoney:
    """``account_view(user_id)`` and ``wallet_get(user_id=…)`` in one go. Separately, account_view
    reads the open positions and ledger balances, the wallet's cross-margin hook reads both again and
    the page listed the positions a third time: 7 queries and two margin computations, here 3 queries
    and one. The console's tests check both answers equal to those two reads. ``open_positions``:
    the user's open positions newest first, when the caller has read them already."""
    positions = (
        list(Position.objects.filter(user_id=user_id, status=Position.Status.OPEN).order_by("-id"))
        if open_positions is None
        else open_positions
    )
    state: AccountState | None = None
    error = ""
    try:
        balances = user_balances(user_id)
        assets = sorted({p.asset for p in positions})
        state = account_state(
            cash=balances.get("cash", ZERO),
            order_holds=balances.get("order_hold", ZERO),
            positions=sorted(positions, key=lambda p: p.pk),  # account_view's order
            quotes=get_quotes(assets) if assets else {},
        )
    except Exception as exc:  # live marks or markets unavailable: show the stored data only
        logger.warning("account view failed for user %s", user_id, exc_info=True)
        error = f"live account view unavailable ({type(exc).__name__})"
    account = account_dict(state) if state is not None else None
    live = {p["id"]: p for p in account["positions"]} if account is not None else {}
    for position in positions:
        position.live = live.get(position.pk)  # type: ignore[attr-defined]
    if state is None:
        wallet = wallet_get(user_id=user_id)  # its own cross-margin read (which may fail the same way)
    else:
        wallet = _wallet_with_cross(user_id, state.cross.initial_margin_used)
    return UserMoney(open_positions=positions, account=account, account_error=error, wallet=wallet)


def _wallet_with_cross(user_id: int, cross: Decimal) -> WalletView:
    """``wallet_get`` with the cross margin already known (trading is the only cross-margin provider;
    its provider computes exactly ``account_state(...).cross.initial_margin_used``)."""
    row = Wallet.objects.filter(user_id=user_id).first()
    if row is None:
        return WalletView(user_id, ZERO, ZERO, ZERO, cross, ZERO)
    return WalletView(
        user_id=user_id,
        total_balance=row.total_balance,
        available_balance=max(row.cash_balance - cross, ZERO),
        frozen_margin=row.frozen_margin,
        cross_margin_used=cross,
        pending_withdrawal=row.pending_withdrawal,
    )


# --- money -----------------------------------------------------------------------------------------


@dataclass
class ChainLiquidity:
    chain: str
    config: ChainConfig | None
    state: ChainState | None
    book: dict[str, Decimal] = field(default_factory=dict)  # per asset: what the ledger says we hold

    @property
    def level(self) -> str:
        return (self.state.hot_level if self.state else "") or "unknown"

    @property
    def hot_balance(self) -> Decimal | None:
        return self.state.hot_balance if self.state else None


def liquidity_overview() -> dict[str, Any]:
    configs = {c.chain: c for c in ChainConfig.objects.all()}
    states = {s.chain: s for s in ChainState.objects.all()}
    chains = sorted(set(configs) | set(states))
    out = {chain: ChainLiquidity(chain, configs.get(chain), states.get(chain)) for chain in chains}
    for account in LedgerAccount.objects.filter(user__isnull=True, kind=AccountKind.HOT_WALLET):
        chain, _, asset = account.sub.partition(":")
        if chain in out:
            # custody accounts carry the opposite sign: −balance is what the platform holds on chain
            out[chain].book[asset or account.asset] = -account.balance
    hot_total = sum((s.hot_balance for s in states.values()), ZERO)
    liability = (
        LedgerAccount.objects.filter(user__isnull=False, asset="USDC").aggregate(total=Sum("balance"))[
            "total"
        ]
        or ZERO
    )
    coverage = hot_total / liability if liability > 0 else None
    return {
        "chains": list(out.values()),
        "hot_total": hot_total,
        "liability": liability,
        "coverage": coverage,
    }


QUEUE_STATUSES = [
    Withdrawal.Status.AWAITING_APPROVAL,
    Withdrawal.Status.APPROVED,
    Withdrawal.Status.SENDING,
    Withdrawal.Status.BROADCAST,
]


def withdrawal_queue_summary() -> list[dict[str, Any]]:
    rows = (
        Withdrawal.objects.filter(status__in=QUEUE_STATUSES)
        .values("status", "tier")
        .annotate(count=Count("id"), amount=Sum("amount"))
        .order_by("status", "tier")
    )
    return [dict(row) for row in rows]


def small_tier_avg_seconds() -> float | None:
    """Average time from confirmation to broadcast of the < 10k tier over 24 h (spec 06 monitor)."""
    since = timezone.now() - timedelta(hours=24)
    rows = Withdrawal.objects.filter(
        tier=Withdrawal.Tier.AUTO, broadcast_at__gte=since, confirmed_at__isnull=False
    ).values_list("confirmed_at", "broadcast_at")
    seconds = [(b - c).total_seconds() for c, b in rows if b is not None and c is not None]
    return sum(seconds) / len(seconds) if seconds else None
