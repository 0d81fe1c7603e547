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
* **Instruction** (``HedgeInstruction``): recorded before anything is sent; in SHADOW mode it is only
  recorded (status SHADOW), exactly as LIVE would decide it.
* **Execution** (LIVE): every pending instruction's legs (split across the visible book when it is thin)
  go to HL in ONE request; each leg's cloid derives from the instruction id and the attempt, so a
  timeout is resolved by cloid and never re-sent. Refused or unmatched legs are retried after 100, 200,
  400 ms; after that the instruction fails, a P1 alert is raised and the asset goes to HL (force-HL).
* **Accounting**: each fill's realized P&L and HL fee are posted between ``hl_pnl`` (sub ``hedge``) and
  the platform's hedge P&L (``bbook_pnl`` sub ``hedge``) — Σ stays 0; fees, funding and slippage vs
  mark accumulate per asset for the hedge cost and ROI.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.forms.models import model_to_dict
from django.http import HttpRequest
from django.utils import timezone

from core.alerts.services import alert_raise, alert_resolve_condition
from core.audit.services import audit_record
from core.defaults import register
from core.errors import ApplicationError, ErrorCode
from core.live import broadcast_on_commit
from core.live_config import LiveConfig, invalidate
from core.money import ZERO
from risk.hedge_models import HedgeConfig, HedgeInstruction, HedgePosition
from risk.hedge_policy import (
    HedgePolicy,
    Plan,
    Tier,
    allocate,
    health_level,
    leverage_for,
    plan_order,
    round_price_away,
    split_across_book,
    stop_loss_triggered,
    target_hedge,
)

logger = logging.getLogger(__name__)

ENGINE_LOCK = "risk:hedge-engine"
DEBOUNCE_KEY = "risk:hedge-debounce:{asset}"
RETRY_BACKOFF_S = (0.1, 0.2, 0.4)
HALT_REASON = "hedge account margin ratio below 150%"
CAPACITY_DETAIL = "capacity"
FAILURE_DETAIL = "hedge orders failing"
FILLED_SHARE = Decimal("0.999")
USDC_Q = Decimal("0.000001")
Status = HedgeInstruction.Status
Kind = HedgeInstruction.Kind


# ------------------------------------------------------------------------------------------ config
def _load() -> HedgeConfig:
    HedgeConfig.objects.get_or_create(key="default")
    return HedgeConfig.objects.get(key="default")


HEDGE_CACHE: LiveConfig[HedgeConfig] = LiveConfig("hedge", _load)


def hedge_config() -> HedgeConfig:
    """The current hedge mode and policy numbers (a shared instance: read it, never save it)."""
    return HEDGE_CACHE.get()


def policy_for(cfg: HedgeConfig, *, unlimited_dehedge: bool = False) -> HedgePolicy:
    return HedgePolicy(
        tiers=(Tier(cfg.tier1_threshold, cfg.tier1_ratio), Tier(cfg.tier2_threshold, cfg.tier2_ratio)),
        stop_internalization_above=cfg.stop_internalization_above,
        min_order_notional=cfg.min_order_notional,
        max_leverage=min(5, max(1, cfg.max_leverage)),
        leverage_above_ladder=min(5, max(1, cfg.max_leverage)),
        max_slippage=cfg.max_slippage,
        dehedge_per_minute=Decimal(10**15) if unlimited_dehedge else cfg.dehedge_per_minute,
        stop_loss_margin_fraction=cfg.stop_loss_margin_fraction,
    )


@transaction.atomic
def hedge_mode_set(
    *, mode: str, acting_user: Any, reason: str, request: HttpRequest | None = None
) -> HedgeConfig:
    """Set ``hedge_mode`` (OFF / SHADOW / LIVE; spec 10). Audited in the same transaction; every process
    reloads on commit. Setting the current mode again changes nothing (no audit row)."""
    if mode not in HedgeConfig.Mode.values:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Unknown hedge mode {mode!r}.", {"field": "mode"})
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    row, _ = HedgeConfig.objects.select_for_update().get_or_create(key="default")
    if row.hedge_mode == mode:
        return row
    before = row.hedge_mode
    row.hedge_mode = mode
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    row.save(update_fields=["hedge_mode", "updated_at", "updated_by"])
    audit_record(
        action="hedge.mode_set",
        actor=acting_user,
        request=request,
        object_type="hedge_config",
        object_id="default",
        before={"hedge_mode": before},
        after={"hedge_mode": mode},
        reason=reason,
    )
    invalidate(HEDGE_CACHE.name)
    broadcast_on_commit("hedge", {"event": "mode", "from": before, "to": mode})
    return row


