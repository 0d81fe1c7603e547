"""The reconciliation engine (spec 04): each run compares independent views of the same money or
position and writes ``ReconciliationLog`` rows (OK / WARN > 0.01 % / CRITICAL > 0.1 %).

A CRITICAL row raises a P0 alert (``reconciliation.<dimension>``) and pauses the related operation
(fail closed) until a later run finds it clean; nothing is ever "fixed" with a plug entry — the details
carry what explains the deviation. HL is the source of truth for what HL holds.

Dimensions implemented here:

* ``ledger`` — Σ of balances per asset = 0, every balance = Σ of its postings, every user balance = Σ
  of its balance logs (``ledger_invariant_violations``).
* ``exposure`` — the incremental exposure totals = a recompute from the open INTERNAL positions.
* ``hl_trading`` — Σ users' HYPERLIQUID positions = the trading account per asset (``positions_sync``,
  which halts new HL opens for a mismatching asset).
* ``hl_hedge`` — XBIT's hedge book (Σ of the hedge fills it recorded) = the hedge account per asset; a
  mismatch stops internalizing the asset (force-HL) since its hedge can no longer be trusted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.utils import timezone

from risk.hedge_models import HedgeInstruction, ReconciliationLog
from xbit_admin.alerts.services import alert_raise, alert_resolve_condition
from xbit_admin.money import ZERO

logger = logging.getLogger(__name__)

WARN_RATE = Decimal("0.0001")
CRITICAL_RATE = Decimal("0.001")
RATE_Q = Decimal("0.00000001")
Status = ReconciliationLog.Status


def classify(expected: Decimal, actual: Decimal) -> tuple[Decimal, str]:
    base = max(abs(expected), abs(actual))
    rate = abs(actual - expected) / base if base else ZERO
    if rate > CRITICAL_RATE:
        return rate, Status.CRITICAL
    if rate > WARN_RATE:
        return rate, Status.WARN
    return rate, Status.OK


def _row(
    run_id: str, dimension: str, subject: str, expected: Decimal, actual: Decimal, **details: Any
) -> ReconciliationLog:
    rate, status = classify(expected, actual)
    if details.pop("force_critical", False):
        status = Status.CRITICAL
    return ReconciliationLog(
        run_id=run_id,
        dimension=dimension,
        subject=subject,
        expected=expected.quantize(Decimal("0.000001")),
        actual=actual.quantize(Decimal("0.000001")),
        deviation=(actual - expected).quantize(Decimal("0.000001")),
        deviation_rate=min(rate, Decimal(9999)).quantize(RATE_Q),
        status=status,
        details={k: (str(v) if isinstance(v, Decimal) else v) for k, v in details.items()},
    )


# ------------------------------------------------------------------------------------------ dimensions
def check_ledger(run_id: str) -> list[ReconciliationLog]:
    from wallets.ledger import ledger_invariant_violations

    problems = ledger_invariant_violations()
    return [
        _row(
            run_id,
            "ledger",
            "*",
            ZERO,
            Decimal(len(problems)),
            problems=problems[:100],
            force_critical=bool(problems),
        )
    ]


def check_exposure(run_id: str) -> list[ReconciliationLog]:
    from risk.exposure import exposure_recompute

    diffs = exposure_recompute()
    if not diffs:
        return [_row(run_id, "exposure", "*", ZERO, ZERO)]
    return [
        _row(run_id, "exposure", asset, ZERO, Decimal(len(fields)), differences=fields, force_critical=True)
        for asset, fields in sorted(diffs.items())
    ]


def check_hl_trading(run_id: str) -> list[ReconciliationLog]:
    from trading.hl_accounts import positions_sync

    rows = [_row(run_id, "hl_trading", r.asset, r.expected, r.actual, unit="coins") for r in positions_sync()]
    return rows or [_row(run_id, "hl_trading", "*", ZERO, ZERO, unit="coins")]


def hedge_book() -> dict[str, Decimal]:
    """XBIT's own hedge book: Σ signed sizes of every hedge fill it recorded, per asset."""
    book: dict[str, Decimal] = {}
    for asset, is_buy, filled in HedgeInstruction.objects.filter(filled_size__gt=0).values_list(
        "asset", "is_buy", "filled_size"
    ):
        book[asset] = book.get(asset, ZERO) + (filled if is_buy else -filled)
    return book


