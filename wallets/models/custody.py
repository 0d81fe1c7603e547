"""Chain configuration and state, platform keys, deposit addresses, aggregation sweeps and deposits."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from wallets.models.base import Chain, money_field

# --- configuration (operators change it at run time; edits audited) ----------------------------


class ChainConfig(models.Model):
    chain = models.CharField(max_length=10, choices=Chain.choices, primary_key=True)
    enabled = models.BooleanField(default=True)
    deposits_enabled = models.BooleanField(default=True)
    withdrawals_enabled = models.BooleanField(default=True)
    assets = models.JSONField(default=list)
    native_asset = models.CharField(max_length=8)
    confirmations = models.PositiveIntegerField()
    min_deposit = money_field(default=Decimal(10))
    max_deposit = money_field(default=Decimal(100_000))
    min_withdrawal = money_field(default=Decimal(10))
    withdrawal_fee = money_field(default=Decimal(1))
    aggregation_threshold = money_field(default=Decimal(1_000))
    hot_safe_level = money_field(default=Decimal(500_000))
    hot_critical_level = money_field(default=Decimal(100_000))
    hot_emergency_level = money_field(default=Decimal(20_000))
    hot_high_watermark = money_field(default=Decimal(2_000_000))
    # EVM sending and scanning: fee cap (gwei), replacement of a stuck transaction, getLogs range
    max_fee_gwei = models.DecimalField(max_digits=20, decimal_places=9, default=Decimal(500))
    replace_after_seconds = models.PositiveIntegerField(default=120)
    scan_range_blocks = models.PositiveIntegerField(default=2_000)
    # TRON sending: the most TRX a token transfer may burn for its energy (the transaction's fee_limit;
    # beyond it the call fails with OUT_OF_ENERGY and the burnt fee stays spent), and how long after its
    # reference block's time a signed transaction expires (then it is re-signed, never doubled)
    fee_limit_native = models.DecimalField(max_digits=20, decimal_places=6, default=Decimal(50))
    tx_expiration_seconds = models.PositiveIntegerField(default=60)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.chain} config"


class WalletConfig(models.Model):
    """Platform-wide withdrawal and monitoring parameters (a single row, pk=1)."""

    auto_approve_below = money_field(default=Decimal(10_000))
    single_approval_max = money_field(default=Decimal(100_000))
    same_address_max_24h = models.PositiveIntegerField(default=3)
    duplicate_window_minutes = models.PositiveIntegerField(default=10)
    security_lock_hours = models.PositiveIntegerField(default=24)
    email_token_ttl_minutes = models.PositiveIntegerField(default=30)
    whitelist_delay_hours = models.PositiveIntegerField(default=24)
    critical_pause_above = money_field(default=Decimal(10_000))
    aggregation_interval_hours = models.PositiveIntegerField(default=4)
    liquidity_coverage_alert = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal("0.30"))
    pending_queue_max_count = models.PositiveIntegerField(default=50)
    pending_queue_max_amount = money_field(default=Decimal(500_000))
    small_tier_avg_seconds_max = models.PositiveIntegerField(default=180)
    daily_volume_multiplier = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal(3))
    scan_lookback_blocks = models.PositiveIntegerField(default=1_000)
    resend_after_seconds = models.PositiveIntegerField(default=30)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return "wallet config"


class ChainState(models.Model):
    """Operational state per chain, written by the beat-driven services (not configuration)."""

    class Level(models.TextChoices):
        SAFE = "safe", "Safe"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"
        EMERGENCY = "emergency", "Emergency"
        UNKNOWN = "unknown", "Unknown"

    chain = models.CharField(max_length=10, choices=Chain.choices, primary_key=True)
    scanned_height = models.BigIntegerField(null=True, blank=True)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    hot_balance = money_field(default=Decimal(0))
    hot_level = models.CharField(max_length=10, choices=Level.choices, default=Level.UNKNOWN)
    hot_checked_at = models.DateTimeField(null=True, blank=True)
    last_scheduled_sweep_at = models.DateTimeField(null=True, blank=True)
    scanned_hash = models.CharField(max_length=100, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.chain} state"


# --- custody -----------------------------------------------------------------------------------


class WalletKey(models.Model):
    """A key held by the local signer, encrypted at rest. The plaintext never leaves ``LocalSigner``."""

    class Purpose(models.TextChoices):
        DEPOSIT = "deposit", "User deposit address"
        HOT = "hot", "Hot wallet"
        COLD = "cold", "Cold wallet"

    chain = models.CharField(max_length=10, choices=Chain.choices)
    address = models.CharField(max_length=64)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    private_key_encrypted = models.TextField(blank=True, default="")  # empty for HD keys
    hd_path = models.CharField(max_length=64, blank=True, default="")  # BIP-44 path from the HD seed
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "wallet_keys"
        constraints = [
            models.UniqueConstraint(fields=["chain", "address"], name="wallet_key_unique_address"),
            models.UniqueConstraint(
                fields=["chain", "purpose"],
                condition=Q(purpose__in=["hot", "cold"]),
                name="wallet_key_one_hot_and_cold_per_chain",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.chain} {self.address}"

    def __repr__(self) -> str:  # never print the (encrypted) key material
        return f"<WalletKey {self.purpose} {self.chain} {self.address}>"


class DepositAddress(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposit_addresses"
    )
    chain = models.CharField(max_length=10, choices=Chain.choices)
    address = models.CharField(max_length=64)
    key = models.OneToOneField(WalletKey, on_delete=models.PROTECT, related_name="deposit_address")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "chain"], name="deposit_address_one_per_user_chain"),
            models.UniqueConstraint(fields=["chain", "address"], name="deposit_address_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.chain} {self.address}"


class Aggregation(models.Model):
    """A sweep of one deposit address into the chain's hot wallet (gas top-up first if needed)."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        GAS_SENT = "GAS_SENT", "Gas sent"
        SENT = "SENT", "Sweep broadcast"
        CONFIRMED = "CONFIRMED", "Confirmed"
        FAILED = "FAILED", "Failed"

    class Trigger(models.TextChoices):
        THRESHOLD = "threshold", "Address above threshold"
        SCHEDULE = "schedule", "Scheduled sweep"
        EMERGENCY = "emergency", "Hot wallet below warning"
        MANUAL = "manual", "Operator"

    chain = models.CharField(max_length=10, choices=Chain.choices)
    asset = models.CharField(max_length=8)
    from_address = models.CharField(max_length=64)
    to_address = models.CharField(max_length=64)
    amount = money_field()
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    gas_tx_hash = models.CharField(max_length=100, blank=True, default="")
    gas_payload = models.JSONField(null=True, blank=True)
    tx_hash = models.CharField(max_length=100, blank=True, default="")
    payload = models.JSONField(null=True, blank=True)
    gas_used = money_field(default=Decimal(0))
    gas_asset = models.CharField(max_length=8, blank=True, default="")
    error = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "aggregations"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="aggregation_amount_positive"),
            # one open sweep per address and asset: the deposits it covers are claimed by it
            models.UniqueConstraint(
                fields=["chain", "asset", "from_address"],
                condition=Q(status__in=["PENDING", "GAS_SENT", "SENT"]),
                name="aggregation_one_open_per_address",
            ),
        ]

    def __str__(self) -> str:
        return f"aggregation {self.pk} {self.chain} {self.amount} {self.asset}"


