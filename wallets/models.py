"""Money: the double-entry ledger, custody (keys, deposit addresses, hot/cold wallets), deposits,
aggregation sweeps and withdrawals (spec 06).

Sign convention of the ledger (see ``wallets.ledger``): a transfer moves ``amount`` out of its
``debit`` account into its ``credit`` account, so Σ of all balances per asset is always 0. User
accounts are liabilities and never negative (CHECK constraint). Custody accounts (deposit clearing,
hot and cold wallets) hold the opposite sign: ``-balance`` is what the platform holds on chain.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from core.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS

USDC = "USDC"


def _money(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]


class Chain(models.TextChoices):
    TRON = "TRON", "TRON"
    ETH = "ETH", "Ethereum"
    SOL = "SOL", "Solana"
    ARBITRUM = "ARBITRUM", "Arbitrum"


class AccountKind(models.TextChoices):
    # per user
    CASH = "cash", "Cash (available)"
    ISOLATED_MARGIN = "isolated_margin", "Isolated margin"
    ORDER_HOLD = "order_hold", "Order holds"
    PENDING_WITHDRAWAL = "pending_withdrawal", "Pending withdrawal"
    # platform (identified by these stable codes, plus an optional sub such as "TRON:USDT")
    BBOOK_PNL = "bbook_pnl", "B-book counterparty P&L"
    FEE_REVENUE = "fee_revenue", "Fee revenue"
    RISK_RESERVE = "risk_reserve", "Risk reserve"
    HL_TRADING_CAPITAL = "hl_trading_capital", "HL trading account capital"
    HL_HEDGE_CAPITAL = "hl_hedge_capital", "HL hedge account capital"
    # What the HL accounts paid or received beyond injected capital: users' realized P&L on HL-held
    # positions, HL's own fees, funding (sub = account name). HL account value ≈ capital − hl_pnl.
    HL_PNL = "hl_pnl", "P&L, fees and funding settled on an HL account"
    HOT_WALLET = "hot_wallet", "Hot wallet"
    COLD_WALLET = "cold_wallet", "Cold wallet"
    DEPOSIT_CLEARING = "deposit_clearing", "Deposit clearing"
    WITHDRAWAL_CLEARING = "withdrawal_clearing", "Withdrawal clearing"
    GAS_EXPENSE = "gas_expense", "Gas expense"
    FUNDING_CLEARING = "funding_clearing", "Funding clearing"
    EQUITY = "equity", "Platform equity (capital injections)"
    ADJUSTMENTS = "adjustments", "Manual adjustments"


USER_ACCOUNT_KINDS = frozenset(
    {AccountKind.CASH, AccountKind.ISOLATED_MARGIN, AccountKind.ORDER_HOLD, AccountKind.PENDING_WITHDRAWAL}
)
PLATFORM_ACCOUNT_KINDS = frozenset(set(AccountKind) - USER_ACCOUNT_KINDS)


class TransferKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL_HOLD = "withdrawal_hold", "Withdrawal hold"
    WITHDRAWAL_REFUND = "withdrawal_refund", "Withdrawal refund"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    WITHDRAWAL_FEE = "withdrawal_fee", "Withdrawal fee"
    MARGIN_FREEZE = "margin_freeze", "Margin freeze"
    MARGIN_RELEASE = "margin_release", "Margin release"
    ORDER_HOLD = "order_hold", "Order hold"
    ORDER_RELEASE = "order_release", "Order hold release"
    REALIZED_PNL = "realized_pnl", "Realized P&L"
    TRADING_FEE = "trading_fee", "Trading fee"
    FUNDING = "funding", "Funding"
    LIQUIDATION = "liquidation", "Liquidation"
    RESERVE_ALLOCATION = "reserve_allocation", "Risk reserve allocation"
    DRIFT = "drift", "Drift"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    AGGREGATION = "aggregation", "Aggregation sweep"
    GAS = "gas", "Gas"
    COLD_TRANSFER = "cold_transfer", "Hot/cold transfer"
    CAPITAL = "capital", "Capital injection"
    HEDGE = "hedge", "Hedge P&L"


# --- ledger --------------------------------------------------------------------------------------


class LedgerAccount(models.Model):
    """A balance. Created on first use by ``ledger_post``; ``key`` is the stable identity
    (``AccountRef.key``). The balance is only ever changed by ``ledger_post`` under a row lock."""

    key = models.CharField(max_length=160, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_accounts",
    )
    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    sub = models.CharField(max_length=64, blank=True, default="")
    asset = models.CharField(max_length=16, default=USDC)
    balance = _money(default=Decimal(0))
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ledger_accounts"
        constraints = [
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

    key = models.CharField(max_length=200, unique=True)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ledger_batches"

    def __str__(self) -> str:
        return self.key


class LedgerTransfer(models.Model):
    """Immutable (append-only by trigger). ``amount`` leaves ``debit`` and arrives in ``credit``."""

    batch = models.ForeignKey(LedgerBatch, on_delete=models.PROTECT, related_name="transfers")
    seq = models.PositiveSmallIntegerField()
    idempotency_key = models.CharField(max_length=210, unique=True)
    debit = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="debits")
    credit = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="credits")
    amount = _money()
    asset = models.CharField(max_length=16)
    kind = models.CharField(max_length=32, choices=TransferKind.choices)
    ref_type = models.CharField(max_length=32, blank=True, default="")
    ref_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ledger_transfers"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_transfer_amount_positive"),
            models.CheckConstraint(condition=~Q(debit=F("credit")), name="ledger_transfer_two_accounts"),
        ]
        indexes = [models.Index(fields=["ref_type", "ref_id"])]

    def __str__(self) -> str:
        return f"{self.idempotency_key}: {self.amount} {self.asset} {self.debit_id}->{self.credit_id}"


class BalanceLog(models.Model):
    """Every change of a user account (append-only): the user's statement."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="balance_logs")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="logs")
    transfer = models.ForeignKey(LedgerTransfer, on_delete=models.PROTECT, related_name="logs")
    type = models.CharField(max_length=32, choices=TransferKind.choices)
    account_kind = models.CharField(max_length=32, choices=AccountKind.choices)
    asset = models.CharField(max_length=16)
    amount = _money()  # signed change
    before = _money()
    after = _money()
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
    total_balance = _money()
    cash_balance = _money()
    frozen_margin = _money()
    pending_withdrawal = _money()

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
    amount = _money()  # signed: > 0 credits the user, < 0 debits
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


