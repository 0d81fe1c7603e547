"""Drift (deviation) records and levels for HYPERLIQUID positions (spec 04): HL's actual P&L minus the
P&L XBIT computed, per close / liquidation / funding mirror, in ``DeviationLog``."""

from __future__ import annotations

import logging
from datetime import datetime, time
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Abs
from django.utils import timezone

from core.alerts.services import alert_raise
from risk import breaker_rules as rules
from risk.breakers import breaker_trip
from risk.config import risk_config
from risk.models import CircuitBreaker, DeviationLog

logger = logging.getLogger(__name__)


def drift_record(
    *,
    ref: str,
    kind: str,
    asset: str,
    xbit_pnl: Decimal,
    hl_actual_pnl: Decimal,
    notional: Decimal,
    position_id: int | None = None,
) -> DeviationLog | None:
    """Record one comparison (idempotent on ``ref``) and act on its level: ALERT → P1; CRITICAL →
    P0 and HL routing halted for the asset (drift breaker, operator reset). Daily cumulative |drift|
    over $1,000 flags a review (P1), over $5,000 is critical (P0). Returns the row, or None when the
    drift is below every level."""
    cfg = risk_config()
    deviation = hl_actual_pnl - xbit_pnl
    rate = rules.drift_rate(deviation, xbit_pnl, notional)
    level = rules.drift_level(
        rate,
        deviation,
        log_usd=cfg.drift_log_usd,
        alert=cfg.drift_alert_rate,
        critical=cfg.drift_critical_rate,
        alert_min_usd=cfg.drift_alert_min_usd,
        critical_min_usd=cfg.drift_critical_min_usd,
    )
    if not level:
        return None
    with transaction.atomic():
        row, created = DeviationLog.objects.get_or_create(
            ref=ref,
            defaults={
                "kind": kind,
                "asset": asset,
                "position_id": position_id,
                "xbit_pnl": xbit_pnl,
                "hl_actual_pnl": hl_actual_pnl,
                "deviation": deviation,
                "deviation_rate": min(rate, Decimal("9999")).quantize(Decimal("0.00000001")),
                "level": level,
            },
        )
        if not created:
            return row
        message = (
            f"{kind.lower()} drift on {asset}: HL {hl_actual_pnl} vs XBIT {xbit_pnl} "
            f"({deviation:+.2f}, {rate * 100:.2f}%)"
        )
        if level == DeviationLog.Level.ALERT:
            alert_raise(
                rule="risk.drift", severity="P1", subject=asset, message=message, details={"ref": ref}
            )
        elif level == DeviationLog.Level.CRITICAL:
            alert_raise(
                rule="risk.drift", severity="P0", subject=asset, message=message, details={"ref": ref}
            )
            breaker_trip(kind=CircuitBreaker.Kind.DRIFT, scope=asset, reason=message, details={"ref": ref})
        _daily_check(cfg.drift_daily_review, cfg.drift_daily_critical)
    return row


def daily_drift_total(day: datetime | None = None) -> Decimal:
    start = datetime.combine((day or timezone.now()).date(), time.min, tzinfo=timezone.get_current_timezone())
    total = DeviationLog.objects.filter(created_at__gte=start).aggregate(t=Sum(Abs("deviation")))["t"]
    return total or Decimal(0)


def _daily_check(review: Decimal, critical: Decimal) -> None:
    total = daily_drift_total()
    if total > critical:
        alert_raise(
            rule="risk.drift_daily",
            severity="P0",
            subject="*",
            message=f"daily cumulative drift {total:.2f} > {critical}",
        )
    elif total > review:
        alert_raise(
            rule="risk.drift_daily",
            severity="P1",
            subject="*",
            message=f"daily cumulative drift {total:.2f} > {review}: manual review",
        )
