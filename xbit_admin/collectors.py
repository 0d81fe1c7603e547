"""Platform metrics read at scrape time, and the roof-level readiness checks (spec 08).

The business and system figures of spec 08 live in PostgreSQL and Redis, written by the rooms'
services; rather than touching those services, :class:`PlatformCollector` reads them when Prometheus
scrapes the web process's ``/metrics``: exposure and hedge per asset, B-book P&L, reserve, HL account
health, hot wallets, the withdrawal queue and SLA per tier, drift, liquidations, breakers, routing
decisions and internal execution over the last minute, Celery queue depth, websocket clients,
database connections and Redis hit counters.

Cheap by construction: every query is an aggregate over an index (a time window on an indexed
timestamp, a partial index, a small table), each section runs in its own savepoint under a 1 s
statement timeout, and the result is cached for ``METRICS_CACHE_SECONDS`` (2 s) per process, so a burst
of scrapes costs one read. A failing section never hides the others: it reports
``xbit_collector_up{section="…"} 0`` and its error is logged.

Figures derived from a window (``…_last_minute``, ``…_last_hour``) stand in for hot-path instruments
the rooms can observe directly (``core.metrics.ROUTING_DECISIONS`` …). The ``risk`` app's models
are read through the app registry and skipped while absent.

This module sits with the roof (it reads every room); the core's ``health`` module reaches it only by
the dotted paths in ``settings.METRICS_COLLECTORS`` and ``settings.HEALTH_ADVISORY_CHECKS``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import redis
import requests
from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Min, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from core.alerts.models import Alert
from routing.models import RoutingDecisionLog, RoutingState
from trading.marketdata import get_quotes
from trading.models import HLAccount, HLAccountSnapshot, HLPositionSync, Order, Position, Source
from trading.venues import hl as hl_venue
from wallets.models import AccountKind, ChainState, LedgerAccount, Withdrawal

logger = logging.getLogger(__name__)

# Spec 06: time from the confirmed request to the broadcast, per tier (auto: < 5 min, our goal 10 s).
WITHDRAWAL_SLA_SECONDS = {"auto": 300, "single": 1800, "dual": 7200}
CELERY_QUEUES = ("critical", "hedge", "default", "wallets")
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
_STATEMENT_TIMEOUT_MS = 1000

Section = Callable[[], Iterable[Metric]]


def _f(value: Decimal | float | int | None) -> float:
    return float(value) if value is not None else math.nan


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _risk_model(name: str) -> Any:
    """A ``risk`` model, or None while the app does not define it (it lands in its own issue)."""
    try:
        return apps.get_model("risk", name)
    except LookupError:
        return None


# ------------------------------------------------------------------------------ positions, exposure


def exposure() -> list[Metric]:
    """Spec 05: net exposure per asset = Σ INTERNAL long notional − Σ INTERNAL short notional at mark,
    recomputed from open positions (the source of truth), plus the B-book's unrealized P&L."""

    cost = ExpressionWrapper(F("size") * F("entry_price"), output_field=DecimalField())
    rows = list(
        Position.objects.filter(status=Position.Status.OPEN)
        .values("asset", "source", "direction")
        .annotate(n=Count("id"), total_size=Sum("size"), total_cost=Sum(cost))
    )
    open_positions = _gauge("xbit_open_positions", "Open user positions by venue", ["source"])
    per_source: dict[str, int] = defaultdict(int)
    book: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        per_source[row["source"]] += row["n"]
        if row["source"] == Source.INTERNAL:
            side = "long" if row["direction"] == Position.Direction.LONG else "short"
            book[row["asset"]][f"{side}_size"] += row["total_size"] or 0
            book[row["asset"]][f"{side}_cost"] += row["total_cost"] or 0
    for source, n in sorted(per_source.items()):
        open_positions.add_metric([source], n)

    quotes = get_quotes(sorted(book)) if book else {}
    long_g = _gauge("xbit_exposure_long_usd", "INTERNAL long notional at mark", ["asset"])
    short_g = _gauge("xbit_exposure_short_usd", "INTERNAL short notional at mark", ["asset"])
    net_g = _gauge("xbit_exposure_net_usd", "Net INTERNAL exposure (users long − short) at mark", ["asset"])
    upnl_g = _gauge(
        "xbit_bbook_unrealized_pnl_usd", "Platform's unrealized P&L as counterparty (B-book)", ["asset"]
    )
    stale_g = _gauge(
        "xbit_exposure_mark_missing", "1 when no live mark: exposure valued at average entry", ["asset"]
    )
    total_abs = Decimal(0)
    for asset, b in sorted(book.items()):
        quote = quotes.get(asset)
        mark = quote.mark if quote is not None else None
        if mark is None:
            size = b["long_size"] + b["short_size"]
            mark = (b["long_cost"] + b["short_cost"]) / size if size else Decimal(0)
        long_notional = b["long_size"] * mark
        short_notional = b["short_size"] * mark
        net = long_notional - short_notional
        total_abs += abs(net)
        users_upnl = (long_notional - b["long_cost"]) + (b["short_cost"] - short_notional)
        long_g.add_metric([asset], _f(long_notional))
        short_g.add_metric([asset], _f(short_notional))
        net_g.add_metric([asset], _f(net))
        upnl_g.add_metric([asset], _f(-users_upnl))
        stale_g.add_metric([asset], 0 if quote is not None and quote.mark is not None else 1)
    total_g = _gauge("xbit_exposure_net_abs_total_usd", "Σ |net INTERNAL exposure| over assets")
    total_g.add_metric([], _f(total_abs))
    return [open_positions, long_g, short_g, net_g, total_g, upnl_g, stale_g]


