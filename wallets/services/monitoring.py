"""Withdrawal monitoring (spec 06): pending queue size and value, processing time of the small
tier, daily volume against the historical average. Raises P1 alerts, resolves them when clear."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.alerts.services import alert_raise, alert_resolve_condition
from wallets.config import wallet_config
from wallets.models import Withdrawal

S = Withdrawal.Status
QUEUED = [S.AWAITING_APPROVAL, S.APPROVED, S.SENDING]


def _flag(rule: str, on: bool, message: str, details: dict[str, str]) -> None:
    if on:
        alert_raise(rule=rule, severity="P1", message=message, details=details)
    else:
        alert_resolve_condition(rule=rule)


def withdrawal_monitor() -> dict[str, object]:
    config = wallet_config()
    now = timezone.now()
    queue = Withdrawal.objects.filter(status__in=QUEUED).aggregate(n=Count("id"), total=Sum("amount"))
    n, total = queue["n"] or 0, queue["total"] or Decimal(0)
    _flag(
        "wallets.withdrawal_queue",
        n > config.pending_queue_max_count or total > config.pending_queue_max_amount,
        f"{n} withdrawals ({total:,.2f}) waiting to be sent.",
        {"count": str(n), "amount": str(total)},
    )
    small = Withdrawal.objects.filter(
        tier=Withdrawal.Tier.AUTO,
        broadcast_at__gte=now - timedelta(hours=24),
        confirmed_at__isnull=False,
    ).annotate(took=ExpressionWrapper(F("broadcast_at") - F("confirmed_at"), output_field=DurationField()))
    durations = [w.took.total_seconds() for w in small]
    average = sum(durations) / len(durations) if durations else 0.0
    _flag(
        "wallets.withdrawal_slow",
        average > config.small_tier_avg_seconds_max,
        f"Withdrawals under 10k take {average:.0f} s on average to broadcast (24 h).",
        {"average_seconds": f"{average:.1f}"},
    )
    today = now.date()
    daily = dict(
        Withdrawal.objects.filter(status=S.COMPLETED, completed_at__gte=now - timedelta(days=31))
        .annotate(day=TruncDate("completed_at"))
        .values("day")
        .annotate(total=Sum("amount"))
        .values_list("day", "total")
    )
    today_total = daily.pop(today, Decimal(0))
    history = list(daily.values())
    baseline = sum(history, Decimal(0)) / len(history) if history else None
    _flag(
        "wallets.withdrawal_volume",
        baseline is not None and baseline > 0 and today_total > baseline * config.daily_volume_multiplier,
        f"Withdrawals today {today_total:,.2f} exceed {config.daily_volume_multiplier}x the daily average.",
        {"today": str(today_total), "average": str(baseline)},
    )
    return {
        "queue": n,
        "queue_amount": total,
        "average_seconds": average,
        "today": today_total,
        "baseline": baseline,
    }
