"""Audit log (spec 07 §12) and alerts (§11): filterable, read-only, CSV for those who may export,
chain verification on demand; alerts acknowledged and resolved through the audited services."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from django.db import transaction

from core.accounts.roles import Role
from core.alerts.models import Alert
from core.alerts.services import alert_raise
from core.audit.models import AuditEntry
from core.audit.services import audit_record

pytestmark = pytest.mark.django_db


def _entries() -> None:
    with transaction.atomic():
        audit_record(action="routing.mode_switch", object_type="asset", object_id="BTC", reason="high")
        audit_record(action="routing.config_update", object_type="routing_config", object_id="ETH")
        audit_record(
            action="wallets.withdrawal.reject", object_type="withdrawal", object_id="9", reason="=cmd()"
        )


def test_the_audit_log_filters_by_action_object_actor_and_time(console_as: Any) -> None:
    _entries()
    client = console_as(Role.DATA_ANALYST)
    rows = lambda **q: [e.action for e in client.get("/audit/", q).context["entries"].rows]  # noqa: E731
    assert rows(action="routing") == ["routing.config_update", "routing.mode_switch"]
    assert rows(object_type="asset", object_id="BTC") == ["routing.mode_switch"]
    assert "routing.mode_switch" in rows(actor="system")
    assert rows(until="2001-01-01") == []


def test_an_analyst_exports_the_audit_log_as_csv(console_as: Any) -> None:
    _entries()
    client = console_as(Role.DATA_ANALYST)
    response = client.get("/audit/export.csv", {"action": "wallets"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["id", "created_at", "actor", "ip", "action"]
    assert [r[4] for r in rows[1:]] == ["wallets.withdrawal.reject"]
    assert rows[1][9] == "'=cmd()"  # formula-looking cells are made literal
    assert AuditEntry.objects.filter(action="console.export", actor=client.staff_user).exists()


@pytest.mark.parametrize("role", [Role.OPERATIONS, Role.SUPPORT])
def test_who_cannot_read_the_audit_log_cannot_export_it(role: Role, console_as: Any) -> None:
    assert console_as(role).get("/audit/export.csv").status_code == 403


def test_an_analyst_can_change_nothing(console_as: Any, market: None, make_withdrawal: Any) -> None:
    from routing.models import RoutingModeLog

    withdrawal = make_withdrawal("50000")
    alert = alert_raise(rule="test.rule", severity="P1", message="m")
    client = console_as(Role.DATA_ANALYST)
    before = AuditEntry.objects.count()
    for url, data in [
        ("/routing/BTC/mode/", {"mode": "HL_MODE", "reason": "x", "change_id": uuid.uuid4().hex}),
        ("/routing/BTC/toggle/", {"field": "auto_switch_enabled", "value": "on", "reason": "x"}),
        ("/routing/BTC/", {"normal_threshold": "1", "reason": "x"}),
        (f"/withdrawals/{withdrawal.pk}/approve/", {}),
        (f"/withdrawals/{withdrawal.pk}/reject/", {"reason": "x"}),
        ("/liquidity/aggregate/ETH/", {"reason": "x"}),
        ("/liquidity/cold/propose/", {"chain": "ETH", "asset": "USDT", "amount": "1", "reason": "x"}),
        (f"/alerts/{alert.pk}/ack/", {}),
        (f"/alerts/{alert.pk}/resolve/", {"reason": "x"}),
    ]:
        assert client.post(url, data).status_code == 403, url
    assert AuditEntry.objects.count() == before
    assert not RoutingModeLog.objects.exists()
    alert.refresh_from_db()
    withdrawal.refresh_from_db()
    assert alert.state == "open" and withdrawal.status == "AWAITING_APPROVAL"


def test_the_chain_is_verified_on_demand_and_the_result_shown(console_as: Any) -> None:
    _entries()
    client = console_as(Role.DATA_ANALYST)
    assert "chain not verified yet" in client.get("/audit/").content.decode()
    html = client.post("/audit/verify/", follow=True).content.decode()
    assert "Audit chain intact: 3 entries verified." in html and "chain intact" in html
    assert console_as(Role.SUPPORT).post("/audit/verify/").status_code == 403


# --- alerts ---------------------------------------------------------------------------------------------


def test_alerts_are_listed_by_state_and_severity(console_as: Any) -> None:
    alert_raise(rule="wallets.hot_level", subject="ETH", severity="P0", message="ETH hot wallet emergency")
    alert_raise(rule="feed.down", severity="P2", message="feed down")
    client = console_as(Role.SUPPORT)
    html = client.get("/alerts/").content.decode()
    assert "ETH hot wallet emergency" in html and "feed down" in html
    assert "Acknowledge" not in html  # support may not
    only_p0 = client.get("/alerts/", {"severity": "P0"}).context["alerts"]
    assert [a.rule for a in only_p0] == ["wallets.hot_level"]


def test_operations_acknowledge_and_resolve_an_alert_audited(console_as: Any) -> None:
    alert = alert_raise(rule="wallets.hot_level", subject="ETH", severity="P0", message="low")
    client = console_as(Role.OPERATIONS)
    client.post(f"/alerts/{alert.pk}/ack/")
    alert.refresh_from_db()
    assert alert.state == "acknowledged" and alert.acknowledged_by == client.staff_user
    html = client.post(f"/alerts/{alert.pk}/resolve/", {"reason": ""}, follow=True).content.decode()
    assert "A reason is required" in html
    client.post(f"/alerts/{alert.pk}/resolve/", {"reason": "topped up"})
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert list(
        AuditEntry.objects.filter(object_type="alert").order_by("id").values_list("action", flat=True)
    ) == [
        "alert.acknowledge",
        "alert.resolve",
    ]


def test_support_cannot_acknowledge(console_as: Any) -> None:
    alert = alert_raise(rule="r", severity="P1", message="m")
    assert console_as(Role.SUPPORT).post(f"/alerts/{alert.pk}/ack/").status_code == 403
    alert.refresh_from_db()
    assert alert.state == Alert.State.OPEN
