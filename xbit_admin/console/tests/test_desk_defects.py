"""Issue #21's defects, each pinned: decided withdrawals listed with who rejected them, switches and risk
config in units a desk reads (on/off, thousands, %), the canary's figures with their units, the kill
switch's state shown next to its buttons, a chain's "withdrawals off" linked to its switch, and the demo
traders spread over KYC levels so the two-person path above 100,000 can be exercised."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from core.accounts.models import User
from core.accounts.roles import Role

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_decided_withdrawals_say_who_rejected_them_and_no_empty_note_beside_a_row(
    console_as: Any, make_withdrawal: Any
) -> None:
    from wallets.services import withdrawal_reject

    rejected = make_withdrawal("20000")
    operator = console_as(Role.OPERATIONS)
    withdrawal_reject(withdrawal_id=rejected.pk, acting_user=operator.staff_user, reason="name mismatch")
    html = operator.get("/withdrawals/").content.decode()
    recent = _text(html.split('id="recent"', 1)[1].split("</section>", 1)[0])
    assert "No decided withdrawal yet." not in recent
    assert f"rejected by {operator.staff_user.email}" in recent and "name mismatch" in recent


def test_switch_values_read_as_a_desk_reads_them(console_as: Any) -> None:
    from xbit_admin.console.pages.switches import human
    from xbit_admin.switches.registry import REGISTRY

    assert human(REGISTRY["daily_loss_trip"], "500000") == "500,000 USDC"
    assert human(REGISTRY["volatility_move"], "0.05") == "5 %"
    assert human(REGISTRY["latency_trip_ms"], 1000) == "1,000"
    assert human(REGISTRY["liquidation_mode"], "LIVE") == "LIVE"
    bools = [s for s in REGISTRY.values() if s.kind == "bool"]
    assert bools and human(bools[0], False) == "off" and human(bools[0], "True") == "on"
    html = _text(console_as(Role.SUPER_ADMIN).get("/switches/").content.decode())
    assert "500,000 USDC" in html and "5 %" in html and "fraction" not in html


def test_the_canary_figures_carry_their_units() -> None:
    from xbit_admin.console.templatetags.console import canary_measured

    assert canary_measured({"name": "p99", "measured": Decimal("89663.4321")}) == "89,663.4 ms"
    assert (
        canary_measured({"name": "errors", "measured": Decimal("0.012345678901234567890123456789")})
        == "1.23 %"
    )
    assert canary_measured({"name": "fill_dev", "measured": Decimal("0.4")}) == "0.40 bp"
    assert canary_measured({"name": "recon", "measured": None}) == "n/a"


def test_risk_config_shows_fractions_as_percentages(console_as: Any) -> None:
    html = console_as(Role.RISK_MANAGER).get("/risk-config/").content.decode()
    assert "5 %" in _text(html) and "entered as a fraction: 0.05" in _text(html)


def test_the_kill_switch_panel_says_whether_it_is_on(console_as: Any) -> None:
    from risk.breakers import kill_switch_set

    client = console_as(Role.RISK_MANAGER)
    panel = _text(client.get("/").content.decode().split('id="kill-switch"', 1)[1].split("</section>", 1)[0])
    assert "OFF markets trade under their own state." in panel and "halt all trading" in panel
    assert "Turn the kill switch off" not in panel
    kill_switch_set(active=True, mode="HALTED", acting_user=client.staff_user, reason="exchange incident")
    panel = _text(client.get("/").content.decode().split('id="kill-switch"', 1)[1].split("</section>", 1)[0])
    assert "ON every market halted for new orders since" in panel and "exchange incident" in panel
    assert "Turn the kill switch off" in panel and "halt all trading" not in panel


def test_a_chain_with_withdrawals_off_links_to_its_switch_and_arbitrum_says_why_it_has_none(
    console_as: Any,
) -> None:
    from wallets.config import chain_config
    from wallets.models import ChainConfig

    chain_config("TRON")
    chain_config("ARBITRUM")
    ChainConfig.objects.filter(chain="TRON").update(withdrawals_enabled=False)
    html = console_as(Role.SUPER_ADMIN).get("/liquidity/").content.decode()
    assert 'href="/switches/#switch-withdrawals_enabled-TRON"' in html
    assert "platform capital only" in html and "withdrawals_enabled-ARBITRUM" not in html
    switches = console_as(Role.SUPER_ADMIN).get("/switches/").content.decode()
    assert 'id="switch-withdrawals_enabled-TRON"' in switches


def test_the_demo_traders_are_spread_over_kyc_levels(db: Any) -> None:
    from io import StringIO

    from django.core.management.base import BaseCommand

    from trading.demo import demo_trader_emails
    from xbit_admin.console.demo import seed_demo_kyc

    command = BaseCommand(stdout=StringIO())
    seed_demo_kyc(command)
    seed_demo_kyc(command)  # idempotent
    levels = dict(User.objects.filter(email__in=demo_trader_emails()).values_list("email", "kyc_status"))
    assert len(levels) == 24
    assert {"NONE", "PENDING", "VERIFIED"} == set(levels.values())
    assert (
        levels["trader10@demo.xbit.local"] == "VERIFIED" and levels["trader05@demo.xbit.local"] == "PENDING"
    )
    assert "verified traders can withdraw above 100,000" in command.stdout.getvalue()


def test_the_client_list_sorts_filters_and_pages_in_the_url_and_exports(
    console_as: Any, make_trader: Any
) -> None:
    from core.accounts.models import ClientTag

    support = console_as(Role.SUPPORT)
    made = [
        make_trader(email=f"list{i:02d}@example.com", kyc_status="VERIFIED" if i % 2 else "NONE")
        for i in range(30)
    ]
    ClientTag.objects.create(user=made[3], tag="vip", added_by=support.staff_user)
    page = support.get("/users/", {"kyc": "VERIFIED", "sort": "email", "per": "25"}).content.decode()
    rows = re.findall(r'<tr data-user="(\d+)">', page)
    verified = sorted((u for u in made if u.kyc_status == "VERIFIED"), key=lambda u: u.email)
    assert [int(r) for r in rows] == [u.pk for u in verified]
    assert 'href="?kyc=VERIFIED&amp;sort=-email&amp;per=25&amp;page=1"' in page  # the next click reverses
    first = support.get("/users/", {"per": "25"}).content.decode()
    assert "page 1 of 2" in first and 'rel="next"' in first and "CSV" not in first.split('id="clients"')[1]
    second = support.get("/users/", {"per": "25", "page": "2"}).content.decode()
    assert len(re.findall(r'<tr data-user="', second)) == 5
    tagged = support.get("/users/", {"tag": "VIP"}).content.decode()
    assert re.findall(r'<tr data-user="(\d+)">', tagged) == [str(made[3].pk)]
    bad = support.get("/users/", {"sort": "password", "kyc": "GOLD"}).content.decode()
    assert (
        "Cannot sort by &#x27;password&#x27;" in bad
        and "KYC: &#x27;GOLD&#x27; is not one of the choices" in bad
    )
    assert support.get("/users/", {"format": "csv"}).status_code == 403
    ops = console_as(Role.OPERATIONS)
    body = b"".join(ops.get("/users/", {"format": "csv", "tag": "vip"}).streaming_content).decode()
    assert body.splitlines() == [
        "id,email,wallet_address,kyc_status,flags,tags,date_joined",
        body.splitlines()[1],
    ]
    assert "list03@example.com" in body and ",vip," in body


def test_csv_cells_hold_json_not_python_repr(console_as: Any, make_trader: Any) -> None:
    from core.accounts.desk import client_restrict

    trader = make_trader()
    ops = console_as(Role.OPERATIONS)
    client_restrict(user_id=trader.pk, kind="no_withdrawals", reason="review", acting_user=ops.staff_user)
    analyst = console_as(Role.SUPER_ADMIN)
    body = b"".join(
        analyst.get("/audit/export.csv", {"action": "client.restrict"}).streaming_content
    ).decode()
    row = body.splitlines()[1]
    assert '"{""withdrawals_restricted"": false}"' in row and "False" not in row


def test_prices_show_to_the_assets_tick(market: None) -> None:
    from xbit_admin.console.formats import price_text

    assert price_text("BTC", Decimal("72280")) == "72,280"
    assert price_text("BTC", Decimal("72280.000000")) == "72,280"
    assert price_text("ETH", Decimal("3000.5")) == "3,000.5"
    assert price_text("UNKNOWN", Decimal("1.2300")) == "1.23"


def test_the_alerts_withdrawals_and_liquidations_tables_export_csv(
    console_as: Any, make_withdrawal: Any
) -> None:
    from core.alerts.services import alert_raise

    alert_raise(rule="wallets.hot_wallet_warning", subject="ETH", severity="P2", message="hot wallet low")
    waiting = make_withdrawal("50000")
    admin = console_as(Role.SUPER_ADMIN)
    alerts = b"".join(admin.get("/alerts/", {"state": "all", "format": "csv"}).streaming_content).decode()
    assert alerts.splitlines()[0].startswith("id,severity,rule") and "wallets.hot_wallet_warning" in alerts
    withdrawals = b"".join(admin.get("/withdrawals/", {"format": "csv"}).streaming_content).decode()
    assert f"\n{waiting.pk}," in withdrawals and "AWAITING_APPROVAL" in withdrawals
    liquidations = admin.get("/liquidations/", {"format": "csv"})
    assert b"".join(liquidations.streaming_content).decode().startswith("trigger_id,detected_at")
    assert 'id="alerts-csv"' in admin.get("/alerts/").content.decode()
    support = console_as(Role.SUPPORT)
    assert support.get("/alerts/", {"format": "csv"}).status_code == 403
    from core.audit.models import AuditEntry

    assert set(AuditEntry.objects.filter(action="console.export").values_list("object_type", flat=True)) >= {
        "alerts",
        "withdrawals",
        "liquidations",
    }


def test_the_decision_log_staff_and_proposals_tables_export_csv(console_as: Any) -> None:
    admin = console_as(Role.SUPER_ADMIN)
    decisions = b"".join(admin.get("/routing/", {"format": "csv", "asset": "BTC"}).streaming_content).decode()
    assert decisions.startswith("created_at,order_id,user_id,asset")
    staff = b"".join(admin.get("/staff/", {"format": "csv"}).streaming_content).decode()
    assert admin.staff_user.email in staff and "Super Admin" in staff
    proposals = b"".join(admin.get("/proposals/", {"format": "csv"}).streaming_content).decode()
    assert proposals.startswith("id,kind,target")
    assert console_as(Role.RISK_MANAGER).get("/routing/", {"format": "csv"}).status_code == 200
    assert console_as(Role.SUPPORT).get("/proposals/", {"format": "csv"}).status_code == 403


def test_a_loss_that_rounds_to_nothing_reads_as_nothing() -> None:
    from xbit_admin.console.templatetags.console import money

    assert [money(v, 0) for v in ("-0.3", "-0.6", "0", "-1234.5")] == ["0", "-1", "0", "-1,234"]
    assert money("-0.004") == "0.00" and money("-0.006") == "-0.01"
