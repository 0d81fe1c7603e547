"""Risk domain state: configuration, liquidation commands and their records, exposure, circuit
breakers, drift (deviation) logs and funding settlement records.

Risk never writes balances: every money movement here is done by a ledger-domain service
(``trading.liquidation``, ``trading.funding``) that risk calls with an idempotency key; these tables
record the commands, their outcome and risk's own view (exposure, breakers)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import money_field, price_field, size_field
from core.money import PRICE_DECIMAL_PLACES, SIZE_DECIMAL_PLACES

# the hedge engine's and the client-risk models (markouts, client metrics, B-book P&L attribution) live
# in their own modules; importing them here registers them with the app
from risk.client_risk.models import BbookPnlDaily, ClientMetrics, FillMarkout  # noqa: F401
from risk.fields import rate_field
from risk.hedge_models import HedgeConfig, HedgeInstruction, HedgePosition, ReconciliationLog  # noqa: F401

# an exact product of a size and a price: their decimal places add up
COST_DECIMAL_PLACES = SIZE_DECIMAL_PLACES + PRICE_DECIMAL_PLACES
COST_MAX_DIGITS = 28 + COST_DECIMAL_PLACES


class RiskConfig(models.Model):
    """Every risk threshold (spec 05 defaults), one row ``key="default"``, read through a process cache
    (``risk.config``) and edited only through ``risk_config_update`` (audited)."""

    key = models.CharField(max_length=20, unique=True, default="default")
    # liquidation engine
    liquidation_sweep_ms = models.PositiveIntegerField(
        default=1000,
        validators=[MinValueValidator(500), MaxValueValidator(2000)],
        help_text="periodic safety sweep interval (spec 10: 500–2,000 ms)",
    )
    liquidation_max_retries = models.PositiveSmallIntegerField(default=3)
    liquidation_retry_delay_ms = models.PositiveIntegerField(default=1000)
    liquidation_lease_seconds = models.PositiveIntegerField(
        default=15, help_text="an EXECUTING trigger not finished within this is re-driven by the sweep"
    )
    liquidation_batch_size = models.PositiveSmallIntegerField(
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(500)],
        help_text="INTERNAL liquidations a worker claims and executes in one transaction (1–500)",
    )
    # funding
    funding_interval_seconds = models.PositiveIntegerField(default=3600)
    funding_drift_alert_rate = rate_field(default="0.01")
    funding_drift_critical_rate = rate_field(default="0.05")
    # risk reserve
    reserve_normal = money_field(default=500_000)
    reserve_halt = money_field(default=200_000)
    reserve_warning_threshold_factor = models.DecimalField(max_digits=6, decimal_places=4, default="0.5")
    # daily loss (today's INTERNAL net loss, UTC)
    daily_loss_alert = money_field(default=100_000)
    daily_loss_trip = money_field(default=500_000)
    # volatility: mark moves more than this fraction within the window
    volatility_move = rate_field(default="0.05")
    volatility_window_seconds = models.PositiveIntegerField(default=3600)
    volatility_reset_minutes = models.PositiveIntegerField(default=30)
    # price jump: one update moves more than this fraction (per-asset overrides {"BTC": "0.05"})
    price_jump_move = rate_field(default="0.05")
    price_jump_overrides = models.JSONField(default=dict, blank=True)
    price_jump_reset_updates = models.PositiveIntegerField(default=5)
    # HL market data
    latency_alert_ms = models.PositiveIntegerField(default=200)
    latency_trip_ms = models.PositiveIntegerField(default=500)
    disconnect_alert_seconds = models.PositiveIntegerField(default=10)
    disconnect_trip_seconds = models.PositiveIntegerField(default=60)
    # drift (spec 04)
    drift_log_usd = money_field(default=10)
    drift_alert_rate = rate_field(default="0.01")
    drift_critical_rate = rate_field(default="0.05")
    # a rate alone fires on dust (0.0018 USDC is 10 % of a 0.017 USDC P&L): a level also needs this much
    drift_alert_min_usd = money_field(default=1, help_text="ALERT needs |drift| above this too (USDC)")
    drift_critical_min_usd = money_field(default=10, help_text="CRITICAL needs |drift| above this too (USDC)")
    # reconciliation (spec 04): relative thresholds, each with an absolute floor for USDC dimensions
    reconciliation_warn_rate = rate_field(default="0.0001")
    reconciliation_critical_rate = rate_field(default="0.001")
    reconciliation_warn_min_usdc = money_field(
        default=Decimal("0.01"), help_text="WARN needs |deviation| above this too (USDC dimensions)"
    )
    reconciliation_critical_min_usdc = money_field(
        default=1, help_text="CRITICAL needs |deviation| above this too (USDC dimensions)"
    )
    drift_daily_review = money_field(default=1_000)
    drift_daily_critical = money_field(default=5_000)
    drift_refund_user_when_favourable = models.BooleanField(default=False)
    # exposure monitoring
    exposure_asset_alert = money_field(default=500_000)
    exposure_asset_critical = money_field(default=1_000_000)
    exposure_total_alert = money_field(default=2_000_000)
    exposure_total_critical = money_field(default=5_000_000)
    exposure_snapshot_seconds = models.PositiveIntegerField(default=60)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="risk_config_reserve_order", condition=Q(reserve_halt__lte=models.F("reserve_normal"))
            ),
            models.CheckConstraint(
                name="risk_config_factor_range",
                condition=Q(reserve_warning_threshold_factor__gt=0, reserve_warning_threshold_factor__lte=1),
            ),
            models.CheckConstraint(
                name="risk_config_sweep_range",
                condition=Q(liquidation_sweep_ms__gte=500, liquidation_sweep_ms__lte=2000),
            ),
            models.CheckConstraint(
                name="risk_config_liquidation_batch_range",
                condition=Q(liquidation_batch_size__gte=1, liquidation_batch_size__lte=500),
            ),
            models.CheckConstraint(
                name="risk_config_daily_loss_order",
                condition=Q(daily_loss_alert__lte=models.F("daily_loss_trip")),
            ),
        ]

    def __str__(self) -> str:
        return "risk config"


class LiquidationTrigger(models.Model):
    """A liquidation command (spec 03): risk detects, the ledger domain executes with ``trigger_id``
    as idempotency key. Driven from this row's state (claimed by a conditional UPDATE), never from
    broker redelivery."""

    class Kind(models.TextChoices):
        ISOLATED = "ISOLATED", "Isolated position"
        CROSS = "CROSS", "Cross account"

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        EXECUTING = "EXECUTING", "Executing"
        COMPLETED = "COMPLETED", "Completed"
        FAILED = "FAILED", "Failed (will retry)"
        ESCALATED = "ESCALATED", "Escalated (manual)"
        CANCELLED = "CANCELLED", "Cancelled (superseded or no longer liquidatable)"
        SHADOW = "SHADOW", "Shadow (liquidation_mode SHADOW: recorded, never executed)"

    OPEN = ("PENDING", "EXECUTING", "FAILED")

    trigger_id = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    position = models.ForeignKey(
        "trading.Position", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    position_version = models.BigIntegerField(help_text="the position's updated_at (µs) when detected")
    asset = models.CharField(max_length=20)
    venue = models.CharField(max_length=12, help_text="INTERNAL / HYPERLIQUID / MIXED")
    priority = models.PositiveSmallIntegerField(default=0, help_text="0 INTERNAL first, 1 HYPERLIQUID")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    trigger_price = price_field(help_text="the mark of the detecting update")
    marks = models.JSONField(default=dict, help_text="the mark snapshot of the decision")
    plan = models.JSONField(default=list, help_text="position ids to close, in order")
    source = models.CharField(max_length=10, default="watcher", help_text="watcher / sweep")
    detected_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=80, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    # outcome (sums over the positions closed; per position in LiquidationRecord)
    close_price = price_field(null=True, blank=True)
    size = size_field(default=0)
    margin_zeroed = money_field(default=0)
    loss = money_field(default=0)
    platform_share = money_field(default=0)
    reserve_share = money_field(default=0)
    bankrupt_amount = money_field(default=0)
    drift_amount = money_field(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["priority", "next_attempt_at"],
                name="liq_trigger_due_idx",
                condition=Q(status__in=["PENDING", "EXECUTING", "FAILED"]),
            ),
            models.Index(fields=["-detected_at"]),
            models.Index(fields=["user", "-detected_at"]),
            models.Index(fields=["asset", "-detected_at"]),
        ]
        constraints = [
            models.CheckConstraint(name="liq_trigger_price_positive", condition=Q(trigger_price__gt=0)),
        ]

    def __str__(self) -> str:
        return f"{self.trigger_id} ({self.status})"


class LiquidationRecord(models.Model):
    """One closed position of a liquidation (spec 03's record list)."""

    trigger = models.ForeignKey(LiquidationTrigger, on_delete=models.PROTECT, related_name="records")
    position = models.ForeignKey("trading.Position", on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    asset = models.CharField(max_length=20)
    venue = models.CharField(max_length=12)
    margin_mode = models.CharField(max_length=8)
    direction = models.CharField(max_length=5)
    trigger_price = price_field()
    close_price = price_field()
    size = size_field()
    margin_zeroed = money_field(default=0)
    loss = money_field(default=0, help_text="what the user lost on this position (≥ 0)")
    platform_share = money_field(default=0)
    reserve_share = money_field(default=0)
    bankrupt_amount = money_field(default=0, help_text="loss the user could not pay: the reserve took it")
    xbit_pnl = money_field(default=0, help_text="P&L at the trigger mark")
    hl_pnl = money_field(null=True, blank=True, help_text="HYPERLIQUID: P&L of HL's real fills")
    drift_amount = money_field(default=0)
    fee = money_field(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trigger", "position"], name="liq_record_once_per_position")
        ]
        indexes = [models.Index(fields=["-created_at"])]

    def __str__(self) -> str:
        return f"liquidation of position {self.position_id} ({self.trigger_id})"


class ExposurePosition(models.Model):
    """The last state of each open INTERNAL position seen by the exposure consumer (events carry the
    resulting state: the consumer sets these rows and applies the difference to the asset totals)."""

    position_id = models.BigIntegerField(unique=True)
    asset = models.CharField(max_length=20)
    direction = models.CharField(max_length=5)
    size = size_field()
    entry_price = price_field()

    class Meta:
        indexes = [models.Index(fields=["asset"])]

    def __str__(self) -> str:
        return f"exposure of position {self.position_id}"


class ExposureAsset(models.Model):
    """Per asset: INTERNAL long/short size and Σ size×entry (so notional and the B-book uPnL follow
    any mark without touching positions), maintained incrementally from ledger events."""

    asset = models.CharField(max_length=20, unique=True)
    long_size = size_field(default=0)
    short_size = size_field(default=0)
    # Σ size × entry kept exactly (8 + 8 decimal places): the totals move by many small increments, and a
    # column rounded to cents' micro-units would drift from a recompute by the sum of its roundings
    long_cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        default=0,
        help_text="Σ size × entry of INTERNAL longs",
    )
    short_cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        default=0,
        help_text="Σ size × entry of INTERNAL shorts",
    )
    positions = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"exposure {self.asset}"


