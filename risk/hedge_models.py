"""Hedge engine state (spec 05): its configuration, the instructions it decides (commands with an
idempotency key and a status) and the mirror of the HL hedge account per asset.

The hedge account on HL is the source of truth for what is hedged: ``HedgePosition`` is re-read from
it after every hedge action and every 5 s, never computed from our own instructions. Reconciliation
(spec 04, dimension "HL hedge account") compares the two."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import money_field, price_field, size_field
from risk.fields import rate_field


class HedgeConfig(models.Model):
    """One row ``key="default"``: the hedge mode (spec 10 ``hedge_mode``) and the hedge policy's numbers
    (spec 05 defaults). Edited only through ``hedge_mode_set`` / ``hedge_config_update`` (audited)."""

    class Mode(models.TextChoices):
        OFF = "OFF", "Off"
        SHADOW = "SHADOW", "Shadow (compute and log, send nothing)"
        LIVE = "LIVE", "Live"

    key = models.CharField(max_length=20, unique=True, default="default")
    hedge_mode = models.CharField(max_length=6, choices=Mode.choices, default=Mode.LIVE)
    tier1_threshold = money_field(default=100_000)
    tier1_ratio = rate_field(default="0.5")
    tier2_threshold = money_field(default=500_000)
    tier2_ratio = rate_field(default="0.8")
    stop_internalization_above = money_field(default=1_000_000)
    min_order_notional = money_field(default=1_000)
    max_leverage = models.PositiveSmallIntegerField(default=5)
    max_slippage = rate_field(default="0.01")
    dehedge_per_minute = money_field(default=200_000)
    stop_loss_margin_fraction = rate_field(default="0.5")
    debounce_seconds = models.PositiveIntegerField(default=5)
    stop_loss_cooldown_seconds = models.PositiveIntegerField(default=600)
    deleverage_fraction = rate_field(default="0.25", help_text="hedge reduction per decision below 200 %")
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="hedge_config_leverage_cap", condition=Q(max_leverage__gte=1, max_leverage__lte=5)
            ),
            models.CheckConstraint(
                name="hedge_config_tier_order", condition=Q(tier1_threshold__lte=models.F("tier2_threshold"))
            ),
        ]

    def __str__(self) -> str:
        return f"hedge config ({self.hedge_mode})"


class HedgeInstruction(models.Model):
    """One hedge decision for one asset: what the engine saw (exposure, target, current hedge), the plan
    (orders at mark ± slippage, split over the book) and what HL did. ``instruction_id`` is the
    idempotency key; each order leg carries a cloid derived from it, so a retry or a status query after
    a timeout names the same HL order and nothing is sent twice."""

    class Kind(models.TextChoices):
        AUTO = "AUTO", "Automatic (exposure)"
        MANUAL = "MANUAL", "Manual (risk team)"
        STOP_LOSS = "STOP_LOSS", "Stop-loss"
        DELEVERAGE = "DELEVERAGE", "De-leverage (account health)"

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        SENT = "SENT", "Sent (outcome being resolved)"
        FILLED = "FILLED", "Filled"
        PARTIAL = "PARTIAL", "Partially filled"
        FAILED = "FAILED", "Failed"
        SHADOW = "SHADOW", "Shadow (not sent)"
        SKIPPED = "SKIPPED", "Skipped"

    instruction_id = models.CharField(max_length=80, unique=True)
    asset = models.CharField(max_length=20)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.AUTO)
    mode = models.CharField(max_length=6, default=HedgeConfig.Mode.LIVE)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    exposure = money_field(default=0, help_text="users' net exposure at mark (+ = users net long)")
    target = money_field(default=0, help_text="target hedge notional (signed)")
    current = money_field(default=0, help_text="hedge notional on HL when decided (signed)")
    mark = price_field(null=True, blank=True)
    notional = money_field(default=0, help_text="planned change (signed: + buy)")
    size = size_field(default=0)
    is_buy = models.BooleanField(default=True)
    reduces = models.BooleanField(default=False)
    limit_price = price_field(null=True, blank=True)
    leverage = models.PositiveSmallIntegerField(default=1)
    plan = models.JSONField(default=dict, blank=True, help_text="legs, book, policy inputs")
    attempts = models.PositiveSmallIntegerField(default=0)
    cloid = models.CharField(max_length=40, blank=True)
    hl_oid = models.BigIntegerField(null=True, blank=True)
    fills = models.JSONField(default=list, blank=True)
    filled_size = size_field(default=0)
    avg_price = price_field(null=True, blank=True)
    filled_notional = money_field(default=0)
    slippage = money_field(default=0, help_text="cost vs mark of what filled (+ = worse than mark)")
    fee = money_field(default=0)
    realized_pnl = money_field(default=0)
    error = models.TextField(blank=True)
    reason = models.CharField(max_length=300, blank=True)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["asset", "-created_at"]),
            models.Index(fields=["-created_at"]),
            models.Index(
                fields=["status"], name="hedge_instr_open_idx", condition=Q(status__in=["PENDING", "SENT"])
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instruction_id} ({self.status})"


class HedgePosition(models.Model):
    """The hedge account's position in one asset as HL last reported it, plus our running costs
    (fees, funding, slippage) and realized P&L for the hedge ROI."""

    asset = models.CharField(max_length=20, unique=True)
    size = size_field(default=0, help_text="signed (long +)")
    entry_price = price_field(null=True, blank=True)
    position_value = money_field(default=0)
    unrealized_pnl = money_field(default=0)
    margin_used = money_field(default=0)
    leverage = models.PositiveSmallIntegerField(default=0)
    liquidation_price = price_field(null=True, blank=True)
    funding_since_open = money_field(default=0, help_text="HL cumFunding.sinceOpen (+ = paid)")
    funding_all_time = money_field(default=0, help_text="HL cumFunding.allTime (+ = paid)")
    fees_to_date = money_field(default=0)
    slippage_to_date = money_field(default=0)
    realized_pnl_to_date = money_field(default=0)
    stop_loss_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"hedge {self.asset} {self.size}"

    @property
    def cost_to_date(self):  # type: ignore[no-untyped-def]
        return self.fees_to_date + self.funding_all_time + self.slippage_to_date


class ReconciliationLog(models.Model):
    """Spec 04 ``reconciliation_logs``: one row per dimension (and subject, e.g. an asset) per run."""

    class Status(models.TextChoices):
        OK = "OK", "OK"
        WARN = "WARN", "Warning"
        CRITICAL = "CRITICAL", "Critical"

    run_id = models.CharField(max_length=40)
    dimension = models.CharField(max_length=30)
    subject = models.CharField(max_length=40, blank=True, default="")
    expected = money_field(default=0)
    actual = money_field(default=0)
    deviation = money_field(default=0)
    deviation_rate = rate_field(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OK)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at"]),
            models.Index(fields=["dimension", "-created_at"]),
            models.Index(fields=["run_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.dimension}:{self.subject} {self.status}"
