from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import money_field
from routing.decision import ClientGroup, Mode, Route

GLOBAL = "*"


_money = money_field


class RoutingConfig(models.Model):
    """Spec 01 ``routing_config``: one global row (asset ``*``) and optional per-asset rows whose
    non-null fields override the global row field by field."""

    asset = models.CharField(max_length=20, unique=True)
    routing_mode = models.CharField(
        max_length=12, choices=[(m.value, m.value) for m in Mode], null=True, blank=True
    )
    normal_threshold = _money(null=True, blank=True)
    betting_threshold = _money(null=True, blank=True)
    hl_mode_exposure_threshold = _money(null=True, blank=True)
    betting_mode_exposure_threshold = _money(null=True, blank=True)
    hl_exit_factor = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    betting_exit_factor = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    auto_switch_enabled = models.BooleanField(null=True, blank=True)
    internalization_enabled = models.BooleanField(null=True, blank=True)
    max_internal_order_notional = _money(null=True, blank=True)
    # spec 10: |net internal exposure| above it forces the asset to HL (risk sets the force-HL reason)
    max_internal_exposure = _money(null=True, blank=True)
    # global-only switches (spec 10); ignored on per-asset rows
    global_internalization_enabled = models.BooleanField(null=True, blank=True)
    degraded = models.BooleanField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="routing_thresholds_positive",
                condition=(Q(normal_threshold__isnull=True) | Q(normal_threshold__gt=0))
                & (Q(betting_threshold__isnull=True) | Q(betting_threshold__gt=0))
                & (Q(hl_mode_exposure_threshold__isnull=True) | Q(hl_mode_exposure_threshold__gt=0))
                & (
                    Q(betting_mode_exposure_threshold__isnull=True)
                    | Q(betting_mode_exposure_threshold__gte=0)
                )
                & (Q(max_internal_order_notional__isnull=True) | Q(max_internal_order_notional__gt=0))
                & (Q(max_internal_exposure__isnull=True) | Q(max_internal_exposure__gt=0))
                & (Q(hl_exit_factor__isnull=True) | Q(hl_exit_factor__gt=0, hl_exit_factor__lte=1))
                & (Q(betting_exit_factor__isnull=True) | Q(betting_exit_factor__gte=1)),
            ),
            models.CheckConstraint(
                name="routing_global_row_complete",
                condition=~Q(asset=GLOBAL)
                | Q(
                    routing_mode__isnull=False,
                    normal_threshold__isnull=False,
                    betting_threshold__isnull=False,
                    hl_mode_exposure_threshold__isnull=False,
                    betting_mode_exposure_threshold__isnull=False,
                    hl_exit_factor__isnull=False,
                    betting_exit_factor__isnull=False,
                    auto_switch_enabled__isnull=False,
                    internalization_enabled__isnull=False,
                    max_internal_order_notional__isnull=False,
                    max_internal_exposure__isnull=False,
                    global_internalization_enabled__isnull=False,
                    degraded__isnull=False,
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"routing config {self.asset}"


class RoutingState(models.Model):
    """Verdicts the risk domain pushes down as data for the hot path to read: active force-HL reasons
    (reason → {since, detail}), an HL routing halt (critical drift), and a threshold factor (reserve
    warning lowers thresholds). Asset ``*`` holds platform-wide reasons."""

    asset = models.CharField(max_length=20, unique=True)
    force_hl_reasons = models.JSONField(default=dict, blank=True)
    hl_halted = models.BooleanField(default=False)
    hl_halt_reason = models.CharField(max_length=200, blank=True)
    threshold_factor = models.DecimalField(max_digits=6, decimal_places=4, default=1)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="routing_state_factor_range",
                condition=Q(threshold_factor__gt=0, threshold_factor__lte=1),
            )
        ]

    def __str__(self) -> str:
        return f"routing state {self.asset}"


class RoutingModeLog(models.Model):
    class Trigger(models.TextChoices):
        MANUAL = "MANUAL", "Manual"
        AUTO = "AUTO", "Automatic"

    change_id = models.CharField(max_length=80, unique=True)
    asset = models.CharField(max_length=20, db_index=True)
    from_mode = models.CharField(max_length=12)
    to_mode = models.CharField(max_length=12)
    trigger = models.CharField(max_length=6, choices=Trigger.choices)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    net_exposure_at_switch = _money(null=True, blank=True)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.asset} {self.from_mode}→{self.to_mode} ({self.trigger})"


