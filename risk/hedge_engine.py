"""The hedge engine (spec 05) on the platform's HL hedge account.

Exposure → decision → instruction → HL → mirror:

* **Debounce.** An exposure change (``hedge_schedule``) schedules a decision ``debounce_seconds`` (5 s)
  later on the ``hedge`` queue; further changes inside the window merge into that one decision. The
  beat tick (``hedge_tick``, every 5 s) mirrors the account and re-decides every asset whose window
  is not open, so a lost task costs at most one tick. Nothing here runs in a request: user order flow
  never waits on hedging.
* **Decision** (``hedge_evaluate``), under one engine lock: the hedge account is read from HL (the
  source of truth) and mirrored into ``HedgePosition``; targets come from ``risk.hedge_policy`` tiers;
  > 1M exposure forces the asset to HL (``net_exposure_limit``); capacity is allocated to the largest
  exposures first with the account's value (``allocate``) — uncovered assets are forced to HL
  (``hedge_capacity``) and the risk team is alerted with the recommended top-up; account health (margin
  ratio) gates the decision: < 300 % top-up alert, < 200 % P0 + de-leverage, < 150 % P0 + halt new HL
  opens (no hedge increases, HL routing halted); a hedge losing > 50 % of its margin is cut (stop-loss).
  The gap = target − current becomes one plan (``plan_order``: IOC at mark ± max slippage, de-hedging
  limited per asset per minute, the leverage ladder).

The instruction, its orders on HL and their fills are ``risk.hedge_orders``; the account (gateway,
mirror, health, force-HL) ``risk.hedge_account``; the mode and the policy numbers ``risk.hedge_config``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.alerts.services import alert_raise, alert_resolve_condition
from core.events.services import consume_batch
from core.money import ZERO
from risk.auto_switch import auto_switch_evaluate
from risk.enqueue import HEDGE_EVALUATE, task_enqueue
from risk.exposure import exposure_current
from risk.hedge_account import (
    CAPACITY_DETAIL,
    hedge_account_snapshot,
    hedge_force_hl,
    hedge_gateway,
    hedge_health_verdict,
    hedge_positions_sync,
)
from risk.hedge_config import hedge_config, policy_for
from risk.hedge_models import HedgeConfig, HedgeInstruction, HedgePosition
from risk.hedge_orders import Decision, hedge_resolve_sent, instruction_record, instructions_execute
from risk.hedge_policy import HedgePolicy, allocate, plan_order, stop_loss_triggered, target_hedge
from risk.marks import effective_marks
from trading.selectors import market_get

logger = logging.getLogger(__name__)

ENGINE_LOCK = "risk:hedge-engine"
DEBOUNCE_KEY = "risk:hedge-debounce:{asset}"
Status = HedgeInstruction.Status
Kind = HedgeInstruction.Kind


# ------------------------------------------------------------------------------------------ decision
def dehedged_last_minute(asset: str, *, now: Any = None) -> Decimal:
    """Notional this asset's hedge was reduced by in the last minute (the de-hedge budget used)."""
    now = now or timezone.now()
    total = ZERO
    rows = HedgeInstruction.objects.filter(
        asset=asset, reduces=True, created_at__gte=now - timedelta(minutes=1)
    ).values_list("status", "notional", "filled_notional")
    for status, notional, filled in rows:
        if status in (Status.FILLED, Status.PARTIAL):
            total += abs(filled)
        elif status in (Status.PENDING, Status.SENT, Status.SHADOW):
            total += abs(notional)
    return total


def hedge_schedule(asset: str) -> bool:
    """An exposure change for ``asset``: decide ``debounce_seconds`` later, merging every change in
    between into that one decision. Returns True when this call opened the window."""
    delay = max(0, hedge_config().debounce_seconds)
    if not cache.add(DEBOUNCE_KEY.format(asset=asset), 1, timeout=delay + 1):
        return False
    transaction.on_commit(
        lambda: task_enqueue(HEDGE_EVALUATE, args=[[asset]], countdown=delay, queue="hedge")
    )
    return True


def hedge_evaluate(*, assets: Iterable[str] | None = None, now: Any = None) -> list[HedgeInstruction]:
    """Decide (and in LIVE, execute) the hedge for ``assets`` (default: every asset with exposure or a
    hedge). Safe to run twice: one engine at a time (a lock), and every decision reads HL afresh."""
    cfg = hedge_config()
    if cfg.hedge_mode == HedgeConfig.Mode.OFF:
        return []
    gw = hedge_gateway()
    if gw is None:
        logger.warning("hedge account not configured; no hedge decision")
        return []
    if not cache.add(ENGINE_LOCK, 1, timeout=60):
        return []
    try:
        return _evaluate(cfg, gw, assets, now or timezone.now())
    finally:
        cache.delete(ENGINE_LOCK)


