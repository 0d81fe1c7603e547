"""Canary launch (spec 10): stages that set their switches in one action, live pass criteria computed
from the order flow since the stage began, and auto-rollback to the previous stage when p99 order →
receipt latency rises more than 20 % over the stage's baseline or the error rate exceeds 1 %."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Min, Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.alerts.services import alert_raise
from core.errors import ApplicationError, ErrorCode
from core.switches import store
from core.switches.models import SwitchChange
from trading.models import Fill, Order
from xbit_admin.switches.registry import resolve
from xbit_admin.switches.services import SwitchResult, switch_set

logger = logging.getLogger(__name__)

WINDOW = timedelta(minutes=15)
MIN_ORDERS = 20  # fewer orders than this since the stage began: too few to judge
MAX_ERROR_RATE = Decimal("0.01")
MAX_LATENCY_RISE = Decimal("0.20")


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    switches: dict[str, Any]
    criteria: tuple[str, ...]


SHADOW = {
    "global_internalization_enabled": False,
    "hedge_mode": "SHADOW",
    "liquidation_mode": store.LIQ_SHADOW,
}


def _internal(threshold: int) -> dict[str, Any]:
    return {
        "global_internalization_enabled": True,
        "internalization_whitelist": ["BTC", "ETH"],
        "normal_threshold": str(threshold),
        "hedge_mode": "LIVE",
        "liquidation_mode": store.LIQ_LIVE,
    }


STAGES: tuple[Stage, ...] = (
    Stage("1", "1 · full HL routing, hedge and liquidation in SHADOW", SHADOW, ("fill_dev", "p99", "errors")),
    Stage("2", "2 · + shadow exposure reconciliation", SHADOW, ("fill_dev", "p99", "errors", "recon")),
    Stage("3a", "3 · BTC/ETH internalized ≤ 1,000", _internal(1_000), ("p99", "errors", "recon")),
    Stage("3b", "3 · BTC/ETH internalized ≤ 5,000", _internal(5_000), ("p99", "errors", "recon")),
    Stage("3c", "3 · BTC/ETH internalized ≤ 10,000", _internal(10_000), ("p99", "errors", "recon")),
    Stage(
        "4", "4 · full configuration", {**_internal(10_000), "canary_cohort_percent": 100}, ("p99", "errors")
    ),
)
BY_KEY = {s.key: s for s in STAGES}


def stage_index(key: str) -> int:
    return [s.key for s in STAGES].index(key)


def previous_stage(key: str) -> Stage | None:
    index = stage_index(key)
    return STAGES[index - 1] if index > 0 else None


# --- live criteria ---------------------------------------------------------------------------------


def canary_metrics(*, since: datetime) -> dict[str, Any]:
    """Measured on orders created since ``since``: error rate (REJECTED / ERROR over all), p99 order →
    first FILLED event (ms), mean |HL fill − reference mark| in basis points, reconciliation agreement
    (None until the reconciliation job exists)."""

    orders = Order.objects.filter(created_at__gte=since)
    counts = orders.aggregate(
        total=Count("id"),
        errors=Count("id", filter=Q(status__in=[Order.Status.REJECTED, Order.Status.ERROR])),
    )
    total, errors = counts["total"] or 0, counts["errors"] or 0
    rows = (
        orders.annotate(first_fill=Min("events__created_at", filter=Q(events__status="FILLED")))
        .filter(first_fill__isnull=False)
        .order_by("-id")
        .values_list("created_at", "first_fill")[:20_000]
    )
    latencies = sorted(max(0.0, (filled - created).total_seconds() * 1000) for created, filled in rows)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None
    fills = Fill.objects.filter(
        created_at__gte=since, hl_fill_price__isnull=False, order__reference_price__gt=0
    ).values_list("hl_fill_price", "order__reference_price")[:20_000]
    deviations = [abs(hl - ref) / ref * 10_000 for hl, ref in fills]
    return {
        "since": since,
        "orders": total,
        "errors": errors,
        "error_rate": (Decimal(errors) / total) if total else None,
        "p99_ms": round(p99, 2) if p99 is not None else None,
        "filled": len(latencies),
        "fill_dev_bp": (sum(deviations, Decimal(0)) / len(deviations)).quantize(Decimal("0.01"))
        if deviations
        else None,
        "recon": _reconciliation_agreement(),
    }


def _reconciliation_agreement() -> Decimal | None:
    try:
        from risk import reconciliation  # type: ignore[attr-defined]
    except ImportError:
        return None
    agreement = getattr(reconciliation, "agreement_ratio", None)
    try:
        return Decimal(str(agreement())) if callable(agreement) else None
    except Exception:
        logger.warning("reconciliation agreement unavailable", exc_info=True)
        return None


def stage_started_at() -> datetime | None:
    baseline = store.core_value("canary_baseline") or {}
    return parse_datetime(baseline["at"]) if baseline.get("at") else None


def canary_status() -> dict[str, Any]:
    """The stage, its live criteria (label, measured, target, ok/None when not measurable)."""
    key = store.core_value("canary_stage") or ""
    baseline = store.core_value("canary_baseline") or {}
    now = timezone.now()
    started = stage_started_at() or now - WINDOW
    metrics = canary_metrics(since=max(started, now - WINDOW))
    stage = BY_KEY.get(key)
    base_p99 = baseline.get("p99_ms")
    checks = {
        "fill_dev": ("HL proxy fill deviation", metrics["fill_dev_bp"], "≤ 1 bp", Decimal(1)),
        "p99": ("Order → receipt p99", metrics["p99_ms"], "< 50 ms", 50),
        "errors": ("Error rate", metrics["error_rate"], "0 (rollback > 1 %)", Decimal(0)),
        "recon": ("Reconciliation agreement", metrics["recon"], "> 99 %", Decimal("0.99")),
    }
    criteria = []
    for name in stage.criteria if stage else ("fill_dev", "p99", "errors", "recon"):
        label, measured, target, limit = checks[name]
        if measured is None:
            ok = None
        elif name == "recon":
            ok = measured > limit
        elif name == "p99":
            ok = measured < limit
        else:
            ok = measured <= limit
        criteria.append({"name": name, "label": label, "measured": measured, "target": target, "ok": ok})
    return {
        "stage": stage,
        "stages": STAGES,
        "baseline_p99_ms": base_p99,
        "metrics": metrics,
        "criteria": criteria,
        "previous": previous_stage(key) if stage else None,
    }


# --- services -------------------------------------------------------------------------------------


def canary_stage_set(
    *, stage: str, acting_user: Any, reason: str, request: HttpRequest | None = None
) -> SwitchResult:
    """Enter a stage: set its switches (hedge switches skipped while the hedge engine is absent),
    remember the p99 latency measured just before as the stage's baseline. ``""`` ends the canary
    (switches stay as they are). One transaction; each switch through ``switch_set``."""

    if stage and stage not in BY_KEY:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Unknown canary stage {stage!r}.")
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    now = timezone.now()
    result = SwitchResult()
    with transaction.atomic():
        previous = store.core_value("canary_stage") or ""
        old_base = store.core_value("canary_baseline") or {}
        measured = canary_metrics(since=now - WINDOW)["p99_ms"]
        for key, value in BY_KEY[stage].switches.items() if stage else ():
            switch, _scope = resolve(key)
            if not switch.is_available():
                result.skipped.append(f"{key} unavailable")
                continue
            result.changes.extend(
                switch_set(
                    name=key,
                    value=value,
                    acting_user=acting_user,
                    reason=f"canary stage {stage}: {reason}",
                    request=request,
                    source=SwitchChange.Source.CANARY,
                ).changes
            )
        # the baseline is what the platform achieved before this stage (kept across a rollback)
        p99 = measured if measured is not None else old_base.get("p99_ms")
        store.core_value_set(
            name="canary_baseline",
            value={"stage": stage, "at": now.isoformat(), "p99_ms": p99},
            acting_user=acting_user,
            reason=reason,
        )
        if previous != stage:
            store.core_value_set(name="canary_stage", value=stage, acting_user=acting_user, reason=reason)
            SwitchChange.objects.create(
                name="canary_stage",
                old_value=previous,
                new_value=stage,
                actor=acting_user if getattr(acting_user, "is_authenticated", False) else None,
                reason=reason,
                source=SwitchChange.Source.CANARY,
            )
    return result


def canary_evaluate(*, now: datetime | None = None) -> str | None:
    """The beat's check. Returns the rollback reason when it rolled back, else None. Judged only on
    orders since the stage began (a rollback starts a fresh window, so it never cascades on the same
    bad minutes)."""

    key = store.core_value("canary_stage") or ""
    if key not in BY_KEY:
        return None
    previous = previous_stage(key)
    if previous is None:
        return None
    now = now or timezone.now()
    started = stage_started_at() or now - WINDOW
    metrics = canary_metrics(since=max(started, now - WINDOW))
    why = None
    if metrics["orders"] >= MIN_ORDERS and metrics["error_rate"] > MAX_ERROR_RATE:
        why = f"error rate {metrics['error_rate']:.2%} > {MAX_ERROR_RATE:.0%} over {metrics['orders']} orders"
    base = (store.core_value("canary_baseline") or {}).get("p99_ms")
    if (
        why is None
        and base
        and metrics["p99_ms"] is not None
        and metrics["filled"] >= MIN_ORDERS
        and Decimal(str(metrics["p99_ms"])) > Decimal(str(base)) * (1 + MAX_LATENCY_RISE)
    ):
        why = f"p99 latency {metrics['p99_ms']} ms > baseline {base} ms + 20 %"
    if why is None:
        return None
    canary_stage_set(stage=previous.key, acting_user=None, reason=f"auto-rollback from {key}: {why}")
    alert_raise(
        rule="switches.canary_rollback",
        severity="P1",
        subject=key,
        message=f"Canary rolled back from stage {key} to {previous.key}: {why}.",
    )
    return why
