"""The scheduler of TWAP / split parent orders (``trading.orders.twap``): each pass claims the running
parents whose next slice is due and sends one slice of each as a HYPERLIQUID child order.

Crash-safety, step by step for one slice ``n`` of a parent:

1. **Claim** (one short transaction): due parents are selected ``FOR UPDATE SKIP LOCKED`` and leased
   (``lease_until``), so passes in several processes never work on the same parent; a pass that dies
   leaves a lease that expires, and the next pass takes the parent over.
2. **Child row** (``AlgoChild``, unique per (parent, slice)): written once with its planned size and its
   ``client_order_id`` derived from (parent, slice); a resumed pass reuses the row as written.
3. **Send** through ``order_place`` with that ``client_order_id``: the order row with its cloid commits
   before the request leaves (``orders.hyperliquid``). Placed again after a crash, the same id answers
   the order already recorded — never a second order, never a second send; an order recorded but not
   sent is settled by the HL resolver (by cloid) and its size is caught up by later slices.
4. **Record** (one transaction, parent locked): the child's order, the parent's progress, the next slice
   and its due time (``slice_due_at``), the lease released.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ApplicationError, ErrorCode
from core.money import ZERO
from core.platform.state import platform_ready
from routing.decision import Route
from trading import margin
from trading.models import Order
from trading.orders.algo_config import algo_settings
from trading.orders.input import OrderInput, market_for
from trading.orders.parent_models import AlgoChild, AlgoOrder
from trading.orders.place import order_place
from trading.orders.twap import child_client_order_id, planned_through, progress_apply, slice_due_at

logger = logging.getLogger(__name__)

# a child refused for one of these stops its parent: the next slices would be refused alike
STOPPING = frozenset(
    {
        ErrorCode.INSUFFICIENT_MARGIN,
        ErrorCode.USER_RESTRICTED,
        ErrorCode.MARKET_HALTED,
        ErrorCode.REDUCE_ONLY,
        ErrorCode.KYC_LIMIT_EXCEEDED,
        ErrorCode.LEVERAGE_EXCEEDED,
        ErrorCode.UNKNOWN_SYMBOL,
        ErrorCode.SYMBOL_SUSPENDED,
        ErrorCode.INVALID_SIZE,
        ErrorCode.IDEMPOTENCY_CONFLICT,
        ErrorCode.RATE_LIMITED,
    }
)
# refused before anything was recorded, for a passing reason: the same slice is tried again shortly
RETRY_LATER = frozenset({ErrorCode.STALE_PRICE, ErrorCode.SERVICE_UNAVAILABLE})
PARENT_PROGRESS_FIELDS = ["filled_size", "avg_price", "fee_total", "children_sent"]


def algo_tick(*, now: datetime | None = None, limit: int = 50) -> int:
    """One scheduler pass: every due parent sends its next slice (or finishes). ``now``: the pass's
    clock (tests drive a whole TWAP through its window with it). Returns the parents handled."""
    now = now or timezone.now()
    claimed = algo_claim(now=now, limit=limit)
    for parent_id in claimed:
        try:
            algo_step(parent_id=parent_id, now=now)
        except Exception:  # one parent's failure must not stop the others; its lease expires, it resumes
            logger.exception("algo order %s: slice step failed; resumed after its lease", parent_id)
    return len(claimed)


def algo_claim(*, now: datetime, limit: int = 50) -> list[int]:
    """Lease the due running parents no other pass holds (skip-locked, so concurrent passes split them)."""
    lease = timedelta(seconds=algo_settings().lease_seconds)
    with transaction.atomic():
        ids = list(
            AlgoOrder.objects.select_for_update(skip_locked=True)
            .filter(status=AlgoOrder.Status.RUNNING, next_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("next_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            AlgoOrder.objects.filter(pk__in=ids).update(lease_until=now + lease)
    return ids


def algo_step(*, parent_id: int, now: datetime) -> None:
    """Steps 2–4 for the next slice of a claimed parent."""
    parent = AlgoOrder.objects.select_related("user").get(pk=parent_id)
    if parent.status != AlgoOrder.Status.RUNNING:
        AlgoOrder.objects.filter(pk=parent_id).update(lease_until=None)
        return
    n = parent.next_slice
    if n >= parent.slices:
        parent_finish(parent_id=parent_id, now=now)
        return
    if not platform_ready().ready:  # restart recovery: no new exposure until HL is resynced
        parent_defer(parent_id=parent_id, now=now)
        return
    child = child_for(parent, n, now)
    order, error = child.order, None
    if child.order_id is None and child.size > ZERO and not child.error_code:
        order, error = child_send(parent, child)
    child_record(parent_id=parent_id, n=n, order=order, error=error, now=now)


def committed_size(parent: AlgoOrder) -> Decimal:
    """What the parent's children have filled, plus what those still in flight may yet fill."""
    total = ZERO
    for status, size, filled in Order.objects.filter(algo_child__parent=parent).values_list(
        "status", "size", "filled_size"
    ):
        total += filled if status in Order.TERMINAL else size
    return total


