"""Alert notifications: plan a :class:`Delivery` per (alert, channel, action, escalation), send it from a
Celery task, escalate open alerts, and reconcile deliveries with alert state.

Flow::

    alert_raise / alert_acknowledge / alert_resolve_*  ──outbox──▶  xbit:events
        ──▶ run_alert_notifier (consumer group "alerts.notifier", exactly-once per event)
              plans Delivery rows in the same transaction as its idempotency record
        ──on commit──▶ alerts.deliver(delivery_id) on queue "default" ──▶ Slack / PagerDuty
    beat "alerts.tick" (60 s): escalations, reconciliation with alert state, re-drive of due rows

Guarantees, honestly:

* A delivery is planned once (unique key), and a delivery recorded as ``sent`` is never sent again,
  however often its task is retried or re-driven.
* Sending is claimed first (``sending`` + a lease committed before the request), so a second task for
  the same row inside the lease does nothing: no double send from concurrent or retried tasks.
* The boundary: a sender that dies after the receiver processed the request but before ``sent`` is
  recorded leaves a ``sending`` row; when its lease expires (``ALERTS_DELIVERY_LEASE_SECONDS``) the row
  is sent again. PagerDuty deduplicates that by ``dedup_key`` (same incident, no second page); Slack
  has no idempotency key, so that one crash window can post a Slack message twice. Delivery is
  at-least-once; exactly-once only where the receiver deduplicates.
* Follow-ups on a channel (acknowledge, resolve, escalate) wait until that channel's trigger is sent
  and are cancelled if it never was (nothing to acknowledge), so PagerDuty never sees a resolve
  before its trigger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from core.alerts import conf, notifiers
from core.alerts.models import Alert, Delivery
from core.events.services import Event, consume_batch, ensure_group, redis_client
from core.loops import Backoff

logger = logging.getLogger(__name__)

DELIVER_TASK = "alerts.deliver"  # core.alerts.tasks.deliver_task, sent by name: tasks sit above this module

CONSUMER_GROUP = "alerts.notifier"
TOPIC_ACTIONS = {
    "alert.raised": Delivery.Action.TRIGGER,
    "alert.upgraded": Delivery.Action.TRIGGER,
    "alert.acknowledged": Delivery.Action.ACKNOWLEDGE,
    "alert.resolved": Delivery.Action.RESOLVE,
}
TOPICS = set(TOPIC_ACTIONS)
FOLLOW_UP_WAIT = timedelta(seconds=5)
RECONCILE_WINDOW = timedelta(days=1)
S = Delivery.Status
A = Delivery.Action


def _backoff(rounds: int) -> timedelta:
    """Between send rounds: 30 s, 1 min, 2 min, 4 min, … capped at 10 min."""
    return timedelta(seconds=min(30 * 2 ** max(rounds - 1, 0), 600))


# ---------------------------------------------------------------------------------------- planning
def deliveries_plan(
    *, alert: Alert, action: str, channels: Iterable[str], escalation: int = 0, now: datetime | None = None
) -> list[int]:
    """Create the deliveries that do not exist yet and send them after commit. Returns the new ids.
    Idempotency key: (alert, channel, action, escalation)."""
    now = now or timezone.now()
    created: list[int] = []
    for channel in channels:
        delivery, new = Delivery.objects.get_or_create(
            alert=alert,
            channel=channel,
            action=action,
            escalation=escalation,
            defaults={"next_attempt_at": now, "created_at": now, "updated_at": now},
        )
        if new:
            created.append(delivery.pk)
    if created:
        transaction.on_commit(lambda: deliveries_enqueue(created))
    return created


def deliveries_enqueue(ids: Iterable[int]) -> None:
    """Hand deliveries to Celery; a broker hiccup only delays them (the tick re-drives due rows)."""
    for delivery_id in ids:
        try:
            current_app.tasks[DELIVER_TASK].apply_async(args=[delivery_id], queue="default")
        except Exception:
            logger.warning("could not enqueue alert delivery %s; the tick re-drives it", delivery_id)


def _triggered_channels(alert: Alert) -> list[str]:
    return list(
        Delivery.objects.filter(alert=alert, action=A.TRIGGER)
        .exclude(status__in=[S.FAILED, S.CANCELLED])
        .values_list("channel", flat=True)
    )


def notifier_handle(event: Event) -> None:
    """Outbox consumer: runs inside ``handle_once``'s transaction (the plan commits with the record
    that the event was handled). No network here."""
    action = TOPIC_ACTIONS.get(event.topic)
    alert = Alert.objects.filter(pk=event.payload.get("id")).first()
    if action is None or alert is None:
        return
    if event.topic == "alert.upgraded" and alert.state != Alert.State.OPEN:
        return  # already acknowledged (or resolved): someone is on it, a higher severity pages nobody
    if action == A.TRIGGER:
        channels = conf.routes(alert.severity)
        if channels and alert.last_notified_at is None:
            Alert.objects.filter(pk=alert.pk, last_notified_at__isnull=True).update(
                last_notified_at=timezone.now()
            )
    else:
        channels = _triggered_channels(alert)
    deliveries_plan(alert=alert, action=action, channels=channels)


def notifier_consume_batch(*, consumer_name: str, block_ms: int = 1000, client: Any = None) -> int:
    return consume_batch(
        group=CONSUMER_GROUP,
        consumer_name=consumer_name,
        handler=notifier_handle,
        topics=TOPICS,
        block_ms=block_ms,
        client=client,
    )


def run_notifier(*, consumer_name: str, stop: Callable[[], bool], block_ms: int = 1000) -> int:
    """The ``run_alert_notifier`` loop. A new group starts at the stream's end (no replay of history;
    the tick's reconciliation covers whatever was raised before the first start)."""

    client = redis_client()
    ensure_group(client, CONSUMER_GROUP, start="$")
    handled = 0
    backoff = Backoff()  # database or Redis away: close the broken connection, no busy loop
    while not stop():
        try:
            handled += notifier_consume_batch(consumer_name=consumer_name, block_ms=block_ms, client=client)
            backoff.succeeded()
        except Exception:
            logger.exception("alert notifier batch failed; retrying")
            backoff.failed(stop)
    return handled