EDITABLE = (
    "tier1_threshold",
    "tier1_ratio",
    "tier2_threshold",
    "tier2_ratio",
    "stop_internalization_above",
    "min_order_notional",
    "max_leverage",
    "max_slippage",
    "dehedge_per_minute",
    "stop_loss_margin_fraction",
    "debounce_seconds",
    "stop_loss_cooldown_seconds",
    "deleverage_fraction",
)


@transaction.atomic
def hedge_config_update(
    *, changes: dict[str, Any], acting_user: Any, reason: str, request: HttpRequest | None = None
) -> HedgeConfig:
    """Edit the hedge policy numbers (audited; the leverage cap can never exceed 5x)."""
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Not editable: {', '.join(sorted(unknown))}.")
    row, _ = HedgeConfig.objects.select_for_update().get_or_create(key="default")
    before = {k: v for k, v in model_to_dict(row).items() if k in changes}
    for field, value in changes.items():
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"Invalid {field}.", {"field": field}
            ) from None
        if not number.is_finite() or number < 0:
            raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Invalid {field}.", {"field": field})
        setattr(
            row,
            field,
            int(number)
            if field in ("max_leverage", "debounce_seconds", "stop_loss_cooldown_seconds")
            else number,
        )
    if not 1 <= row.max_leverage <= 5:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "The hedge leverage cap is 1–5x.", {"field": "max_leverage"}
        )
    try:
        policy_for(row)
    except ValueError as exc:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    row.save()
    audit_record(
        action="hedge.config_update",
        actor=acting_user,
        request=request,
        object_type="hedge_config",
        object_id="default",
        before=before,
        after={k: str(v) for k, v in changes.items()},
        reason=reason,
    )
    invalidate(HEDGE_CACHE.name)
    return row


@register
def hedge_defaults_ensure() -> None:
    if HedgeConfig.objects.get_or_create(key="default")[1]:
        invalidate(HEDGE_CACHE.name)


# ------------------------------------------------------------------------------------------ HL access
def hedge_gateway() -> Any:
    from trading.venues.hl import gateway

    return gateway("hedge")


def _book(gw: Any, asset: str) -> dict[str, Any]:
    return gw.api.post("/info", {"type": "l2Book", "coin": asset})  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------ mirror
def hedge_positions_sync(*, state: dict[str, Any] | None = None, gw: Any = None) -> dict[str, HedgePosition]:
    """Mirror the hedge account's positions (HL is the source of truth) into ``HedgePosition``; an asset
    HL no longer shows is set flat. Returns the rows by asset. Also records the account snapshot
    (console, health alerts) when it read the state itself."""
    if state is None:
        gw = gw or hedge_gateway()
        if gw is None:
            return {p.asset: p for p in HedgePosition.objects.all()}
        state = gw.user_state()
        _account_snapshot(gw, state)
    now = timezone.now()
    seen: dict[str, dict[str, Any]] = {}
    for item in state.get("assetPositions", []):
        p = item["position"]
        seen[p["coin"]] = p
    with transaction.atomic():
        rows = {r.asset: r for r in HedgePosition.objects.select_for_update().order_by("pk")}
        for asset, p in seen.items():
            funding = p.get("cumFunding") or {}
            values = {
                "size": Decimal(p["szi"]),
                "entry_price": Decimal(p["entryPx"]) if p.get("entryPx") else None,
                "position_value": Decimal(p.get("positionValue") or 0),
                "unrealized_pnl": Decimal(p.get("unrealizedPnl") or 0),
                "margin_used": Decimal(p.get("marginUsed") or 0),
                "leverage": int((p.get("leverage") or {}).get("value") or 0),
                "liquidation_price": Decimal(p["liquidationPx"]) if p.get("liquidationPx") else None,
                "funding_since_open": Decimal(funding.get("sinceOpen") or 0),
                "funding_all_time": Decimal(funding.get("allTime") or 0),
                "updated_at": now,
            }
            row = rows.get(asset)
            if row is None:
                rows[asset] = HedgePosition.objects.create(asset=asset, **values)
            else:
                for k, v in values.items():
                    setattr(row, k, v)
                row.save()
        for asset, row in rows.items():
            if asset not in seen and row.size != 0:
                row.size = ZERO
                row.position_value = row.unrealized_pnl = row.margin_used = ZERO
                row.entry_price = row.liquidation_price = None
                row.funding_since_open = ZERO
                row.updated_at = now
                row.save()
        broadcast_on_commit(
            "hedge",
            {"event": "positions", "positions": {a: str(r.size) for a, r in rows.items()}},
        )
    return rows