def check_hl_hedge(run_id: str) -> list[ReconciliationLog]:
    from risk.hedge import _force, hedge_gateway

    gw = hedge_gateway()
    if gw is None:
        return []
    state = gw.user_state()
    theirs = {p["position"]["coin"]: Decimal(p["position"]["szi"]) for p in state.get("assetPositions", [])}
    ours = hedge_book()
    rows = []
    for asset in sorted(set(ours) | set(theirs)):
        row = _row(run_id, "hl_hedge", asset, ours.get(asset, ZERO), theirs.get(asset, ZERO), unit="coins")
        rows.append(row)
        # fail closed: a hedge we cannot account for means the asset's risk is unknown — stop internalizing
        _force(asset, "hedge_capacity", row.status == Status.CRITICAL, "reconciliation")
    return rows or [_row(run_id, "hl_hedge", "*", ZERO, ZERO, unit="coins")]


DIMENSIONS: dict[str, Callable[[str], list[ReconciliationLog]]] = {
    "ledger": check_ledger,
    "exposure": check_exposure,
    "hl_trading": check_hl_trading,
    "hl_hedge": check_hl_hedge,
}


def reconciliation_run(*, dimensions: Iterable[str] | None = None) -> list[ReconciliationLog]:
    """Run the given dimensions (default: all) now; write and return their rows, alert on deviations.
    A dimension that cannot be checked (e.g. HL unreachable) is recorded CRITICAL — unknown is never OK."""
    run_id = uuid.uuid4().hex[:20]
    now = timezone.now()
    rows: list[ReconciliationLog] = []
    for name in dimensions or DIMENSIONS:
        try:
            found = DIMENSIONS[name](run_id)
        except Exception as exc:
            logger.exception("reconciliation dimension %s failed", name)
            found = [
                _row(run_id, name, "*", ZERO, ZERO, error=f"{type(exc).__name__}: {exc}", force_critical=True)
            ]
        for row in found:
            row.created_at = now
        rows += found
        worst = [r for r in found if r.status != Status.OK]
        rule = f"reconciliation.{name}"
        if worst:
            critical = any(r.status == Status.CRITICAL for r in worst)
            alert_raise(
                rule=rule,
                severity="P0" if critical else "P1",
                subject="*",
                message=f"reconciliation {name}: "
                + "; ".join(f"{r.subject} expected {r.expected} actual {r.actual}" for r in worst[:5]),
                details={"run_id": run_id},
            )
        else:
            alert_resolve_condition(rule=rule, subject="*")
    ReconciliationLog.objects.bulk_create(rows)
    return rows


def reconciliation_latest() -> dict[str, Any]:
    """The newest run's rows (console)."""
    last = ReconciliationLog.objects.order_by("-created_at", "-id").first()
    if last is None:
        return {"run_id": None, "rows": []}
    rows = list(
        ReconciliationLog.objects.filter(run_id=last.run_id)
        .order_by("dimension", "subject")
        .values(
            "dimension", "subject", "expected", "actual", "deviation", "deviation_rate", "status", "details"
        )
    )
    return {"run_id": last.run_id, "at": last.created_at, "rows": rows}


# Dimensions whose CRITICAL result keeps the whole platform closed after a restart; the others fail
# closed where they apply (an HL position mismatch halts HL opens for that asset, etc.).
GATING_DIMENSIONS = ("ledger", "exposure")


def startup_check() -> tuple[bool, str]:
    """Restart recovery's reconciliation step (``manage.py platform_ready``)."""
    rows = reconciliation_run()
    blocking = sorted(
        {r.dimension for r in rows if r.status == "CRITICAL" and r.dimension in GATING_DIMENSIONS}
    )
    if blocking:
        return False, "reconciliation critical: " + ", ".join(blocking)
    return True, f"{len(rows)} reconciliation checks, none blocking"
