"""Raise, acknowledge and resolve alerts. Notifiers (Slack, PagerDuty: ``notifications.py``) subscribe to
the outbox topics ``alert.raised`` / ``alert.upgraded`` / ``alert.acknowledged`` / ``alert.resolved``;
nothing here talks to a network."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core import metrics
from core.alerts.models import Alert
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.events.services import outbox_emit


def alert_raise(
    *, rule: str, severity: str, message: str, subject: str = "", details: dict[str, Any] | None = None
) -> Alert:
    """Open an alert, or bump the open one for the same rule + subject (dedup). A higher severity on a
    repeat upgrades the alert; a lower one never downgrades it."""
    if severity not in Alert.Severity.values:
        raise ValueError(f"unknown severity {severity!r}")
    now = timezone.now()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                existing = (
                    Alert.objects.select_for_update()
                    .filter(rule=rule, subject=subject)
                    .exclude(state=Alert.State.RESOLVED)
                    .first()
                )
                if existing is not None:
                    upgraded = severity < existing.severity  # "P0" < "P1" < "P2"
                    Alert.objects.filter(pk=existing.pk).update(
                        count=F("count") + 1,
                        last_seen=now,
                        message=message,
                        details=details or existing.details,
                        severity=min(existing.severity, severity),  # "P0" < "P1" < "P2"
                    )
                    existing.refresh_from_db()
                    if upgraded:  # the notifier pages the channels the higher severity routes to
                        outbox_emit(
                            topic="alert.upgraded",
                            aggregate=f"alert:{existing.pk}",
                            payload={
                                "id": existing.pk,
                                "rule": rule,
                                "subject": subject,
                                "severity": severity,
                            },
                        )
                    return existing
                alert = Alert.objects.create(
                    rule=rule, subject=subject, severity=severity, message=message, details=details or {}
                )
                outbox_emit(
                    topic="alert.raised",
                    aggregate=f"alert:{alert.pk}",
                    payload={
                        "id": alert.pk,
                        "rule": rule,
                        "subject": subject,
                        "severity": severity,
                        "message": message,
                    },
                )
                metrics.ALERTS_RAISED.labels(rule, severity).inc()
                return alert
        except IntegrityError:
            continue  # a concurrent raise created it first; loop round and bump that one
    raise RuntimeError(f"could not raise alert {rule}:{subject}")


def alert_resolve_condition(*, rule: str, subject: str = "", note: str = "condition cleared") -> int:
    """Auto-resolve: the condition behind the rule no longer holds."""
    with transaction.atomic():
        alerts = list(
            Alert.objects.select_for_update()
            .filter(rule=rule, subject=subject)
            .exclude(state=Alert.State.RESOLVED)
        )
        for alert in alerts:
            alert.state = Alert.State.RESOLVED
            alert.resolved_at = timezone.now()
            alert.resolved_by_label = f"auto: {note}"
            alert.save(update_fields=["state", "resolved_at", "resolved_by_label"])
            outbox_emit(
                topic="alert.resolved",
                aggregate=f"alert:{alert.pk}",
                payload={"id": alert.pk, "rule": rule, "subject": subject, "severity": alert.severity},
            )
        return len(alerts)


@transaction.atomic
def alert_acknowledge(*, alert_id: int, acting_user: Any, request: Any = None) -> Alert:
    alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
    if alert is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such alert.")
    if alert.state != Alert.State.OPEN:
        raise ApplicationError(ErrorCode.INVALID_STATE, f"The alert is {alert.state}.")
    alert.state = Alert.State.ACKNOWLEDGED
    alert.acknowledged_by = acting_user
    alert.acknowledged_at = timezone.now()
    alert.save(update_fields=["state", "acknowledged_by", "acknowledged_at"])
    outbox_emit(  # the notifier acknowledges the PagerDuty incident (escalation stops here too)
        topic="alert.acknowledged",
        aggregate=f"alert:{alert.pk}",
        payload={
            "id": alert.pk,
            "rule": alert.rule,
            "subject": alert.subject,
            "severity": alert.severity,
            "by": getattr(acting_user, "email", ""),
        },
    )
    audit_record(
        action="alert.acknowledge",
        actor=acting_user,
        request=request,
        object_type="alert",
        object_id=alert.pk,
        before={"state": Alert.State.OPEN},
        after={"state": alert.state},
    )
    return alert


@transaction.atomic
def alert_resolve_manual(*, alert_id: int, acting_user: Any, reason: str, request: Any = None) -> Alert:
    alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
    if alert is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such alert.")
    if alert.state == Alert.State.RESOLVED:
        return alert
    if not reason.strip():
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "A reason is required to resolve an alert by hand."
        )
    before = alert.state
    alert.state = Alert.State.RESOLVED
    alert.resolved_at = timezone.now()
    alert.resolved_by_label = getattr(acting_user, "email", "operator")
    alert.save(update_fields=["state", "resolved_at", "resolved_by_label"])
    audit_record(
        action="alert.resolve",
        actor=acting_user,
        request=request,
        object_type="alert",
        object_id=alert.pk,
        before={"state": before},
        after={"state": alert.state},
        reason=reason,
    )
    outbox_emit(
        topic="alert.resolved",
        aggregate=f"alert:{alert.pk}",
        payload={"id": alert.pk, "rule": alert.rule, "subject": alert.subject, "severity": alert.severity},
    )
    return alert