def hl_accounts() -> list[Metric]:
    """The platform's HL accounts as last synced (``HLAccountSnapshot``), and the hedge per asset."""

    now = timezone.now()
    ratio = _gauge(
        "xbit_hl_account_margin_ratio",
        "HL account value / maintenance margin used (+Inf without positions)",
        ["account"],
    )
    value = _gauge("xbit_hl_account_value_usd", "HL account value", ["account"])
    withdrawable = _gauge("xbit_hl_account_withdrawable_usd", "HL account withdrawable", ["account"])
    maintenance = _gauge("xbit_hl_account_maintenance_margin_usd", "HL maintenance margin used", ["account"])
    age = _gauge("xbit_hl_account_snapshot_age_seconds", "Age of the last HL account sync", ["account"])
    hedge_size = _gauge("xbit_hedge_position_size", "Hedge account position (signed, coins)", ["asset"])
    hedge_notional = _gauge("xbit_hedge_notional_usd", "Hedge account position value (signed)", ["asset"])
    for name in HLAccount.Name.values:
        snap = HLAccountSnapshot.objects.filter(account=name).order_by("-created_at").first()
        if snap is None:
            continue
        ratio.add_metric([name], math.inf if snap.margin_ratio is None else _f(snap.margin_ratio))
        value.add_metric([name], _f(snap.account_value))
        withdrawable.add_metric([name], _f(snap.withdrawable))
        maintenance.add_metric([name], _f(snap.maintenance_margin_used))
        age.add_metric([name], (now - snap.created_at).total_seconds())
        if name == HLAccount.Name.HEDGE:
            for entry in snap.positions or []:
                position = entry.get("position", entry) if isinstance(entry, dict) else {}
                coin, szi = position.get("coin"), position.get("szi")
                if not coin or szi is None:
                    continue
                size = Decimal(str(szi))
                hedge_size.add_metric([coin], _f(size))
                notional = Decimal(str(position.get("positionValue", "0")))
                hedge_notional.add_metric([coin], _f(notional if size >= 0 else -notional))
    sync = _gauge(
        "xbit_hl_position_sync_deviation_rate",
        "Σ users' HYPERLIQUID positions vs the trading account, last sync per asset",
        ["asset"],
    )
    table = HLPositionSync._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT ON (asset) asset, deviation_rate FROM {table} "  # noqa: S608 - table name from the model
            "WHERE created_at >= now() - interval '1 hour' ORDER BY asset, created_at DESC"
        )
        for asset, rate in cursor.fetchall():
            sync.add_metric([asset], _f(rate))
    return [ratio, value, withdrawable, maintenance, age, hedge_size, hedge_notional, sync]