# ----------------------------------------------------------------------------------------- sending
def _view(alert: Alert) -> notifiers.AlertView:
    return notifiers.AlertView(
        id=alert.pk,
        rule=alert.rule,
        subject=alert.subject,
        severity=alert.severity,
        state=alert.state,
        message=alert.message,
        first_seen=alert.first_seen,
        last_seen=alert.last_seen,
        count=alert.count,
        escalations=alert.escalations,
        details=alert.details or {},
        acknowledged_by=getattr(alert.acknowledged_by, "email", "") if alert.acknowledged_by_id else "",
        resolved_by=alert.resolved_by_label,
    )


def _skip_reason(delivery: Delivery, alert: Alert, now: datetime) -> tuple[str, str] | None:
    """("cancel", why) / ("wait", why) for a follow-up that must not go out now; None to send."""
    if delivery.action == A.TRIGGER:
        return None
    if delivery.action == A.ESCALATE and alert.state != Alert.State.OPEN:
        return "cancel", f"alert {alert.state} before the escalation went out"
    siblings = dict(
        Delivery.objects.filter(alert=alert, channel=delivery.channel, escalation=0)
        .exclude(pk=delivery.pk)
        .values_list("action", "status")
    )
    trigger = siblings.get(A.TRIGGER)
    if trigger in (None, S.FAILED, S.CANCELLED):
        return "cancel", "the trigger was never delivered on this channel"
    if trigger in (S.PENDING, S.SENDING):
        return "wait", "waiting for the trigger on this channel"
    if delivery.action == A.ACKNOWLEDGE and A.RESOLVE in siblings:
        return "cancel", "resolved: the resolve supersedes the acknowledge"
    return None


