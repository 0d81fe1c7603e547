"""The double-entry ledger: the only way money moves in XBIT.

Usage (every movement of money posts through this)::

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

Cost: two round trips whatever the number of transfers (see ``ledger_post``); hot paths that already
hold the user's accounts (the order path) queue the writes with their own through ``posting_write``
and a ``SqlBatch`` instead. Platform accounts (fee revenue, B-book, reserve — touched by every fill)
are locked last and only for the final write, then updated relatively, so fills of different users
queue on them for one round trip and the commit, not for their whole transaction.

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

from core.errors import ApplicationError, ErrorCode
from core.money import USDC_DECIMALS, ZERO, has_at_most_decimals, to_decimal
from core.sql.batch import SqlBatch, new_instance, values_rows
from wallets.models import (
    PLATFORM_ACCOUNT_KINDS,
    USDC,
    USER_ACCOUNT_KINDS,
    AccountKind,
    LedgerAccount,
    LedgerBatch,
    LedgerTransfer,
    TransferKind,
)

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


@dataclass(frozen=True)
class PreparedPosting:
    """A validated posting, not yet written (see :func:`posting_write`)."""

    key: str
    rows: list[tuple[TransferSpec, Decimal, str]]
    fingerprint: str
    refs: dict[str, AccountRef]

    @property
    def user_refs(self) -> list[AccountRef]:
        return [ref for ref in self.refs.values() if ref.is_user]


def posting_prepare(*, key: str, transfers: Iterable[TransferSpec]) -> PreparedPosting:
    specs = list(transfers)
    if not key or len(key) > 200:
        raise ValueError("an idempotency key of 1-200 characters is required")
    if not specs:
        raise ValueError("nothing to post")
    rows = [(spec, *_clean(spec)) for spec in specs]
    refs: dict[str, AccountRef] = {}
    for spec in specs:
        refs.setdefault(spec.debit.key, spec.debit)
        refs.setdefault(spec.credit.key, spec.credit)
    return PreparedPosting(key, rows, _fingerprint(rows), refs)


_LOCK_SQL = "SELECT key, balance FROM ledger_accounts WHERE key = ANY(%s) ORDER BY id FOR UPDATE"


def ensure_accounts(batch: SqlBatch, refs: Sequence[AccountRef]) -> None:
    """Queue the creation of those of ``refs`` that do not exist yet (zero balance)."""
    # NOT EXISTS first: ON CONFLICT alone would draw (and waste) an id for every existing account
    params: list[Any] = []
    for ref in refs:
        params += [ref.key, ref.user_id, ref.kind, ref.sub, ref.asset]
    batch.add(
        "INSERT INTO ledger_accounts (key, user_id, kind, sub, asset, balance, created_at, updated_at) "  # noqa: S608
        "SELECT v.key, v.user_id, v.kind, v.sub, v.asset, 0, now(), now() FROM (VALUES "
        + values_rows(len(refs), "(%s, %s::bigint, %s, %s, %s)")
        + ") AS v(key, user_id, kind, sub, asset) "
        "WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.key = v.key) ON CONFLICT (key) DO NOTHING",
        params,
    )


def posting_lock_user_accounts(batch: SqlBatch, refs: Sequence[AccountRef]) -> int:
    """Queue the locking read of user accounts (created when missing). Returns the index of the
    ``(key, balance)`` rows.

    Lock order, everywhere: the user accounts of a posting first, in ascending id order, then its
    platform accounts, in ascending id order (:func:`posting_write`). Two postings touching the same
    accounts therefore queue on the first shared row instead of each holding one and waiting for the
    other (deadlock), and the balances read here cannot change before our UPDATE — so concurrent debits
    of one user can neither overdraw (check-then-write race) nor lose an update. Existing rows are
    locked before missing ones are created, as creation takes the new row's lock.
    """
    keys = [ref.key for ref in refs]
    batch.add(_LOCK_SQL, [keys])
    ensure_accounts(batch, refs)
    return batch.add(_LOCK_SQL, [keys])


def posting_write(
    batch: SqlBatch,
    posting: PreparedPosting,
    balances: dict[str, Decimal],
    *,
    replay_safe: bool = True,
    now: Any = None,
) -> int:
    """Check the posting against the locked user ``balances`` (key -> balance, advanced in place to the
    balances after this posting; a user account absent from it must be new, e.g. the margin account of a position created in this transaction) and queue
    its writes: platform accounts created if missing and locked in id order, then ONE statement that
    inserts the batch, the transfers and the balance logs and updates every balance. Platform balances
    move by a relative ``balance + delta`` (they may take either sign, so they need no read, and their
    rows — shared by every fill — stay locked only from here to the commit); user balances are set to the
    checked values.

    Returns the index of the ``(transfer id, seq, batch id)`` rows, empty when ``replay_safe`` and another
    transaction posted the same key meanwhile (nothing is written then). Without ``replay_safe`` a
    concurrent duplicate key is a unique violation.
    Raises ``INSUFFICIENT_BALANCE`` before queueing anything."""
    now = now or timezone.now()
    given = balances
    balances = dict(given)
    platform: dict[str, Decimal] = {}
    fresh: list[AccountRef] = []
    for ref in posting.refs.values():
        if ref.is_user and ref.key not in balances:
            fresh.append(ref)
            balances[ref.key] = ZERO
        elif not ref.is_user:
            platform[ref.key] = ZERO
    start = dict(balances)
    logs: list[Any] = []
    transfers: list[Any] = []
    for seq, (spec, amount, ref_id) in enumerate(posting.rows):
        for ref, delta in ((spec.debit, -amount), (spec.credit, amount)):
            if ref.is_user:
                before = balances[ref.key]
                after = before + delta
                if after < ZERO:
                    raise ApplicationError(
                        ErrorCode.INSUFFICIENT_BALANCE,
                        "Insufficient balance.",
                        {"account": ref.kind, "available": str(before), "required": str(amount)},
                    )
                logs += [
                    seq,
                    ref.key,
                    ref.user_id,
                    spec.kind,
                    ref.kind,
                    spec.debit.asset,
                    delta,
                    before,
                    after,
                ]
                logs += [spec.ref_type, ref_id]
                balances[ref.key] = after
            else:
                platform[ref.key] += delta
        transfers += [seq, f"{posting.key}#{seq}", spec.debit.key, spec.credit.key, amount, spec.debit.asset]
        transfers += [spec.kind, spec.ref_type, ref_id]
    updates: list[Any] = []
    for key, value in balances.items():
        if value != start[key]:
            updates += [key, value, False]
    for key, delta in platform.items():
        if delta != ZERO:
            updates += [key, delta, True]
    given.update(balances)  # a later posting in the same batch starts from these
    platform_refs = [posting.refs[k] for k in platform]
    if fresh or platform_refs:
        ensure_accounts(batch, [*fresh, *platform_refs])
    if platform_refs:
        batch.add(
            "SELECT 1 FROM ledger_accounts WHERE key = ANY(%s) ORDER BY id FOR UPDATE", [list(platform)]
        )
    n_logs = len(logs) // 11
    n_updates = len(updates) // 3
    conflict = " ON CONFLICT (key) DO NOTHING" if replay_safe else ""
    sql = (
        f"WITH b AS (INSERT INTO ledger_batches (key, fingerprint, created_at) VALUES (%s, %s, %s){conflict} "  # noqa: S608 - placeholders only
        "RETURNING id), "
        "acc AS (SELECT id, key FROM ledger_accounts WHERE key = ANY(%s)), "
        "t AS (INSERT INTO ledger_transfers (batch_id, seq, idempotency_key, debit_id, credit_id, amount, "
        "asset, kind, ref_type, ref_id, created_at) "
        "SELECT b.id, v.seq, v.ikey, d.id, c.id, v.amount, v.asset, v.kind, v.ref_type, v.ref_id, %s "
        "FROM (VALUES "
        + values_rows(len(posting.rows), "(%s::smallint, %s, %s, %s, %s::numeric, %s, %s, %s, %s)")
        + ") AS v(seq, ikey, dkey, ckey, amount, asset, kind, ref_type, ref_id) CROSS JOIN b "
        "JOIN acc d ON d.key = v.dkey JOIN acc c ON c.key = v.ckey RETURNING id, seq)"
    )
    params: list[Any] = [posting.key, posting.fingerprint, now, list(posting.refs), now, *transfers]
    if n_logs:
        sql += (
            ", l AS (INSERT INTO balance_logs (user_id, account_id, transfer_id, type, account_kind, asset, "  # noqa: S608
            "amount, before, after, ref_type, ref_id, created_at) "
            "SELECT v.user_id, a.id, t.id, v.type, v.kind, v.asset, v.amount, v.before, v.after, v.ref_type, "
            "v.ref_id, %s FROM (VALUES "
            + values_rows(
                n_logs,
                "(%s::smallint, %s, %s::bigint, %s, %s, %s, %s::numeric, %s::numeric, %s::numeric, %s, %s)",
            )
            + ") AS v(seq, akey, user_id, type, kind, asset, amount, before, after, ref_type, ref_id) "
            "JOIN t ON t.seq = v.seq JOIN acc a ON a.key = v.akey)"
        )
        params += [now, *logs]
    if n_updates:
        sql += (
            ", u AS (UPDATE ledger_accounts AS a SET balance = CASE WHEN v.relative THEN a.balance + v.value "  # noqa: S608
            "ELSE v.value END, updated_at = %s FROM (VALUES "
            + values_rows(n_updates, "(%s, %s::numeric, %s::boolean)")
            + ") AS v(key, value, relative) CROSS JOIN b WHERE a.key = v.key)"
        )
        params += [now, *updates]
    sql += " SELECT t.id, t.seq, b.id FROM t CROSS JOIN b ORDER BY t.seq"
    return batch.add(sql, params)


def _replayed(key: str, fingerprint: str) -> Posting:
    batch_id, original = LedgerBatch.objects.filter(key=key).values_list("id", "fingerprint").get()
    if original != fingerprint:
        raise ApplicationError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This idempotency key was already used for different transfers.",
            {"key": key},
        )
    existing = list(LedgerTransfer.objects.filter(batch_id=batch_id).order_by("seq"))
    return Posting(key, batch_id, existing, replayed=True)


_SAVEPOINT = "xbit_ledger_post"


def ledger_post(*, key: str, transfers: Iterable[TransferSpec]) -> Posting:
    """Post ``transfers`` atomically under the idempotency ``key``.

    Side effects: ledger_batches, ledger_transfers, balance_logs rows; account balances.
    Raises ``INVALID_AMOUNT``, ``INSUFFICIENT_BALANCE`` (nothing posted), ``IDEMPOTENCY_CONFLICT``.

    Two round trips: (savepoint, replay check, user accounts locked/created) and (platform accounts
    created/locked, one statement writing everything, savepoint released). The savepoint is our own
    (not Django's, which would cost two more round trips): a failure rolls back to it, so the caller's
    transaction stays usable exactly as with ``transaction.atomic()``.
    """
    posting = posting_prepare(key=key, transfers=transfers)
    if not connection.in_atomic_block:
        with transaction.atomic():
            return _post(posting, savepoint=False)
    return _post(posting, savepoint=True)


def _post(posting: PreparedPosting, *, savepoint: bool) -> Posting:
    read = SqlBatch()
    if savepoint:
        read.add(f"SAVEPOINT {_SAVEPOINT}")
    i_batch = read.add("SELECT 1 FROM ledger_batches WHERE key = %s", [posting.key])
    user_refs = posting.user_refs
    i_lock = posting_lock_user_accounts(read, user_refs) if user_refs else -1
    now = timezone.now()
    rows: list[tuple[Any, ...]] = []
    try:
        results = read.run()
        replayed = bool(results[i_batch])
        if not replayed:
            balances: dict[str, Decimal] = dict(results[i_lock] or []) if user_refs else {}
            write = SqlBatch()
            i_write = posting_write(write, posting, balances, now=now)
            if savepoint:
                write.add(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            rows = write.run()[i_write] or []
    except BaseException:
        if savepoint:
            _rollback_to_savepoint()
        raise
    if replayed:
        if savepoint:
            _rollback_to_savepoint()  # accounts the read may have created are not needed
        return _replayed(posting.key, posting.fingerprint)
    if not rows:  # another transaction posted this key after our check (its accounts exist too)
        return _replayed(posting.key, posting.fingerprint)
    objs = [
        new_instance(
            LedgerTransfer,
            id=transfer_id,
            batch_id=batch_id,
            seq=seq,
            idempotency_key=f"{posting.key}#{seq}",
            amount=amount,
            asset=spec.debit.asset,
            kind=spec.kind,
            ref_type=spec.ref_type,
            ref_id=ref_id,
            created_at=now,
        )
        for (transfer_id, seq, batch_id), (spec, amount, ref_id) in zip(rows, posting.rows, strict=True)
    ]
    return Posting(posting.key, rows[0][2], objs, replayed=False)


def _rollback_to_savepoint() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}")
    except Exception:  # noqa: S110 - the original error is the one to raise
        pass


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
