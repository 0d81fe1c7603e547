"""Slack incoming webhooks and PagerDuty Events API v2: message bodies and one bounded, retrying POST.

Nothing here touches the database or raises into its caller: :func:`send` returns a
:class:`SendResult` whatever happens (connection refused, timeout, 5xx, 4xx, a bug in a body builder).

Retries (in the call): connection errors, timeouts, 429 and 5xx are transient and retried up to
``ALERTS_HTTP_ATTEMPTS`` times with doubling backoff; any other 4xx is permanent (the request is wrong
and would be refused again). A *read* timeout is ambiguous (the receiver may have processed it):
PagerDuty deduplicates by ``dedup_key``, so a retry is harmless there; a Slack webhook has no
idempotency key, so a retry after a read timeout may post the message twice — we prefer a duplicate
to a lost page (at-least-once).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from django.conf import settings

from core.alerts import conf
from core.alerts.rules import rule_info

logger = logging.getLogger(__name__)

PD_SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning"}
SUMMARY_MAX = 1024
ICON = {"P0": ":red_circle:", "P1": ":large_orange_circle:", "P2": ":large_yellow_circle:"}


@dataclass(frozen=True)
class AlertView:
    """What a message says about an alert (a plain value, so bodies are built without Django)."""

    id: int
    rule: str
    subject: str
    severity: str
    state: str
    message: str
    first_seen: datetime
    last_seen: datetime
    count: int
    escalations: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    acknowledged_by: str = ""
    resolved_by: str = ""


@dataclass(frozen=True)
class SendResult:
    ok: bool
    attempts: int
    status_code: int | None = None
    body: str = ""
    error: str = ""
    transient: bool = False  # worth another round later


def dedup_key(alert_id: int) -> str:
    """Stable per alert (a new alert for the same rule + subject after a resolve is a new incident)."""
    return f"{conf.source()}/alert/{alert_id}"


def alert_link(alert: AlertView) -> str:
    base = conf.console_url()
    return f"{base}/alerts/?state=all#alert-{alert.id}" if base else ""


def _label(alert: AlertView) -> str:
    return f"{alert.rule}{':' + alert.subject if alert.subject else ''}"


def _headline(alert: AlertView, action: str, escalation: int) -> str:
    if action == "trigger":
        return f"{ICON.get(alert.severity, '')} [{alert.severity}] {_label(alert)}"
    if action == "escalate":
        return f":rotating_light: [{alert.severity}] STILL OPEN (escalation {escalation}) {_label(alert)}"
    if action == "acknowledge":
        who = f" by {alert.acknowledged_by}" if alert.acknowledged_by else ""
        return f":white_check_mark: [{alert.severity}] acknowledged{who}: {_label(alert)}"
    who = f" ({alert.resolved_by})" if alert.resolved_by else ""
    return f":large_green_circle: [{alert.severity}] resolved{who}: {_label(alert)}"


def slack_body(alert: AlertView, action: str, escalation: int = 0) -> dict[str, Any]:
    """Incoming-webhook JSON: ``text`` (notification fallback) and ``blocks``."""
    info = rule_info(alert.rule)
    headline = _headline(alert, action, escalation)
    link = alert_link(alert)
    fields = [
        f"*Severity*\n{alert.severity}",
        f"*Rule*\n`{alert.rule}`" + (f" — {info.title}" if info.title else ""),
        f"*Subject*\n{alert.subject or '—'}",
        f"*Count*\n{alert.count}",
        f"*First seen*\n{alert.first_seen:%Y-%m-%d %H:%M:%S} UTC",
        f"*Last seen*\n{alert.last_seen:%Y-%m-%d %H:%M:%S} UTC",
    ]
    context = [f"Runbook: {info.runbook}", f"alert #{alert.id} · {action}"]
    if link:
        context.append(f"<{link}|Open in the XBIT console>")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert.message[:2900] or "—"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": c[:2000]} for c in context]},
    ]
    return {"text": f"{headline} — {alert.message}"[:3000], "blocks": blocks}


def pagerduty_body(alert: AlertView, action: str, escalation: int = 0) -> dict[str, Any]:
    """Events API v2: ``trigger`` (also used to re-notify an escalation: PagerDuty deduplicates it into
    the open incident, or reopens one resolved on its side), ``acknowledge`` and ``resolve``."""

    event: dict[str, Any] = {
        "routing_key": settings.PAGERDUTY_ROUTING_KEY,
        "dedup_key": dedup_key(alert.id),
    }
    if action in ("acknowledge", "resolve"):
        return {**event, "event_action": action}
    info = rule_info(alert.rule)
    prefix = f"[{alert.severity}] {_label(alert)}: "
    if action == "escalate":
        prefix = f"[{alert.severity}] STILL OPEN (escalation {escalation}) {_label(alert)}: "
    body: dict[str, Any] = {
        **event,
        "event_action": "trigger",
        "payload": {
            "summary": (prefix + alert.message)[:SUMMARY_MAX],
            "source": conf.source(),
            "severity": PD_SEVERITY.get(alert.severity, "error"),
            "component": alert.rule,
            "group": alert.subject or alert.rule,
            "class": info.title or alert.rule,
            "custom_details": {
                "alert_id": alert.id,
                "rule": alert.rule,
                "subject": alert.subject,
                "message": alert.message,
                "count": alert.count,
                "escalations": alert.escalations,
                "first_seen": alert.first_seen.isoformat(),
                "last_seen": alert.last_seen.isoformat(),
                "runbook": info.runbook,
                "details": alert.details,
            },
        },
        "client": "XBIT console",
    }
    link = alert_link(alert)
    if link:
        body["client_url"] = link
        body["links"] = [{"href": link, "text": "XBIT console"}]
    return body


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def post_json(url: str, body: dict[str, Any]) -> SendResult:
    """POST ``body`` with explicit timeouts and bounded retries; never raises."""
    attempts, limit, delay = 0, conf.http_attempts(), conf.http_backoff()
    result = SendResult(ok=False, attempts=0, error="not sent")
    while attempts < limit:
        attempts += 1
        try:
            response = requests.post(url, json=body, timeout=conf.http_timeout())
        except requests.Timeout as exc:
            result = SendResult(False, attempts, error=f"timeout: {exc}", transient=True)
        except requests.RequestException as exc:
            result = SendResult(False, attempts, error=f"{type(exc).__name__}: {exc}", transient=True)
        else:
            text = response.text[:500]
            if 200 <= response.status_code < 300:
                return SendResult(True, attempts, response.status_code, text)
            result = SendResult(
                False,
                attempts,
                response.status_code,
                text,
                error=f"HTTP {response.status_code}",
                transient=_transient(response.status_code),
            )
        if not result.transient:
            return result
        if attempts < limit:
            time.sleep(delay)
            delay *= 2
    return result


def send(channel: str, alert: AlertView, action: str, escalation: int = 0) -> SendResult:
    """One notification; a bug or missing configuration comes back as a permanent failure."""

    try:
        if not conf.channel_configured(channel):
            return SendResult(False, 0, error=f"{channel} is not configured")
        if channel == conf.SLACK:
            return post_json(settings.SLACK_WEBHOOK_URL, slack_body(alert, action, escalation))
        if channel == conf.PAGERDUTY:
            return post_json(settings.PAGERDUTY_EVENTS_URL, pagerduty_body(alert, action, escalation))
        return SendResult(False, 0, error=f"unknown channel {channel!r}")
    except Exception as exc:  # never into the caller: the delivery records it
        logger.exception("alert notification failed to build or send")
        return SendResult(False, 0, error=f"{type(exc).__name__}: {exc}")
