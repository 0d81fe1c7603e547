"""The double-entry ledger: the only way money moves in XBIT.

Usage (every later issue posts through this)::

    from wallets.ledger import AccountRef, TransferSpec, ledger_post

    ledger_post(
        key=f"fill:{fill.id}",                      # idempotency key: replaying it changes nothing
        transfers=[
            TransferSpec(
                debit=AccountRef.user(user_id, "cash"),
                credit=AccountRef.user(user_id, "isolated_margin", sub=f"position:{position.id}"),
                amount=Decimal("125.5"),
                kind="margin_freeze",
                ref_type="fill", ref_id=fill.id,
            ),
            TransferSpec(
                debit=AccountRef.user(user_id, "cash"),
                credit=AccountRef.platform("fee_revenue"),
                amount=fee, kind="trading_fee", ref_type="fill", ref_id=fill.id,
            ),
        ],
    )

Rules:

* A transfer moves ``amount`` (> 0, at most 6 decimals) **out of** ``debit`` **into** ``credit``; both
  accounts share one asset (``USDC`` unless stated). Σ of all balances per asset is therefore 0.
* User accounts (``cash``, ``isolated_margin`` [``sub="position:<id>"`` optional], ``order_hold``,
  ``pending_withdrawal``) are never negative: ``ledger_post`` raises ``INSUFFICIENT_BALANCE`` and the
  database CHECK constraint is the second line. Platform accounts (``AccountKind`` codes such as
  ``risk_reserve``, ``fee_revenue``, ``hot_wallet`` with ``sub="TRON:USDT"``) may take either sign;
  custody accounts are negative by what the platform holds on chain.
* All transfers of one call are posted atomically (own savepoint inside the caller's transaction, so
  post them in the transaction that records the business fact) under one idempotency ``key``.
  Replaying a key with the same content returns the original ``Posting`` (``replayed=True``); with
  different content it raises ``IDEMPOTENCY_CONFLICT``.
* Every change to a user account writes a ``balance_logs`` row (before, amount, after, ref).
* Accounts are created on first use. Chain stablecoins are booked at par in the ``USDC`` ledger unit
  (the chain and token are the custody account's ``sub``); gas is booked in the native coin's asset.

Cost: a fixed number of statements whatever the number of transfers (batch insert, one
``SELECT … FOR UPDATE`` ordered by id, bulk inserts, one UPDATE of all balances).

Reads: ``account_balance(ref)``, and ``ledger_invariant_violations()`` for tests and reconciliation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from wallets.models import (
    PLATFORM_ACCOUNT_KINDS,
    USDC,
    USER_ACCOUNT_KINDS,
    AccountKind,
    BalanceLog,
    LedgerAccount,
    LedgerTransfer,
    TransferKind,
)
from xbit_admin.errors import ApplicationError, ErrorCode
from xbit_admin.money import USDC_DECIMALS, ZERO, has_at_most_decimals, to_decimal

LEDGER_ASSETS = frozenset({USDC, "TRX", "ETH", "SOL"})
_TRANSFER_KINDS = frozenset(TransferKind.values)


@dataclass(frozen=True, slots=True)
class AccountRef:
    """Names a ledger account without touching the database."""

    kind: str
    user_id: int | None = None
    sub: str = ""
    asset: str = USDC

    @classmethod
    def user(
        cls, user_id: int, kind: str = AccountKind.CASH, *, sub: str = "", asset: str = USDC
    ) -> AccountRef:
        if kind not in USER_ACCOUNT_KINDS:
            raise ValueError(f"{kind!r} is not a user account kind")
        return cls(str(kind), int(user_id), sub, asset)

    @classmethod
    def platform(cls, code: str, *, sub: str = "", asset: str = USDC) -> AccountRef:
        if code not in PLATFORM_ACCOUNT_KINDS:
            raise ValueError(f"{code!r} is not a platform account code")
        return cls(str(code), None, sub, asset)

    @property
    def is_user(self) -> bool:
        return self.user_id is not None

    @property
    def key(self) -> str:
        owner = f"u{self.user_id}" if self.user_id is not None else "p"
        return f"{owner}:{self.kind}:{self.sub}:{self.asset}"


@dataclass(frozen=True, slots=True)
class TransferSpec:
    debit: AccountRef
    credit: AccountRef
    amount: Decimal
    kind: str
    ref_type: str = ""
    ref_id: object = ""


@dataclass(frozen=True)
class Posting:
    key: str
    batch_id: int
    transfers: list[LedgerTransfer]
    replayed: bool


def _clean(spec: TransferSpec) -> tuple[Decimal, str]:
    try:
        amount = to_decimal(spec.amount)
    except (TypeError, ValueError) as exc:
        raise ApplicationError(ErrorCode.INVALID_AMOUNT, str(exc)) from None
    if amount <= ZERO:
        raise ApplicationError(
            ErrorCode.INVALID_AMOUNT, "A transfer amount must be positive.", {"amount": str(amount)}
        )
    if not has_at_most_decimals(amount, USDC_DECIMALS):
        raise ApplicationError(
            ErrorCode.INVALID_AMOUNT, f"At most {USDC_DECIMALS} decimal places.", {"amount": str(amount)}
        )
    if spec.kind not in _TRANSFER_KINDS:
        raise ValueError(f"unknown transfer kind {spec.kind!r}")
    if spec.debit.asset != spec.credit.asset:
        raise ValueError(f"a transfer stays in one asset: {spec.debit.asset} != {spec.credit.asset}")
    if spec.debit.asset not in LEDGER_ASSETS:
        raise ApplicationError(ErrorCode.UNKNOWN_ASSET, f"Unknown ledger asset {spec.debit.asset!r}.")
    if spec.debit.key == spec.credit.key:
        raise ValueError("debit and credit are the same account")
    return amount.quantize(Decimal(1).scaleb(-USDC_DECIMALS)), str(spec.ref_id)


def _fingerprint(rows: Sequence[tuple[TransferSpec, Decimal, str]]) -> str:
    body = [
        [s.debit.key, s.credit.key, format(amount, "f"), s.kind, s.ref_type, ref_id]
        for s, amount, ref_id in rows
    ]
    return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()


def _lock_accounts(refs: dict[str, AccountRef]) -> dict[str, tuple[int, Decimal, int | None]]:
    """Lock every account of the posting, creating missing ones. Returns key -> (id, balance, user_id).

    Locks are taken in ascending id order in ONE statement. Two postings touching the same accounts
    (e.g. a withdrawal and a margin freeze of one user, both also touching fee revenue) therefore
    queue on the first shared row instead of each holding one row and waiting for the other (deadlock),
    and the balance read here cannot change before our UPDATE — so concurrent debits of one user can
    neither overdraw (check-then-write race) nor lose an update.
    """
    keys = list(refs)
    sql = "SELECT id, key, balance, user_id FROM ledger_accounts WHERE key = ANY(%s) ORDER BY id FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [keys])
        found = {row[1]: (row[0], row[2], row[3]) for row in cursor.fetchall()}
        missing = [refs[k] for k in keys if k not in found]
        if missing:
            # New accounts get fresh (higher) ids, so locking them after the existing ones keeps the
            # ascending order; ON CONFLICT covers a concurrent first use of the same account.
            values = ", ".join(["(%s, %s, %s, %s, %s, 0, now(), now())"] * len(missing))
            params: list[Any] = []
            for ref in missing:
                params += [ref.key, ref.user_id, ref.kind, ref.sub, ref.asset]
            cursor.execute(
                "INSERT INTO ledger_accounts (key, user_id, kind, sub, asset, balance, created_at, updated_at) "  # noqa: S608 - placeholders only
                f"VALUES {values} ON CONFLICT (key) DO NOTHING",
                params,
            )
            cursor.execute(sql, [[ref.key for ref in missing]])
            found.update({row[1]: (row[0], row[2], row[3]) for row in cursor.fetchall()})
    return found


def ledger_post(*, key: str, transfers: Iterable[TransferSpec]) -> Posting:
    """Post ``transfers`` atomically under the idempotency ``key``.

    Side effects: ledger_batches, ledger_transfers, balance_logs rows; account balances.
    Raises ``INVALID_AMOUNT``, ``INSUFFICIENT_BALANCE`` (nothing posted), ``IDEMPOTENCY_CONFLICT``.
    """
    specs = list(transfers)
    if not key or len(key) > 200:
        raise ValueError("an idempotency key of 1-200 characters is required")
    if not specs:
        raise ValueError("nothing to post")
    rows = [(spec, *_clean(spec)) for spec in specs]
    fingerprint = _fingerprint(rows)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ledger_batches (key, fingerprint, created_at) VALUES (%s, %s, now()) "
                "ON CONFLICT (key) DO NOTHING RETURNING id",
                [key, fingerprint],
            )
            inserted = cursor.fetchone()
            if inserted is None:
                cursor.execute("SELECT id, fingerprint FROM ledger_batches WHERE key = %s", [key])
                batch_id, original = cursor.fetchone()
                if original != fingerprint:
                    raise ApplicationError(
                        ErrorCode.IDEMPOTENCY_CONFLICT,
                        "This idempotency key was already used for different transfers.",
                        {"key": key},
                    )
                existing = list(LedgerTransfer.objects.filter(batch_id=batch_id).order_by("seq"))
                return Posting(key, batch_id, existing, replayed=True)
        batch_id = inserted[0]

        refs: dict[str, AccountRef] = {}
        for spec in specs:
            refs.setdefault(spec.debit.key, spec.debit)
            refs.setdefault(spec.credit.key, spec.credit)
        accounts = _lock_accounts(refs)
        balances = {k: v[1] for k, v in accounts.items()}

        now = timezone.now()
        objs: list[LedgerTransfer] = []
        logs: list[tuple[int, str, Decimal, Decimal]] = []  # (transfer index, account key, amount, before)
        for seq, (spec, amount, ref_id) in enumerate(rows):
            for ref, delta in ((spec.debit, -amount), (spec.credit, amount)):
                before = balances[ref.key]
                after = before + delta
                if ref.is_user:
                    if after < ZERO:
                        raise ApplicationError(
                            ErrorCode.INSUFFICIENT_BALANCE,
                            "Insufficient balance.",
                            {"account": ref.kind, "available": str(before), "required": str(amount)},
                        )
                    logs.append((seq, ref.key, delta, before))
                balances[ref.key] = after
            objs.append(
                LedgerTransfer(
                    batch_id=batch_id,
                    seq=seq,
                    idempotency_key=f"{key}#{seq}",
                    debit_id=accounts[spec.debit.key][0],
                    credit_id=accounts[spec.credit.key][0],
                    amount=amount,
                    asset=spec.debit.asset,
                    kind=spec.kind,
                    ref_type=spec.ref_type,
                    ref_id=ref_id,
                    created_at=now,
                )
            )
        LedgerTransfer.objects.bulk_create(objs)
        if logs:
            BalanceLog.objects.bulk_create(
                [
                    BalanceLog(
                        user_id=refs[acc_key].user_id,
                        account_id=accounts[acc_key][0],
                        transfer_id=objs[seq].pk,
                        type=objs[seq].kind,
                        account_kind=refs[acc_key].kind,
                        asset=objs[seq].asset,
                        amount=delta,
                        before=before,
                        after=before + delta,
                        ref_type=objs[seq].ref_type,
                        ref_id=objs[seq].ref_id,
                        created_at=now,
                    )
                    for seq, acc_key, delta, before in logs
                ]
            )
        changed = [(accounts[k][0], balances[k]) for k in balances if balances[k] != accounts[k][1]]
        if changed:
            values = ", ".join(["(%s::bigint, %s::numeric)"] * len(changed))
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE ledger_accounts AS a SET balance = v.balance, updated_at = now() "  # noqa: S608
                    f"FROM (VALUES {values}) AS v(id, balance) WHERE a.id = v.id",
                    [p for pair in changed for p in pair],
                )
        return Posting(key, batch_id, objs, replayed=False)


def account_balance(ref: AccountRef) -> Decimal:
    value = LedgerAccount.objects.filter(key=ref.key).values_list("balance", flat=True).first()
    return value if value is not None else ZERO


def ledger_invariant_violations() -> list[str]:
    """Everything wrong with the ledger, as readable lines (empty list = healthy).

    * Σ of balances per asset is 0;
    * each account's balance equals Σ credits - Σ debits of its transfers;
    * each user account's balance equals the Σ of its balance_logs, and is never negative.
    """
    problems: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT asset, SUM(balance) FROM ledger_accounts GROUP BY asset HAVING SUM(balance) <> 0"
        )
        problems += [f"asset {asset}: balances sum to {total}, not 0" for asset, total in cursor.fetchall()]
        cursor.execute(
            """
            SELECT a.key, a.balance, COALESCE(c.total, 0) - COALESCE(d.total, 0)
            FROM ledger_accounts a
            LEFT JOIN (SELECT credit_id, SUM(amount) total FROM ledger_transfers GROUP BY credit_id) c
                   ON c.credit_id = a.id
            LEFT JOIN (SELECT debit_id, SUM(amount) total FROM ledger_transfers GROUP BY debit_id) d
                   ON d.debit_id = a.id
            WHERE a.balance <> COALESCE(c.total, 0) - COALESCE(d.total, 0)
            """
        )
        problems += [f"account {k}: balance {b} but postings sum to {s}" for k, b, s in cursor.fetchall()]
        cursor.execute(
            """
            SELECT a.key, a.balance, COALESCE(l.total, 0)
            FROM ledger_accounts a
            LEFT JOIN (SELECT account_id, SUM(amount) total FROM balance_logs GROUP BY account_id) l
                   ON l.account_id = a.id
            WHERE a.user_id IS NOT NULL AND (a.balance <> COALESCE(l.total, 0) OR a.balance < 0)
            """
        )
        problems += [
            f"user account {k}: balance {b} but balance_logs sum to {s}" for k, b, s in cursor.fetchall()
        ]
    return problems