# ---------------------------------------------------------------------------------- money and custody


def ledger() -> list[Metric]:
    """Platform ledger balances (credits − debits): the B-book's realized P&L, the risk reserve, fee
    revenue; custody accounts are negative by what is held, so they are shown negated."""

    kinds = [
        AccountKind.BBOOK_PNL,
        AccountKind.RISK_RESERVE,
        AccountKind.FEE_REVENUE,
        AccountKind.HOT_WALLET,
        AccountKind.COLD_WALLET,
    ]
    rows = (
        LedgerAccount.objects.filter(user__isnull=True, kind__in=kinds)
        .values("kind", "sub", "asset")
        .annotate(total=Sum("balance"))
    )
    totals: dict[str, Decimal] = defaultdict(Decimal)
    hot = _gauge(
        "xbit_hot_wallet_ledger_balance", "Hot wallet holdings as booked", ["chain", "token", "asset"]
    )
    cold = _gauge(
        "xbit_cold_wallet_ledger_balance", "Cold wallet holdings as booked", ["chain", "token", "asset"]
    )
    for row in rows:
        kind, total = row["kind"], row["total"] or Decimal(0)
        if kind in (AccountKind.HOT_WALLET, AccountKind.COLD_WALLET):
            chain, _, token = (row["sub"] or "").partition(":")
            family = hot if kind == AccountKind.HOT_WALLET else cold
            family.add_metric([chain, token, row["asset"]], _f(-total))
        elif row["asset"] == "USDC":
            totals[kind] += total
    out: list[Metric] = [hot, cold]
    for kind, name, doc in (
        (AccountKind.BBOOK_PNL, "xbit_bbook_realized_pnl_usd", "B-book counterparty P&L booked to date"),
        (AccountKind.RISK_RESERVE, "xbit_reserve_balance_usd", "Risk reserve balance"),
        (AccountKind.FEE_REVENUE, "xbit_fee_revenue_usd", "Fee revenue booked to date"),
    ):
        gauge = _gauge(name, doc)
        gauge.add_metric([], _f(totals.get(kind, Decimal(0))))
        out.append(gauge)

    now = timezone.now()
    measured = _gauge(
        "xbit_hot_wallet_balance_usd", "Hot wallet stablecoin balance measured on chain", ["chain"]
    )
    level = _gauge("xbit_hot_wallet_level", "Hot wallet level (1 for the current one)", ["chain", "level"])
    checked = _gauge(
        "xbit_hot_wallet_check_age_seconds", "Age of the last on-chain hot wallet check", ["chain"]
    )
    for state in ChainState.objects.all():
        measured.add_metric([state.chain], _f(state.hot_balance))
        level.add_metric([state.chain, state.hot_level], 1)
        if state.hot_checked_at is not None:
            checked.add_metric([state.chain], (now - state.hot_checked_at).total_seconds())
    out += [measured, level, checked]

    daily = _risk_model("ExposureDaily")
    if daily is not None:
        today = daily.objects.filter(day=now.date()).aggregate(
            pnl=Sum("client_realized_pnl"), fees=Sum("fees"), liq=Sum("liquidation_margin")
        )
        loss = (today["pnl"] or 0) - (today["fees"] or 0) - (today["liq"] or 0)
        gauge = _gauge(
            "xbit_internal_net_loss_today_usd",
            "Today's (UTC) INTERNAL net loss: client P&L − fees − liquidations",
        )
        gauge.add_metric([], _f(loss))
        out.append(gauge)
    return out


