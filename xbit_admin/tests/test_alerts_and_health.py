from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core.accounts.roles import Role
from core.alerts.models import Alert
from core.alerts.services import alert_acknowledge, alert_raise, alert_resolve_condition
from core.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_raising_the_same_alert_twice_keeps_one_open_row() -> None:
    first = alert_raise(rule="hot_wallet_low", subject="TRON", severity="P1", message="hot wallet 90k")
    again = alert_raise(rule="hot_wallet_low", subject="TRON", severity="P0", message="hot wallet 15k")
    assert first.pk == again.pk
    assert again.count == 2 and again.severity == "P0" and again.message == "hot wallet 15k"
    # a repeat with a lower severity never downgrades
    assert alert_raise(rule="hot_wallet_low", subject="TRON", severity="P2", message="x").severity == "P0"
    assert Alert.objects.filter(rule="hot_wallet_low").count() == 1


def test_a_resolved_alert_reopens_as_a_new_row() -> None:
    alert_raise(rule="drift", subject="BTC", severity="P1", message="1.2%")
    assert alert_resolve_condition(rule="drift", subject="BTC") == 1
    alert_raise(rule="drift", subject="BTC", severity="P1", message="1.4%")
    assert Alert.objects.filter(rule="drift", subject="BTC").count() == 2
    assert Alert.objects.filter(rule="drift", subject="BTC", state="open").count() == 1


def test_acknowledging_is_audited_and_only_from_open(make_staff: Any) -> None:
    ops = make_staff(Role.OPERATIONS)
    alert = alert_raise(rule="queue", severity="P2", message="50 pending")
    alert_acknowledge(alert_id=alert.pk, acting_user=ops)
    alert.refresh_from_db()
    assert alert.state == "acknowledged" and alert.acknowledged_by == ops
    with pytest.raises(ApplicationError) as exc:
        alert_acknowledge(alert_id=alert.pk, acting_user=ops)
    assert exc.value.code == "INVALID_STATE"
    from core.audit.models import AuditEntry

    assert AuditEntry.objects.filter(action="alert.acknowledge", object_id=str(alert.pk)).count() == 1


def test_healthz_and_readyz_report_their_checks() -> None:
    client = Client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


def test_readyz_fails_closed_when_a_check_fails(monkeypatch: Any) -> None:
    from core import health

    monkeypatch.setattr(health, "READINESS_CHECKS", [("venue", lambda: {"ok": False, "error": "down"})])
    response = Client().get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["venue"]["ok"] is False


def test_metrics_are_exposed_in_prometheus_format(settings: Any) -> None:
    settings.METRICS_BEARER_TOKEN = "scrape-token"  # /metrics is closed without one (issue #17)
    client = Client()
    client.get("/healthz")
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token").content.decode()
    assert "xbit_http_request_seconds_bucket" in body
    assert 'route="healthz"' in body


def test_every_response_carries_a_request_id() -> None:
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    generated = Client().get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert generated != "bad id with spaces" and len(generated) == 32
