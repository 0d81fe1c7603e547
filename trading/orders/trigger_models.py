"""Tables of the trader's order tools: take-profit / stop-loss triggers on the mark (``TpslOrder``)
and the dead-man's switch (``ScheduledCancel``). Imported by ``trading.models`` so Django finds them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import price_field, size_field


class TpslKind(models.TextChoices):
    TAKE_PROFIT = "TAKE_PROFIT", "Take profit"
    STOP_LOSS = "STOP_LOSS", "Stop loss"


class TpslStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    TRIGGERED = "TRIGGERED", "Triggered"
    PLACED = "PLACED", "Placed"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"


class TpslOrder(models.Model):
    """A take-profit or stop-loss attached to an open position: when the mark crosses ``trigger_price``
    (``trigger_above``: fires at mark ≥ trigger, else at mark ≤ trigger) a reduce-only order closing
    ``size`` (null: the whole position) is placed through the normal order path.

    Life: ACTIVE → TRIGGERED (claimed by one checker with a conditional UPDATE, committed before the
    order is placed) → PLACED (``order`` set) or FAILED (the order was refused, ``error_code``).
    CANCELLED by the user, cancel-all, the dead-man's switch or when its position is gone. The order's
    ``client_order_id`` is derived from this row, so a retry after a crash finds the same order."""

    Kind = TpslKind
    Status = TpslStatus

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    position = models.ForeignKey("trading.Position", on_delete=models.PROTECT, related_name="tpsl_orders")
    asset = models.CharField(max_length=20)
    kind = models.CharField(max_length=11, choices=Kind.choices)
    side = models.CharField(max_length=4, help_text="side of the closing order (BUY closes a short)")
    trigger_price = price_field()
    trigger_above = models.BooleanField()
    size = size_field(null=True, blank=True, help_text="null: the whole position at the trigger")
    limit_price = price_field(null=True, blank=True, help_text="null: a market order")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    trigger_mark = price_field(null=True, blank=True, help_text="the mark that fired it")
    order = models.ForeignKey(
        "trading.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    triggered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "trading"
        indexes = [
            models.Index(fields=["user", "-id"]),
            # the trigger scan: live triggers of an asset by price
            models.Index(
                fields=["asset", "trigger_price"],
                name="tpsl_active_idx",
                condition=Q(status__in=["ACTIVE", "TRIGGERED"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(name="tpsl_trigger_positive", condition=Q(trigger_price__gt=0)),
            models.CheckConstraint(name="tpsl_size_positive", condition=Q(size__isnull=True) | Q(size__gt=0)),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.asset} @ {self.trigger_price} ({self.status})"

    @property
    def client_order_id(self) -> str:
        return f"xbit-tpsl-{self.pk}"


class ScheduledCancel(models.Model):
    """A user's dead-man's switch (HL's ``scheduleCancel``): at ``cancel_at`` every open order of the
    user is cancelled unless the time was moved or cleared first. The checker moves a due time to
    ``firing_at`` (committed) before it cancels, and clears that when done, so a crash resumes the
    cancellation and a renewal made meanwhile is kept."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    cancel_at = models.DateTimeField(null=True, blank=True)
    firing_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    fired_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "trading"
        indexes = [
            models.Index(fields=["cancel_at"], name="deadman_due_idx", condition=Q(cancel_at__isnull=False))
        ]

    def __str__(self) -> str:
        return f"scheduled cancel of {self.user_id} at {self.cancel_at}"