def withdrawals() -> list[Metric]:
    """The withdrawal queue per tier and status, the oldest request waiting to be sent, and the time
    from confirmation to broadcast over the last hour against the tier's SLA (spec 06)."""

    s = Withdrawal.Status
    waiting = [s.AWAITING_APPROVAL, s.APPROVED, s.SENDING]
    queue = _gauge(
        "xbit_withdrawals_in_flight", "Withdrawals between confirmation and completion", ["tier", "status"]
    )
    for row in (
        Withdrawal.objects.filter(status__in=[*waiting, s.BROADCAST])
        .values("tier", "status")
        .annotate(n=Count("id"))
    ):
        queue.add_metric([row["tier"], row["status"]], row["n"])
    oldest = _gauge(
        "xbit_withdrawal_queue_oldest_seconds",
        "Age of the oldest confirmed withdrawal not yet sent",
        ["tier"],
    )
    now = timezone.now()
    for row in (
        Withdrawal.objects.filter(status__in=waiting).values("tier").annotate(first=Min("confirmed_at"))
    ):
        if row["first"] is not None:
            oldest.add_metric([row["tier"]], (now - row["first"]).total_seconds())

    sla = _gauge("xbit_withdrawal_sla_seconds", "Spec 06 SLA: confirmed → broadcast, per tier", ["tier"])
    for tier, seconds in WITHDRAWAL_SLA_SECONDS.items():
        sla.add_metric([tier], seconds)
    broadcast = _gauge(
        "xbit_withdrawal_broadcast_seconds_last_hour",
        "Confirmed → broadcast time of withdrawals broadcast in the last hour",
        ["tier", "quantile"],
    )
    count = _gauge("xbit_withdrawals_broadcast_last_hour", "Withdrawals broadcast in the last hour", ["tier"])
    table = Withdrawal._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tier, count(*), "  # noqa: S608 - table name from the model
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM broadcast_at - confirmed_at)), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM broadcast_at - confirmed_at)), "
            "max(extract(epoch FROM broadcast_at - confirmed_at)) "
            f"FROM {table} WHERE status IN ('BROADCAST', 'COMPLETED') AND confirmed_at IS NOT NULL "
            "AND broadcast_at >= now() - interval '1 hour' GROUP BY tier"
        )
        for tier, n, p50, p95, worst in cursor.fetchall():
            count.add_metric([tier], n)
            for q, v in (("0.5", p50), ("0.95", p95), ("1", worst)):
                broadcast.add_metric([tier, q], _f(v))
    return [queue, oldest, sla, broadcast, count]


# ------------------------------------------------------------------------------- trading path, risk


def routing() -> list[Metric]:
    """Routing decisions and INTERNAL execution over the last minute (``routing_decision_log`` is
    indexed on ``-created_at``), and the per-asset switches risk pushed down."""

    log, orders = RoutingDecisionLog._meta.db_table, Order._meta.db_table
    decisions = _gauge(
        "xbit_routing_decisions_last_minute", "Routing decisions in the last minute", ["route", "reason"]
    )
    latency = _gauge(
        "xbit_routing_decision_latency_last_minute_seconds",
        "Routing decision time, last minute",
        ["quantile"],
    )
    internal = _gauge(
        "xbit_internal_execution_last_minute_seconds",
        "INTERNAL orders filled in the last minute: created → last update (≈ accept → fill committed)",
        ["quantile"],
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT route, reason, count(*) FROM {log} "  # noqa: S608 - table names from the models
            "WHERE created_at >= now() - interval '60 seconds' GROUP BY route, reason"
        )
        for route, reason, n in cursor.fetchall():
            decisions.add_metric([route, reason], n)
        cursor.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_us), "  # noqa: S608
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_us), max(latency_us), count(*) "
            f"FROM {log} WHERE created_at >= now() - interval '60 seconds'"
        )
        p50, p99, worst, n = cursor.fetchone()
        if n:
            for q, v in (("0.5", p50), ("0.99", p99), ("1", worst)):
                latency.add_metric([q], _f(v) / 1e6)
        cursor.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY e), percentile_cont(0.99) WITHIN GROUP "  # noqa: S608
            "(ORDER BY e), max(e), count(*) FROM (SELECT extract(epoch FROM o.updated_at - o.created_at) AS e "
            f"FROM {log} d JOIN {orders} o ON o.id = d.order_id WHERE d.created_at >= now() - interval "
            "'60 seconds' AND d.route = 'INTERNAL' AND o.status = 'FILLED') t"
        )
        p50, p99, worst, n = cursor.fetchone()
        if n:
            for q, v in (("0.5", p50), ("0.99", p99), ("1", worst)):
                internal.add_metric([q], _f(v))
    force_hl = _gauge("xbit_routing_force_hl", "1 while risk forces the asset to HL", ["asset"])
    halted = _gauge("xbit_routing_hl_halted", "1 while HL routing is halted for the asset", ["asset"])
    for state in RoutingState.objects.all():
        force_hl.add_metric([state.asset], 1 if state.force_hl_reasons else 0)
        halted.add_metric([state.asset], 1 if state.hl_halted else 0)
    return [decisions, latency, internal, force_hl, halted]


