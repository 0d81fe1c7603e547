"""Client-risk tables: one markout row per fill, one metrics row per client, the B-book P&L
attribution per asset and day.

A markout is the move of Hyperliquid's mid after a fill, signed in the client's favour (positive = the
client gained on the platform): ``side × (mid(t + h) − fill price) / fill price`` in bp and
``side × (mid(t + h) − fill price) × size`` in USDC, at each horizon of :data:`HORIZONS`."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.fields import money_field, price_field, size_field

HORIZONS = (1, 10, 60, 300)  # seconds after the fill


def _bp(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True, **kwargs)  # type: ignore[arg-type]


def _usdc(**kwargs: object) -> models.DecimalField:
    return money_field(null=True, blank=True, **kwargs)


class FillMarkout(models.Model):
    """One fill (INTERNAL or HYPERLIQUID) and its markouts; ``next_due_at`` is when the next horizon is
    due (null once every horizon is done). Written by the markout consumer from ``trading.fill``."""

    fill_id = models.BigIntegerField(unique=True)
    user_id = models.BigIntegerField()
    asset = models.CharField(max_length=20)
    source = models.CharField(max_length=12)
    side = models.SmallIntegerField()  # +1 the client bought, −1 sold
    size = size_field()
    price = price_field()
    notional = money_field()
    realized_pnl = money_field(default=0)
    fee = money_field(default=0)
    is_liquidation = models.BooleanField(default=False)
    holding_seconds = models.FloatField(null=True, blank=True)  # when the fill closed a position
    filled_at = models.DateTimeField()
    mid_at_fill = price_field(null=True, blank=True)
    mo_1_bp = _bp()
    mo_10_bp = _bp()
    mo_60_bp = _bp()
    mo_300_bp = _bp()
    mo_1_usdc = _usdc()
    mo_10_usdc = _usdc()
    mo_60_usdc = _usdc()
    mo_300_usdc = _usdc()
    missing = models.PositiveSmallIntegerField(default=0)  # horizons with no mid in the history
    next_due_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user_id", "-filled_at"]),
            models.Index(fields=["asset", "filled_at"]),
            models.Index(
                fields=["next_due_at"], name="markout_due", condition=models.Q(next_due_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"markout fill {self.fill_id}"


class ClientMetrics(models.Model):
    """A client's toxicity figures over the metrics window, recomputed from ``FillMarkout`` whenever a
    markout of theirs completes (the same query the rebuild runs, so both always agree)."""

    user_id = models.BigIntegerField(unique=True)
    fills = models.PositiveIntegerField(default=0)
    measured = models.PositiveIntegerField(default=0)  # fills whose 60 s markout is known
    notional = money_field(default=0)
    mo_1_bp = _bp()
    mo_10_bp = _bp()
    mo_60_bp = _bp()
    mo_300_bp = _bp()
    mo_60_usdc = money_field(default=0)
    win_rate = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    realized_pnl = money_field(default=0)  # against the platform: INTERNAL fills only
    avg_holding_seconds = models.FloatField(null=True, blank=True)
    stale_fills = models.PositiveIntegerField(default=0)
    size_buckets = models.JSONField(default=dict, blank=True)  # notional bucket label → fills
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"client metrics {self.user_id}"


class BbookPnlDaily(models.Model):
    """The B-book's P&L on one asset and UTC day, split by where it came from (sum = total)."""

    day = models.DateField()
    asset = models.CharField(max_length=20)
    spread_capture = money_field(default=0)
    market_move = money_field(default=0)
    funding = money_field(default=0)
    hedge_cost = money_field(default=0)
    liquidation_income = money_field(default=0)
    total = money_field(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "asset"], name="bbook_pnl_daily_unique")]

    def __str__(self) -> str:
        return f"B-book P&L {self.day} {self.asset}"