class RoutingDecisionLog(models.Model):
    """Every routing decision (spec 01): written by trading in the order's own transaction."""

    order_id = models.BigIntegerField(unique=True)
    user_id = models.BigIntegerField(db_index=True)
    asset = models.CharField(max_length=20)
    notional = _money()
    route = models.CharField(max_length=12, choices=[(r.value, r.value) for r in Route])
    mode = models.CharField(max_length=12)
    threshold = _money(null=True, blank=True)
    reason = models.CharField(max_length=40)
    latency_us = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    # the client's group the decision used, and in shadow what the proposed group would have routed to
    client_group = models.CharField(max_length=6, default=ClientGroup.HYBRID.value)
    shadow_group = models.CharField(max_length=6, blank=True, default="")
    shadow_route = models.CharField(max_length=12, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["asset", "-created_at"]),
            models.Index(fields=["reason", "-created_at"]),
            models.Index(fields=["-created_at"]),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} → {self.route} ({self.reason})"


GROUP_CHOICES = [(g.value, g.value) for g in ClientGroup]


class ClientGroupConfig(models.Model):
    """One row ``key="default"``: how clients are grouped for routing and whether the groups are in
    force. OFF: every client is HYBRID. SHADOW: the classifier assigns groups, routing still treats every
    client as HYBRID and its log records what the assigned group would have done. LIVE: groups route.

    The classifier's rules: a client with at least ``min_fills`` measured fills whose average markout at
    ``horizon_s`` is ≥ ``toxic_bp`` goes to A; ≤ ``benign_bp`` to B; a client leaves A only once the
    markout falls below ``toxic_bp − hysteresis_bp`` and leaves B only once it rises above
    ``benign_bp + hysteresis_bp`` (no flapping around a threshold)."""

    class Mode(models.TextChoices):
        OFF = "OFF", "Off"
        SHADOW = "SHADOW", "Shadow (classify and log, route as today)"
        LIVE = "LIVE", "Live"

    key = models.CharField(max_length=20, unique=True, default="default")
    mode = models.CharField(max_length=6, choices=Mode.choices, default=Mode.OFF)
    horizon_s = models.PositiveIntegerField(default=60)
    min_fills = models.PositiveIntegerField(default=200)
    toxic_bp = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("3"))
    benign_bp = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    hysteresis_bp = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("1"))
    stale_quote_bp = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("5"))
    window_days = models.PositiveIntegerField(default=30)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="client_group_config_sane",
                condition=Q(toxic_bp__gt=models.F("benign_bp"), hysteresis_bp__gte=0, min_fills__gt=0),
            )
        ]

    def __str__(self) -> str:
        return f"client groups {self.mode}"


class ClientGroupAssignment(models.Model):
    """A client's group (clients without a row are HYBRID). ``source`` MANUAL is a Risk Manager's
    override, which the classifier leaves alone until it is lifted."""

    class Source(models.TextChoices):
        AUTO = "AUTO", "Classifier"
        MANUAL = "MANUAL", "Manual override"

    user_id = models.BigIntegerField(unique=True)
    group = models.CharField(max_length=6, choices=GROUP_CHOICES)
    source = models.CharField(max_length=6, choices=Source.choices, default=Source.AUTO)
    reason = models.CharField(max_length=300)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"client {self.user_id} in {self.group}"


class ClientGroupChange(models.Model):
    """Append-only history of group changes: who or what moved the client, and why."""

    user_id = models.BigIntegerField(db_index=True)
    from_group = models.CharField(max_length=6, choices=GROUP_CHOICES)
    to_group = models.CharField(max_length=6, choices=GROUP_CHOICES)
    source = models.CharField(max_length=6, choices=ClientGroupAssignment.Source.choices)
    mode = models.CharField(max_length=6)  # the groups' mode when it changed
    reason = models.CharField(max_length=300)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"client {self.user_id}: {self.from_group} → {self.to_group}"