def liquidations() -> list[Metric]:
    trigger = _risk_model("LiquidationTrigger")
    record = _risk_model("LiquidationRecord")
    if trigger is None:
        return []
    now = timezone.now()
    hour, day = now - timedelta(hours=1), now - timedelta(days=1)
    detected = _gauge(
        "xbit_liquidation_triggers_last_hour",
        "Liquidation triggers detected in the last hour",
        ["venue", "status"],
    )
    for row in (
        trigger.objects.filter(detected_at__gte=hour).values("venue", "status").annotate(n=Count("id"))
    ):
        detected.add_metric([row["venue"], row["status"]], row["n"])
    open_g = _gauge("xbit_liquidation_triggers_open", "Liquidation triggers not yet done", ["status"])
    oldest = _gauge(
        "xbit_liquidation_trigger_oldest_open_seconds", "Age of the oldest open liquidation trigger"
    )
    open_rows = trigger.objects.filter(status__in=["PENDING", "EXECUTING", "FAILED"])
    first = None
    for row in open_rows.values("status").annotate(n=Count("id"), first=Min("detected_at")):
        open_g.add_metric([row["status"]], row["n"])
        first = row["first"] if first is None or row["first"] < first else first
    oldest.add_metric([], (now - first).total_seconds() if first is not None else 0)
    escalated = _gauge(
        "xbit_liquidations_escalated_last_day", "Liquidation triggers ESCALATED in the last 24 h"
    )
    escalated.add_metric([], trigger.objects.filter(detected_at__gte=day, status="ESCALATED").count())
    execution = _gauge(
        "xbit_liquidation_execution_last_hour_seconds",
        "Detected → completed, liquidations completed in the last hour",
        ["venue", "quantile"],
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT venue, percentile_cont(0.5) WITHIN GROUP (ORDER BY e), "  # noqa: S608 - model table
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY e), max(e) FROM (SELECT venue, "
            "extract(epoch FROM completed_at - detected_at) AS e "
            f"FROM {trigger._meta.db_table} WHERE detected_at >= %s AND status = 'COMPLETED' "
            "AND completed_at IS NOT NULL) t GROUP BY venue",
            [hour],
        )
        for venue, p50, p99, worst in cursor.fetchall():
            for q, v in (("0.5", p50), ("0.99", p99), ("1", worst)):
                execution.add_metric([venue, q], _f(v))
    out: list[Metric] = [detected, open_g, oldest, escalated, execution]
    if record is not None:
        closed = _gauge(
            "xbit_liquidated_positions_last_hour",
            "Positions closed by liquidation in the last hour",
            ["venue"],
        )
        for row in record.objects.filter(created_at__gte=hour).values("venue").annotate(n=Count("id")):
            closed.add_metric([row["venue"]], row["n"])
        out.append(closed)
    return out


