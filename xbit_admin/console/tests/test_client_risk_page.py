"""The client-risk page: top contributors, markout curves, attribution and the group history for the
risk roles; the override form for a Risk Manager only (permission-checked, audited); the client's
group and markouts on the client card."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from core.switches.models import SwitchChange
from risk.client_risk.models import BbookPnlDaily, ClientMetrics
from routing.client_groups import client_group_assign, client_group_config, client_routing
from routing.decision import ClientGroup
from routing.models import ClientGroupAssignment
from xbit_admin.switches.services import switch_set, switch_values_served

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def toxic(make_trader: Any) -> Any:
    client = make_trader()
    ClientMetrics.objects.create(
        user_id=client.pk,
        fills=312,
        measured=312,
        notional=D(250_000),
        mo_1_bp=D("2.2"),
        mo_10_bp=D("3.3"),
        mo_60_bp=D("4.1"),
        mo_300_bp=D("4.4"),
        mo_60_usdc=D("102.5"),
        win_rate=D("0.61"),
        realized_pnl=D("875.25"),
        stale_fills=17,
    )
    client_group_assign(
        user_id=client.pk, group=ClientGroup.A, reason="60 s markout +4.1 bp over 312 fills ≥ 3 bp"
    )
    BbookPnlDaily.objects.create(
        day=timezone.now().astimezone(UTC).date(),
        asset="BTC",
        spread_capture=D(40),
        market_move=D(-900),
        total=D(-860),
    )
    return client


def test_the_page_shows_contributors_curves_attribution_and_history(console_as: Any, toxic: Any) -> None:
    page = console_as(Role.DATA_ANALYST).get(reverse("console:client_risk"))
    assert page.status_code == 200
    html = page.content.decode()
    assert toxic.email in html and "875.25" in html  # top contributor to B-book loss
    assert "markout-curves" in html and '"label": "all fills"' in html
    assert "-860.00" in html  # the day's attribution
    assert "60 s markout +4.1 bp over 312 fills" in html  # the change history with its reason
    assert 'id="group-override"' not in html  # an analyst sees, never overrides


def test_a_risk_manager_overrides_from_the_page_and_support_cannot(console_as: Any, toxic: Any) -> None:
    support = console_as(Role.SUPPORT)
    assert support.get(reverse("console:client_risk")).status_code == 403
    manager = console_as(Role.RISK_MANAGER)
    assert 'id="group-override"' in manager.get(reverse("console:client_risk")).content.decode()
    url = reverse("console:client_group_override")
    manager.post(url, {"user_id": str(toxic.pk), "group": "B", "reason": "market maker, agreed"})
    row = ClientGroupAssignment.objects.get(user_id=toxic.pk)
    assert (row.group, row.source) == ("B", "MANUAL")
    assert AuditEntry.objects.filter(action="routing.client_group_override", object_id=str(toxic.pk)).exists()
    manager.post(url, {"user_id": "999999", "group": "A", "reason": "typo"})  # no such client: refused
    assert not ClientGroupAssignment.objects.filter(user_id=999999).exists()


def test_the_client_card_shows_the_group_and_markouts(console_as: Any, toxic: Any) -> None:
    page = console_as(Role.OPERATIONS).get(reverse("console:user_detail", args=[toxic.pk]))
    html = page.content.decode()
    assert 'id="client-risk-card"' in html and 'id="client-group">A<' in html
    assert "60 s 4.10" in html and "312 fills" in html


def test_a_risk_manager_sets_the_mode_and_rules_from_the_page(console_as: Any) -> None:
    url = reverse("console:client_group_config")
    analyst = console_as(Role.DATA_ANALYST)
    assert analyst.post(url, {"mode": "LIVE", "reason": "x"}).status_code == 403
    manager = console_as(Role.RISK_MANAGER)
    manager.post(url, {"mode": "SHADOW", "min_fills": "150", "toxic_bp": "4", "reason": "shadow first"})
    config = client_group_config()
    assert (config.mode, config.min_fills, config.toxic_bp) == ("SHADOW", 150, D(4))
    entry = AuditEntry.objects.get(action="routing.client_group_config")
    assert (
        entry.after == {"mode": "SHADOW", "min_fills": 150, "toxic_bp": "4"}
        and entry.reason == "shadow first"
    )
    manager.post(url, {"toxic_bp": "-5", "reason": "bad"})  # below benign: refused, nothing changes
    assert client_group_config().toxic_bp == D(4)


def test_the_groups_mode_is_a_switch_every_process_serves(make_staff: Any, make_trader: Any) -> None:
    client = make_trader()
    client_group_assign(user_id=client.pk, group=ClientGroup.A, reason="test")
    manager = make_staff(Role.RISK_MANAGER)
    assert client_routing(client.pk).group is ClientGroup.HYBRID  # OFF by default
    result = switch_set(name="client_groups_mode", value="LIVE", acting_user=manager, reason="go live")
    assert result.changed and SwitchChange.objects.filter(name="client_groups_mode").exists()
    assert client_routing(client.pk).group is ClientGroup.A
    assert switch_values_served(["client_groups_mode"]) == {"client_groups_mode": "LIVE"}
