"""The stress page with the real risk modules behind it: the scenario, the summary (platform P&L, reserve
after, liquidations, hedge coverage) and the per-asset table with units; its CSV export; who may see and
export it; and a refused shock keeping what the operator typed."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from risk.hedge_models import HedgePosition
from xbit_admin.console.tests.conftest import publish_quote

pytestmark = pytest.mark.django_db
SHOCK = "/stress/?shock_BTC=-15"


@pytest.fixture
def hedged(internal_order: Any) -> None:
    """A user long 0.01 BTC INTERNAL at 80,000 (the B-book short 800 USD) and the hedge account long
    0.004 BTC (40 % of it)."""
    HedgePosition.objects.create(asset="BTC", size=Decimal("0.004"), entry_price=Decimal(80000))
    publish_quote("BTC", "80000")


def section(html: str, id_: str) -> str:
    return html.split(f'id="{id_}"', 1)[1].split("</section>", 1)[0]


def test_a_risk_manager_sees_the_scenario_the_summary_and_the_assets(console_as: Any, hedged: None) -> None:
    response = console_as(Role.RISK_MANAGER).get(SHOCK)
    assert response.status_code == 200
    html = response.content.decode()
    # the form offers the held asset first and keeps the shock typed
    form = section(html, "stress-form")
    assert form.index('name="shock_') == form.index('name="shock_BTC"')
    assert 'name="shock_BTC" value="-15"' in form
    scenario = section(html, "stress-scenario")
    assert "-15.0%" in scenario and "80,000" in scenario and "68,000" in scenario  # mark now → shocked

    summary = section(html, "stress-summary")
    # users lose 0.01 × 12,000 = 120 (the B-book gains it); the hedge loses 0.004 × 12,000 = 48
    assert "Platform P&amp;L under the shock" in summary and ">72<" in summary
    assert "B-book 120 · hedge -48 USD" in summary
    assert "Hedge coverage" in summary and "40%" in summary
    liquidations = summary.split('id="stress-liquidations"')[1].split('id="stress-reserve"')[0]
    assert (
        "Liquidations triggered" in summary and ">1<" in liquidations and "680 USD notional" in liquidations
    )
    assert "Risk reserve after" in summary and "bankrupt remainders 40 USDC" in summary
    assert "HL margin ratio after" in summary

    table = section(html, "stress-assets")
    row = table.split('data-asset="BTC"', 1)[1].split("</tr>", 1)[0]
    cells = [c.split(">", 1)[1].split("</td>")[0] for c in row.split("<td")[1:]]
    assert [c.strip() for c in cells[:3]] == ["<strong>BTC</strong>", "-15.0%", "1"]
    assert cells[3] == "800" and cells[4] == "680" and cells[5] == "120"  # exposure now / shocked, B-book
    assert cells[6] == "320" and cells[7] == "-48" and "72" in cells[8] and cells[9] == "40%"
    assert row.count('class="num') == 12  # every figure right-aligned
    assert (
        'Net exposure <span class="u">USD</span>' in table and 'Bankrupt <span class="u">USDC</span>' in table
    )
    assert 'id="stress-export"' in table and "/stress/export.csv?shock_BTC=-15" in table


def test_the_csv_export_has_the_per_asset_table_and_is_audited(console_as: Any, hedged: None) -> None:
    client = console_as(Role.DATA_ANALYST)
    response = client.get("/stress/export.csv?shock_BTC=-15")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="stress-BTC-15.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    btc = next(r for r in rows if r["asset"] == "BTC")
    assert (
        btc["shock_pct"] == "-15.00"
        and btc["mark_before_usd"] == "80000"
        and btc["mark_after_usd"] == "68000"
    )
    assert btc["net_exposure_usd"] == "800.00" and btc["bbook_pnl_usd"] == "120.00"
    assert btc["hedge_pnl_usd"] == "-48.00" and btc["platform_pnl_usd"] == "72.00"
    assert btc["hedge_coverage_pct"] == "40.00"
    # the 10× long (bought at the ask, 80,001) dies on −15 %: 0.01 BTC at 68,000; it loses 120.01 on
    # 80.001 of margin → 40.01 beyond it
    assert btc["liquidatable_positions"] == "1" and btc["liquidatable_notional_usd"] == "680.00"
    assert btc["bankrupt_remainder_usdc"] == "40.01"
    entry = AuditEntry.objects.get(action="console.export", object_type="stress")
    assert entry.actor_id == client.staff_user.pk and entry.after == {"shock_BTC": "-15.00"}


@pytest.mark.parametrize(
    ("role", "page", "export"),
    [
        (Role.SUPER_ADMIN, 200, 200),
        (Role.RISK_MANAGER, 200, 200),
        (Role.DATA_ANALYST, 200, 200),
        (Role.OPERATIONS, 403, 403),  # may export, but may not see risk
        (Role.SUPPORT, 403, 403),
    ],
)
def test_who_may_see_and_export_the_stress_view(
    console_as: Any, market: None, role: Role, page: int, export: int
) -> None:
    client = console_as(role)
    assert client.get(SHOCK).status_code == page
    assert client.get("/stress/export.csv?shock_BTC=-15").status_code == export
    if export != 200:
        assert not AuditEntry.objects.filter(action="console.export").exists()


@pytest.mark.parametrize(("typed", "reason"), [("-150", "above −100 %"), ("abc", "is not a percentage")])
def test_a_refused_shock_keeps_what_was_typed_and_says_why(
    console_as: Any, market: None, typed: str, reason: str
) -> None:
    client = console_as(Role.RISK_MANAGER)
    response = client.get(f"/stress/?shock_BTC={typed}")
    html = response.content.decode()
    assert response.status_code == 400
    assert f'name="shock_BTC" value="{typed}" class="num invalid"' in html and reason in html
    assert 'id="stress-summary"' not in html
    assert client.get(f"/stress/export.csv?shock_BTC={typed}").status_code == 400


def test_without_a_shock_the_page_explains_itself(console_as: Any, market: None) -> None:
    html = console_as(Role.RISK_MANAGER).get("/stress/").content.decode()
    assert "Enter a shock for at least one asset" in html and 'id="stress-summary"' not in html
    assert "shock_BTC=-10" in html  # presets
