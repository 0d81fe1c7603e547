"""Reads for the console's risk pages (overview, liquidations, drift, risk config, breakers, reconciliation)
and the arrangement of ``risk.selectors``' results (hedge, stress) for them. Nothing here writes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, ExpressionWrapper, F, Max, Min, Q, Subquery, Sum
from django.db.models.functions import Abs, TruncDate
from django.utils import timezone

from core.alerts.models import Alert
from core.audit.models import AuditEntry
from risk.breakers import RESET_RULES
from risk.config import risk_config
from risk.drift import daily_drift_total
from risk.exposure import daily_net_loss, exposure_current
from risk.hedge_models import HedgePosition, ReconciliationLog
from risk.models import CircuitBreaker, DeviationLog, ExposureDaily, LiquidationRecord, LiquidationTrigger
from risk.selectors import hedge_overview
from routing.models import RoutingDecisionLog
from trading.models import HLAccountSnapshot, Position
from trading.selectors import listed_assets
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind

ZERO = Decimal(0)
HL_ACCOUNTS = ("trading", "hedge")
NOTIONAL = ExpressionWrapper(
    F("size") * F("close_price"), output_field=DecimalField(max_digits=38, decimal_places=12)
)


def utc_midnight(day: date | None = None) -> datetime:
    return datetime.combine(day or timezone.now().date(), time.min, tzinfo=timezone.get_current_timezone())


# --- shapes of the risk selectors' results ------------------------------------------------------------


def pick(obj: Any, *names: str, default: Any = None) -> Any:
    """The first present attribute or key of ``obj`` (the risk selectors may return dataclasses or
    dicts)."""
    for name in names:
        if isinstance(obj, dict) and obj.get(name) is not None:
            return obj[name]
        value = getattr(obj, name, None)
        if value is not None and not callable(value):
            return value
    return default


def as_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        return None


def hedge_by_asset() -> dict[str, dict[str, Any]]:
    """Per-asset hedge rows of ``risk.selectors.hedge_overview()`` (target, current, gap, costs)."""

    return dict(hedge_overview()["assets"])


# --- overview ------------------------------------------------------------------------------------


@dataclass
class ExposureRow:
    asset: str
    mark: Decimal | None
    net: Decimal  # users' net INTERNAL notional (+ = users net long, platform net short)
    long: Decimal
    short: Decimal
    bbook_upnl: Decimal
    positions: int
    hedge: Decimal | None = None
    target: Decimal | None = None

    @property
    def coverage(self) -> Decimal | None:
        if self.hedge is None or not self.net:
            return None
        return min(abs(self.hedge) / abs(self.net), Decimal(1))

    @property
    def coverage_pct(self) -> int:
        return int((self.coverage or ZERO) * 100)


def exposure_rows() -> list[ExposureRow]:
    hedges = hedge_by_asset()
    rows = []
    for view in exposure_current().values():
        hedge = hedges.get(view.asset)
        rows.append(
            ExposureRow(
                asset=view.asset,
                mark=view.mark,
                net=view.net_notional,
                long=view.long_notional,
                short=view.short_notional,
                bbook_upnl=view.bbook_upnl,
                positions=view.positions,
                hedge=hedge["current_notional"] if hedge is not None else None,
                target=hedge["target_notional"] if hedge is not None else None,
            )
        )
    rows.sort(key=lambda r: abs(r.net), reverse=True)
    return rows


def bbook_pnl_days(days: int = 30) -> list[tuple[date, Decimal]]:
    """The platform's realized INTERNAL result per UTC day (clients' losses + fees + liquidation
    margin − clients' gains), oldest first, one point per day (0 when nothing happened)."""
    today = timezone.now().date()
    since = today - timedelta(days=days - 1)
    per_day = {
        row["day"]: (row["fees"] or ZERO) + (row["liq"] or ZERO) - (row["pnl"] or ZERO)
        for row in ExposureDaily.objects.filter(day__gte=since)
        .values("day")
        .annotate(pnl=Sum("client_realized_pnl"), fees=Sum("fees"), liq=Sum("liquidation_margin"))
    }
    return [(since + timedelta(days=i), per_day.get(since + timedelta(days=i), ZERO)) for i in range(days)]