class ExposureDaily(models.Model):
    """Today's INTERNAL results per asset (UTC day): clients' realized P&L, fees and liquidation
    margin remainders. The platform's net loss = client P&L − fees − liquidation remainders."""

    day = models.DateField()
    asset = models.CharField(max_length=20)
    client_realized_pnl = money_field(default=0)
    fees = money_field(default=0)
    liquidation_margin = money_field(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "asset"], name="exposure_daily_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.asset}"


class ExposureSnapshot(models.Model):
    """Once a minute per asset, for charts."""

    asset = models.CharField(max_length=20)
    at = models.DateTimeField(default=timezone.now)
    mark = price_field(null=True, blank=True)
    long_notional = money_field(default=0)
    short_notional = money_field(default=0)
    net_notional = money_field(default=0)
    bbook_upnl = money_field(default=0)

    class Meta:
        indexes = [models.Index(fields=["asset", "-at"]), models.Index(fields=["-at"])]

    def __str__(self) -> str:
        return f"exposure {self.asset} @ {self.at:%H:%M}"


class CircuitBreaker(models.Model):
    """One breaker of spec 05 for one scope (an asset, or ``*``): state, reason, when it tripped,
    and its reset rule. Its effect is pushed down as data (routing force-HL / HL halt / threshold
    factor, market trading state) by ``risk.breakers``."""

    class Kind(models.TextChoices):
        DAILY_LOSS = "DAILY_LOSS", "Daily loss"
        VOLATILITY = "VOLATILITY", "Volatility"
        PRICE_JUMP = "PRICE_JUMP", "Price jump"
        HL_LATENCY = "HL_LATENCY", "HL latency"
        HL_DISCONNECT = "HL_DISCONNECT", "HL disconnect"
        RESERVE = "RESERVE", "Risk reserve"
        DRIFT = "DRIFT", "Drift"
        LIQUIDATION_FAILURE = "LIQUIDATION_FAILURE", "Liquidation failure"
        KILL_SWITCH = "KILL_SWITCH", "Kill switch"

    class State(models.TextChoices):
        OK = "OK", "OK"
        WARNING = "WARNING", "Warning"
        TRIPPED = "TRIPPED", "Tripped"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    scope = models.CharField(max_length=20, default="*")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OK)
    reason = models.CharField(max_length=300, blank=True)
    reset_rule = models.CharField(max_length=200, blank=True)
    tripped_at = models.DateTimeField(null=True, blank=True)
    reset_at = models.DateTimeField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "scope"], name="breaker_unique_kind_scope")]
        ordering = ["kind", "scope"]

    def __str__(self) -> str:
        return f"{self.kind}:{self.scope} {self.state}"