def delivery_claim(
    *, delivery_id: int, now: datetime | None = None
) -> tuple[Delivery, notifiers.AlertView] | None:
    """Claim a due delivery for sending: ``sending`` with a lease, committed before any request. None
    when there is nothing to send now (sent, failed, cancelled, not due, another sender's lease)."""
    now = now or timezone.now()
    with transaction.atomic():
        # lock the row so two tasks for the same delivery cannot both claim it
        delivery = Delivery.objects.select_for_update(skip_locked=True).filter(pk=delivery_id).first()
        if (
            delivery is None
            or delivery.status not in (S.PENDING, S.SENDING)
            or delivery.next_attempt_at > now
        ):
            return None
        alert = Alert.objects.select_related("acknowledged_by").get(pk=delivery.alert_id)
        skip = _skip_reason(delivery, alert, now)
        if skip is not None:
            verdict, why = skip
            if verdict == "cancel":
                delivery.status, delivery.error, delivery.lease_until = S.CANCELLED, why, None
            else:
                delivery.status, delivery.next_attempt_at = S.PENDING, now + FOLLOW_UP_WAIT
            delivery.updated_at = now
            delivery.save(update_fields=["status", "error", "lease_until", "next_attempt_at", "updated_at"])
            return None
        lease = now + conf.delivery_lease()
        delivery.status, delivery.lease_until, delivery.next_attempt_at = S.SENDING, lease, lease
        delivery.rounds += 1
        delivery.updated_at = now
        delivery.save(update_fields=["status", "lease_until", "next_attempt_at", "rounds", "updated_at"])
        return delivery, _view(alert)


def delivery_record(*, delivery: Delivery, result: notifiers.SendResult, now: datetime | None = None) -> None:
    """Write the outcome of a claimed send: sent, failed, or pending again with backoff."""
    now = now or timezone.now()
    fields: dict[str, Any] = {
        "attempts": F("attempts") + result.attempts,
        "response_code": result.status_code,
        "response_body": result.body[:500],
        "error": result.error,
        "lease_until": None,
        "updated_at": now,
    }
    if result.ok:
        fields.update(status=S.SENT, sent_at=now, error="")
    elif result.transient and delivery.rounds < conf.delivery_rounds():
        fields.update(status=S.PENDING, next_attempt_at=now + _backoff(delivery.rounds))
    else:
        fields.update(status=S.FAILED)
    Delivery.objects.filter(pk=delivery.pk, status=S.SENDING).update(**fields)
    if not result.ok:
        logger.warning(
            "alert delivery %s (%s %s) not sent: %s",
            delivery.pk,
            delivery.channel,
            delivery.action,
            result.error,
        )


def delivery_send(*, delivery_id: int, now: datetime | None = None) -> Delivery | None:
    """Claim, send, record. Safe to run twice: a sent row is never sent again. Never raises for a
    channel failure (the row records it); returns the row as recorded, or None if nothing was sent."""
    claimed = delivery_claim(delivery_id=delivery_id, now=now)
    if claimed is None:
        return None
    delivery, view = claimed
    result = notifiers.send(delivery.channel, view, delivery.action, delivery.escalation)
    delivery_record(delivery=delivery, result=result, now=now)
    delivery.refresh_from_db()
    return delivery


