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
        indexes = [
            models.Index(fields=["state", "severity"]),
            # the console's Alerts page: "all" (and one severity) newest per severity, and resolved
            # ones newest first — without them each load sorts the whole history
            models.Index(fields=["severity", "-last_seen"], name="alert_severity_last_seen"),
            models.Index(
                fields=["-resolved_at"], condition=models.Q(state="resolved"), name="alert_resolved_recent"
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.rule}:{self.subject} ({self.state})"


class Delivery(models.Model):
    """One notification of an alert on one channel: the trigger, an acknowledge, a resolve, or the
    n-th escalation. Unique per (alert, channel, action, escalation), so planning it twice is a no-op
    and a sent row is never sent again; ``status`` moves pending → sending → sent | failed | cancelled
    (a ``sending`` row whose lease expired is a sender that died mid-request and is retried)."""

    class Channel(models.TextChoices):
        SLACK = "slack", "Slack"
        PAGERDUTY = "pagerduty", "PagerDuty"

    class Action(models.TextChoices):
        TRIGGER = "trigger", "Trigger"
        ACKNOWLEDGE = "acknowledge", "Acknowledge"
        RESOLVE = "resolve", "Resolve"
        ESCALATE = "escalate", "Escalate"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=12, choices=Channel.choices)
    action = models.CharField(max_length=12, choices=Action.choices)
    escalation = models.PositiveIntegerField(default=0, help_text="n for the n-th escalation, else 0")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="HTTP requests made")
    rounds = models.PositiveIntegerField(default=0, help_text="send rounds (each up to a few requests)")
    response_code = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["alert_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "channel", "action", "escalation"], name="alert_delivery_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "sending"]),
                name="alert_delivery_due",
            )
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        suffix = f" #{self.escalation}" if self.escalation else ""
        return f"alert {self.alert_id} {self.channel} {self.action}{suffix} ({self.status})"