def _evaluate(cfg: HedgeConfig, gw: Any, assets: Iterable[str] | None, now: Any) -> list[HedgeInstruction]:
    state = gw.user_state()
    hedge_account_snapshot(gw, state)
    positions = hedge_positions_sync(state=state)
    exposures = exposure_current()
    universe = sorted(set(exposures) | {a for a, p in positions.items() if p.size})
    marks = effective_marks(universe)
    level = hedge_health_verdict(state)
    policy = policy_for(cfg)
    nets = {a: (exposures[a].net_notional if a in exposures and marks.get(a) else ZERO) for a in universe}

    targets: dict[str, Decimal] = {}
    for asset in universe:
        t = target_hedge(nets[asset], policy)
        targets[asset] = t.notional
        hedge_force_hl(asset, "net_exposure_limit", t.stop_internalizing, "hedge tier")
    account_value = Decimal(state.get("marginSummary", {}).get("accountValue", "0"))
    alloc = allocate({a: v for a, v in targets.items() if v}, available_margin=account_value, policy=policy)
    for asset in universe:
        hedge_force_hl(asset, "hedge_capacity", asset in alloc.uncovered, CAPACITY_DETAIL)
    if alloc.uncovered:
        alert_raise(
            rule="risk.hedge.capacity",
            severity="P1",
            subject="hedge",
            message=(
                f"hedge account cannot cover {', '.join(sorted(alloc.uncovered))}: HL_MODE; "
                f"recommended top-up {alloc.top_up:,.0f}"
            ),
            details={
                "uncovered": {a: str(v) for a, v in alloc.uncovered.items()},
                "top_up": str(alloc.top_up),
            },
        )
    else:
        alert_resolve_condition(rule="risk.hedge.capacity", subject="hedge")

    wanted = set(universe) if assets is None else set(assets) & set(universe)
    decisions = []
    for asset in sorted(wanted):
        mark = marks.get(asset)
        if not mark:
            continue
        pos = positions.get(asset)
        current = (pos.size if pos else ZERO) * mark
        decisions.append(
            _decide(cfg, policy, level, asset, nets[asset], mark, current, targets[asset], alloc, pos, now)
        )
    recorded = [instruction_record(cfg, d) for d in decisions if d.plan is not None]
    created = [c for c in recorded if c is not None]
    if cfg.hedge_mode == HedgeConfig.Mode.LIVE:
        pending = [c for c in created if c.status == Status.PENDING]
        if pending:
            instructions_execute(gw, pending)
            hedge_positions_sync(gw=gw)
    return created


def _decide(
    cfg: HedgeConfig,
    policy: HedgePolicy,
    level: str,
    asset: str,
    net: Decimal,
    mark: Decimal,
    current: Decimal,
    target: Decimal,
    alloc: Any,
    pos: HedgePosition | None,
    now: Any,
) -> Decision:
    kind = Kind.AUTO
    note = ""
    if asset in alloc.uncovered:
        target, note = current, "uncovered: hold"
    cooling = (
        pos is not None
        and pos.stop_loss_at is not None
        and now - pos.stop_loss_at < timedelta(seconds=cfg.stop_loss_cooldown_seconds)
    )
    flips = bool(target and current and (target > 0) != (current > 0))
    if cooling and (abs(target) > abs(current) or flips):
        target, note = current, "stop-loss cooldown"
    unlimited = False
    if (
        pos is not None
        and pos.size
        and stop_loss_triggered(unrealized_pnl=pos.unrealized_pnl, margin=pos.margin_used, policy=policy)
    ):
        kind, unlimited = Kind.STOP_LOSS, True
        target, note = current * (1 - policy.stop_loss_margin_fraction), "stop-loss"
        HedgePosition.objects.filter(pk=pos.pk).update(stop_loss_at=now)
    if level in ("deleverage", "halt") and current:
        # the hedge account must never be liquidated by HL: cut every hedge, whatever the target
        cut = current * (1 - cfg.deleverage_fraction)
        if abs(target) > abs(cut) or (target and (target > 0) != (current > 0)):
            kind, unlimited = Kind.DELEVERAGE, True
            target, note = cut, f"de-leverage (hedge account margin ratio level {level})"
    if level == "halt" and abs(target) > abs(current):
        target, note = current, "new HL opens halted (margin ratio < 150%)"
    use = policy_for(cfg, unlimited_dehedge=True) if unlimited else policy
    plan = plan_order(
        target=target,
        current=current,
        mark=mark,
        sz_decimals=market_get(asset).sz_decimals,
        policy=use,
        dehedge_used_last_minute=ZERO if unlimited else dehedged_last_minute(asset, now=now),
    )
    return Decision(asset, kind, net, mark, target, current, plan, note)


# ------------------------------------------------------------------------------------------ beat
def hedge_tick() -> list[HedgeInstruction]:
    """Every 5 s: resolve unanswered sends, mirror the account, and decide every asset whose debounce
    window is not open (a changed asset waits for its window; see ``hedge_schedule``)."""
    hedge_resolve_sent()
    names = set(exposure_current()) | set(
        HedgePosition.objects.exclude(size=0).values_list("asset", flat=True)
    )
    ready = [a for a in sorted(names) if cache.get(DEBOUNCE_KEY.format(asset=a)) is None]
    if hedge_config().hedge_mode == HedgeConfig.Mode.OFF:
        hedge_positions_sync()
        return []
    return hedge_evaluate(assets=ready)


HEDGE_CONSUMER_GROUP = "risk-hedge"


def hedge_on_event(event: Any) -> None:
    """An INTERNAL fill or liquidation changed an asset's exposure: schedule its hedge decision (and
    re-evaluate its automatic routing mode where enabled)."""
    payload = event.payload
    if payload.get("source") != "INTERNAL" and payload.get("venue") != "INTERNAL":
        return
    asset = payload.get("asset")
    if not asset:
        return
    hedge_schedule(asset)
    auto_switch_evaluate(assets=[asset])


def hedge_events_consume(*, consumer_name: str = "beat", block_ms: int = 1) -> int:
    """One non-blocking batch of the event stream for the hedge debouncer (beat, every second)."""
    return consume_batch(
        group=HEDGE_CONSUMER_GROUP,
        consumer_name=consumer_name,
        handler=hedge_on_event,
        topics={"trading.fill", "trading.liquidation"},
        block_ms=block_ms,
    )