def deliveries_due(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(status__in=[S.PENDING, S.SENDING], next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def deliveries_send_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Send every due delivery inline (tests, and a worker-less emergency); returns how many were
    sent. Rounds repeat so a follow-up waiting on its trigger goes out in the same call."""
    sent = 0
    for _round in range(3):
        progressed = False
        for delivery_id in deliveries_due(now=now, limit=limit):
            row = delivery_send(delivery_id=delivery_id, now=now)
            if row is not None and row.status == S.SENT:
                sent += 1
                progressed = True
        if not progressed:
            break
        now = now + FOLLOW_UP_WAIT if now is not None else None
    return sent


# ------------------------------------------------------------------------- escalation and reconcile
def alerts_escalate(*, now: datetime | None = None) -> int:
    """Re-notify open (unacknowledged) alerts whose severity escalates and whose last notification is
    older than the interval: ``escalations`` + 1 and an ``escalate`` delivery per routed channel.
    Idempotency key: (alert, channel, "escalate", n)."""
    now = now or timezone.now()
    escalated = 0
    for severity in Alert.Severity.values:
        interval = conf.escalate_interval(severity)
        if interval is None:
            continue
        cutoff = now - interval
        candidates = Alert.objects.filter(state=Alert.State.OPEN, severity=severity).filter(
            Q(last_notified_at__lte=cutoff) | Q(last_notified_at__isnull=True, first_seen__lte=cutoff)
        )
        for alert_id in candidates.values_list("id", flat=True):
            with transaction.atomic():
                # re-check under the row lock: an ack, a resolve or another tick may have won the race
                alert = (
                    Alert.objects.select_for_update()
                    .filter(pk=alert_id, state=Alert.State.OPEN)
                    .filter(
                        Q(last_notified_at__lte=cutoff)
                        | Q(last_notified_at__isnull=True, first_seen__lte=cutoff)
                    )
                    .first()
                )
                if alert is None:
                    continue
                alert.escalations += 1
                alert.last_notified_at = now
                alert.save(update_fields=["escalations", "last_notified_at"])
                deliveries_plan(
                    alert=alert,
                    action=A.ESCALATE,
                    channels=conf.routes(alert.severity),
                    escalation=alert.escalations,
                    now=now,
                )
                escalated += 1
    return escalated


def alerts_reconcile(*, now: datetime | None = None) -> int:
    """Level-triggered safety net for the event-driven path: every open alert has a trigger on each
    channel its (possibly upgraded) severity routes to; acknowledged and recently resolved alerts have
    their acknowledge / resolve wherever a trigger went. Returns how many deliveries it planned."""
    now = now or timezone.now()
    planned = 0
    with transaction.atomic():
        for alert in Alert.objects.filter(state=Alert.State.OPEN):
            have = set(alert.deliveries.filter(action=A.TRIGGER).values_list("channel", flat=True))
            missing = [c for c in conf.routes(alert.severity) if c not in have]
            if missing:
                planned += len(deliveries_plan(alert=alert, action=A.TRIGGER, channels=missing, now=now))
        for state, action, since in (
            (Alert.State.ACKNOWLEDGED, A.ACKNOWLEDGE, "alert__acknowledged_at__gte"),
            (Alert.State.RESOLVED, A.RESOLVE, "alert__resolved_at__gte"),
        ):
            follow_up = Delivery.objects.filter(
                alert_id=OuterRef("alert_id"), channel=OuterRef("channel"), action=action
            )
            triggers = (
                Delivery.objects.filter(
                    action=A.TRIGGER, alert__state=state, **{since: now - RECONCILE_WINDOW}
                )
                .exclude(status__in=[S.FAILED, S.CANCELLED])
                .filter(~Exists(follow_up))
                .select_related("alert")
            )
            for trigger in triggers:
                planned += len(
                    deliveries_plan(alert=trigger.alert, action=action, channels=[trigger.channel], now=now)
                )
    return planned


def alerts_tick(*, now: datetime | None = None) -> dict[str, int]:
    """The beat task's work: escalate, reconcile, then hand every due delivery to the workers."""
    now = now or timezone.now()
    escalated = alerts_escalate(now=now)
    planned = alerts_reconcile(now=now)
    due = deliveries_due(now=now)
    deliveries_enqueue(due)
    return {"escalated": escalated, "reconciled": planned, "redriven": len(due)}
