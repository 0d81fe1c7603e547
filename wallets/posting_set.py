"""Many ledger postings written by one statement, for set-based work over many users in one
transaction (a batch of liquidations). Single postings go through :mod:`wallets.ledger`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from core.errors import ApplicationError, ErrorCode
from core.money import ZERO
from core.sql.batch import SqlBatch
from core.sql.json_rows import json_param
from wallets.ledger import AccountRef, PreparedPosting, ensure_accounts


class PostingSet:
    """Many postings, each under its own idempotency key, written by ONE statement — for set-based work
    over many users in one transaction (a batch of liquidations).

    ``balances`` are the caller's locked user balances (ledger key -> balance, as its locking read
    returned them; a user account absent from it must be new). :meth:`add` checks one posting against
    them and advances them (``INSUFFICIENT_BALANCE`` adds nothing); :meth:`queue` creates the missing
    accounts, locks the platform accounts once, in id order and last (the lock order of
    :func:`posting_lock_user_accounts`), and queues one statement inserting every batch row, transfer
    and balance log and setting every balance once: user accounts to their checked values, platform
    accounts by their net delta over the whole set. Every key must be new — a replayed key is a unique
    violation, so the caller's transaction fails rather than posting twice.

    The rows travel as JSON parameters (one per table, unpacked by PostgreSQL): binding thousands of
    placeholders client-side would cost more than the writes."""

    def __init__(self, balances: dict[str, Decimal]) -> None:
        self.balances = balances
        self.postings: list[PreparedPosting] = []
        self._start: dict[str, Decimal] = {}  # user key -> its balance before this set
        self._refs: dict[str, AccountRef] = {}
        self._fresh: dict[str, AccountRef] = {}
        self._platform: dict[str, Decimal] = {}
        self._transfers: list[list[Any]] = []
        self._logs: list[list[Any]] = []

    def __bool__(self) -> bool:
        return bool(self.postings)

    def add(self, posting: PreparedPosting) -> None:
        running: dict[str, Decimal] = {}
        logs: list[list[Any]] = []
        transfers: list[list[Any]] = []
        platform: dict[str, Decimal] = {}
        for seq, (spec, amount, ref_id) in enumerate(posting.rows):
            ikey = f"{posting.key}#{seq}"
            for ref, delta in ((spec.debit, -amount), (spec.credit, amount)):
                if not ref.is_user:
                    platform[ref.key] = platform.get(ref.key, ZERO) + delta
                    continue
                before = running.get(ref.key, self.balances.get(ref.key, ZERO))
                after = before + delta
                if after < ZERO:
                    raise ApplicationError(
                        ErrorCode.INSUFFICIENT_BALANCE,
                        "Insufficient balance.",
                        {"account": ref.kind, "available": str(before), "required": str(amount)},
                    )
                logs.append(
                    [ikey, ref.key, ref.user_id, spec.kind, ref.kind, spec.debit.asset]
                    + [str(delta), str(before), str(after), spec.ref_type, ref_id]
                )
                running[ref.key] = after
            transfers.append(
                [posting.key, seq, ikey, spec.debit.key, spec.credit.key, str(amount), spec.debit.asset]
                + [spec.kind, spec.ref_type, ref_id]
            )
        for key, value in running.items():
            if key not in self.balances:
                self._fresh[key] = posting.refs[key]
            self._start.setdefault(key, self.balances.get(key, ZERO))
            self.balances[key] = value
        for key, delta in platform.items():
            self._platform[key] = self._platform.get(key, ZERO) + delta
        self._refs.update(posting.refs)
        self._transfers += transfers
        self._logs += logs
        self.postings.append(posting)

    def queue(self, batch: SqlBatch, *, now: Any = None) -> int:
        """Queue the writes; returns the index of the row holding the number of transfers written."""
        if not self.postings:
            raise ValueError("nothing to post")
        now = now or timezone.now()
        platform_refs = [self._refs[key] for key in self._platform]
        if self._fresh or platform_refs:
            ensure_accounts(batch, [*self._fresh.values(), *platform_refs])
        if platform_refs:
            batch.add(
                "SELECT 1 FROM ledger_accounts WHERE key = ANY(%s) ORDER BY id FOR UPDATE",
                [list(self._platform)],
            )
        updates: list[list[Any]] = []
        for key, start in self._start.items():
            if self.balances[key] != start:
                updates.append([key, str(self.balances[key]), False])
        for key, delta in self._platform.items():
            if delta != ZERO:
                updates.append([key, str(delta), True])
        batches = [[p.key, p.fingerprint] for p in self.postings]
        sql = (
            "WITH b AS (INSERT INTO ledger_batches (key, fingerprint, created_at) "
            "SELECT r->>0, r->>1, %s FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS x(r, n) "
            "ORDER BY n RETURNING id, key), "
            "acc AS (SELECT id, key FROM ledger_accounts WHERE key = ANY(%s)), "
            "t AS (INSERT INTO ledger_transfers (batch_id, seq, idempotency_key, debit_id, credit_id, amount, "
            "asset, kind, ref_type, ref_id, created_at) "
            "SELECT b.id, (r->>1)::smallint, r->>2, d.id, c.id, (r->>5)::numeric, r->>6, r->>7, r->>8, r->>9, %s "
            "FROM jsonb_array_elements(%s::jsonb) AS x(r) JOIN b ON b.key = r->>0 "
            "JOIN acc d ON d.key = r->>3 JOIN acc c ON c.key = r->>4 RETURNING id, idempotency_key)"
        )
        params: list[Any] = [now, json_param(batches), list(self._refs), now, json_param(self._transfers)]
        if self._logs:
            sql += (
                ", l AS (INSERT INTO balance_logs (user_id, account_id, transfer_id, type, account_kind, "
                "asset, amount, before, after, ref_type, ref_id, created_at) "
                "SELECT (r->>2)::bigint, a.id, t.id, r->>3, r->>4, r->>5, (r->>6)::numeric, (r->>7)::numeric, "
                "(r->>8)::numeric, r->>9, r->>10, %s FROM jsonb_array_elements(%s::jsonb) AS x(r) "
                "JOIN t ON t.idempotency_key = r->>0 JOIN acc a ON a.key = r->>1)"
            )
            params += [now, json_param(self._logs)]
        if updates:
            sql += (
                ", u AS (UPDATE ledger_accounts AS a SET balance = CASE WHEN (r->>2)::boolean "
                "THEN a.balance + (r->>1)::numeric ELSE (r->>1)::numeric END, updated_at = %s "
                "FROM jsonb_array_elements(%s::jsonb) AS x(r) WHERE a.key = r->>0)"
            )
            params += [now, json_param(updates)]
        sql += " SELECT count(*) FROM t"
        return batch.add(sql, params)

    @property
    def transfer_count(self) -> int:
        return len(self._transfers)
