"""The dead-man's switch (HL's ``scheduleCancel``): a user sets a time T; at T every open order of the
user (and every live TP/SL trigger) is cancelled unless the user moved or cleared T before. A client
that keeps renewing T while it runs leaves nothing resting when it dies.

Crash-safe and safe in several processes: a due row is claimed by one conditional UPDATE that moves T to
``firing_at`` (committed), the cancellation runs, then ``firing_at`` is cleared. A process that died in
between leaves ``firing_at`` set and the next check cancels again (cancelling is idempotent)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from core.accounts.models import User
from core.errors import ApplicationError, ErrorCode
from trading.config import trading_settings
from trading.models import ScheduledCancel
from trading.orders.bulk import orders_cancel_all

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadmanView:
    cancel_at: datetime | None
    last_fired_at: datetime | None
    fired_count: int


def deadman_get(*, user: User) -> DeadmanView:
    row = ScheduledCancel.objects.filter(user=user).first()
    if row is None:
        return DeadmanView(None, None, 0)
    return DeadmanView(row.cancel_at, row.last_fired_at, row.fired_count)


def deadman_set(*, user: User, cancel_at: datetime | None, now: datetime | None = None) -> DeadmanView:
    """Set (or with None clear) the user's cancel time. Setting the same time again changes nothing;
    a time closer than the configured minimum lead is refused, as HL refuses it."""
    now = now or timezone.now()
    if cancel_at is not None:
        lead = trading_settings().deadman_min_lead_seconds
        if cancel_at < now + timedelta(seconds=lead):
            raise ApplicationError(
                ErrorCode.SCHEDULE_TOO_SOON,
                f"The cancel time must be at least {lead} seconds from now.",
                {"field": "time", "min_lead_seconds": lead},
            )
    with transaction.atomic():
        row, _ = ScheduledCancel.objects.select_for_update().get_or_create(user=user)
        if row.cancel_at != cancel_at:
            row.cancel_at = cancel_at
            row.updated_at = now
            row.save(update_fields=["cancel_at", "updated_at"])
    return DeadmanView(row.cancel_at, row.last_fired_at, row.fired_count)


def deadman_check(*, now: datetime | None = None, limit: int = 200) -> int:
    """Beat task body: claim the due switches and cancel their users' orders. Returns how many fired."""
    now = now or timezone.now()
    table = ScheduledCancel._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # claim: T moves to firing_at in one statement, so two checkers never both claim one switch
        cursor.execute(
            f"UPDATE {table} SET firing_at = cancel_at, cancel_at = NULL, updated_at = %s "  # noqa: S608 - our table
            f"WHERE id IN (SELECT id FROM {table} WHERE cancel_at <= %s AND firing_at IS NULL "
            "ORDER BY cancel_at LIMIT %s FOR UPDATE SKIP LOCKED)",
            [now, now, limit],
        )
    fired = 0
    for row in ScheduledCancel.objects.filter(firing_at__isnull=False).select_related("user")[:limit]:
        try:
            result = orders_cancel_all(user=row.user)
        except Exception:  # one user's failure (HL down) must not stop the others; retried next tick
            logger.exception("dead-man's switch of user %s failed; retrying", row.user_id)
            continue
        failed = [r for r in result.orders if r.error is not None]
        if failed:
            # an order still being placed, or HL not answering: keep firing until every one is done
            logger.warning(
                "dead-man's switch of user %s: %d orders not cancelled yet", row.user_id, len(failed)
            )
            continue
        ScheduledCancel.objects.filter(pk=row.pk, firing_at=row.firing_at).update(
            last_fired_at=row.firing_at,
            firing_at=None,
            fired_count=row.fired_count + 1,
            updated_at=timezone.now(),
        )
        fired += 1
    return fired
