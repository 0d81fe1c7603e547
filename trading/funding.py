"""Funding settlement in the ledger domain (spec 04).

payment = size × oracle price × rate (HL's rate and oracle price at HL's funding instant, never ours);
positive rate: longs pay shorts. INTERNAL positions settle against the B-book account. HYPERLIQUID
positions mirror what HL actually booked on the trading account: the account's funding for
the coin (``userFunding``: ``usdc`` on the netted ``szi``) apportioned to each user by signed size,
``usdc × size / szi`` to the micro-dollar, against the trading account's ``hl_pnl`` bucket; the
rounding remainder is the platform's (``risk.funding``). Isolated positions pay from / receive into
their isolated margin (the liquidation price moves), cross ones use cash; a position closed since the
instant settles on cash (an isolated one liquidated since pays nothing: its margin is gone). A user
never goes negative: a payment the margin or cash cannot cover is capped, and the difference is
reported (``collected`` vs ``payment``).

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

from core.events.services import outbox_emit
from core.locks import USER_NAMESPACE
from core.money import ZERO, q_usdc
from trading import margin
from trading.account import SIGN, margin_table_for_asset
from trading.models import MarginMode, Position, Source
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import USDC, AccountKind, LedgerAccount, TransferKind


@dataclass(frozen=True, slots=True)
class FundingRate:
    rate: Decimal
    price: Decimal  # the oracle price used (recorded)
    # what HL booked on the trading account for the coin at the instant (HYPERLIQUID positions mirror
    # it): its signed cash flow and the netted position it was paid on; None when it held none
    hl_usdc: Decimal | None = None
    hl_szi: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FundingDue:
    """One position's funding for one instant, decided before anything moves."""

    position: Position
    size: Decimal  # held at the funding instant
    rate: Decimal
    price: Decimal
    payment: Decimal  # the user's signed cash flow (negative = pays)


@dataclass(frozen=True, slots=True)
class FundingOutcome:
    position: Position
    rate: Decimal
    price: Decimal
    payment: Decimal  # the user's signed amount due (negative = pays)
    collected: Decimal  # what the ledger moved (signed like payment; |collected| ≤ |payment|)
    size: Decimal = ZERO  # held at the funding instant


def users_lock(user_ids: Iterable[int]) -> None:
    """Take the advisory locks of several users in ascending id order, in one statement, as the FIRST
    locks of the transaction (the same lock ``core.locks.user_lock`` takes for one user)."""
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


def _is_open(position: Position) -> bool:
    return position.status == Position.Status.OPEN


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


def funding_payment(position: Position, rate: FundingRate, size: Decimal | None = None) -> Decimal:
    """The user's signed funding cash flow for one period, on the USDC quantum (half-even): ``size``
    (default: the position's) × the oracle price × the rate; a HYPERLIQUID position's share of what HL
    booked on the trading account when it booked any (:func:`hl_share`)."""
    size = position.size if size is None else size
    if position.source == Source.HYPERLIQUID and rate.hl_usdc is not None and rate.hl_szi:
        return hl_share(rate.hl_usdc, rate.hl_szi, SIGN[position.direction] * size)
    return q_usdc(margin.funding_payment(SIGN[position.direction], size, rate.price, rate.rate))


def hl_share(usdc: Decimal, szi: Decimal, signed_size: Decimal) -> Decimal:
    """A user's share of the funding HL booked on the trading account: the account paid ``usdc`` (its
    signed cash flow) on the netted position ``szi``, so a user holding ``signed_size`` of it pays
    ``usdc × signed_size / szi`` — exactly, then to the micro-dollar (half-even). The shares of users
    long and short on one netted position add up to ``usdc`` but for the rounding."""
    if not szi:
        raise ValueError("HL booked no position to apportion")
    return q_usdc(usdc * signed_size / szi)


def funding_dues(
    positions: list[Position], rates: dict[str, FundingRate], sizes: dict[int, Decimal] | None = None
) -> list[FundingDue]:
    """What each position owes or receives for one instant (pure). ``sizes``: the size held at the
    instant where it differs from the position's now (fills since)."""
    sizes = sizes or {}
    dues = []
    for p in positions:
        rate = rates[p.asset]
        size = sizes.get(p.pk, p.size)
        dues.append(FundingDue(p, size, rate.rate, rate.price, funding_payment(p, rate, size)))
    return dues


def funding_settle_positions(
    *,
    positions: list[Position] | None = None,
    rates: dict[str, FundingRate] | None = None,
    dues: list[FundingDue] | None = None,
    funding_time: datetime,
    key: str,
) -> list[FundingOutcome]:
    """Settle one funding period: ``dues`` (or ``positions`` at ``rates``, their sizes now), positions
    locked. Writes the ledger transfers (one posting under ``key``), moves open isolated margins and
    their liquidation prices, adds the collected amount to ``cum_funding_*`` (the user's signed cash
    flow), and emits ``trading.funding``."""
    if not connection.in_atomic_block:
        raise RuntimeError("funding_settle_positions runs inside the caller's transaction")
    if dues is None:
        if positions is None or rates is None:
            raise TypeError("funding_settle_positions needs dues, or positions and rates")
        dues = funding_dues(positions, rates)
    positions = [d.position for d in dues]
    now = timezone.now()
    cash_users = {p.user_id for p in positions if p.margin_mode == MarginMode.CROSS or not _is_open(p)}
    cash: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for user_id, balance in LedgerAccount.objects.filter(
        user_id__in=cash_users, kind=AccountKind.CASH, asset=USDC
    ).values_list("user_id", "balance"):
        cash[user_id] = balance
    transfers: list[TransferSpec] = []
    outcomes: list[FundingOutcome] = []
    for due in dues:
        p = due.position
        payment = due.payment
        # INTERNAL: the B-book pays / receives; HYPERLIQUID: HL settled it on the trading account, so the
        # mirror goes through that account's P&L bucket (account value ≈ capital − hl_pnl)
        counterparty = (
            AccountRef.platform(AccountKind.BBOOK_PNL)
            if p.source == Source.INTERNAL
            else AccountRef.platform(AccountKind.HL_PNL, sub="trading")
        )
        open_now = _is_open(p)
        # an open isolated position's funding moves its margin; anything else (cross, or a position
        # closed since the instant, whose margin went back to cash) moves cash
        isolated = p.margin_mode == MarginMode.ISOLATED and open_now
        user_acc = (
            AccountRef.user(p.user_id, AccountKind.ISOLATED_MARGIN, sub=f"position:{p.pk}")
            if isolated
            else AccountRef.user(p.user_id, AccountKind.CASH)
        )
        ref = ("position", p.pk)
        collected = ZERO
        if payment < ZERO:
            if isolated:
                available = p.isolated_margin
            elif p.margin_mode == MarginMode.ISOLATED and p.status == Position.Status.LIQUIDATED:
                available = ZERO  # its margin is gone: the cross collateral is never touched for it
            else:
                available = cash[p.user_id]
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
        outcomes.append(FundingOutcome(p, due.rate, due.price, payment, collected, due.size))
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
                    "size": str(o.size),
                    "payment": str(o.payment),
                    "collected": str(o.collected),
                }
                for o in outcomes
            ],
        },
    )
    return outcomes
