"""Withdrawals (spec 06), their approvals, the address book and blacklist, hot <-> cold transfers."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from wallets.models.base import Chain, money_field


class UserWalletSettings(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="wallet_settings"
    )
    whitelist_only = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"wallet settings of {self.user_id}"


class WithdrawalAddress(models.Model):
    """The user's address book. In whitelist-only mode only these addresses, once usable, are allowed."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="withdrawal_addresses"
    )
    chain = models.CharField(max_length=10, choices=Chain.choices)
    address = models.CharField(max_length=64)
    label = models.CharField(max_length=80, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    usable_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "chain", "address"], name="withdrawal_address_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.label or self.address} ({self.chain})"


class BlacklistedAddress(models.Model):
    chain = models.CharField(max_length=10, choices=Chain.choices)
    address = models.CharField(max_length=64)
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain", "address"], name="blacklisted_address_unique")
        ]

    def __str__(self) -> str:
        return f"{self.chain} {self.address}"


class Withdrawal(models.Model):
    class Status(models.TextChoices):
        AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION", "Waiting for the email confirmation"
        AWAITING_APPROVAL = "AWAITING_APPROVAL", "Waiting for approval"
        APPROVED = "APPROVED", "Approved, waiting to be sent"
        SENDING = "SENDING", "Being sent"
        BROADCAST = "BROADCAST", "Broadcast, waiting for confirmations"
        COMPLETED = "COMPLETED", "Completed"
        REJECTED = "REJECTED", "Rejected"
        FAILED = "FAILED", "Failed"
        CANCELLED = "CANCELLED", "Cancelled"
        EXPIRED = "EXPIRED", "Confirmation expired"

    class Tier(models.TextChoices):
        AUTO = "auto", "< 10,000: automatic"
        SINGLE = "single", "10,000 - 100,000: one operations approval"
        DUAL = "dual", "> 100,000: risk review + operations approval"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawals")
    chain = models.CharField(max_length=10, choices=Chain.choices)
    asset = models.CharField(max_length=8)
    address = models.CharField(max_length=64)
    amount = money_field()  # debited from the user's cash
    fee = money_field()  # to fee revenue; the chain transfer is amount - fee
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.AWAITING_CONFIRMATION)
    tier = models.CharField(max_length=8, choices=Tier.choices)
    manual_review = models.BooleanField(default=False)
    review_reasons = models.JSONField(default=list, blank=True)
    reason_code = models.CharField(max_length=40, blank=True, default="")
    reason = models.CharField(max_length=300, blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    nonce = models.CharField(max_length=64, blank=True, default="")
    payload = models.JSONField(null=True, blank=True)  # the signed transfer, stored before it is broadcast
    tx_hash = models.CharField(max_length=100, blank=True, default="")
    confirmations = models.PositiveIntegerField(default=0)
    send_attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=F("fee")), name="withdrawal_amount_above_fee"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="withdrawal_fee_non_negative"),
            # the broadcast key: one chain transaction per withdrawal, ever
            models.UniqueConstraint(
                fields=["chain", "nonce"], condition=~Q(nonce=""), name="withdrawal_nonce_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(fields=["user", "-id"]),
            models.Index(fields=["chain", "address", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"withdrawal {self.pk} {self.amount} {self.asset} on {self.chain}"

    @property
    def net_amount(self) -> Decimal:
        return self.amount - self.fee


class WithdrawalApproval(models.Model):
    class Kind(models.TextChoices):
        RISK = "risk", "Risk review"
        OPS = "ops", "Operations approval"

    withdrawal = models.ForeignKey(Withdrawal, on_delete=models.PROTECT, related_name="approvals")
    kind = models.CharField(max_length=4, choices=Kind.choices)
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["withdrawal", "kind"], name="withdrawal_approval_once_per_kind"),
            # four eyes in the database: the two approvals of a large withdrawal are by different people
            models.UniqueConstraint(
                fields=["withdrawal", "approver"], name="withdrawal_approval_distinct_people"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} approval of {self.withdrawal_id} by {self.approver_id}"


class ColdTransfer(models.Model):
    """Hot <-> cold movements. Cold -> hot top-ups are proposals a risk officer approves (the approval
    stands in for offline signing); hot -> cold sweeps above the high watermark are automatic."""

    class Direction(models.TextChoices):
        TO_HOT = "to_hot", "Cold to hot (top-up)"
        TO_COLD = "to_cold", "Hot to cold (excess)"

    class Status(models.TextChoices):
        PROPOSED = "PROPOSED", "Proposed"
        APPROVED = "APPROVED", "Approved"
        SENT = "SENT", "Broadcast"
        CONFIRMED = "CONFIRMED", "Confirmed"
        REJECTED = "REJECTED", "Rejected"
        FAILED = "FAILED", "Failed"

    chain = models.CharField(max_length=10, choices=Chain.choices)
    asset = models.CharField(max_length=8)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    amount = money_field()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    reason = models.CharField(max_length=300, blank=True, default="")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    payload = models.JSONField(null=True, blank=True)
    tx_hash = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="cold_transfer_amount_positive"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True)
                | Q(proposed_by__isnull=True)
                | ~Q(decided_by=F("proposed_by")),
                name="cold_transfer_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.amount} {self.asset} on {self.chain}"