def routing_stats_today() -> dict[str, Any]:
    rows = (
        RoutingDecisionLog.objects.filter(created_at__gte=utc_midnight())
        .values("route")
        .annotate(count=Count("id"), volume=Sum("notional"))
    )
    by_route = {r["route"]: {"count": r["count"], "volume": r["volume"] or ZERO} for r in rows}
    internal = by_route.get("INTERNAL", {"count": 0, "volume": ZERO})
    hl = by_route.get("HYPERLIQUID", {"count": 0, "volume": ZERO})
    total_count = internal["count"] + hl["count"]
    total_volume = internal["volume"] + hl["volume"]
    return {
        "internal": internal,
        "hl": hl,
        "other": {k: v for k, v in by_route.items() if k not in ("INTERNAL", "HYPERLIQUID")},
        "count_ratio": Decimal(internal["count"]) / total_count if total_count else None,
        "volume_ratio": internal["volume"] / total_volume if total_volume else None,
    }


def liquidations_today() -> dict[str, Any]:
    since = utc_midnight()
    venues = {
        r["venue"]: r
        for r in LiquidationRecord.objects.filter(created_at__gte=since)
        .values("venue")
        .annotate(count=Count("id"), notional=Sum(NOTIONAL), margin=Sum("margin_zeroed"), loss=Sum("loss"))
        .order_by("venue")
    }
    triggers = dict(
        LiquidationTrigger.objects.filter(detected_at__gte=since)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "venues": list(venues.values()),
        "count": sum(v["count"] for v in venues.values()),
        "notional": sum((v["notional"] or ZERO for v in venues.values()), ZERO),
        "margin": sum((v["margin"] or ZERO for v in venues.values()), ZERO),
        "escalated": LiquidationTrigger.objects.filter(status=LiquidationTrigger.Status.ESCALATED).count(),
        "open": sum(n for s, n in triggers.items() if s in LiquidationTrigger.OPEN),
    }


@dataclass
class HLAccountView:
    name: str
    snapshot: HLAccountSnapshot | None
    positions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def level(self) -> str:
        return margin_level(self.snapshot.margin_ratio if self.snapshot else None)


def hl_accounts() -> list[HLAccountView]:
    out = []
    for name in HL_ACCOUNTS:
        snap = HLAccountSnapshot.objects.filter(account=name).order_by("-created_at").first()
        positions = []
        for p in (snap.positions if snap else []) or []:
            pos = p.get("position", p) if isinstance(p, dict) else {}
            positions.append(
                {
                    "asset": pos.get("coin") or pos.get("asset") or "?",
                    "size": as_decimal(pos.get("szi") or pos.get("size")),
                    "entry": as_decimal(pos.get("entryPx") or pos.get("entry")),
                    "value": as_decimal(pos.get("positionValue") or pos.get("value")),
                    "upnl": as_decimal(pos.get("unrealizedPnl") or pos.get("upnl")),
                }
            )
        out.append(HLAccountView(name=name, snapshot=snap, positions=positions))
    return out


def reserve_balance() -> Decimal:
    return account_balance(AccountRef.platform(AccountKind.RISK_RESERVE))


def breaker_rows() -> list[CircuitBreaker]:
    """Every breaker kind: its rows (one per scope), or a never-tripped OK row when it has none."""

    rows = list(CircuitBreaker.objects.all())
    seen = {r.kind for r in rows}
    for kind in CircuitBreaker.Kind:
        if kind not in seen:
            rows.append(CircuitBreaker(kind=kind, scope="*", reset_rule=RESET_RULES.get(kind, "")))
    order = {state: i for i, state in enumerate(("TRIPPED", "WARNING", "OK"))}
    kinds = [str(k) for k in CircuitBreaker.Kind]
    rows.sort(key=lambda r: (order.get(r.state, 3), kinds.index(r.kind), r.scope))
    return rows


def open_alerts(limit: int = 8) -> dict[str, Any]:
    qs = Alert.objects.filter(state=Alert.State.OPEN)
    counts = dict(qs.values_list("severity").annotate(n=Count("id")).order_by())
    return {
        "counts": {sev: counts.get(sev, 0) for sev in ("P0", "P1", "P2")},
        "rows": list(qs.order_by("severity", "-last_seen")[:limit]),
    }


