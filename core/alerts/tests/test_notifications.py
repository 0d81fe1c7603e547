"""Alert notifications end to end against the real Slack/PagerDuty receivers of the sandbox: outbox →
notifier consumer → Delivery rows → send → what the receivers got."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.accounts.roles import Role
from core.alerts import notifiers
from core.alerts.models import Alert, Delivery
from core.alerts.notifications import (
    alerts_escalate,
    alerts_reconcile,
    deliveries_send_due,
    delivery_claim,
    delivery_send,
    notifier_consume_batch,
)
from core.alerts.services import alert_acknowledge, alert_raise, alert_resolve_condition
from core.alerts.tasks import deliver_task
from core.alerts.tests.conftest import ROUTING_KEY, Receivers
from core.events.services import outbox_relay_batch

pytestmark = pytest.mark.django_db


def pump(now: datetime | None = None) -> int:
    """What the relay, the notifier process and the workers do: publish, plan, send what is due."""
    outbox_relay_batch()
    notifier_consume_batch(consumer_name="test", block_ms=1)
    return deliveries_send_due(now=now or timezone.now())


def hot_wallet_p0(message: str = "TRON hot wallet 80,000 is below 100,000") -> Alert:
    return alert_raise(rule="wallets.hot_wallet_critical", subject="TRON", severity="P0", message=message)


def deliveries(alert: Alert) -> list[tuple[str, str, int, str]]:
    return [
        (d.channel, d.action, d.escalation, d.status)
        for d in Delivery.objects.filter(alert=alert).order_by("id")
    ]


def test_a_p0_raise_pages_pagerduty_and_posts_to_slack_exactly_once(receivers: Receivers) -> None:
    alert = hot_wallet_p0()
    hot_wallet_p0("TRON hot wallet 70,000 is below 100,000")  # repeats are deduplicated into one alert
    hot_wallet_p0("TRON hot wallet 60,000 is below 100,000")
    assert pump() == 2
    pump()  # nothing new: a sent delivery is never sent again
    for d in Delivery.objects.filter(alert=alert):
        deliver_task(d.pk)  # a retried / duplicated task is a no-op after success

    (pd,) = receivers.pagerduty()
    assert pd["status"] == 202  # the receiver validates like PagerDuty (400 with the errors otherwise)
    assert pd["body"]["routing_key"] == ROUTING_KEY
    event = pd["body"]
    assert event["event_action"] == "trigger" and event["dedup_key"] == f"xbit-test/alert/{alert.pk}"
    payload = event["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "xbit-test"
    assert payload["summary"].startswith("[P0] wallets.hot_wallet_critical:TRON: TRON hot wallet")
    assert payload["custom_details"]["rule"] == "wallets.hot_wallet_critical"
    assert "cold" in payload["custom_details"]["runbook"]
    assert event["client_url"] == f"https://console.xbit.test/alerts/?state=all#alert-{alert.pk}"
    assert receivers.incidents()[event["dedup_key"]]["status"] == "triggered"

    (slack,) = receivers.slack()
    assert slack["status"] == 200 and slack["response"] == "ok"
    body = slack["body"]
    text = json.dumps(body["blocks"])
    assert body["text"].startswith(":red_circle: [P0] wallets.hot_wallet_critical:TRON")
    for expected in ("*Severity*\\nP0", "*Count*\\n3", "First seen", "Last seen", "Hot wallet below 100,000"):
        assert expected in text
    assert "https://console.xbit.test/alerts/" in text
    assert deliveries(alert) == [("pagerduty", "trigger", 0, "sent"), ("slack", "trigger", 0, "sent")]


def test_severity_routes_p1_to_slack_and_p2_too_and_an_upgrade_pages(receivers: Receivers) -> None:
    drift = alert_raise(rule="risk.drift", subject="ETH", severity="P1", message="drift 2.1%")
    held = alert_raise(rule="wallets.deposit_held", subject="41", severity="P2", message="held")
    pump()
    assert deliveries(drift) == [("slack", "trigger", 0, "sent")]
    assert deliveries(held) == [("slack", "trigger", 0, "sent")]
    assert receivers.pagerduty() == []
    # the same drift gets worse: the alert is upgraded to P0 and now pages
    alert_raise(rule="risk.drift", subject="ETH", severity="P0", message="drift 6.3%")
    pump()
    assert deliveries(drift) == [("slack", "trigger", 0, "sent"), ("pagerduty", "trigger", 0, "sent")]
    (pd,) = receivers.pagerduty()
    assert pd["body"]["payload"]["severity"] == "critical" and "6.3%" in pd["body"]["payload"]["summary"]


def test_routing_is_configurable_per_severity(receivers: Receivers, settings: Any) -> None:
    settings.ALERTS_ROUTES = {"P1": ["slack", "pagerduty"], "P2": []}
    p1 = alert_raise(rule="marketdata.feed_down", subject="main", severity="P1", message="no data 12 s")
    p2 = alert_raise(rule="wallets.deposit_held", subject="7", severity="P2", message="held")
    pump()
    assert {c for c, *_ in deliveries(p1)} == {"slack", "pagerduty"}
    assert deliveries(p2) == []  # console only
    assert receivers.pagerduty()[0]["body"]["payload"]["severity"] == "error"


def test_escalation_re_notifies_an_open_alert_after_its_interval(receivers: Receivers) -> None:
    alert = hot_wallet_p0()
    assert pump() == 2
    t0 = timezone.now()
    assert alerts_escalate(now=t0 + timedelta(minutes=4, seconds=50)) == 0
    assert alerts_escalate(now=t0 + timedelta(minutes=5, seconds=1)) == 1
    assert alerts_escalate(now=t0 + timedelta(minutes=5, seconds=30)) == 0  # once per interval
    assert pump(t0 + timedelta(minutes=5, seconds=2)) == 2
    alert.refresh_from_db()
    assert alert.escalations == 1
    slack = receivers.slack()
    assert len(slack) == 2 and "STILL OPEN (escalation 1)" in slack[1]["body"]["text"]
    pd = receivers.pagerduty()
    assert [m["body"]["event_action"] for m in pd] == ["trigger", "trigger"]
    incident = receivers.incidents()[f"xbit-test/alert/{alert.pk}"]
    assert incident["opened"] == 1 and incident["events"] == ["trigger", "trigger"]  # deduplicated
    assert alerts_escalate(now=t0 + timedelta(minutes=10, seconds=3)) == 1
    pump(t0 + timedelta(minutes=10, seconds=4))
    assert len(receivers.slack()) == 3
    alert_resolve_condition(rule="wallets.hot_wallet_critical", subject="TRON")
    # P1 escalates every 15 minutes, P2 never
    p1 = alert_raise(rule="risk.drift", subject="SOL", severity="P1", message="1.5%")
    p2 = alert_raise(rule="wallets.deposit_held", subject="9", severity="P2", message="held")
    later = timezone.now()
    assert alerts_escalate(now=later + timedelta(minutes=14)) == 0
    assert alerts_escalate(now=later + timedelta(minutes=15, seconds=1)) == 1
    assert alerts_escalate(now=later + timedelta(days=1)) == 1  # the P1 again; the P2 never
    p1.refresh_from_db()
    p2.refresh_from_db()
    assert p1.escalations == 2 and p2.escalations == 0


def test_acknowledging_from_the_console_acknowledges_pagerduty_and_stops_escalation(
    receivers: Receivers, console_as: Any
) -> None:
    alert = hot_wallet_p0()
    pump()
    t0 = timezone.now()
    client = console_as(Role.OPERATIONS)
    client.post(f"/alerts/{alert.pk}/ack/")
    pump()
    incident = receivers.incidents()[f"xbit-test/alert/{alert.pk}"]
    assert incident["status"] == "acknowledged" and incident["events"] == ["trigger", "acknowledge"]
    ack = receivers.pagerduty()[-1]
    assert ack["status"] == 202 and ack["body"]["event_action"] == "acknowledge"
    assert "acknowledged by " + client.staff_user.email in receivers.slack()[-1]["body"]["text"]
    assert alerts_escalate(now=t0 + timedelta(hours=1)) == 0  # acknowledged alerts do not escalate
    html = client.get("/alerts/", {"state": "acknowledged"}).content.decode()
    assert "PagerDuty acknowledge" in html and "Slack trigger" in html and "sent" in html


def test_auto_resolve_resolves_the_incident_and_posts_to_slack(receivers: Receivers) -> None:
    alert = hot_wallet_p0()
    pump()
    assert alert_resolve_condition(rule="wallets.hot_wallet_critical", subject="TRON") == 1
    pump()
    incident = receivers.incidents()[f"xbit-test/alert/{alert.pk}"]
    assert incident["status"] == "resolved"
    resolve = receivers.pagerduty()[-1]
    assert resolve["status"] == 202 and resolve["body"]["event_action"] == "resolve"
    assert "resolved (auto: condition cleared)" in receivers.slack()[-1]["body"]["text"]
    assert deliveries(alert)[-2:] == [("pagerduty", "resolve", 0, "sent"), ("slack", "resolve", 0, "sent")]
    # the condition comes back: a new alert, a new incident
    again = hot_wallet_p0()
    pump()
    assert (
        again.pk != alert.pk and receivers.incidents()[f"xbit-test/alert/{again.pk}"]["status"] == "triggered"
    )


def test_a_resolve_never_overtakes_its_trigger(receivers: Receivers) -> None:
    alert = hot_wallet_p0()
    alert_resolve_condition(rule="wallets.hot_wallet_critical", subject="TRON")  # flaps before any send
    outbox_relay_batch()
    notifier_consume_batch(consumer_name="test", block_ms=1)
    resolve = Delivery.objects.get(alert=alert, channel="pagerduty", action="resolve")
    now = timezone.now()
    assert delivery_send(delivery_id=resolve.pk, now=now) is None  # waits for the trigger
    resolve.refresh_from_db()
    assert resolve.status == "pending" and resolve.next_attempt_at > now and receivers.pagerduty() == []
    deliveries_send_due(now=now)
    assert [m["body"]["event_action"] for m in receivers.pagerduty()] == ["trigger", "resolve"]
    assert receivers.incidents()[f"xbit-test/alert/{alert.pk}"]["status"] == "resolved"


def test_a_receiver_failure_is_retried_and_recorded(receivers: Receivers) -> None:
    receivers.fail(channel="pagerduty", mode="error", status=500, count=1)
    alert = hot_wallet_p0()
    pump()
    pd = Delivery.objects.get(alert=alert, channel="pagerduty")
    assert pd.status == "sent" and pd.attempts == 2 and pd.response_code == 202  # retried in the call
    assert [m["status"] for m in receivers.pagerduty()] == [500, 202]

    # a longer outage: the round gives up, the row waits with backoff, a later round delivers
    receivers.fail(channel="slack", mode="error", status=503, count=3)
    p1 = alert_raise(rule="wallets.liquidity_coverage", severity="P1", message="coverage 8%")
    outbox_relay_batch()
    notifier_consume_batch(consumer_name="test", block_ms=1)
    t0 = timezone.now()
    deliveries_send_due(now=t0)
    slack = Delivery.objects.get(alert=p1, channel="slack")
    assert slack.status == "pending" and slack.attempts == 3 and slack.rounds == 1
    assert slack.response_code == 503 and slack.error == "HTTP 503"
    assert slack.next_attempt_at == t0 + timedelta(seconds=30)
    assert deliveries_send_due(now=t0 + timedelta(seconds=10)) == 0  # not due yet
    assert deliveries_send_due(now=t0 + timedelta(seconds=31)) == 1
    slack.refresh_from_db()
    assert slack.status == "sent" and slack.attempts == 4 and slack.rounds == 2 and slack.error == ""


def test_a_refused_event_fails_without_retries(receivers: Receivers, settings: Any) -> None:
    settings.PAGERDUTY_ROUTING_KEY = "K" * 32  # not the integration's key: PagerDuty answers 400
    alert = hot_wallet_p0()
    pump()
    pd = Delivery.objects.get(alert=alert, channel="pagerduty")
    assert pd.status == "failed" and pd.attempts == 1 and pd.response_code == 400
    assert "Invalid routing key" in pd.response_body
    # no follow-up goes to a channel that never got its trigger
    alert_resolve_condition(rule="wallets.hot_wallet_critical", subject="TRON")
    pump()
    assert len(receivers.pagerduty()) == 1
    assert deliveries(alert)[1:] == [("slack", "trigger", 0, "sent"), ("slack", "resolve", 0, "sent")]


def test_an_unreachable_receiver_never_raises_into_the_caller(receivers: Receivers, settings: Any) -> None:
    settings.SLACK_WEBHOOK_URL = "http://127.0.0.1:9/slack/closed"  # discard port: connection refused
    alert = alert_raise(rule="wallets.liquidity_coverage", severity="P1", message="coverage 8%")
    pump()
    row = Delivery.objects.get(alert=alert)
    assert row.status == "pending" and row.attempts == 3 and "ConnectionError" in row.error


def test_a_timeout_is_retried_pagerduty_dedups_it_slack_may_duplicate(receivers: Receivers) -> None:
    receivers.fail(mode="hang", hang_seconds=1.5, count=1, channel="pagerduty")  # the first request
    receivers.fail(mode="hang", hang_seconds=1.5, count=1, channel="slack")  # of each channel hangs
    alert = hot_wallet_p0()
    pump()
    assert [d[3] for d in deliveries(alert)] == ["sent", "sent"]
    assert Delivery.objects.get(alert=alert, channel="pagerduty").attempts == 2
    incident = receivers.incidents()[f"xbit-test/alert/{alert.pk}"]
    assert incident["opened"] == 1  # PagerDuty processed both, one incident
    # the hung Slack request was processed too: the at-least-once boundary of a keyless webhook
    assert len(receivers.slack()) == 2


def test_a_crash_between_sending_and_recording_never_double_sends_within_the_lease(
    receivers: Receivers, settings: Any
) -> None:
    settings.ALERTS_DELIVERY_LEASE_SECONDS = 60
    alert = hot_wallet_p0()
    outbox_relay_batch()
    notifier_consume_batch(consumer_name="test", block_ms=1)
    t0 = timezone.now()
    for row in Delivery.objects.filter(alert=alert):
        claimed = delivery_claim(delivery_id=row.pk, now=t0)
        assert claimed is not None
        delivery, view = claimed
        assert notifiers.send(delivery.channel, view, delivery.action).ok
        # … the worker dies here: "sent" is never recorded
    assert len(receivers.slack()) == 1 and len(receivers.pagerduty()) == 1
    # the task is retried (acks_late redelivery, the tick's re-drive) inside the lease: nothing is sent
    for row in Delivery.objects.filter(alert=alert):
        assert delivery_send(delivery_id=row.pk, now=t0 + timedelta(seconds=30)) is None
        deliver_task(row.pk)
    assert deliveries_send_due(now=t0 + timedelta(seconds=59)) == 0
    assert len(receivers.slack()) == 1 and len(receivers.pagerduty()) == 1
    # the lease expires: the row is sent again (at-least-once). PagerDuty dedups by dedup_key;
    # Slack has no key, so this is where a duplicate Slack message can happen.
    assert deliveries_send_due(now=t0 + timedelta(seconds=61)) == 2
    incident = receivers.incidents()[f"xbit-test/alert/{alert.pk}"]
    assert incident["opened"] == 1 and incident["events"] == ["trigger", "trigger"]
    assert len(receivers.slack()) == 2
    assert {d[3] for d in deliveries(alert)} == {"sent"}


def test_reconciliation_catches_alerts_the_event_path_missed(receivers: Receivers, settings: Any) -> None:
    settings.SLACK_WEBHOOK_URL = ""
    settings.PAGERDUTY_EVENTS_URL = ""
    alert = hot_wallet_p0()  # raised while no channel was configured: console only
    pump()
    assert deliveries(alert) == []
    settings.SLACK_WEBHOOK_URL = receivers.base + "/slack/services/T1/B1/xbit"
    settings.PAGERDUTY_EVENTS_URL = receivers.base + "/pagerduty/v2/enqueue"
    assert alerts_reconcile() == 2
    assert alerts_reconcile() == 0  # idempotent
    deliveries_send_due(now=timezone.now())
    # an acknowledge whose event was lost (say, consumed by a pod that died) is planned from state
    Alert.objects.filter(pk=alert.pk).update(state="acknowledged", acknowledged_at=timezone.now())
    assert alerts_reconcile() == 2
    deliveries_send_due(now=timezone.now())
    assert receivers.incidents()[f"xbit-test/alert/{alert.pk}"]["status"] == "acknowledged"


def test_no_channel_configured_means_console_only(settings: Any) -> None:
    settings.SLACK_WEBHOOK_URL = ""
    settings.PAGERDUTY_EVENTS_URL = ""
    alert = hot_wallet_p0()
    assert pump() == 0 and deliveries(alert) == []
    assert alerts_escalate(now=timezone.now() + timedelta(minutes=6)) == 1  # still counted for the console


def test_alert_acknowledge_emits_its_event(make_staff: Any) -> None:
    from core.events.models import OutboxEvent

    alert = hot_wallet_p0()
    alert_acknowledge(alert_id=alert.pk, acting_user=make_staff(Role.OPERATIONS))
    event = OutboxEvent.objects.get(topic="alert.acknowledged")
    assert event.payload["id"] == alert.pk and event.aggregate == f"alert:{alert.pk}"


@pytest.mark.django_db(transaction=True)
def test_after_commit_the_deliver_task_sends_without_a_tick(receivers: Receivers) -> None:
    """The production path: the consumer's commit enqueues ``alerts.deliver`` (run eagerly here)."""
    app = deliver_task.app
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        alert = hot_wallet_p0()
        outbox_relay_batch()
        notifier_consume_batch(consumer_name="test", block_ms=1)
    finally:
        app.conf.task_always_eager = eager
    assert deliveries(alert) == [("pagerduty", "trigger", 0, "sent"), ("slack", "trigger", 0, "sent")]
    assert len(receivers.pagerduty()) == 1 and len(receivers.slack()) == 1