def _account_snapshot(gw: Any, state: dict[str, Any]) -> None:
    from trading.hl_accounts import _snapshot  # the shared HLAccountSnapshot writer (console, metrics)

    try:
        _snapshot(gw, state)
    except Exception:  # the snapshot is informative; it must never stop a hedge decision
        logger.exception("hedge account snapshot failed")


# ------------------------------------------------------------------------------------------ health
def _margin_ratio(state: dict[str, Any]) -> Decimal | None:
    from trading.hl_accounts import margin_ratio

    return margin_ratio(state)


def hedge_health_verdict(state: dict[str, Any]) -> str:
    """Spec 05 levels on the hedge account's margin ratio, with their effects (alerts, HL halt)."""
    from routing.models import RoutingState
    from routing.services import routing_hl_halt_set

    ratio = _margin_ratio(state)
    level = health_level(ratio)
    value = Decimal(state.get("marginSummary", {}).get("accountValue", "0"))
    mm = Decimal(state.get("crossMaintenanceMarginUsed", "0"))
    top_up = max(ZERO, 5 * mm - value).quantize(Decimal(1))
    if level in ("alert", "deleverage", "halt"):
        alert_raise(
            rule="risk.hedge.top_up",
            severity="P1",
            subject="hedge",
            message=f"hedge account margin ratio {ratio:.0%}: top up {top_up:,} from the capital pool",
            details={"margin_ratio": str(ratio), "top_up": str(top_up)},
        )
    else:
        alert_resolve_condition(rule="risk.hedge.top_up", subject="hedge")
    if level in ("deleverage", "halt"):
        alert_raise(
            rule="risk.hedge.deleverage",
            severity="P0",
            subject="hedge",
            message=f"hedge account margin ratio {ratio:.0%} below 200%: de-leveraging the hedges",
        )
    else:
        alert_resolve_condition(rule="risk.hedge.deleverage", subject="hedge")
    ours = RoutingState.objects.filter(asset="*", hl_halted=True, hl_halt_reason=HALT_REASON).exists()
    if level == "halt":
        alert_raise(
            rule="risk.hedge.halt",
            severity="P0",
            subject="hedge",
            message=f"hedge account margin ratio {ratio:.0%} below 150%: new HL opens halted",
        )
        if not ours:
            routing_hl_halt_set(asset="*", halted=True, reason=HALT_REASON)
    else:
        alert_resolve_condition(rule="risk.hedge.halt", subject="hedge")
        if ours:
            routing_hl_halt_set(asset="*", halted=False)
    return level


def _force(asset: str, reason: str, active: bool, detail: str) -> None:
    """Set or clear a force-HL reason; clear only what this engine set with ``detail`` (a failure
    force is not lifted by a capacity pass and vice versa)."""
    from routing.models import RoutingState
    from routing.services import routing_force_hl_set

    state = RoutingState.objects.filter(asset=asset).first()
    present = state is not None and reason in (state.force_hl_reasons or {})
    if active:
        if not present:
            routing_force_hl_set(asset=asset, reason=reason, active=True, detail=detail)
        return
    if (
        present
        and state is not None
        and str(state.force_hl_reasons[reason].get("detail", "")).startswith(detail)
    ):
        routing_force_hl_set(asset=asset, reason=reason, active=False)