def overview_live(*, risk: bool) -> dict[str, Any]:
    """Everything the overview's live region shows. ``risk`` False (no view_risk): alerts only."""
    data: dict[str, Any] = {"alerts": open_alerts(), "risk": risk, "now": timezone.now()}
    if not risk:
        return data

    rows = exposure_rows()
    data.update(
        exposure=rows,
        total_exposure=sum((abs(r.net) for r in rows), ZERO),
        bbook_upnl=sum((r.bbook_upnl for r in rows), ZERO),
        daily_net_loss=daily_net_loss(),
        routing=routing_stats_today(),
        liquidations=liquidations_today(),
        hl_accounts=hl_accounts(),
        reserve=reserve_balance(),
        breakers=[b for b in breaker_rows() if b.state != CircuitBreaker.State.OK],
        breakers_total=CircuitBreaker.objects.count(),
    )
    return data


def bbook_summary() -> dict[str, Any]:
    days = bbook_pnl_days(30)
    return {
        "today": days[-1][1],
        "d7": sum((v for _, v in days[-7:]), ZERO),
        "d30": sum((v for _, v in days), ZERO),
        "chart": {
            "x": [int(utc_midnight(d).timestamp()) for d, _ in days],
            "y": [float(v) for _, v in days],
        },
    }


# --- liquidations --------------------------------------------------------------------------------


def liquidation_latency_ms(trigger: LiquidationTrigger) -> int | None:
    if trigger.completed_at is None:
        return None
    return int((trigger.completed_at - trigger.detected_at).total_seconds() * 1000)


def escalations() -> list[LiquidationTrigger]:
    return list(
        LiquidationTrigger.objects.filter(status=LiquidationTrigger.Status.ESCALATED)
        .select_related("user")
        .order_by("-detected_at")[:100]
    )


def liquidation_history(filters: dict[str, str]) -> Any:
    qs = LiquidationTrigger.objects.select_related("user")
    if filters.get("asset"):
        qs = qs.filter(asset=filters["asset"].strip().upper())
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("venue"):
        qs = qs.filter(venue=filters["venue"])
    return qs


# --- drift ---------------------------------------------------------------------------------------


def drift_overview(days: int = 30) -> dict[str, Any]:
    today = timezone.now().date()
    since = utc_midnight(today - timedelta(days=days - 1))
    per_day = dict(
        DeviationLog.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(total=Sum(Abs("deviation")))
        .order_by()
    )
    series = [(today - timedelta(days=days - 1 - i)) for i in range(days)]
    ranking = list(
        DeviationLog.objects.filter(created_at__gte=since)
        .values("asset")
        .annotate(
            total=Sum(Abs("deviation")),
            net=Sum("deviation"),
            count=Count("id"),
            alerts=Count("id", filter=Q(level__in=["ALERT", "CRITICAL"])),
        )
        .order_by("-total")
    )
    return {
        "today": daily_drift_total(),
        "d30": sum((v or ZERO for v in per_day.values()), ZERO),
        "chart": {
            "x": [int(utc_midnight(d).timestamp()) for d in series],
            "y": [float(per_day.get(d) or 0) for d in series],
        },
        "ranking": ranking,
    }


# --- config history ------------------------------------------------------------------------------


def last_changes(action: str, object_id: str | None = None) -> dict[str, AuditEntry]:
    """Per field: the newest audit entry of ``action`` that changed it (who and when)."""
    qs = AuditEntry.objects.filter(action=action)
    if object_id is not None:
        qs = qs.filter(object_id=object_id)
    out: dict[str, AuditEntry] = {}
    for entry in qs.order_by("-id")[:500]:
        for name in entry.after or {}:
            out.setdefault(name, entry)
    return out


# --- stress --------------------------------------------------------------------------------------


def stress_assets(limit: int = 12) -> list[str]:
    """The assets the stress form offers: those with open positions or a hedge first (largest notional
    first), then the other listed assets in HL order, ``limit`` in all."""

    held = {
        row["asset"]: row["notional"] or ZERO
        for row in Position.objects.filter(status=Position.Status.OPEN)
        .values("asset")
        .annotate(notional=Sum(F("size") * F("entry_price")))
        .order_by()
    }
    for asset in HedgePosition.objects.exclude(size=0).values_list("asset", flat=True):
        held.setdefault(asset, ZERO)
    listed = list(listed_assets())
    first = sorted((a for a in held if a in listed), key=lambda a: (-held[a], listed.index(a)))
    rest = [a for a in listed if a not in held]
    return (first + rest)[:limit]


