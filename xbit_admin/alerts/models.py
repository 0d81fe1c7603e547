from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Alert(models.Model):
    """One open problem per (rule, subject): raising it again bumps ``count`` and ``last_seen`` instead
    of creating a second row (the partial unique constraint makes that hold under concurrency)."""

    class Severity(models.TextChoices):
        P0 = "P0", "P0 — page now"
        P1 = "P1", "P1 — urgent"
        P2 = "P2", "P2 — attention"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    rule = models.CharField(max_length=80)
    subject = models.CharField(max_length=120, blank=True, help_text="e.g. an asset, a chain, an account")
    severity = models.CharField(max_length=2, choices=Severity.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField(default=1)
    escalations = models.PositiveIntegerField(default=0)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by_label = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=~models.Q(state="resolved"),
                name="alert_one_unresolved_per_rule_subject",
            )
        ]
        indexes = [models.Index(fields=["state", "severity"])]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.rule}:{self.subject} ({self.state})"