def drift() -> list[Metric]:
    """Spec 04/05 drift: HL's actual P&L vs ours on HYPERLIQUID closes, liquidations and funding."""
    deviation = _risk_model("DeviationLog")
    if deviation is None:
        return []
    now = timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = _gauge("xbit_drift_today_usd", "Σ drift (HL actual − XBIT computed) today (UTC)", ["asset"])
    events = _gauge("xbit_drift_events_today", "Drift records today by level", ["level"])
    rate = _gauge("xbit_drift_rate_max_last_hour", "Largest |drift rate| in the last hour", ["asset"])
    for row in (
        deviation.objects.filter(created_at__gte=midnight).values("asset").annotate(total=Sum("deviation"))
    ):
        today.add_metric([row["asset"]], _f(row["total"]))
    for row in deviation.objects.filter(created_at__gte=midnight).values("level").annotate(n=Count("id")):
        events.add_metric([row["level"]], row["n"])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT asset, max(abs(deviation_rate)) FROM {deviation._meta.db_table} "  # noqa: S608 - model table
            "WHERE created_at >= %s GROUP BY asset",
            [now - timedelta(hours=1)],
        )
        for asset, worst in cursor.fetchall():
            rate.add_metric([asset], _f(worst))
    return [today, events, rate]


_BREAKER_STATES = {"OK": 0, "WARNING": 1, "TRIPPED": 2}


def breakers() -> list[Metric]:
    breaker = _risk_model("CircuitBreaker")
    if breaker is None:
        return []
    state = _gauge(
        "xbit_breaker_state", "Circuit breaker state: 0 OK, 1 WARNING, 2 TRIPPED", ["kind", "scope"]
    )
    for kind, scope, value in breaker.objects.values_list("kind", "scope", "state"):
        state.add_metric([kind, scope], _BREAKER_STATES.get(value, 2))
    return [state]


def alerts() -> list[Metric]:
    gauge = _gauge("xbit_alerts_open", "Open or acknowledged alerts by severity", ["severity", "state"])
    rows = (
        Alert.objects.exclude(state=Alert.State.RESOLVED).values("severity", "state").annotate(n=Count("id"))
    )
    for row in rows:
        gauge.add_metric([row["severity"], row["state"]], row["n"])
    return [gauge]


# ------------------------------------------------------------------------------------------- system


def database() -> list[Metric]:
    conns = _gauge("xbit_db_connections", "PostgreSQL connections to this database", ["application", "state"])
    max_conns = _gauge("xbit_db_max_connections", "PostgreSQL max_connections")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(application_name, ''), coalesce(state, 'unknown'), count(*) "
            "FROM pg_stat_activity WHERE datname = current_database() GROUP BY 1, 2"
        )
        for application, state, n in cursor.fetchall():
            conns.add_metric([application, state], n)
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'max_connections'")
        max_conns.add_metric([], cursor.fetchone()[0])
    out: list[Metric] = [conns, max_conns]
    pool = getattr(connection, "pool", None)
    if pool is not None:  # psycopg pool in this process (DATABASES OPTIONS "pool")
        stats = pool.get_stats()
        gauge = _gauge("xbit_db_pool", "psycopg pool of the scraped web worker", ["pid", "stat"])
        for key in ("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting"):
            if key in stats:
                gauge.add_metric([str(os.getpid()), key], stats[key])
        out.append(gauge)
    return out


_redis_lock = threading.Lock()
_redis_clients: dict[str, redis.Redis] = {}


def _redis(url: str) -> redis.Redis:
    with _redis_lock:
        if url not in _redis_clients:
            _redis_clients[url] = redis.Redis.from_url(
                url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
            )
        return _redis_clients[url]


def redis_stats() -> list[Metric]:
    info = _redis(settings.REDIS_URL).info()
    hits = CounterMetricFamily("xbit_redis_keyspace_hits", "Redis key lookups that found the key")
    hits.add_metric([], info.get("keyspace_hits", 0))
    misses = CounterMetricFamily("xbit_redis_keyspace_misses", "Redis key lookups that missed")
    misses.add_metric([], info.get("keyspace_misses", 0))
    evicted = CounterMetricFamily("xbit_redis_evicted_keys", "Redis keys evicted for memory")
    evicted.add_metric([], info.get("evicted_keys", 0))
    clients = _gauge("xbit_redis_connected_clients", "Redis client connections")
    clients.add_metric([], info.get("connected_clients", 0))
    memory = _gauge("xbit_redis_used_memory_bytes", "Redis memory in use")
    memory.add_metric([], info.get("used_memory", 0))
    return [hits, misses, evicted, clients, memory]