def child_for(parent: AlgoOrder, n: int, now: datetime) -> AlgoChild:
    """Slice ``n``'s child row, written once: the planned size up to this slice less what is filled or
    in flight, within the parent's child cap (a resumed pass reads the row back unchanged)."""
    existing = AlgoChild.objects.filter(parent=parent, slice_index=n).first()
    if existing is not None:
        return existing
    sz_decimals = market_for(parent.asset).sz_decimals
    committed = committed_size(parent)
    size = min(planned_through(parent, n, sz_decimals) - committed, parent.child_cap, parent.size - committed)
    size = margin.floor_size(max(size, ZERO), sz_decimals)
    try:
        with transaction.atomic():
            return AlgoChild.objects.create(
                parent=parent,
                slice_index=n,
                size=size,
                scheduled_at=slice_due_at(parent, n),
                client_order_id=child_client_order_id(parent.pk, n),
                created_at=now,
            )
    except IntegrityError:  # written by a pass that lost its lease meanwhile: theirs stands
        return AlgoChild.objects.get(parent=parent, slice_index=n)


def child_input(parent: AlgoOrder, child: AlgoChild) -> OrderInput:
    """The child as an order: a HYPERLIQUID market order (an IOC at mid ± the parent's slippage) of the
    slice's size — the same input every time, so placing it again is a replay."""
    return OrderInput(
        asset=parent.asset,
        side=parent.side,
        order_type=Order.Type.MARKET,
        size=child.size,
        limit_price=None,
        leverage=parent.leverage,
        margin_mode=parent.margin_mode,
        reduce_only=False,
        tif=Order.Tif.IOC,
        slippage_bps=parent.slippage_bps,
        client_order_id=child.client_order_id,
        position_id=None,
    )


def child_send(parent: AlgoOrder, child: AlgoChild) -> tuple[Order | None, ApplicationError | None]:
    """Step 3: place the child (idempotent on its ``client_order_id``). A refusal is returned with the
    order it left recorded, if any."""
    if not AlgoOrder.objects.filter(pk=parent.pk, status=AlgoOrder.Status.RUNNING).exists():
        return None, None  # cancelled since the claim: the slice never leaves
    try:
        return order_place(user=parent.user, inp=child_input(parent, child), venue=Route.HYPERLIQUID), None
    except ApplicationError as exc:
        recorded = Order.objects.filter(user_id=parent.user_id, client_order_id=child.client_order_id).first()
        return recorded, exc


def child_record(
    *, parent_id: int, n: int, order: Order | None, error: ApplicationError | None, now: datetime
) -> None:
    """Step 4: the child's outcome, the parent's progress and its next slice, in one transaction."""
    with transaction.atomic():
        parent = AlgoOrder.objects.select_for_update().get(pk=parent_id)
        child = AlgoChild.objects.select_for_update().get(parent=parent, slice_index=n)
        retry = error is not None and order is None and error.code in RETRY_LATER
        if order is not None and child.order_id is None:
            child.order = order
        if error is not None and not retry and not child.error_code:
            child.error_code, child.error_message = str(error.code), error.message
        child.save(update_fields=["order", "error_code", "error_message"])
        fields = [*PARENT_PROGRESS_FIELDS, "next_slice", "next_at", "lease_until", "updated_at"]
        progress_apply(parent)
        if retry and parent.status == AlgoOrder.Status.RUNNING:
            parent.next_at = now + timedelta(milliseconds=algo_settings().tick_ms)
        else:
            if parent.next_slice == n:
                parent.next_slice = n + 1
            if parent.status == AlgoOrder.Status.RUNNING:
                if error is not None and error.code in STOPPING:
                    parent.status = AlgoOrder.Status.FAILED
                    parent.error_code, parent.error_message = str(error.code), error.message
                    parent.finished_at, parent.next_at = now, None
                    fields += ["status", "error_code", "error_message", "finished_at"]
                else:
                    parent.next_at = slice_due_at(parent, n + 1) if n + 1 < parent.slices else now
        parent.lease_until = None
        parent.updated_at = timezone.now()
        parent.save(update_fields=fields)


def parent_finish(*, parent_id: int, now: datetime) -> None:
    """After the last slice: COMPLETED once no child is in flight (an order whose answer was lost is
    settled by the HL resolver first); until then looked at again every tick."""
    with transaction.atomic():
        parent = AlgoOrder.objects.select_for_update().get(pk=parent_id)
        in_flight = (
            Order.objects.filter(algo_child__parent=parent).exclude(status__in=Order.TERMINAL).exists()
        )
        progress_apply(parent)
        fields = [*PARENT_PROGRESS_FIELDS, "next_at", "lease_until", "updated_at"]
        if parent.status == AlgoOrder.Status.RUNNING and in_flight:
            parent.next_at = now + timedelta(milliseconds=algo_settings().tick_ms)
        elif parent.status == AlgoOrder.Status.RUNNING:
            parent.status, parent.finished_at, parent.next_at = AlgoOrder.Status.COMPLETED, now, None
            fields += ["status", "finished_at"]
        parent.lease_until = None
        parent.updated_at = timezone.now()
        parent.save(update_fields=fields)


def parent_defer(*, parent_id: int, now: datetime) -> None:
    AlgoOrder.objects.filter(pk=parent_id, status=AlgoOrder.Status.RUNNING).update(
        next_at=now + timedelta(milliseconds=algo_settings().tick_ms), lease_until=None
    )
