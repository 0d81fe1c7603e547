"""Funding settlement in the ledger domain (spec 04).

payment = size × oracle price × rate (HL's rate and oracle price, never ours); positive rate: longs
pay shorts. INTERNAL positions settle against the B-book account, HYPERLIQUID ones are mirrored per
user against the HL trading-account capital (HL itself settled the merged position). Isolated
positions pay from / receive into their isolated margin (the liquidation price moves), cross ones
use cash. A user never goes negative: a payment the margin or cash cannot cover is capped, and the
difference is reported (``collected`` vs ``payment``).

:func:`funding_settle_positions` settles a chunk of positions in the caller's transaction, which
must have taken the users' locks first (:func:`users_lock`) and locked the position rows. The caller
records one settlement row per (position, funding time) in the same transaction, which is what makes
settlement exactly-once; the chunk's ledger posting carries an idempotency key as a second line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from trading import margin
from trading.account import SIGN, margin_table_for_asset
from trading.models import MarginMode, Position, Source
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import USDC, AccountKind, LedgerAccount, TransferKind
from xbit_admin.events.services import outbox_emit
from xbit_admin.locks import USER_NAMESPACE
from xbit_admin.money import ZERO, q_usdc


@dataclass(frozen=True, slots=True)
class FundingRate:
    rate: Decimal
    price: Decimal  # the oracle price used (recorded)


@dataclass(frozen=True, slots=True)
class FundingOutcome:
    position: Position
    rate: Decimal
    price: Decimal
    payment: Decimal  # the user's signed amount due (negative = pays)
    collected: Decimal  # what the ledger moved (signed like payment; |collected| ≤ |payment|)


def users_lock(user_ids: Iterable[int]) -> None:
    """Take the advisory locks of several users in ascending id order, in one statement, as the FIRST
    locks of the transaction (the same lock ``xbit_admin.locks.user_lock`` takes for one user)."""
    if not connection.in_atomic_block:
        raise RuntimeError("users_lock must be taken inside a transaction")
    ids = sorted({int(u) for u in user_ids})
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, u) FROM unnest(%s::int[]) WITH ORDINALITY AS t(u, n) ORDER BY n",
            [USER_NAMESPACE, ids],
        )


def _positions_update(positions: list[Position]) -> None:
    """One UPDATE … FROM (VALUES …) for the chunk (``bulk_update``'s CASE expressions grow
    quadratically with the chunk)."""
    values = ", ".join(
        ["(%s::bigint, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::timestamptz)"] * len(positions)
    )
    params: list[Any] = []
    for p in positions:
        params += [
            p.pk,
            p.isolated_margin,
            p.liquidation_price,
            p.cum_funding_all_time,
            p.cum_funding_since_open,
            p.updated_at,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Position._meta.db_table} AS p SET isolated_margin = v.im, liquidation_price = v.liq, "  # noqa: S608 - placeholders only
            "cum_funding_all_time = v.cfa, cum_funding_since_open = v.cfo, updated_at = v.at "
            f"FROM (VALUES {values}) AS v(id, im, liq, cfa, cfo, at) WHERE p.id = v.id",
            params,
        )


def funding_payment(position: Position, rate: FundingRate) -> Decimal:
    """The user's signed funding cash flow for one period, on the USDC quantum (half-even)."""
    return q_usdc(margin.funding_payment(SIGN[position.direction], position.size, rate.price, rate.rate))


def funding_settle_positions(
    *, positions: list[Position], rates: dict[str, FundingRate], funding_time: datetime, key: str
) -> list[FundingOutcome]:
    """Settle one funding period for ``positions`` (locked, OPEN). Writes the ledger transfers (one
    posting under ``key``), moves isolated margins and their liquidation prices, adds the payment to
    ``cum_funding_*`` (the user's signed cash flow), and emits ``trading.funding``."""
    if not connection.in_atomic_block:
        raise RuntimeError("funding_settle_positions runs inside the caller's transaction")
    now = timezone.now()
    cross_users = {p.user_id for p in positions if p.margin_mode == MarginMode.CROSS}
    cash: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for user_id, balance in LedgerAccount.objects.filter(
        user_id__in=cross_users, kind=AccountKind.CASH, asset=USDC
    ).values_list("user_id", "balance"):
        cash[user_id] = balance
    transfers: list[TransferSpec] = []
    outcomes: list[FundingOutcome] = []
    for p in positions:
        rate = rates[p.asset]
        payment = funding_payment(p, rate)
        # INTERNAL: the B-book pays / receives; HYPERLIQUID: HL settled it on the trading account, so the
        # mirror goes through that account's P&L bucket (account value ≈ capital − hl_pnl)
        counterparty = (
            AccountRef.platform(AccountKind.BBOOK_PNL)
            if p.source == Source.INTERNAL
            else AccountRef.platform(AccountKind.HL_PNL, sub="trading")
        )
        isolated = p.margin_mode == MarginMode.ISOLATED
        user_acc = (
            AccountRef.user(p.user_id, AccountKind.ISOLATED_MARGIN, sub=f"position:{p.pk}")
            if isolated
            else AccountRef.user(p.user_id, AccountKind.CASH)
        )
        ref = ("position", p.pk)
        collected = ZERO
        if payment < ZERO:
            available = p.isolated_margin if isolated else cash[p.user_id]
            amount = min(-payment, max(available, ZERO))
            if amount > ZERO:
                transfers.append(TransferSpec(user_acc, counterparty, amount, TransferKind.FUNDING, *ref))
            collected = -amount
        elif payment > ZERO:
            transfers.append(TransferSpec(counterparty, user_acc, payment, TransferKind.FUNDING, *ref))
            collected = payment
        if isolated:
            p.isolated_margin += collected
            liq = margin.isolated_liquidation_price(
                SIGN[p.direction], p.entry_price, p.size, p.isolated_margin, margin_table_for_asset(p.asset)
            )
            p.liquidation_price = liq.quantize(Decimal("0.00000001")) if liq is not None else None
        else:
            cash[p.user_id] += collected
        p.cum_funding_all_time += collected
        p.cum_funding_since_open += collected
        p.updated_at = now
        outcomes.append(FundingOutcome(p, rate.rate, rate.price, payment, collected))
    if transfers:
        ledger_post(key=key, transfers=transfers)
    _positions_update(positions)
    outbox_emit(
        topic="trading.funding",
        aggregate=f"funding:{funding_time.isoformat()}",
        payload={
            "funding_time": funding_time.isoformat(),
            "settlements": [
                {
                    "position_id": o.position.pk,
                    "user_id": o.position.user_id,
                    "asset": o.position.asset,
                    "source": o.position.source,
                    "rate": str(o.rate),
                    "price": str(o.price),
                    "payment": str(o.payment),
                    "collected": str(o.collected),
                }
                for o in outcomes
            ],
        },
    )
    return outcomes