def celery_queues() -> list[Metric]:
    """Messages waiting per Celery queue: kombu's Redis transport keeps one list per queue and
    priority step (``critical``, ``critical\\x06\\x163`` …), and unacknowledged deliveries in a hash."""
    broker = settings.CELERY_BROKER_URL
    depth = _gauge("xbit_celery_queue_length", "Tasks waiting in the broker per queue", ["queue"])
    unacked = _gauge("xbit_celery_unacked", "Tasks delivered to a worker and not yet acknowledged")
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        return []
    client = _redis(broker)
    pipe = client.pipeline(transaction=False)
    for queue in CELERY_QUEUES:
        for step in _KOMBU_PRIORITY_STEPS:
            pipe.llen(f"{queue}{_KOMBU_PRIORITY_SEP}{step}" if step else queue)
    pipe.hlen("unacked")
    results = pipe.execute()
    per_queue = len(_KOMBU_PRIORITY_STEPS)
    for i, queue in enumerate(CELERY_QUEUES):
        depth.add_metric([queue], sum(results[i * per_queue : (i + 1) * per_queue]))
    unacked.add_metric([], results[-1])
    return [depth, unacked]


def websockets() -> list[Metric]:
    """Connected websocket consumers across every web process: each one subscribes its own
    ``<prefix>specific.<id>`` channel in the Redis pub/sub channel layer."""
    layer = settings.CHANNEL_LAYERS.get("default", {})
    config = layer.get("CONFIG", {})
    hosts = config.get("hosts") or []
    if "RedisPubSubChannelLayer" not in layer.get("BACKEND", "") or not hosts:
        return []
    host = hosts[0]
    url = host if isinstance(host, str) else host.get("address", "")
    if not isinstance(url, str) or not url:
        return []
    prefix = config.get("prefix", "asgi")
    client = _redis(url)
    clients = _gauge("xbit_websocket_clients", "Connected websocket consumers (all web processes)")
    specific: list[str] = client.pubsub_channels(f"{prefix}specific.*")  # type: ignore[assignment]
    clients.add_metric([], len(specific))
    groups = _gauge("xbit_websocket_groups", "Channel-layer groups with at least one subscriber")
    group_channels: list[str] = client.pubsub_channels(f"{prefix}__group__*")  # type: ignore[assignment]
    groups.add_metric([], len(group_channels))
    return [clients, groups]


def hl_reachability() -> list[Metric]:
    """The outcome of the last HL connectivity check of this process (never calls HL itself)."""
    with _hl_lock:
        cached = _hl_cache.get("result")
    if not cached or not cached.get("configured", True):
        return []
    gauge = _gauge("xbit_hl_up", "1 when the last HL connectivity check of this process succeeded")
    gauge.add_metric([], 1 if cached.get("ok") else 0)
    return [gauge]


DB_SECTIONS: dict[str, Section] = {
    "exposure": exposure,
    "hl_accounts": hl_accounts,
    "ledger": ledger,
    "withdrawals": withdrawals,
    "routing": routing,
    "liquidations": liquidations,
    "drift": drift,
    "breakers": breakers,
    "alerts": alerts,
    "database": database,
}
OTHER_SECTIONS: dict[str, Section] = {
    "redis": redis_stats,
    "celery": celery_queues,
    "websockets": websockets,
    "hl": hl_reachability,
}