def _num(row: Any, name: str) -> Decimal | None:
    return as_decimal(pick(row, name))


def stress_report(result: Any) -> dict[str, Any]:
    """The stress selector's result (``risk.stress.StressResult.as_dict()``) arranged for the page and
    its CSV: the scenario, the summary and one row per asset, largest platform P&L move first."""
    per_asset = pick(result, "per_asset", default=[]) or []
    if isinstance(per_asset, dict):
        per_asset = list(per_asset.values())
    rows = []
    for row in per_asset:
        rows.append(
            {
                "asset": pick(row, "asset", default="?"),
                "shock": _num(row, "shock") or ZERO,
                "mark_before": _num(row, "mark_before"),
                "mark_after": _num(row, "mark_after"),
                "positions": int(pick(row, "positions", default=0) or 0),
                "net_exposure": _num(row, "net_exposure") or ZERO,
                "net_exposure_after": _num(row, "net_exposure_after") or ZERO,
                "bbook_pnl": _num(row, "bbook_pnl_change") or ZERO,
                "hedge_notional": _num(row, "hedge_notional") or ZERO,
                "hedge_pnl": _num(row, "hedge_pnl_change") or ZERO,
                "platform_pnl": _num(row, "platform_pnl_change") or ZERO,
                "coverage": _num(row, "hedge_coverage"),
                "liquidations": int(pick(row, "liquidations", default=0) or 0),
                "liquidation_notional": _num(row, "liquidation_notional") or ZERO,
                "by_venue": dict(pick(row, "liquidations_by_venue", default={}) or {}),
                "bankrupt": _num(row, "bankrupt") or ZERO,
            }
        )
    rows.sort(key=lambda r: (-abs(r["platform_pnl"]), -abs(r["net_exposure"]), r["asset"]))
    venues = pick(result, "liquidations", default={}) or {}
    ratios = pick(result, "hl_margin_ratios", default={}) or {}
    shocks = pick(result, "shocks", default={}) or {}
    marks_before = pick(result, "marks_before", default={}) or {}
    marks_after = pick(result, "marks_after", default={}) or {}
    return {
        "scenario": [
            {
                "asset": asset,
                "shock": as_decimal(shock),
                "mark_before": as_decimal(marks_before.get(asset)),
                "mark_after": as_decimal(marks_after.get(asset)),
            }
            for asset, shock in sorted(shocks.items())
        ],
        "platform_pnl": _num(result, "platform_pnl_change"),
        "bbook_pnl": _num(result, "bbook_pnl_change"),
        "hedge_pnl": _num(result, "hedge_pnl_change"),
        "coverage": _num(result, "hedge_coverage"),
        "liquidation_count": int(pick(result, "liquidation_count", default=0) or 0),
        "liquidation_notional": _num(result, "liquidation_notional"),
        "venues": [
            {"venue": venue, "count": int(v.get("count", 0)), "notional": as_decimal(v.get("notional"))}
            for venue, v in sorted(venues.items())
        ],
        "bankrupt": _num(result, "bankrupt_total"),
        "reserve_before": _num(result, "reserve_before"),
        "reserve_after": _num(result, "reserve_after"),
        "hl_accounts": [
            {
                "name": name,
                "before": as_decimal((r or {}).get("before")),
                "after": as_decimal((r or {}).get("after")),
                "level": margin_level(as_decimal((r or {}).get("after"))),
            }
            for name, r in sorted(ratios.items())
        ],
        "positions_evaluated": int(pick(result, "positions_evaluated", default=0) or 0),
        "rows": rows,
        "totals": {
            key: sum((r[key] for r in rows), ZERO)
            for key in (
                "net_exposure",
                "net_exposure_after",
                "bbook_pnl",
                "hedge_notional",
                "hedge_pnl",
                "platform_pnl",
                "liquidation_notional",
                "bankrupt",
            )
        }
        | {
            "positions": sum(r["positions"] for r in rows),
            "liquidations": sum(r["liquidations"] for r in rows),
        },
    }


