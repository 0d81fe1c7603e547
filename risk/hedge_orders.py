"""Hedge instructions and their orders on HL (spec 05): a decision of the engine (or the risk team's
manual order) becomes an instruction, the instruction's legs go to HL, the fills are booked.

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
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from core.alerts.services import alert_raise
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.live import broadcast_on_commit
from core.money import ZERO
from risk.hedge_account import FAILURE_DETAIL, hedge_force_hl, hedge_gateway, hedge_positions_sync
from risk.hedge_config import hedge_config, policy_for
from risk.hedge_models import HedgeConfig, HedgeInstruction, HedgePosition
from risk.hedge_policy import Plan, leverage_for, round_price_away, split_across_book
from risk.marks import effective_marks
from trading.selectors import market_get
from trading.venues.hl import HLRequestError, OrderResult, order_cloid
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.1, 0.2, 0.4)
FILLED_SHARE = Decimal("0.999")
USDC_Q = Decimal("0.000001")
Status = HedgeInstruction.Status
Kind = HedgeInstruction.Kind


@dataclass(frozen=True)
class Decision:
    """What the engine (or the risk team) decided for one asset: the hedge ``target`` against the
    ``current`` one (signed notionals at ``mark``) and the order that closes the gap (None: none)."""

    asset: str
    kind: str
    exposure: Decimal
    mark: Decimal
    target: Decimal
    current: Decimal
    plan: Plan | None
    note: str = ""


def instruction_record(
    cfg: HedgeConfig, d: Decision, *, acting_user: Any = None, reason: str = ""
) -> HedgeInstruction | None:
    """Record a decision with a plan as an instruction, PENDING (LIVE) or SHADOW; None when SHADOW
    already logged the same automatic decision within the last minute."""
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
    return order_cloid(instruction.pk * 1000 + attempt * 20 + leg, account="hedge")


def _book(gw: Any, asset: str) -> dict[str, Any]:
    return gw.api.post("/info", {"type": "l2Book", "coin": asset})  # type: ignore[no-any-return]


def _legs(gw: Any, inst: HedgeInstruction, remaining: Decimal) -> list[Decimal]:
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


def instructions_execute(gw: Any, instructions: list[HedgeInstruction]) -> None:
    """Send the pending instructions' legs to HL in one request per attempt (retried with backoff),
    book their fills, and fail (P1, force-HL) what is still unfilled after the last retry."""
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
    hedge_force_hl(inst.asset, "hedge_capacity", True, FAILURE_DETAIL)


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
    inst = instruction_record(
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
        instructions_execute(gw, [inst])
        hedge_positions_sync(gw=gw)
        inst.refresh_from_db()
    return inst