# ------------------------------------------------------------------------------------------ decision
@dataclass(frozen=True)
class Decision:
    asset: str
    kind: str
    exposure: Decimal
    mark: Decimal
    target: Decimal
    current: Decimal
    plan: Plan | None
    note: str = ""


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
    from risk.tasks import hedge_evaluate_task

    delay = max(0, hedge_config().debounce_seconds)
    if not cache.add(DEBOUNCE_KEY.format(asset=asset), 1, timeout=delay + 1):
        return False
    transaction.on_commit(
        lambda: hedge_evaluate_task.apply_async(args=[[asset]], countdown=delay, queue="hedge")
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
    from risk.exposure import exposure_current
    from risk.marks import effective_marks

    state = gw.user_state()
    _account_snapshot(gw, state)
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
        _force(asset, "net_exposure_limit", t.stop_internalizing, "hedge tier")
    account_value = Decimal(state.get("marginSummary", {}).get("accountValue", "0"))
    alloc = allocate({a: v for a, v in targets.items() if v}, available_margin=account_value, policy=policy)
    for asset in universe:
        _force(asset, "hedge_capacity", asset in alloc.uncovered, CAPACITY_DETAIL)
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
    recorded = [_record(cfg, d) for d in decisions if d.plan is not None]
    created = [c for c in recorded if c is not None]
    if cfg.hedge_mode == HedgeConfig.Mode.LIVE:
        pending = [c for c in created if c.status == Status.PENDING]
        if pending:
            _execute(gw, pending)
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
    from trading.selectors import market_get

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


def _record(
    cfg: HedgeConfig, d: Decision, *, acting_user: Any = None, reason: str = ""
) -> HedgeInstruction | None:
    assert d.plan is not None
    mode = cfg.hedge_mode
    if mode == HedgeConfig.Mode.SHADOW and d.kind == Kind.AUTO:
        # SHADOW leaves the account unchanged, so the same decision repeats every tick: log it once a minute
        last = (
            HedgeInstruction.objects.filter(asset=d.asset, status=Status.SHADOW)
            .order_by("-created_at")
            .first()
        )
        if (
            last is not None
            and timezone.now() - last.created_at < timedelta(minutes=1)
            and abs(last.notional - d.plan.notional)
            <= max(cfg.min_order_notional, abs(d.plan.notional) / 100)
        ):
            return None
    return HedgeInstruction.objects.create(
        instruction_id=f"hedge:{d.asset}:{uuid.uuid4().hex[:20]}",
        asset=d.asset,
        kind=d.kind,
        mode=mode,
        status=Status.SHADOW if mode == HedgeConfig.Mode.SHADOW else Status.PENDING,
        exposure=d.exposure.quantize(USDC_Q),
        target=d.target.quantize(USDC_Q),
        current=d.current.quantize(USDC_Q),
        mark=d.mark,
        notional=d.plan.notional.quantize(USDC_Q),
        size=d.plan.size,
        is_buy=d.plan.is_buy,
        reduces=d.plan.reduces,
        limit_price=d.plan.limit_price,
        leverage=d.plan.leverage,
        plan={"note": d.note, "leverage": d.plan.leverage},
        reason=reason or d.note,
        acting_user=acting_user if getattr(acting_user, "is_authenticated", False) else None,
    )


# ------------------------------------------------------------------------------------------ execution
def leg_cloid(instruction: HedgeInstruction, attempt: int, leg: int) -> str:
    from trading.venues.hl import order_cloid

    return order_cloid(instruction.pk * 1000 + attempt * 20 + leg, account="hedge")


def _legs(gw: Any, inst: HedgeInstruction, remaining: Decimal) -> list[Decimal]:
    from trading.selectors import market_get

    step = Decimal(1).scaleb(-market_get(inst.asset).sz_decimals)
    try:
        book = _book(gw, inst.asset)
        side = book["levels"][1 if inst.is_buy else 0]
        levels = [(Decimal(lv["px"]), Decimal(lv["sz"])) for lv in side]
    except Exception:  # no book: one IOC takes what is there
        levels = []
    assert inst.limit_price is not None
    chunks = split_across_book(remaining, levels, limit=inst.limit_price, is_buy=inst.is_buy)
    legs = [c.quantize(step, rounding=ROUND_DOWN) for c in chunks]
    legs = [c for c in legs if c > 0]
    short = remaining - sum(legs, ZERO)
    if short > 0 and legs:
        legs[-1] += short.quantize(step, rounding=ROUND_DOWN)
    return legs or [remaining]


def _execute(gw: Any, instructions: list[HedgeInstruction]) -> None:
    from trading.venues.hl import HLRequestError

    # leverage ladder first (only where the hedge grows: HL re-margins the whole cross position)
    for inst in instructions:
        if not inst.reduces:
            pos = HedgePosition.objects.filter(asset=inst.asset).first()
            if pos is None or pos.leverage != inst.leverage:
                try:
                    gw.update_leverage(inst.asset, inst.leverage, is_cross=True)
                except HLRequestError as exc:
                    logger.warning(
                        "hedge leverage %s %sx refused: %s", inst.asset, inst.leverage, exc.message
                    )
    todo = {inst.pk: inst for inst in instructions}
    since_ms = int(time.time() * 1000) - 5_000
    for attempt in range(len(RETRY_BACKOFF_S) + 1):
        if not todo:
            return
        if attempt:
            time.sleep(RETRY_BACKOFF_S[attempt - 1])
        orders: list[dict[str, Any]] = []
        owners: list[int] = []
        for inst in todo.values():
            remaining = inst.size - inst.filled_size
            for i, size in enumerate(_legs(gw, inst, remaining)):
                orders.append(
                    {
                        "coin": inst.asset,
                        "is_buy": inst.is_buy,
                        "size": size,
                        "price": inst.limit_price,
                        "tif": "Ioc",
                        "reduce_only": False,
                        "cloid": leg_cloid(inst, attempt, i),
                    }
                )
                owners.append(inst.pk)
        now = timezone.now()
        for inst in todo.values():
            inst.attempts += 1
            inst.status = Status.SENT
            inst.sent_at = inst.sent_at or now
            inst.cloid = orders[owners.index(inst.pk)]["cloid"]
            inst.save(update_fields=["attempts", "status", "sent_at", "cloid"])  # committed before the send
        try:
            results = gw.place_orders(orders)
        except HLRequestError as exc:
            if exc.uncertain:
                # the orders may have reached HL: resolve by cloid, never re-send
                results = [_status_by_cloid(gw, o["cloid"]) for o in orders]
            else:
                results = [None] * len(orders)
                for inst in todo.values():
                    inst.error = exc.message
        fills = _fills_by_oid(gw, since_ms, results)
        done = []
        for inst in list(todo.values()):
            legs = [(o, r) for o, r, owner in zip(orders, results, owners, strict=True) if owner == inst.pk]
            unknown = any(r == "unknown" for _o, r in legs)
            errors = [r.error for _o, r in legs if r is not None and r != "unknown" and r.kind == "error"]
            leg_fills = [
                f for _o, r in legs if r not in (None, "unknown") and r.oid for f in fills.get(r.oid, [])
            ]
            _apply_fills(inst, leg_fills, [r.oid for _o, r in legs if r not in (None, "unknown") and r.oid])
            if errors:
                inst.error = "; ".join(errors)[:2000]
            if inst.filled_size >= inst.size * FILLED_SHARE:
                inst.status = Status.FILLED
            elif unknown:
                inst.status = Status.SENT  # left to hedge_resolve_sent once the action has expired
            elif inst.filled_size > 0:
                inst.status = Status.PARTIAL  # an IOC took what was there; the next decision acts on the gap
            else:
                continue  # retry
            inst.completed_at = timezone.now() if inst.status != Status.SENT else None
            inst.save()
            done.append(inst.pk)
        for pk in done:
            todo.pop(pk)
    for inst in todo.values():
        _fail(inst)


def _status_by_cloid(gw: Any, cloid: str) -> Any:
    from trading.venues.hl import HLRequestError, OrderResult

    try:
        answer = gw.order_status(cloid=cloid)
    except HLRequestError:
        return "unknown"
    if answer.get("status") != "order":
        return "unknown"
    order = answer["order"]
    oid = int(order["order"]["oid"])
    if order.get("status") == "filled" or Decimal(str(order["order"].get("sz", "0"))) < Decimal(
        str(order["order"].get("origSz", "0"))
    ):
        return OrderResult("filled", oid=oid)
    return OrderResult("error", oid=oid, error=str(order.get("status")))


def _fills_by_oid(gw: Any, since_ms: int, results: list[Any]) -> dict[int, list[Any]]:
    oids = {r.oid for r in results if r not in (None, "unknown") and r.oid}
    if not oids:
        return {}
    out: dict[int, list[Any]] = {}
    for f in gw.user_fills_by_time(since_ms):
        if f.oid in oids:
            out.setdefault(f.oid, []).append(f)
    return out


def _apply_fills(inst: HedgeInstruction, fills: list[Any], oids: list[int]) -> None:
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind

    known = {int(f["tid"]) for f in inst.fills}
    new = [f for f in fills if f.tid not in known]
    if oids and inst.hl_oid is None:
        inst.hl_oid = oids[0]
    if not new:
        return
    hl_pnl = AccountRef.platform(AccountKind.HL_PNL, sub="hedge")
    hedge_pnl = AccountRef.platform(AccountKind.BBOOK_PNL, sub="hedge")
    sign = Decimal(1) if inst.is_buy else Decimal(-1)
    mark = inst.mark or ZERO
    with transaction.atomic():
        fee = pnl = slip = ZERO
        for f in new:
            inst.fills.append(
                {
                    "tid": f.tid,
                    "oid": f.oid,
                    "px": str(f.price),
                    "sz": str(f.size),
                    "fee": str(f.fee),
                    "closed_pnl": str(f.closed_pnl),
                }
            )
            notional_before = (inst.avg_price or ZERO) * inst.filled_size
            inst.filled_size += f.size
            inst.avg_price = (notional_before + f.price * f.size) / inst.filled_size
            inst.filled_notional += sign * f.price * f.size
            fee += f.fee
            pnl += f.closed_pnl
            slip += sign * (f.price - mark) * f.size if mark else ZERO
            transfers = []
            amount = abs(f.closed_pnl).quantize(USDC_Q)
            if amount > 0:
                # a hedge gain raises the hedge account's value (hl_pnl down); a loss the opposite
                debit, credit = (hl_pnl, hedge_pnl) if f.closed_pnl > 0 else (hedge_pnl, hl_pnl)
                transfers.append(TransferSpec(debit, credit, amount, TransferKind.HEDGE, "hedge_fill", f.tid))
            if f.fee.quantize(USDC_Q) > 0:
                transfers.append(
                    TransferSpec(
                        hedge_pnl,
                        hl_pnl,
                        f.fee.quantize(USDC_Q),
                        TransferKind.TRADING_FEE,
                        "hedge_fill",
                        f.tid,
                    )
                )
            if transfers:
                ledger_post(key=f"hedge-fill:{inst.asset}:{f.tid}", transfers=transfers)
        inst.fee += fee
        inst.realized_pnl += pnl
        inst.slippage += slip.quantize(USDC_Q)
        inst.avg_price = inst.avg_price.quantize(Decimal("0.00000001")) if inst.avg_price else None
        inst.save()
        HedgePosition.objects.get_or_create(asset=inst.asset)
        HedgePosition.objects.filter(asset=inst.asset).update(
            fees_to_date=F("fees_to_date") + fee,
            slippage_to_date=F("slippage_to_date") + slip.quantize(USDC_Q),
            realized_pnl_to_date=F("realized_pnl_to_date") + pnl,
        )
        broadcast_on_commit(
            "hedge", {"event": "fill", "instruction": inst.instruction_id, "filled": str(inst.filled_size)}
        )


def _fail(inst: HedgeInstruction) -> None:
    inst.status = Status.FAILED
    inst.completed_at = timezone.now()
    inst.save()
    alert_raise(
        rule="risk.hedge.order_failed",
        severity="P1",
        subject=inst.asset,
        message=f"hedge order for {inst.asset} failed after {inst.attempts} attempts: {inst.error[:200]}; HL_MODE",
        details={"instruction": inst.instruction_id},
    )
    _force(inst.asset, "hedge_capacity", True, FAILURE_DETAIL)


def hedge_resolve_sent(*, older_than_s: float = 12.0) -> int:
    """Instructions left SENT by an unanswered request: resolve each leg by cloid once HL's expiry
    (``expiresAfter``) has passed — a cloid HL does not know by then was never placed."""
    gw = hedge_gateway()
    if gw is None:
        return 0
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    count = 0
    for inst in HedgeInstruction.objects.filter(status=Status.SENT, sent_at__lt=cutoff):
        results = [
            _status_by_cloid(gw, leg_cloid(inst, a, i)) for a in range(inst.attempts) for i in range(5)
        ]
        since_ms = int(inst.created_at.timestamp() * 1000) - 5_000
        fills = _fills_by_oid(gw, since_ms, results)
        _apply_fills(inst, [f for fs in fills.values() for f in fs], list(fills))
        inst.status = (
            Status.FILLED
            if inst.filled_size >= inst.size * FILLED_SHARE
            else (Status.PARTIAL if inst.filled_size else Status.FAILED)
        )
        inst.completed_at = timezone.now()
        inst.save()
        count += 1
    return count


# ------------------------------------------------------------------------------------------ manual
@transaction.atomic
def _manual_record(
    *, acting_user: Any, asset: str, side: str, notional: Decimal, reason: str, request: HttpRequest | None
) -> HedgeInstruction:
    from risk.marks import effective_marks
    from trading.selectors import market_get

    cfg = hedge_config()
    mark = effective_marks([asset]).get(asset)
    if not mark:
        raise ApplicationError(ErrorCode.STALE_PRICE, f"No mark for {asset}.", http_status=503)
    market = market_get(asset)
    size = (notional / mark).quantize(Decimal(1).scaleb(-market.sz_decimals), rounding=ROUND_DOWN)
    if size <= 0 or size * mark < 10:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Below HL's $10 minimum.", {"field": "notional"})
    is_buy = side == "BUY"
    pos = HedgePosition.objects.filter(asset=asset).first()
    current = (pos.size if pos else ZERO) * mark
    signed = notional if is_buy else -notional
    plan = Plan(
        signed,
        size,
        is_buy,
        round_price_away(
            mark * (1 + cfg.max_slippage if is_buy else 1 - cfg.max_slippage), market.sz_decimals, up=is_buy
        ),
        abs(current + signed) < abs(current),
        leverage_for(current + signed, policy_for(cfg)),
    )
    inst = _record(
        cfg,
        Decision(asset, Kind.MANUAL, ZERO, mark, current + signed, current, plan, "manual"),
        acting_user=acting_user,
        reason=reason,
    )
    assert inst is not None
    audit_record(
        action="hedge.manual_order",
        actor=acting_user,
        request=request,
        object_type="hedge_instruction",
        object_id=inst.instruction_id,
        after={"asset": asset, "side": side, "notional": str(notional), "mode": inst.mode},
        reason=reason,
    )
    return inst


def hedge_manual_order(
    *,
    acting_user: Any,
    asset: str,
    side: str,
    notional: Decimal | str,
    reason: str,
    request: HttpRequest | None = None,
) -> HedgeInstruction:
    """The risk team places (or closes part of) a hedge by hand. Audited in the transaction that records
    the instruction; in LIVE it is sent at once (IOC at mark ± max slippage), in SHADOW only recorded,
    refused while the hedge mode is OFF."""
    if side not in ("BUY", "SELL"):
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "side is BUY or SELL.", {"field": "side"})
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    try:
        amount = Decimal(str(notional))
    except ArithmeticError:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "Invalid notional.", {"field": "notional"}
        ) from None
    if not amount.is_finite() or amount <= 0:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Invalid notional.", {"field": "notional"})
    if hedge_config().hedge_mode == HedgeConfig.Mode.OFF:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Hedging is OFF.", http_status=409)
    inst = _manual_record(
        acting_user=acting_user, asset=asset, side=side, notional=amount, reason=reason, request=request
    )
    if inst.status == Status.PENDING:
        gw = hedge_gateway()
        if gw is None:
            raise ApplicationError(ErrorCode.NO_ROUTE, "The HL hedge account is not configured.")
        _execute(gw, [inst])
        hedge_positions_sync(gw=gw)
        inst.refresh_from_db()
    return inst


# ------------------------------------------------------------------------------------------ beat
def hedge_tick() -> list[HedgeInstruction]:
    """Every 5 s: resolve unanswered sends, mirror the account, and decide every asset whose debounce
    window is not open (a changed asset waits for its window; see ``hedge_schedule``)."""
    from risk.exposure import exposure_current

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
    try:
        from risk.auto_switch import auto_switch_evaluate

        auto_switch_evaluate(assets=[asset])
    except ImportError:  # pragma: no cover - auto switching lands separately
        pass


def hedge_events_consume(*, consumer_name: str = "beat", block_ms: int = 1) -> int:
    """One non-blocking batch of the event stream for the hedge debouncer (beat, every second)."""
    from core.events.services import consume_batch

    return consume_batch(
        group=HEDGE_CONSUMER_GROUP,
        consumer_name=consumer_name,
        handler=hedge_on_event,
        topics={"trading.fill", "trading.liquidation"},
        block_ms=block_ms,
    )