def margin_level(ratio: Decimal | None) -> str:
    """An HL account's margin ratio as a status colour (spec 05: < 150 % halts new HL opens, < 300 %
    alerts)."""
    if ratio is None:
        return "ok"
    if ratio < Decimal("1.5"):
        return "bad"
    if ratio < Decimal(3):
        return "warn"
    return "ok"


def reserve_level(after: Decimal | None) -> tuple[str, str]:
    """The risk reserve against its configured levels: (colour, what that level does)."""

    if after is None:
        return "ok", ""
    cfg = risk_config()
    if after < cfg.reserve_halt:
        return "bad", f"below the halt level ({cfg.reserve_halt:,.0f} USDC): all internalization halted"
    if after < cfg.reserve_normal:
        return "warn", f"below the normal level ({cfg.reserve_normal:,.0f} USDC): routing thresholds lowered"
    return "ok", f"above the normal level ({cfg.reserve_normal:,.0f} USDC)"


# --- reconciliation ------------------------------------------------------------------------------

# dimension → (title, unit of expected/actual/deviation, what it compares)
RECON_DIMENSIONS: dict[str, tuple[str, str, str]] = {
    "ledger": (
        "Ledger",
        "violations",
        "Σ balances per asset = 0; each balance = Σ postings = Σ balance logs",
    ),
    "exposure": (
        "Exposure",
        "fields",
        "incremental exposure totals = recompute from open INTERNAL positions",
    ),
    "hl_trading": ("HL trading positions", "coins", "Σ users' HYPERLIQUID positions = HL trading account"),
    "hl_hedge": ("HL hedge positions", "coins", "XBIT's hedge book = HL hedge account"),
    "user_assets": ("User assets", "USDC", "what users are owed = what the platform's books hold for them"),
    "hl_account_value": (
        "HL account value",
        "USDC",
        "HL account value = injected capital − settled P&L + unrealized P&L",
    ),
    "funding_mirror": (
        "HL funding mirror",
        "USDC",
        "mirrored HYPERLIQUID funding = HL userFunding, per asset and instant over the last day",
    ),
    "bbook": ("B-book", "USDC", "B-book P&L + reserve allocations = INTERNAL users' realized losses − gains"),
    "hot_wallets": ("Hot wallets", "USD", "on-chain hot balance = custody record ≥ queued withdrawals"),
}
STATUS_LEVEL = {"OK": "ok", "WARN": "warn", "WARNING": "warn"}
STATUS_RANK = {"OK": 0, "WARN": 1, "CRITICAL": 2}


def recon_level(status: str) -> str:
    return STATUS_LEVEL.get(status.upper(), "bad")


def recon_unit(dimension: str, details: Any = None) -> str:
    if isinstance(details, dict) and details.get("unit"):
        return str(details["unit"])
    return RECON_DIMENSIONS.get(dimension, ("", "", ""))[1]


def recon_subject_key(subject: str) -> str:
    """A subject without its run-specific suffix (``BTC@2026-…`` → ``BTC``) for filtering history."""
    return subject.split("@", 1)[0]


def recon_latest_by_dimension() -> list[dict[str, Any]]:
    """Each dimension's newest run (a run may cover only some dimensions): its rows, worst first."""

    newest = (
        ReconciliationLog.objects.order_by("dimension", "-created_at", "-id")
        .distinct("dimension")
        .values_list("dimension", "run_id")
    )
    q = Q(pk__in=[])
    for dimension, run_id in newest:
        q |= Q(dimension=dimension, run_id=run_id)
    rows = []
    for r in ReconciliationLog.objects.filter(q).order_by("dimension", "subject"):
        rows.append(
            {
                "dimension": r.dimension,
                "title": RECON_DIMENSIONS.get(r.dimension, (r.dimension,))[0],
                "subject": r.subject,
                "status": r.status,
                "level": recon_level(r.status),
                "expected": r.expected,
                "actual": r.actual,
                "deviation": r.deviation,
                "rate": r.deviation_rate,
                "unit": recon_unit(r.dimension, r.details),
                "checked_at": r.created_at,
                "run_id": r.run_id,
                "details": r.details,
            }
        )
    order = list(RECON_DIMENSIONS)
    rows.sort(
        key=lambda r: (order.index(r["dimension"]) if r["dimension"] in order else len(order), r["subject"])
    )
    return rows


