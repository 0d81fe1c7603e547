"""Issue #21: the platform-state banner on every page says in plain words what the platform does now, with
the live figure; the routing page does not promise internalization while a breaker forces every order to
Hyperliquid; every breaker kind and alert rule has a runbook, linked from the banner and the alerts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.accounts.roles import Role

pytestmark = pytest.mark.django_db


def _latency(ms: float) -> None:
    from trading.marketdata import latency_update
    from trading.selectors import FEED_NAME

    latency_update(FEED_NAME, round_trips_ms=[ms] * 5, measured_at=time.time())


def test_an_idle_platform_says_all_is_normal(console_as: Any) -> None:
    state = console_as(Role.SUPPORT).get("/platform-state.json").json()
    assert state["ok"] and state["level"] == "ok" and state["items"] == []
    assert state["summary"].startswith("All normal: API open, no breaker tripped, order gate open")
    assert state["api_mode"] == "OPEN" and state["order_gate"]["ready"]


def test_the_latency_breaker_is_said_in_plain_words_with_the_latency_now(
    console_as: Any, market: None
) -> None:
    from risk.breakers import hl_latency_check
    from trading.marketdata import latency_clear
    from trading.selectors import FEED_NAME

    try:
        _latency(1020)
        assert hl_latency_check() == "TRIPPED"
        client = console_as(Role.SUPPORT)
        state = client.get("/platform-state.json").json()
        item = next(i for i in state["items"] if i["key"].startswith("breaker:HL_LATENCY"))
        assert item["level"] == "bad"
        assert (
            "New orders are all sent to Hyperliquid: internalization halted because HL market-data latency "
            "is 1,020 ms, limit 500 ms" in item["text"]
        )
        assert item["runbook"] == "/runbooks/breaker/HL_LATENCY/"
        # the figure is the live one, not the one at the trip
        _latency(1500)
        again = client.get("/platform-state.json").json()
        assert "latency is 1,500 ms" in next(i["text"] for i in again["items"] if "HL_LATENCY" in i["key"])
        # the routing page no longer promises internalization
        routing = console_as(Role.RISK_MANAGER).get("/routing/").content.decode()
        banner = routing.split('data-forced-hl="hl_latency"', 1)[1].split("</div>", 1)[0]
        assert "Internalization halted platform-wide." in banner and "1,500 ms" in banner
        assert "yes, forced HL now" in routing
        runbook = client.get(item["runbook"]).content.decode()
        assert (
            "What it means" in runbook and "Automatic when latency is back under latency_alert_ms." in runbook
        )
    finally:
        latency_clear(FEED_NAME)


def test_the_banner_says_when_the_api_is_reduce_only_and_the_gate_is_closed(console_as: Any) -> None:
    from core.platform.state import platform_ready_set
    from core.switches.store import core_value_set

    core_value_set(name="api_mode", value="REDUCE_ONLY", acting_user=None, reason="test")
    platform_ready_set(ready=False, reason="resync after an HL disconnect")
    state = console_as(Role.SUPPORT).get("/platform-state.json").json()
    texts = [i["text"] for i in state["items"]]
    assert "The trader API is reduce-only: traders may close and withdraw but open nothing new." in texts
    assert "The order gate is closed: new orders are refused (resync after an HL disconnect)." in texts
    assert state["level"] == "bad"


def test_every_page_carries_the_banner_container_and_its_script(console_as: Any) -> None:
    html = console_as(Role.SUPPORT).get("/").content.decode()
    assert 'id="platform-banner"' in html and 'data-url="/platform-state.json"' in html
    assert "console/platform_banner" in html


def test_every_breaker_kind_and_every_alert_rule_has_a_runbook(console_as: Any) -> None:
    from risk.models import CircuitBreaker
    from xbit_admin.console.runbooks import ALERTS, BREAKERS

    client = console_as(Role.SUPPORT)
    for kind in CircuitBreaker.Kind:
        assert kind.value in BREAKERS
        assert client.get(f"/runbooks/breaker/{kind.value}/").status_code == 200
    for rule in ALERTS:
        assert client.get(f"/runbooks/alert/{rule}/").status_code == 200, rule
    assert client.get("/runbooks/alert/risk.breaker.drift/").status_code == 200
    assert client.get("/runbooks/alert/no.such.rule/").status_code == 404
    index = client.get("/runbooks/").content.decode()
    assert "HL latency breaker" in index and "Hot wallet low" in index


def test_a_new_p0_is_in_the_state_for_the_toast(console_as: Any) -> None:
    from core.alerts.services import alert_raise

    alert_raise(rule="risk.breaker.hl_disconnect", severity="P0", message="no HL data for 75 s")
    state = console_as(Role.SUPPORT).get("/platform-state.json").json()
    assert state["p0"][0]["rule"] == "risk.breaker.hl_disconnect"
    assert state["p0"][0]["runbook"] == "/runbooks/alert/risk.breaker.hl_disconnect/"


def test_alerts_and_the_breaker_table_link_their_runbooks(console_as: Any) -> None:
    from core.alerts.services import alert_raise

    alert_raise(rule="wallets.hot_wallet_warning", subject="ETH", severity="P2", message="hot wallet low")
    alerts = console_as(Role.OPERATIONS).get("/alerts/").content.decode()
    assert 'href="/runbooks/alert/wallets.hot_wallet_warning/"' in alerts
    config = console_as(Role.RISK_MANAGER).get("/risk-config/").content.decode()
    table = config.split('id="breaker-table"', 1)[1].split("</table>", 1)[0]
    assert (
        'href="/runbooks/breaker/HL_LATENCY/"' in table and 'href="/runbooks/breaker/KILL_SWITCH/"' in table
    )


def test_a_feed_that_never_reported_is_not_called_connected(console_as: Any, market: None) -> None:
    state = console_as(Role.SUPPORT).get("/platform-state.json").json()
    item = next(i for i in state["items"] if i["key"] == "hl")
    assert item["level"] == "warn" and "no feed has reported yet" in item["text"]
    assert "connected" not in state["summary"]