class PlatformCollector:
    """A Prometheus collector over :data:`DB_SECTIONS` and :data:`OTHER_SECTIONS` (see the module
    docstring). Registered per scrape by ``core.health.metrics_view``."""

    def __init__(self, ttl: float | None = None) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached_at = -math.inf
        self._cached: list[Metric] = []

    def describe(self) -> list[Metric]:
        return []  # dynamic: never collect at registration time

    def collect(self) -> Iterable[Metric]:
        ttl = self.ttl if self.ttl is not None else float(getattr(settings, "METRICS_CACHE_SECONDS", 2.0))
        with self._lock:
            if time.monotonic() - self._cached_at >= ttl:
                self._cached = self._refresh()
                self._cached_at = time.monotonic()
            return list(self._cached)

    def _refresh(self) -> list[Metric]:
        out: list[Metric] = []
        up = _gauge(
            "xbit_collector_up", "1 when the platform collector's section read succeeded", ["section"]
        )
        took = _gauge("xbit_collector_seconds", "Time to read the section", ["section"])

        def run(name: str, section: Section, in_savepoint: bool) -> None:
            started = time.perf_counter()
            try:
                if in_savepoint:
                    with transaction.atomic():
                        out.extend(section())
                else:
                    out.extend(section())
            except Exception:
                logger.exception("metrics section %s failed", name)
                up.add_metric([name], 0)
            else:
                up.add_metric([name], 1)
            took.add_metric([name], time.perf_counter() - started)

        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = {_STATEMENT_TIMEOUT_MS}")
                for name, section in DB_SECTIONS.items():
                    run(name, section, in_savepoint=True)
        except Exception:
            logger.exception("metrics: database unavailable")
            for name in DB_SECTIONS:
                up.add_metric([name], 0)
        for name, section in OTHER_SECTIONS.items():
            run(name, section, in_savepoint=False)
        return [*out, up, took]


# ---------------------------------------------------------------------------- readiness (advisory)

_hl_lock = threading.Lock()
_hl_cache: dict[str, Any] = {}


def hl_connectivity() -> dict[str, Any]:
    """HL answers the trading account's gateway (one ``allMids`` info request, weight 2, with a short
    timeout), cached for ``HEALTH_HL_CACHE_SECONDS`` per process so probes never hammer HL. Without a
    configured trading account there is nothing to check."""
    ttl = float(getattr(settings, "HEALTH_HL_CACHE_SECONDS", 15.0))
    with _hl_lock:
        cached, at = _hl_cache.get("result"), _hl_cache.get("at", -math.inf)
        if cached is not None and time.monotonic() - at < ttl:
            return {**cached, "cached": True}
        result = _hl_probe()
        _hl_cache.update(result=result, at=time.monotonic())
        return result


def _hl_probe() -> dict[str, Any]:

    try:
        gw = hl_venue.gateway("trading")  # looked up at call time (tests point it elsewhere)
    except Exception as exc:
        return {"ok": False, "error": f"gateway: {type(exc).__name__}: {exc}"[:300]}
    if gw is None:
        return {"ok": True, "configured": False, "detail": "HL trading account not configured"}
    timeout = float(getattr(settings, "HEALTH_HL_TIMEOUT_SECONDS", 2.0))
    started = time.perf_counter()
    try:
        response = requests.post(f"{gw.base_url}/info", json={"type": "allMids"}, timeout=timeout)
        response.raise_for_status()
        mids = response.json()
    except Exception as exc:
        return {"ok": False, "url": gw.base_url, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {
        "ok": isinstance(mids, dict),
        "url": gw.base_url,
        "assets": len(mids) if isinstance(mids, dict) else 0,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def breakers_status() -> dict[str, Any]:
    """Tripped circuit breakers (risk), reported with their reasons; ok while none is tripped."""
    breaker = _risk_model("CircuitBreaker")
    if breaker is None:
        return {"ok": True, "detail": "risk breakers not installed"}
    rows = list(
        breaker.objects.exclude(state="OK").values("kind", "scope", "state", "reason", "tripped_at")[:50]
    )
    tripped = [r for r in rows if r["state"] == "TRIPPED"]
    return {
        "ok": not tripped,
        "tripped": [f"{r['kind']}:{r['scope']}" for r in tripped],
        "warning": [f"{r['kind']}:{r['scope']}" for r in rows if r["state"] != "TRIPPED"],
        "reasons": {f"{r['kind']}:{r['scope']}": r["reason"] for r in rows},
    }
