"""The rule catalogue covers what the platform raises, the P0 set of spec 08 is wired, and the
notifier's process, beat entry and console page are in place."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from core.accounts.roles import Role
from core.alerts import notifiers
from core.alerts.models import Alert, Delivery
from core.alerts.notifications import alerts_tick, deliveries_send_due, run_notifier
from core.alerts.rules import CATALOGUE, P0_SET, UNKNOWN, rule_info
from core.alerts.services import alert_raise
from core.alerts.tests.conftest import Receivers
from core.events.services import outbox_relay_batch
from core.periodic import BEAT_SCHEDULE

ROOT = Path(__file__).resolve().parents[3]
RAISED = re.compile(
    r'alert_raise\(\s*rule="([^"]+)"|(?:rule = f?|_flag\(\s*|return f)"((?:hl|risk|wallets|marketdata)\.[^"]+)"'
)


def _raised_rule_names() -> set[str]:
    names: set[str] = set()
    for app in ("trading", "wallets", "routing", "risk", "xbit_admin"):
        for path in (ROOT / app).rglob("*.py"):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            for match in RAISED.finditer(path.read_text()):
                name = match.group(1) or match.group(2)
                names.add(re.sub(r"\{[^}]*\}", "x", name))  # f"hl.{name}.margin_ratio" → hl.x.margin_ratio
    return names


def test_every_rule_the_platform_raises_is_in_the_catalogue() -> None:
    names = _raised_rule_names()
    assert {
        "risk.liquidation_escalated",
        "risk.breaker.x",  # risk.breakers._alert_rule: f"risk.breaker.{kind.lower()}"
        "wallets.hot_wallet_critical",
        "wallets.withdrawal_queue",
        "marketdata.feed_down",
    } <= names
    assert [n for n in sorted(names) if rule_info(n) is UNKNOWN] == []


def test_the_p0_set_of_spec_08_maps_onto_rules() -> None:
    p0 = {r.pattern for r in P0_SET}
    assert {
        "risk.liquidation_escalated",  # liquidation engine failure
        "risk.breaker.hl_disconnect",  # HL disconnected > 1 min (the breaker trips at 60 s)
        "hl.*.margin_ratio",  # HL account margin ratio < 150 %
        "wallets.hot_wallet_critical",  # hot wallet < 100,000
        "risk.drift",  # single-trade drift rate > 5 %
        "reconciliation.user_assets",  # user-asset reconciliation deviation > 0.1 % (reserved)
    } <= p0
    assert rule_info("hl.trading.margin_ratio").p0 and rule_info("hl.hedge.margin_ratio").p0
    assert rule_info("risk.breaker.hl_disconnect").title == "Hyperliquid disconnected"
    assert rule_info("risk.breaker.volatility").title == "Circuit breaker"  # the wildcard, after specifics
    assert all(r.runbook and r.meaning for r in CATALOGUE)


def test_a_pagerduty_summary_is_cut_to_1024_characters() -> None:
    now = timezone.now()
    view = notifiers.AlertView(1, "risk.drift", "BTC", "P2", "open", "x" * 5000, now, now, 1)
    body = notifiers.pagerduty_body(view, "trigger")
    assert len(body["payload"]["summary"]) == 1024 and body["payload"]["severity"] == "warning"
    assert len(notifiers.slack_body(view, "trigger")["text"]) <= 3000


def test_the_tick_runs_every_minute_on_the_default_queue() -> None:
    entry = BEAT_SCHEDULE["alerts.tick"]
    assert entry["task"] == "alerts.tick" and entry["schedule"] == 60
    assert entry["options"]["queue"] == "default"


@pytest.mark.django_db
def test_the_notifier_process_starts_at_the_stream_end_and_plans_what_follows(receivers: Receivers) -> None:
    before = alert_raise(rule="wallets.hot_wallet_critical", subject="ETH", severity="P0", message="old")
    outbox_relay_batch()
    assert run_notifier(consumer_name="proc", stop=lambda: True) == 0  # creates the group at "$"
    after = alert_raise(rule="wallets.hot_wallet_critical", subject="TRON", severity="P0", message="new")
    outbox_relay_batch()
    calls = iter([False, True])
    assert run_notifier(consumer_name="proc", stop=lambda: next(calls), block_ms=1) == 1
    assert Delivery.objects.filter(alert=after).count() == 2
    assert not Delivery.objects.filter(alert=before).exists()  # history is not replayed …
    assert alerts_tick()["reconciled"] == 2  # … the tick's reconciliation catches it up
    deliveries_send_due(now=timezone.now())
    assert len(receivers.pagerduty()) == 2


@pytest.mark.django_db
def test_the_console_shows_deliveries_and_console_only_alerts(
    receivers: Receivers, console_as: Any, settings: Any
) -> None:
    receivers.fail(channel="slack", mode="error", status=400, count=1)  # refused: failed, no retry
    alert = alert_raise(rule="wallets.hot_wallet_critical", subject="TRON", severity="P0", message="low")
    alerts_tick()
    deliveries_send_due(now=timezone.now())
    client = console_as(Role.SUPPORT)
    html = client.get("/alerts/").content.decode()
    row = html[html.index(f'id="alert-{alert.pk}"') :]
    assert "PagerDuty trigger" in row and "Slack trigger" in row
    assert '<span class="badge ok">sent</span>' in row and '<span class="badge bad">failed</span>' in row
    assert "Hot wallet below 100,000" in row  # the catalogue's title and runbook hint
    settings.SLACK_WEBHOOK_URL = ""
    settings.PAGERDUTY_EVENTS_URL = ""
    quiet = alert_raise(rule="wallets.deposit_held", subject="3", severity="P2", message="held")
    html = client.get("/alerts/").content.decode()
    assert "console only (no channel configured)" in html[html.index(f'id="alert-{quiet.pk}"') :]
    assert Alert.objects.count() == 2
