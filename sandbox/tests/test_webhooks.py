"""Alert receivers: Slack incoming webhook and PagerDuty Events API v2, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.testing import SandboxProcess

ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"


class Hooks:
    def __init__(self, url: str):
        self.url = url

    def post(self, path: str, timeout: float = 5, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=timeout, **kwargs)

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        params = {"channel": channel} if channel else None
        return requests.get(self.url + "/control/messages", params=params, timeout=5).json()["messages"]

    def incidents(self) -> list[dict[str, Any]]:
        return requests.get(self.url + "/control/incidents", timeout=5).json()["incidents"]

    def fail(self, **body: Any) -> requests.Response:
        return self.post("/control/fail", json=body)


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    with SandboxProcess(seed=51) as sb:
        yield Hooks(sb.urls["webhooks"])


@pytest.fixture(autouse=True)
def fresh(hooks: Hooks) -> None:
    hooks.post("/control/reset")


def pd_trigger(**overrides: Any) -> dict[str, Any]:
    event = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "hot-wallet-low:TRON",
        "payload": {"summary": "TRON hot wallet below 100,000", "source": "xbit", "severity": "critical"},
    }
    event.update(overrides)
    return event


def test_slack_receives_text_and_blocks(hooks: Hooks) -> None:
    r = hooks.post("/slack/services/T000/B000/XXXX", json={"text": "P1 alert: HL margin ratio 180%"})
    assert r.status_code == 200 and r.text == "ok"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*P0* liquidation engine down"}}]
    assert hooks.post("/slack/ops", json={"blocks": blocks}).text == "ok"
    msgs = hooks.messages("slack")
    assert [m["path"] for m in msgs] == ["services/T000/B000/XXXX", "ops"]
    assert msgs[0]["body"] == {"text": "P1 alert: HL margin ratio 180%"} and msgs[0]["status"] == 200
    assert msgs[1]["body"]["blocks"] == blocks and msgs[1]["seq"] == 2


def test_slack_refuses_malformed_messages(hooks: Hooks) -> None:
    assert hooks.post("/slack/ops", data="{not json").text == "invalid_payload"
    r = hooks.post("/slack/ops", json={"username": "xbit"})
    assert r.status_code == 400 and r.text == "no_text"
    assert hooks.post("/slack/ops", json={"text": "x", "blocks": "nope"}).text == "invalid_blocks"
    assert [m["status"] for m in hooks.messages("slack")] == [400, 400, 400]


def test_pagerduty_lifecycle(hooks: Hooks) -> None:
    r = hooks.post("/pagerduty/v2/enqueue", json=pd_trigger())
    assert r.status_code == 202
    assert r.json() == {"status": "success", "message": "Event processed", "dedup_key": "hot-wallet-low:TRON"}
    assert hooks.post("/pagerduty/v2/enqueue", json=pd_trigger()).status_code == 202  # deduplicated
    [incident] = hooks.incidents()
    assert incident["status"] == "triggered" and incident["severity"] == "critical"
    assert incident["events"] == ["trigger", "trigger"]

    ack = {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "hot-wallet-low:TRON"}
    assert hooks.post("/pagerduty/v2/enqueue", json=ack).status_code == 202
    assert hooks.incidents()[0]["status"] == "acknowledged"
    resolve = dict(ack, event_action="resolve")
    assert hooks.post("/pagerduty/v2/enqueue", json=resolve).json()["dedup_key"] == "hot-wallet-low:TRON"
    assert hooks.incidents()[0]["status"] == "resolved"
    hooks.post("/pagerduty/v2/enqueue", json=pd_trigger())  # re-opens
    assert hooks.incidents()[0]["status"] == "triggered" and hooks.incidents()[0]["opened"] == 2

    msgs = hooks.messages("pagerduty")
    assert [m["body"]["event_action"] for m in msgs] == [
        "trigger",
        "trigger",
        "acknowledge",
        "resolve",
        "trigger",
    ]
    assert hooks.messages("slack") == []


def test_pagerduty_generates_dedup_key(hooks: Hooks) -> None:
    event = pd_trigger()
    del event["dedup_key"]
    first = hooks.post("/pagerduty/v2/enqueue", json=event).json()["dedup_key"]
    second = hooks.post("/pagerduty/v2/enqueue", json=event).json()["dedup_key"]
    assert len(first) == 32 and first != second
    hooks.post("/control/reset")
    assert hooks.post("/pagerduty/v2/enqueue", json=event).json()["dedup_key"] == first  # seeded


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (pd_trigger(routing_key="short"), "Length of 'routing_key' is incorrect (should be 32 characters)"),
        (pd_trigger(routing_key=""), "'routing_key' is missing or blank"),
        (pd_trigger(event_action="explode"), "'event_action' is invalid"),
        (pd_trigger(event_action=None), "'event_action' is missing or blank"),
        (pd_trigger(payload=None), "'payload' is missing or blank"),
        (pd_trigger(payload={"source": "x", "severity": "info"}), "'payload.summary' is missing or blank"),
        (pd_trigger(payload={"summary": "x", "severity": "info"}), "'payload.source' is missing or blank"),
        (
            pd_trigger(payload={"summary": "x", "source": "x", "severity": "fatal"}),
            "'payload.severity' is invalid",
        ),
        ({"routing_key": ROUTING_KEY, "event_action": "resolve"}, "'dedup_key' is missing or blank"),
    ],
)
def test_pagerduty_validation_errors(hooks: Hooks, event: dict[str, Any], error: str) -> None:
    r = hooks.post("/pagerduty/v2/enqueue", json=event)
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any(e.startswith(error) for e in body["errors"]), body
    assert hooks.incidents() == []


def test_pagerduty_invalid_json(hooks: Hooks) -> None:
    r = hooks.post("/pagerduty/v2/enqueue", data="nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["errors"] == ["Invalid JSON"]


def test_failure_injection_error_then_recovery(hooks: Hooks) -> None:
    assert hooks.fail(count=2, mode="error", status=500, channel="pagerduty").status_code == 200
    assert hooks.post("/slack/ops", json={"text": "unaffected"}).status_code == 200
    for _ in range(2):
        assert hooks.post("/pagerduty/v2/enqueue", json=pd_trigger()).status_code == 500
    assert hooks.incidents() == []  # not processed
    assert hooks.post("/pagerduty/v2/enqueue", json=pd_trigger()).status_code == 202
    statuses = [(m["channel"], m["status"], m["injected"]) for m in hooks.messages()]
    assert statuses == [
        ("slack", 200, None),
        ("pagerduty", 500, "error"),
        ("pagerduty", 500, "error"),
        ("pagerduty", 202, None),
    ]


def test_failure_injection_rate_limit_and_hang(hooks: Hooks) -> None:
    hooks.fail(count=1, status=429)
    assert hooks.post("/slack/ops", json={"text": "a"}).status_code == 429
    hooks.fail(count=1, mode="hang", hang_seconds=5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        hooks.post("/slack/ops", json={"text": "b"}, timeout=0.3)
    assert hooks.post("/slack/ops", json={"text": "b"}).text == "ok"  # the retry
    msgs = hooks.messages("slack")
    assert [(m["body"]["text"], m["status"], m["injected"]) for m in msgs] == [
        ("a", 429, "error"),
        ("b", 200, "hang"),  # processed, the answer was late: a retry duplicates the message
        ("b", 200, None),
    ]
    assert hooks.fail(mode="bogus").status_code == 400


def test_restricted_paths_and_routing_keys() -> None:
    config = {"webhooks": {"slack_paths": ["/services/T1/B1/abc"], "pagerduty_routing_keys": [ROUTING_KEY]}}
    with SandboxProcess(seed=5, config=config) as sb:
        url = sb.urls["webhooks"]
        ok = requests.post(url + "/slack/services/T1/B1/abc", json={"text": "x"}, timeout=5)
        assert ok.status_code == 200
        missing = requests.post(url + "/slack/services/T1/B1/zzz", json={"text": "x"}, timeout=5)
        assert missing.status_code == 404 and missing.text == "no_service"
        other_key = pd_trigger(routing_key="X" * 32)
        r = requests.post(url + "/pagerduty/v2/enqueue", json=other_key, timeout=5)
        assert r.status_code == 400 and r.json()["errors"] == ["Invalid routing key"]
        assert requests.post(url + "/pagerduty/v2/enqueue", json=pd_trigger(), timeout=5).status_code == 202
