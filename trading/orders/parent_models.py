"""Parent (algorithmic) orders for large HYPERLIQUID orders (spec 02, large-order splitting): a TWAP or
a size split, executed as child orders — each an ordinary HYPERLIQUID order placed through the order path
with its own cloid — and the operator-tunable parameters of the scheduler that sends them.

Imported by ``trading.models`` so the app registry sees them; foreign keys name models by string, so
this module imports nothing from ``trading.models`` (no import circle)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import money_field, price_field, size_field


class AlgoConfig(models.Model):
    """The scheduler's parameters (one row, ``key="default"``), read through a process cache
    (``trading.orders.algo_config``) and edited only through ``algo_config_update`` (audited)."""

    key = models.CharField(max_length=20, unique=True, default="default")
    enabled = models.BooleanField(default=False, help_text="spec 02: large-order splitting is off by default")
    min_parent_notional = money_field(default=10_000, help_text="a parent order below this is refused")
    tick_ms = models.PositiveIntegerField(default=1000, help_text="scheduler pass interval (500–10,000 ms)")
    twap_slice_seconds = models.PositiveIntegerField(
        default=30, help_text="slice interval when the client names no slice count (HL's TWAP: 30 s)"
    )
    twap_min_slice_seconds = models.PositiveIntegerField(default=5)
    twap_min_duration_seconds = models.PositiveIntegerField(default=60)
    twap_max_duration_seconds = models.PositiveIntegerField(default=86_400)
    max_slices = models.PositiveIntegerField(default=1000)
    catch_up_factor = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=3,
        help_text="a TWAP child catching up on unfilled slices is at most this many times a slice",
    )
    randomize_share = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default="0.2",
        help_text="randomize: a slice moves by up to ± this share of the interval (deterministic per slice)",
    )
    split_interval_seconds = models.PositiveIntegerField(
        default=1, help_text="pace of a size split's children"
    )
    lease_seconds = models.PositiveIntegerField(
        default=30, help_text="a parent claimed by a scheduler pass that died is taken over after this"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="algo_config_tick_range", condition=Q(tick_ms__gte=500, tick_ms__lte=10_000)
            ),
            models.CheckConstraint(
                name="algo_config_durations",
                condition=Q(twap_min_duration_seconds__gte=1)
                & Q(twap_max_duration_seconds__gte=models.F("twap_min_duration_seconds")),
            ),
            models.CheckConstraint(
                name="algo_config_factors",
                condition=Q(catch_up_factor__gte=1, randomize_share__gte=0, randomize_share__lt="0.5"),
            ),
            models.CheckConstraint(name="algo_config_max_slices", condition=Q(max_slices__gte=1)),
        ]

    def __str__(self) -> str:
        return "algo order config"


class AlgoOrder(models.Model):
    """A parent order: its whole size, how it is sliced, and its progress (aggregated from its
    children's HL fills: filled size, volume-weighted average price, fees).

    The schedule is deterministic: slice ``n`` is due at ``started_at + n × interval`` (plus, when
    randomized, a jitter derived from the parent and the slice, so every scheduler computes the same
    time). ``next_slice`` / ``next_at`` say what is due next; ``lease_until`` keeps one scheduler pass
    on a parent at a time (a pass that dies leaves a lease that expires)."""

    class Algo(models.TextChoices):
        TWAP = "TWAP", "TWAP"
        SPLIT = "SPLIT", "Size split"

    class Status(models.TextChoices):
        RUNNING = "RUNNING", "Running"
        COMPLETED = "COMPLETED", "Completed"
        CANCELLED = "CANCELLED", "Cancelled"
        FAILED = "FAILED", "Failed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="algo_orders")
    client_order_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - unique when present
    request_hash = models.CharField(max_length=64)
    algo = models.CharField(max_length=5, choices=Algo.choices)
    asset = models.CharField(max_length=20)
    side = models.CharField(max_length=4)
    size = size_field()
    leverage = models.PositiveSmallIntegerField()
    margin_mode = models.CharField(max_length=8)
    slippage_bps = models.PositiveIntegerField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="TWAP only")
    max_child_size = size_field(null=True, blank=True, help_text="SPLIT only")
    randomize = models.BooleanField(default=False)
    slices = models.PositiveIntegerField()
    interval_ms = models.PositiveIntegerField()
    jitter_ms = models.PositiveIntegerField(default=0, help_text="randomize: largest shift of a slice")
    child_cap = size_field(help_text="the largest child (catch-up included)")
    margin_estimate = money_field(help_text="IM + fee of the whole size at creation (margin check)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    next_slice = models.PositiveIntegerField(default=0)
    next_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    filled_size = size_field(default=0)
    avg_price = price_field(null=True, blank=True)
    fee_total = money_field(default=0)
    children_sent = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_order_id"], name="algo_client_id_unique_per_user"
            ),
            models.CheckConstraint(name="algo_size_positive", condition=Q(size__gt=0)),
            models.CheckConstraint(
                name="algo_filled_le_size", condition=Q(filled_size__gte=0, filled_size__lte=models.F("size"))
            ),
            models.CheckConstraint(name="algo_slices_positive", condition=Q(slices__gte=1)),
        ]
        indexes = [
            models.Index(fields=["user", "-id"]),
            # the scheduler's due query: running parents by due time
            models.Index(fields=["next_at"], name="algo_due_idx", condition=Q(status="RUNNING")),
        ]

    def __str__(self) -> str:
        return f"{self.algo} {self.side} {self.size} {self.asset} ({self.status})"

    @property
    def remaining_size(self):  # type: ignore[no-untyped-def]
        return self.size - self.filled_size


class AlgoChild(models.Model):
    """One slice of a parent: its planned size (fixed once written, so a scheduler that resumes after a
    crash re-places exactly the same order) and the HL order that carries it. ``client_order_id`` is
    derived from (parent, slice): placing it twice answers the same order, never a second one."""

    parent = models.ForeignKey(AlgoOrder, on_delete=models.PROTECT, related_name="children")
    slice_index = models.PositiveIntegerField()
    size = size_field(help_text="0: the slice was skipped (nothing left to send or below the minimum)")
    scheduled_at = models.DateTimeField()
    client_order_id = models.CharField(max_length=64)
    order = models.OneToOneField(
        "trading.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="algo_child"
    )
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["parent", "slice_index"]
        constraints = [
            models.UniqueConstraint(fields=["parent", "slice_index"], name="algo_child_one_per_slice"),
            models.CheckConstraint(name="algo_child_size_non_negative", condition=Q(size__gte=0)),
        ]

    def __str__(self) -> str:
        return f"algo {self.parent_id} slice {self.slice_index}: {self.size}"
