"""Control switches (spec 10): the values the core owns itself (API mode, liquidation mode, canary
stage and cohort, degradation level) and the append-only history of every switch change, whichever
app owns the switch's value."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class SwitchState(models.Model):
    """One core-owned switch value (JSON). Read through ``store.SWITCH_CACHE``; written only by
    ``store.core_value_set`` (audited, cache dropped in every process on commit)."""

    name = models.CharField(max_length=80, unique=True)
    value = models.JSONField(null=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.name} = {self.value!r}"


class SwitchChange(models.Model):
    """Who changed which switch when, old → new, why (append-only: a database trigger refuses UPDATE
    and DELETE). Rollback to a time reads the value in force then from these rows."""

    class Source(models.TextChoices):
        SET = "SET", "Set"
        ROLLBACK = "ROLLBACK", "Rollback"
        DEGRADATION = "DEGRADATION", "Degradation level"
        CANARY = "CANARY", "Canary stage"
        DIRECT = "DIRECT", "Changed on its own page, API or automatically"

    name = models.CharField(max_length=80)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField()
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.SET)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["name", "-at"]), models.Index(fields=["-at"])]

    def __str__(self) -> str:
        return f"{self.name}: {self.old_value!r} → {self.new_value!r}"
