"""Issue #16: no console page ships placeholder text for a module that exists. A Super Admin opens every
console page with demo-like data — a user liquidated twice (isolated and cross), with funding payments
and a drift record, an asset in HL_MODE with a B-book exposure to hedge, reconciliation runs — and no
page says that something "arrives with" a module; the figures those placeholders stood for are shown:
the liquidation's trigger mark, margin ratio at the trigger, close price and split, the funding
payments, the drift records, and the HL_MODE banner's recommended hedge."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.urls import URLPattern
from django.utils import timezone

from core.accounts.models import User
from core.accounts.roles import Role
from xbit_admin.console.templatetags.console import money, pct, qty

pytestmark = pytest.mark.django_db
D = Decimal

PLACEHOLDERS = (
    "arrive with",
    "arrives with",
    "comes with the",
    "pending)",
    "module lands",
    "until it has landed",
    "coming soon",
    "not available yet",
    "lights up here",
    "(issue ",
)
CASE_SENSITIVE_PLACEHOLDERS = ("TODO", "FIXME", "XXX")
# Inside a value cell (<td>, <dd>) a figure that is not there yet reads "pending" or says what it comes
# with. A status is not a placeholder: PENDING (upper case, the house's status values) and "3 pending"
# (a count) are real data, so "pending" is flagged only lower case as the whole value, as its first word,
# or in parentheses.
VALUE_CELL = re.compile(r"<(td|dd)\b[^>]*>(.*?)</\1>", re.DOTALL | re.IGNORECASE)
CELL_PLACEHOLDERS = (
    re.compile(r"^pending\b"),
    re.compile(r"\(pending\b"),
    re.compile(r"\b(arrives?|comes?) with\b", re.IGNORECASE),
)

# Console URL names a GET does not render as a page: the sign-in steps, POST-only actions and CSV exports
# (the exports are opened below too, for a 200).
NOT_PAGES = {
    "login",
    "otp",
    "logout",
    "reconciliation_run",
    "breaker_reset",
    "kill_switch",
    "routing_mode",
    "routing_toggle",
    "withdrawal_approve",
    "withdrawal_reject",
    "aggregation_trigger",
    "cold_topup_decide",
    "alert_ack",
    "alert_resolve",
    "user_export",
    "reconciliation_export",
    "stress_export",
    "audit_export",
    # issue #21: the client card's and the staff pages' POST-only actions, the journal's CSV and the
    # banner's JSON (the pages themselves are opened below)
    "client_journal_export",
    "client_note",
    "client_tag",
    "client_restrict",
    "client_restriction_lift",
    "client_2fa_reset",
    "client_kyc",
    "client_position_close",
    "adjustment_decide",
    "proposal_decide",
    "staff_roles",
    "staff_active",
    "staff_totp_reset",
    "staff_session_revoke",
    "platform_state",
    # the client-risk page's POST-only actions (group override, groups' mode and rules)
    "client_group_override",
    "client_group_config",
}


def quote(asset: str, mark: str) -> None:
    """A book whose ask is the mark (a market buy fills at exactly ``mark``)."""
    from trading.marketdata import quote_update

    m = D(mark)
    quote_update(
        asset,
        mark=m,
        oracle=m,
        mid=m,
        bid=m - 1,
        ask=m,
        bid_size=D(100),
        ask_size=D(100),
        funding_rate=D("0.0000125"),
    )


def buy(user: Any, size: str, leverage: int, margin_mode: str) -> Any:
    from trading.models import Position
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    quote("BTC", "80000")
    order = order_place(
        user=user,
        inp=order_input(
            asset="BTC",
            side="BUY",
            order_type="MARKET",
            size=size,
            leverage=leverage,
            margin_mode=margin_mode,
        ),
    )
    assert order.status == "FILLED" and order.route == "INTERNAL", (order.status, order.error_message)
    return Position.objects.get(user=user, asset="BTC", status="OPEN", margin_mode=margin_mode)


@dataclass
class Demo:
    alice: Any
    cross_ratio: Decimal  # the cross account's equity ÷ MM at the cross trigger, computed before it


@pytest.fixture
def demo(market: None, trader: Any, make_trader: Any) -> Demo:
    return build_demo(alice=make_trader(email="alice@xbit.test"), whale=trader)


def build_demo(*, alice: Any, whale: Any, recompute_exposure: bool = True) -> Demo:
    """``alice`` (new, funded here) liquidated twice with funding and a drift record; ``whale`` (funded
    with ≥ 20,000) long 1.3 BTC INTERNAL, and BTC switched to HL_MODE. Markets synced, BTC quoted."""
    from core.live_config import invalidate
    from risk.detection import liquidation_sweep
    from risk.drift import drift_record
    from risk.exposure import exposure_recompute
    from risk.funding import funding_run
    from risk.liquidation_execute import liquidations_drain
    from routing.services import routing_mode_switch
    from trading import margin, margin_cross
    from trading.account import margin_table_for_asset, user_balances
    from trading.models import MarginTable, Market
    from xbit_admin.console.tests.conftest import fund

    # spec 03's single-tier BTC table (max leverage 125 → mmr 0.004) for its worked example
    MarginTable.objects.update_or_create(
        table_id=125, defaults={"tiers": [{"lowerBound": "0.0", "maxLeverage": 125}], "description": "test"}
    )
    Market.objects.filter(asset="BTC").update(margin_table_id=125)
    invalidate("markets")

    fund(alice, "2000")
    isolated = buy(alice, "0.1", 10, "ISOLATED")  # margin 800, liquidation price 72,289.16
    buy(alice, "0.1", 20, "CROSS")
    cross = buy(alice, "0.1", 20, "CROSS")  # 0.2 BTC in two orders: each stays under the 10,000 threshold
    funding_run(funding_time=timezone.now())  # both positions pay an hour of funding
    drift_record(
        ref=f"demo-close:{isolated.pk}",
        kind="CLOSE",
        asset="BTC",
        xbit_pnl=D(2000),
        hl_actual_pnl=D(1980),
        notional=D(16000),
        position_id=isolated.pk,
    )
    # the cross account at 74,100, as trading's own margin math sees it just before the sweep
    balances = user_balances(alice.pk)
    cross.refresh_from_db()
    summary = margin_cross.cross_account(
        balances.get("cash", D(0)) + balances.get("order_hold", D(0)),
        [
            margin_cross.CrossPosition(
                "BTC",
                margin.Side.LONG,
                cross.size,
                cross.entry_price,
                D(74100),
                cross.leverage,
                margin_table_for_asset("BTC"),
            )
        ],
    )
    assert summary.liquidatable and summary.equity > 0
    liquidation_sweep(marks={"BTC": D(74100)}, wake=False)  # the cross account only
    liquidation_sweep(marks={"BTC": D(72280)}, wake=False)  # then the isolated long (spec 03's example)
    assert liquidations_drain() == 2

    # a whale long 1.3 BTC INTERNAL (104,000 USD at 80,000): BTC in HL_MODE with a hedge to place
    for _ in range(13):
        buy(whale, "0.1", 10, "CROSS")
    quote("BTC", "80000")
    if recompute_exposure:  # the exposure consumer is not running (page tests)
        exposure_recompute(apply=True)
    routing_mode_switch(
        asset="BTC", mode="HL_MODE", acting_user=None, reason="exposure high", change_id=uuid.uuid4().hex
    )
    return Demo(alice=alice, cross_ratio=(summary.equity / summary.maintenance_margin).quantize(D("0.0001")))


def page_urls(demo: Demo) -> tuple[list[str], set[str]]:
    """A GET URL for every console page (each reconciliation dimension, both routing settings pages),
    and the URL names covered."""
    from xbit_admin.console import urls
    from xbit_admin.console.risk_reads import RECON_DIMENSIONS

    samples: dict[str, list[str]] = {
        "user_detail": [f"/users/{demo.alice.pk}/?range=all"],
        "users": ["/users/", "/users/?q=alice&list=1", "/users/?kyc=VERIFIED&sort=email"],
        "reconciliation_dimension": [f"/reconciliation/{d}/" for d in RECON_DIMENSIONS],
        "routing_asset": ["/routing/BTC/", "/routing/global/"],
        "stress": ["/stress/", "/stress/?shock_BTC=-15"],
        "client_adjustment": [f"/users/{demo.alice.pk}/adjustments/"],
        "staff_member": [f"/staff/{User.objects.filter(is_staff=True).first().pk}/"],
        "runbook": ["/runbooks/breaker/HL_LATENCY/", "/runbooks/alert/wallets.deposit_held/"],
    }
    out: list[str] = []
    names: set[str] = set()
    for pattern in urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        name = str(pattern.name)
        if name in NOT_PAGES:
            continue
        names.add(name)
        if name in samples:
            out += samples[name]
        else:
            assert not pattern.pattern.converters, f"give the page {name!r} a sample URL"
            out.append("/" + str(pattern.pattern))
    return out, names


def test_no_console_page_shows_a_placeholder_for_a_module_that_exists(console_as: Any, demo: Demo) -> None:
    from risk.reconciliation import reconciliation_run

    reconciliation_run()  # every dimension has a latest run (the HL ones need HL accounts: none here)
    client = console_as(Role.SUPER_ADMIN)
    urls, names = page_urls(demo)
    assert {"overview", "user_detail", "routing", "reconciliation_dimension", "hedge"} <= names
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        text = re.sub(r"\s+", " ", response.content.decode())
        for phrase in PLACEHOLDERS:
            assert phrase not in text.lower(), f"{url}: {phrase!r} in …{_around(text, phrase)}…"
        for phrase in CASE_SENSITIVE_PLACEHOLDERS:
            assert phrase not in text, f"{url}: {phrase!r} in …{_around(text, phrase)}…"
        assert not placeholder_cells(text), f"{url}: placeholder value cells {placeholder_cells(text)}"
    from xbit_admin.console.pages.users import SECTIONS

    for section in SECTIONS:  # every section of the user page exports
        response = client.get(f"/users/{demo.alice.pk}/export/{section}.csv?range=all")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv"), section


def placeholder_cells(html: str) -> list[str]:
    """The value cells (<td>, <dd>) of a page whose text is a placeholder, not a figure or a status."""
    found = []
    for match in VALUE_CELL.finditer(html):
        cell = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(2))).strip()
        if any(p.search(cell) for p in CELL_PLACEHOLDERS):
            found.append(cell[:160])
    return found


@pytest.mark.parametrize(
    ("html", "flagged"),
    [
        ("<td>pending</td>", True),
        ('<td class="num"><span>pending</span></td>', True),
        ("<dd>pending: from the risk engine</dd>", True),
        ("<dd>— (pending risk engine)</dd>", True),
        ("<TD>Comes with the funding module</TD>", True),
        ("<td>\n  Trigger price arrives with\n liquidation</td>", True),
        ("<td>PENDING</td>", False),  # a withdrawal's status
        ('<td><span class="badge warn">PENDING</span></td>', False),
        ("<td>3 pending</td>", False),  # a count of pending items
        ("<dd>PENDING_APPROVAL</dd>", False),
        ("<p>pending</p>", False),  # prose, not a value cell (the page-wide phrases cover prose)
    ],
)
def test_the_value_cell_check_flags_placeholders_not_statuses(html: str, flagged: bool) -> None:
    assert bool(placeholder_cells(html)) is flagged


def _around(text: str, phrase: str) -> str:
    i = text.lower().find(phrase.lower())
    return text[max(0, i - 120) : i + 120]


def section_of(html: str, id_: str) -> str:
    return html.split(f'id="{id_}"', 1)[1].split("</section>", 1)[0]


def test_the_user_page_shows_each_liquidation_with_its_trigger_ratio_close_and_split(
    console_as: Any, demo: Demo
) -> None:
    from risk.models import LiquidationRecord

    html = console_as(Role.SUPER_ADMIN).get(f"/users/{demo.alice.pk}/?range=all").content.decode()
    liquidations = section_of(html, "liquidations")
    rows = liquidations.split("<tr data-trigger=")[1:]
    assert len(rows) == 2
    isolated, cross = rows  # newest first
    cells = [
        re.sub(r"<[^>]+>", " ", c.split(">", 1)[1].split("</td>")[0]).split()
        for c in isolated.split("<td")[1:]
    ]
    record = LiquidationRecord.objects.get(user=demo.alice, margin_mode="ISOLATED")
    # spec 03's worked example, after an hour of funding paid from the margin: at the mark 72,280 the
    # equity is the margin left − 772 against an MM of 0.1 × 72,280 × 0.004 = 28.912
    assert record.xbit_pnl == D(-772) and D(799) < record.margin_zeroed < D(800)
    ratio = ((record.margin_zeroed + record.xbit_pnl) / D("28.912")).quantize(D("0.0001"))
    assert cells[6] == ["72,280", "USD"] and cells[8] == ["72,280", "USD"]
    assert cells[7] == [pct(ratio, 1)] and D("0.96") < ratio < D("0.97")
    assert cells[9] == [money(record.margin_zeroed), "USDC"] and cells[10] == [money(record.loss), "USDC"]
    # the loss is split 80 / 20 between platform P&L and the risk reserve
    assert record.reserve_share == (record.loss * D("0.2")).quantize(D("0.000001"))
    assert cells[11] == [
        money(record.platform_share),
        "/",
        money(record.reserve_share),
        "USDC",
        "reserve",
        "20%",
    ]
    assert "INTERNAL" in cells[3] and cells[14] == ["COMPLETED"]
    # the cross account: its margin ratio is what the margin math gave just before the trigger
    assert pct(demo.cross_ratio, 1) in cross and "74,100" in cross and "cross" in cross
    assert "arrive with" not in liquidations


def test_the_user_page_lists_the_funding_payments_and_the_drift_records(console_as: Any, demo: Demo) -> None:
    from risk.models import FundingSettlement

    html = console_as(Role.SUPER_ADMIN).get(f"/users/{demo.alice.pk}/?range=all").content.decode()
    funding = section_of(html, "funding").split('id="funding-payments"')[1].split("</table>")[0]
    payments = list(FundingSettlement.objects.filter(user=demo.alice).order_by("-funding_time", "-id"))
    assert len(payments) == 2 and funding.count("<tr><td") == 2
    for p in payments:
        assert f'<td class="num">{p.position_id}</td>' in funding
        assert f"{money(p.payment)}<" in funding
    assert f">{pct(D('0.0000125'), 4)}<" in funding and ">80,000<" in funding  # rate and oracle price
    drift = section_of(html, "drift")
    row = drift.split("<tbody>")[1].split("</tr>")[0]
    assert "close" in row and ">2,000.00<" in row and ">1,980.00<" in row and ">-20.00<" in row
    assert ">1.00%<" in row and ">LOG<" in row


def test_the_routing_banner_recommends_the_hedge_the_policy_wants(console_as: Any, demo: Demo) -> None:
    html = console_as(Role.SUPER_ADMIN).get("/routing/").content.decode()
    banner = html.split('id="routing-banners"')[1].split('<section class="card flush" id="routing-assets"')[0]
    size = banner.split('data-hedge-size="BTC">')[1].split("</span>")[0]
    # users net long 1.3 BTC × 80,000 = 104,000 ≥ 100,000 → target 50 % = 52,000; no hedge yet
    assert size == "BUY 0.65 BTC ≈ 52,000 USDC"
    assert "target 52,000 USDC = 50% of users' net 104,000 USDC; current hedge 0 USDC" in banner
    assert qty(D("0.65")) in size and "pending" not in banner