class Deposit(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "Waiting for confirmations"
        CREDITED = "CREDITED", "Credited"
        HELD = "HELD", "Held for review"
        DROPPED = "DROPPED", "Dropped by a reorg"
        REJECTED = "REJECTED", "Rejected after review"

    chain = models.CharField(max_length=10, choices=Chain.choices)
    tx_hash = models.CharField(max_length=100)
    log_index = models.PositiveIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposits")
    address = models.CharField(max_length=64)
    from_address = models.CharField(max_length=64, blank=True, default="")
    asset = models.CharField(max_length=8)
    amount = money_field()
    block_height = models.BigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=100, blank=True, default="")
    confirmations = models.PositiveIntegerField(default=0)
    required_confirmations = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    review_note = models.TextField(blank=True, default="")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    aggregation = models.ForeignKey(
        Aggregation, on_delete=models.PROTECT, null=True, blank=True, related_name="deposits"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    credited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain", "tx_hash", "log_index"], name="deposit_unique_transfer"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_amount_positive"),
        ]
        indexes = [models.Index(fields=["status", "chain"]), models.Index(fields=["user", "-id"])]

    def __str__(self) -> str:
        return f"deposit {self.chain}:{self.tx_hash}:{self.log_index}"

    @property
    def ledger_key(self) -> str:
        return f"deposit:{self.chain}:{self.tx_hash}:{self.log_index}"