def recon_history_qs(dimension: str, subject: str = "", since: datetime | None = None) -> Any:
    qs = ReconciliationLog.objects.filter(dimension=dimension)
    if subject:
        qs = qs.filter(Q(subject=subject) | Q(subject__startswith=f"{subject}@"))
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    return qs


def recon_chart(
    dimension: str, subject: str = "", since: datetime | None = None, points: int = 500
) -> dict[str, Any]:
    """Deviation history of a dimension, one point per run, oldest first: Σ |deviation| over its
    subjects (the subject's signed deviation when one is chosen) and the largest deviation rate (%).
    More runs than ``points`` are bucketed keeping each bucket's largest values (a spike stays)."""

    runs = list(
        recon_history_qs(dimension, subject, since)
        .values("run_id")
        .annotate(
            at=Min("created_at"),
            dev=Sum("deviation") if subject else Sum(Abs("deviation")),
            rate=Max("deviation_rate"),
            n=Count("id"),
        )
        .order_by("at")
    )
    step = max(1, -(-len(runs) // points))
    x: list[int] = []
    dev: list[float] = []
    rate: list[float] = []
    for i in range(0, len(runs), step):
        bucket = runs[i : i + step]
        x.append(int(bucket[-1]["at"].timestamp()))
        dev.append(float(max((b["dev"] or ZERO for b in bucket), key=abs)))
        rate.append(float(max(b["rate"] or ZERO for b in bucket)) * 100)
    return {"deviation": {"x": x, "y": dev}, "rate": {"x": x, "y": rate}, "runs": len(runs)}


def recon_subjects(dimension: str, since: datetime | None = None, limit: int = 20) -> list[str]:
    subjects = (
        recon_history_qs(dimension, since=since).order_by().values_list("subject", flat=True).distinct()[:500]
    )
    keys = sorted({recon_subject_key(s) for s in subjects} - {"*"})
    return keys if len(keys) <= limit else []


def recon_latest_run(dimension: str, subject: str = "") -> dict[str, Any] | None:
    """The dimension's newest run (only ``subject``'s rows of it when one is chosen), in one query: its
    status is the worst of its rows — a run writes one row per subject at the same instant, so the
    newest single row is just the last subject written and says nothing about the others."""

    qs = recon_history_qs(dimension, subject)
    newest = qs.order_by("-created_at", "-id").values("run_id")[:1]
    rows = list(
        qs.filter(run_id=Subquery(newest))
        .order_by("subject")
        .values("run_id", "subject", "status", "created_at", "details")
    )
    if not rows:
        return None
    counts = dict.fromkeys(STATUS_RANK, 0)
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    status = max((row["status"] for row in rows), key=lambda s: STATUS_RANK.get(s, 3))
    return {
        "run_id": rows[0]["run_id"],
        "created_at": max(row["created_at"] for row in rows),
        "status": status,
        "level": recon_level(status),
        "counts": counts,
        "subjects": len(rows),
        "not_ok": [row["subject"] for row in rows if row["status"] != "OK"],
        "details": rows[0]["details"],
    }


# --- reconciliation details, readable ---------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One figure compared inside a reconciliation row's details (a ledger violation, an exposure
    total): what it should be, what it is, and how far apart, in ``unit``."""

    subject: str
    expected: Decimal
    actual: Decimal
    unit: str

    @property
    def difference(self) -> Decimal:
        return self.actual - self.expected

    @property
    def relative(self) -> Decimal | None:
        base = max(abs(self.expected), abs(self.actual))
        return abs(self.difference) / base if base else None


@dataclass(frozen=True)
class Term:
    label: str
    value: Any  # Decimal (shown with ``unit``), bool, text, or a list of (key, value) pairs
    unit: str = ""

    @property
    def kind(self) -> str:
        if isinstance(self.value, bool):
            return "bool"
        if isinstance(self.value, Decimal):
            return "number"
        if isinstance(self.value, list):
            return "pairs"
        return "text"


@dataclass
class ReadableDetails:
    comparisons: list[Comparison] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)
    raw: Any = None  # the JSON as stored, when it holds more than its unit

    def __bool__(self) -> bool:
        return bool(self.comparisons or self.terms)


_LEDGER_PATTERNS = (
    # (pattern, subject, which group is expected, which is actual); see wallets.ledger_invariant_violations
    (re.compile(r"^asset (?P<k>\S+): balances sum to (?P<a>\S+), not 0$"), "Σ balances of {k}", None, "a"),
    (
        re.compile(r"^account (?P<k>\S+): balance (?P<a>\S+) but postings sum to (?P<e>\S+)$"),
        "{k} vs its postings",
        "e",
        "a",
    ),
    (
        re.compile(r"^user account (?P<k>\S+): balance (?P<a>\S+) but balance_logs sum to (?P<e>\S+)$"),
        "{k} vs its balance logs",
        "e",
        "a",
    ),
)
_EXPOSURE_DIFF = re.compile(r"^incremental (?P<a>\S+) != database (?P<e>\S+)$")
_EXPOSURE_UNITS = {
    "long_size": "coins",
    "short_size": "coins",
    "long_cost": "USD",
    "short_cost": "USD",
    "positions": "positions",
}
MONEY_UNITS = {"USDC", "USD", "coins"}


_WORDS = {"hl": "HL", "pnl": "P&L", "usdc": "USDC", "bbook": "B-book", "xbit": "XBIT"}


def _label(key: str) -> str:
    """``hl_user_funding`` → "HL user funding"."""
    words = [_WORDS.get(w, w) for w in key.split("_") if w]
    if words and words[0] == words[0].lower():
        words[0] = words[0].capitalize()
    return " ".join(words)


def _ledger_comparison(line: str) -> Comparison | None:
    for pattern, subject, expected, actual in _LEDGER_PATTERNS:
        m = pattern.match(line)
        if m is None:
            continue
        values = m.groupdict()
        key = values["k"]
        unit = key.rsplit(":", 1)[-1] if ":" in key else key  # an account key ends with its asset
        exp = as_decimal(values[expected]) if expected else ZERO
        act = as_decimal(values[actual])
        if exp is None or act is None:
            return None
        return Comparison(subject.format(k=key), exp, act, unit)
    return None


def recon_details(details: Any, unit: str = "") -> ReadableDetails:
    """A reconciliation row's ``details`` as figures a person reads: the comparisons inside it (ledger
    violations, exposure totals that disagree) with expected / actual / difference / relative
    difference and units, and the terms that explain the row (capital, P&L, queued withdrawals, …).
    Whatever has no known shape is still listed, as text; the raw JSON stays available beside it."""
    out = ReadableDetails(raw=details if details not in (None, "", [], {}) else None)
    if isinstance(details, dict) and not set(details) - {"unit"}:
        out.raw = None
    if not isinstance(details, dict):
        if details not in (None, "", [], {}):
            out.terms.append(Term("Details", str(details)))
        return out
    unit = str(details.get("unit") or unit)
    term_unit = unit if unit in MONEY_UNITS else ""
    for key, value in details.items():
        if key == "unit":
            continue
        if key == "problems" and isinstance(value, list):
            for line in value:
                found = _ledger_comparison(str(line))
                if found is not None:
                    out.comparisons.append(found)
                else:
                    out.terms.append(Term("Problem", str(line)))
            continue
        if key == "differences" and isinstance(value, dict):
            for name, text in value.items():
                m = _EXPOSURE_DIFF.match(str(text))
                exp, act = (as_decimal(m["e"]), as_decimal(m["a"])) if m else (None, None)
                if exp is None or act is None:
                    out.terms.append(Term(_label(name), str(text)))
                else:
                    out.comparisons.append(
                        Comparison(
                            f"{_label(name)} (incremental vs recompute)",
                            exp,
                            act,
                            _EXPOSURE_UNITS.get(name, ""),
                        )
                    )
            continue
        if isinstance(value, bool):
            out.terms.append(Term(_label(key), value))
        elif isinstance(value, dict):
            pairs = [(k, _number_or_text(v)) for k, v in value.items()]
            out.terms.append(Term(_label(key), pairs, term_unit))
        elif isinstance(value, list):
            out.terms.append(Term(_label(key), "; ".join(str(v) for v in value) or "none"))
        else:
            shown = _number_or_text(value)
            out.terms.append(Term(_label(key), shown, term_unit if isinstance(shown, Decimal) else ""))
    return out


def _number_or_text(value: Any) -> Any:
    number = as_decimal(value) if isinstance(value, int | float | str | Decimal) else None
    return number if number is not None and number.is_finite() else str(value)
