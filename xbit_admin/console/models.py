"""The console's own configuration rows: the block explorer each chain's transaction hashes
link to. Database-backed so an operator changes them without a deploy; defaults are registered with
``core.defaults`` and created when missing."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ExplorerUrl(models.Model):
    """``url`` holds ``{tx}`` where the transaction hash goes."""

    chain = models.CharField(max_length=16, primary_key=True)
    url = models.CharField(max_length=200)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.chain} explorer"


class ConsoleSetting(models.Model):
    """A console-owned switch value (e.g. ``risk_four_eyes``), read through the switch registry."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.JSONField()
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class VenueLatencySample(models.Model):
    """HL market-data latency and feed connectivity, sampled by the console's beat task (the feed keeps
    only its latest round trips): the venue-health page's history."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    latency_ms = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    connected = models.BooleanField(default=False)
    last_message_age_s = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    # The lowest margin ratio of each HL account's snapshots since the previous sample (null: no snapshot
    # with a position in between): the venue and hedge charts read these narrow rows instead of every
    # 5-second snapshot (three days are ~100,000 snapshot rows, 17,280 samples).
    trading_margin_ratio = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    hedge_margin_ratio = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)

    def __str__(self) -> str:
        return f"HL latency {self.latency_ms} ms at {self.created_at:%H:%M:%S}"