class DeviationLog(models.Model):
    """Spec 04 ``deviation_logs``: HL's actual P&L vs XBIT's computed P&L for a HYPERLIQUID close,
    liquidation or funding mirror. ``ref`` makes a record idempotent."""

    class Level(models.TextChoices):
        LOG = "LOG", "Log"
        ALERT = "ALERT", "Alert"
        CRITICAL = "CRITICAL", "Critical"

    ref = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=12, help_text="LIQUIDATION / CLOSE / FUNDING")
    asset = models.CharField(max_length=20)
    position = models.ForeignKey(
        "trading.Position", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    xbit_pnl = money_field()
    hl_actual_pnl = money_field()
    deviation = money_field()
    deviation_rate = rate_field()
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.LOG)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["asset", "-created_at"]), models.Index(fields=["-created_at"])]

    def __str__(self) -> str:
        return f"drift {self.deviation} on {self.asset} ({self.level})"


class FundingRun(models.Model):
    """One funding instant (spec 04): the rates and oracle prices used, and progress."""

    class Status(models.TextChoices):
        RUNNING = "RUNNING", "Running"
        COMPLETED = "COMPLETED", "Completed"

    funding_time = models.DateTimeField(unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    rates = models.JSONField(default=dict, help_text='{"BTC": {"rate": "...", "price": "..."}}')
    missing_assets = models.JSONField(default=list, blank=True)
    positions_settled = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    hl_compared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-funding_time"]

    def __str__(self) -> str:
        return f"funding {self.funding_time:%Y-%m-%d %H:%M} ({self.status})"


class FundingSettlement(models.Model):
    """Spec 04 ``funding_settlements``: exactly one per (position, funding time). ``payment`` is the
    user's signed cash flow (negative = paid); ``collected`` what the ledger actually moved."""

    position = models.ForeignKey("trading.Position", on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    funding_time = models.DateTimeField()
    asset = models.CharField(max_length=20)
    source = models.CharField(max_length=12)
    margin_mode = models.CharField(max_length=8)
    direction = models.CharField(max_length=5)
    size = size_field()
    # HL's rate as HL published it (up to 10 decimals, e.g. 0.0003768338): the payment uses it whole
    rate = models.DecimalField(max_digits=18, decimal_places=12)
    price = price_field()
    payment = money_field()
    collected = money_field()
    settled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["position", "funding_time"], name="funding_once_per_position")
        ]
        indexes = [
            models.Index(fields=["funding_time", "asset"]),
            models.Index(fields=["user", "-funding_time"]),
        ]

    def __str__(self) -> str:
        return f"funding {self.payment} on position {self.position_id} @ {self.funding_time}"