# --- configuration (operators change it at run time; edits audited) ----------------------------


class ChainConfig(models.Model):
    chain = models.CharField(max_length=10, choices=Chain.choices, primary_key=True)
    enabled = models.BooleanField(default=True)
    deposits_enabled = models.BooleanField(default=True)
    withdrawals_enabled = models.BooleanField(default=True)
    assets = models.JSONField(default=list)
    native_asset = models.CharField(max_length=8)
    confirmations = models.PositiveIntegerField()
    min_deposit = _money(default=Decimal(10))
    max_deposit = _money(default=Decimal(100_000))
    min_withdrawal = _money(default=Decimal(10))
    withdrawal_fee = _money(default=Decimal(1))
    aggregation_threshold = _money(default=Decimal(1_000))
    hot_safe_level = _money(default=Decimal(500_000))
    hot_critical_level = _money(default=Decimal(100_000))
    hot_emergency_level = _money(default=Decimal(20_000))
    hot_high_watermark = _money(default=Decimal(2_000_000))
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.chain} config"


class WalletConfig(models.Model):
    """Platform-wide withdrawal and monitoring parameters (a single row, pk=1)."""

    auto_approve_below = _money(default=Decimal(10_000))
    single_approval_max = _money(default=Decimal(100_000))
    same_address_max_24h = models.PositiveIntegerField(default=3)
    duplicate_window_minutes = models.PositiveIntegerField(default=10)
    security_lock_hours = models.PositiveIntegerField(default=24)
    email_token_ttl_minutes = models.PositiveIntegerField(default=30)
    whitelist_delay_hours = models.PositiveIntegerField(default=24)
    critical_pause_above = _money(default=Decimal(10_000))
    aggregation_interval_hours = models.PositiveIntegerField(default=4)
    liquidity_coverage_alert = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal("0.30"))
    pending_queue_max_count = models.PositiveIntegerField(default=50)
    pending_queue_max_amount = _money(default=Decimal(500_000))
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
    hot_balance = _money(default=Decimal(0))
    hot_level = models.CharField(max_length=10, choices=Level.choices, default=Level.UNKNOWN)
    hot_checked_at = models.DateTimeField(null=True, blank=True)
    last_scheduled_sweep_at = models.DateTimeField(null=True, blank=True)

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
    private_key_encrypted = models.TextField()
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
    amount = _money()
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    gas_tx_hash = models.CharField(max_length=100, blank=True, default="")
    gas_payload = models.JSONField(null=True, blank=True)
    tx_hash = models.CharField(max_length=100, blank=True, default="")
    payload = models.JSONField(null=True, blank=True)
    gas_used = _money(default=Decimal(0))
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
    amount = _money()
    block_height = models.BigIntegerField(null=True, blank=True)
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


# --- withdrawals -------------------------------------------------------------------------------


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
    amount = _money()  # debited from the user's cash
    fee = _money()  # to fee revenue; the chain transfer is amount - fee
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
    amount = _money()
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
