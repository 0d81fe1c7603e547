"""The ledger's tables (accounts, batches, transfers, balance logs), user wallets and manual balance
adjustments. Sign convention: see :mod:`wallets.models`."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from wallets.models.base import (
    PLATFORM_ACCOUNT_KINDS,
    USDC,
    USER_ACCOUNT_KINDS,
    AccountKind,
    TransferKind,
    money_field,
)


class LedgerAccount(models.Model):
    """A balance. Created on first use by ``ledger_post``; ``key`` is the stable identity
    (``AccountRef.key``). The balance is only ever changed by ``ledger_post`` under a row lock."""

    key = models.CharField(max_length=160)  # unique: ledger_account_key_unique
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_accounts",
        db_index=False,  # indexed by (user, kind) below
    )
    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    sub = models.CharField(max_length=64, blank=True, default="")
    asset = models.CharField(max_length=16, default=USDC)
    balance = money_field(default=Decimal(0))
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ledger_accounts"
        constraints = [
            # keys are unique by constraint, not ``unique=True``, here and below: that would add a second,
            # pattern-matching index per key that no query uses and every insert pays for
            models.UniqueConstraint(fields=["key"], name="ledger_account_key_unique"),
            # The invariant that matters most: a user can never owe us through a ledger bug or a race.
            models.CheckConstraint(
                condition=Q(user__isnull=True) | Q(balance__gte=0), name="ledger_user_balance_non_negative"
            ),
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(kind__in=sorted(USER_ACCOUNT_KINDS)))
                | (Q(user__isnull=True) & Q(kind__in=sorted(PLATFORM_ACCOUNT_KINDS))),
                name="ledger_account_owner_matches_kind",
            ),
        ]
        indexes = [models.Index(fields=["user", "kind"])]

    def __str__(self) -> str:
        return self.key


class LedgerBatch(models.Model):
    """One ``ledger_post`` call: its idempotency key and a fingerprint of its content."""

    key = models.CharField(max_length=200)  # unique: ledger_batch_key_unique
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ledger_batches"
        constraints = [models.UniqueConstraint(fields=["key"], name="ledger_batch_key_unique")]

    def __str__(self) -> str:
        return self.key


class LedgerTransfer(models.Model):
    """Immutable (append-only by trigger). ``amount`` leaves ``debit`` and arrives in ``credit``."""

    batch = models.ForeignKey(LedgerBatch, on_delete=models.PROTECT, related_name="transfers")
    seq = models.PositiveSmallIntegerField()
    idempotency_key = models.CharField(max_length=210)  # unique: ledger_transfer_key_unique
    debit = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="debits")
    credit = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="credits")
    amount = money_field()
    asset = models.CharField(max_length=16)
    kind = models.CharField(max_length=32, choices=TransferKind.choices)
    ref_type = models.CharField(max_length=32, blank=True, default="")
    ref_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ledger_transfers"
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="ledger_transfer_key_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_transfer_amount_positive"),
            models.CheckConstraint(condition=~Q(debit=F("credit")), name="ledger_transfer_two_accounts"),
        ]
        indexes = [models.Index(fields=["ref_type", "ref_id"])]

    def __str__(self) -> str:
        return f"{self.idempotency_key}: {self.amount} {self.asset} {self.debit_id}->{self.credit_id}"


class BalanceLog(models.Model):
    """Every change of a user account (append-only): the user's statement."""

    user = models.ForeignKey(  # indexed by (user, -id) below
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="balance_logs", db_index=False
    )
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="logs")
    transfer = models.ForeignKey(LedgerTransfer, on_delete=models.PROTECT, related_name="logs")
    type = models.CharField(max_length=32, choices=TransferKind.choices)
    account_kind = models.CharField(max_length=32, choices=AccountKind.choices)
    asset = models.CharField(max_length=16)
    amount = money_field()  # signed change
    before = money_field()
    after = money_field()
    ref_type = models.CharField(max_length=32, blank=True, default="")
    ref_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "balance_logs"
        constraints = [
            models.CheckConstraint(
                condition=Q(after=F("before") + F("amount")), name="balance_log_arithmetic"
            ),
            models.CheckConstraint(condition=Q(after__gte=0), name="balance_log_after_non_negative"),
        ]
        indexes = [models.Index(fields=["user", "-id"])]

    def __str__(self) -> str:
        return f"{self.user_id} {self.type} {self.amount}"


class Wallet(models.Model):
    """The per-user ``wallets`` view (a PostgreSQL VIEW over ``ledger_accounts``; never written).
    ``cross_margin_used`` is supplied by trading through ``wallets.hooks`` (see ``wallet_get``)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, primary_key=True, related_name="+"
    )
    total_balance = money_field()
    cash_balance = money_field()
    frozen_margin = money_field()
    pending_withdrawal = money_field()

    class Meta:
        managed = False
        db_table = "wallets"

    def __str__(self) -> str:
        return f"wallet of {self.user_id}"


class BalanceAdjustment(models.Model):
    """A manual correction of a user's cash: requested by one operator, approved by another."""

    class Status(models.TextChoices):
        REQUESTED = "REQUESTED", "Requested"
        APPROVED = "APPROVED", "Approved and posted"
        REJECTED = "REJECTED", "Rejected"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="adjustments")
    amount = money_field()  # signed: > 0 credits the user, < 0 debits
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision_note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="adjustment_amount_non_zero"),
            models.CheckConstraint(condition=~Q(reason=""), name="adjustment_reason_required"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="adjustment_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"adjustment {self.pk} {self.amount} for {self.user_id}"
