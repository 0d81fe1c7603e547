from __future__ import annotations

from django.db import models
from django.utils import timezone


class PlatformState(models.Model):
    """Whether the platform accepts new orders (restart recovery, spec 04): closed while the start-up
    checks run (state rebuilt from PostgreSQL, HL accounts resynced, reconciliation), open once they
    pass. One row (``key="orders"``); no row means open (a deployment that never ran the gate)."""

    key = models.CharField(max_length=20, unique=True, default="orders")
    ready = models.BooleanField(default=True)
    reason = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.key}: {'ready' if self.ready else 'not ready'}"
