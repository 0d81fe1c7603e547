"""Reconciliation: the latest result of every dimension (each from its own newest run) links to a
drill-down with the dimension's deviation history as a chart (one point per run) and its recent rows,
filterable by subject and exportable as CSV; who may open and export it."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from risk.hedge_models import ReconciliationLog
from risk.reconciliation import reconciliation_run

pytestmark = pytest.mark.django_db
D = Decimal


def hl_trading_run(run_id: str, minutes_ago: int, btc_actual: str, eth_actual: str = "2") -> None:
    """One hl_trading run as the engine writes it (users hold 0.5 BTC and 2 ETH; HL what is given)."""
    from risk.reconciliation import _row

    at = timezone.now() - timedelta(minutes=minutes_ago)
    rows = [
        _row(run_id, "hl_trading", "BTC", D("0.5"), D(btc_actual), unit="coins"),
        _row(run_id, "hl_trading", "ETH", D("2"), D(eth_actual), unit="coins"),
    ]
    for row in rows:
        row.created_at = at
    ReconciliationLog.objects.bulk_create(rows)


@pytest.fixture
def history() -> None:
    hl_trading_run("run-old", 30, "0.5")  # clean
    hl_trading_run("run-mid", 20, "0.4995")  # BTC off by 0.1 % → WARN
    hl_trading_run("run-new", 10, "0.4", eth_actual="2.1")  # BTC −0.1, ETH +0.1 → CRITICAL
    reconciliation_run(dimensions=["ledger"])  # a later run of another dimension only


def test_the_latest_of_every_dimension_links_to_its_drill_down(console_as: Any, history: None) -> None:
    html = console_as(Role.RISK_MANAGER).get("/reconciliation/").content.decode()
    tiles = html.split('id="recon-summary"')[1].split("</nav>")[0]
    # the ledger's newest run does not hide hl_trading's (an older run)
    assert 'href="/reconciliation/ledger/"' in tiles and 'href="/reconciliation/hl_trading/"' in tiles
    hl = tiles.split('data-dimension="hl_trading"')[1].split("</a>")[0]
    assert "badge bad" in hl and "CRITICAL" in hl
    latest = html.split('id="recon-latest"')[1]
    assert 'href="/reconciliation/hl_trading/?subject=BTC"' in latest
    btc = latest.split("?subject=BTC")[1].split("</tr>")[0]
    assert "0.5<" in btc and "0.4<" in btc and "-0.1" in btc and "coins" in btc and "20.0000%" in btc


def test_the_drill_down_charts_the_deviation_per_run_and_lists_the_runs(
    console_as: Any, history: None
) -> None:
    response = console_as(Role.DATA_ANALYST).get("/reconciliation/hl_trading/")
    assert response.status_code == 200
    html = response.content.decode()
    deviation = json.loads(
        html.split('id="recon-deviation" type="application/json">')[1].split("</script>")[0]
    )
    rate = json.loads(html.split('id="recon-rate" type="application/json">')[1].split("</script>")[0])
    # oldest first, Σ |deviation| over BTC and ETH per run; the largest rate per run in %
    assert deviation["y"] == [0.0, 0.0005, 0.2] and len(deviation["x"]) == 3
    assert deviation["x"] == sorted(deviation["x"])
    assert rate["y"] == pytest.approx([0.0, 0.1, 20.0])
    assert 'data-chart="recon-deviation"' in html and 'data-chart="recon-rate"' in html
    assert "vendor/uplot/uPlot.iife.min.js" in html and "console/charts.js" in html
    assert '"value": 0.1, "color": "--bad"' in html  # the CRITICAL level drawn on the rate chart
    runs = html.split('id="recon-runs"')[1]
    assert (
        runs.index('data-run="run-new"') < runs.index('data-run="run-mid"') < runs.index('data-run="run-old"')
    )
    assert runs.count("<tr data-run=") == 6
    counts = html.split('id="recon-status-counts"')[1].split("</span></span>")[0]
    assert "3 runs" in counts and "3 OK" in counts and "1 WARN" in counts and "2 CRITICAL" in counts
    assert 'href="?subject=BTC"' in html and 'href="?subject=ETH"' in html  # the subject filter


def test_one_subject_charts_its_signed_deviation(console_as: Any, history: None) -> None:
    html = console_as(Role.RISK_MANAGER).get("/reconciliation/hl_trading/?subject=BTC").content.decode()
    deviation = json.loads(
        html.split('id="recon-deviation" type="application/json">')[1].split("</script>")[0]
    )
    assert deviation["y"] == [0.0, -0.0005, -0.1]
    runs = html.split('id="recon-runs"')[1]
    assert runs.count("<tr data-run=") == 3 and ">ETH<" not in runs


def test_the_runs_export_as_csv_and_the_export_is_audited(console_as: Any, history: None) -> None:
    client = console_as(Role.RISK_MANAGER)
    response = client.get("/reconciliation/hl_trading/export.csv?range=24h&subject=BTC")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["run_id"] for r in rows] == ["run-new", "run-mid", "run-old"]
    assert rows[0]["status"] == "CRITICAL" and D(rows[0]["deviation"]) == D("-0.1")
    assert json.loads(rows[0]["details"]) == {"unit": "coins"}
    entry = AuditEntry.objects.get(action="console.export", object_type="reconciliation")
    assert entry.after == {"dimension": "hl_trading", "range": "24h", "subject": "BTC"}


def test_an_unknown_dimension_is_404(console_as: Any) -> None:
    assert console_as(Role.RISK_MANAGER).get("/reconciliation/nonsense/").status_code == 404


@pytest.mark.parametrize(
    ("role", "page", "export"),
    [
        (Role.RISK_MANAGER, 200, 200),
        (Role.DATA_ANALYST, 200, 200),
        (Role.OPERATIONS, 403, 403),
        (Role.SUPPORT, 403, 403),
    ],
)
def test_who_may_open_and_export_the_drill_down(
    console_as: Any, history: None, role: Role, page: int, export: int
) -> None:
    client = console_as(role)
    assert client.get("/reconciliation/hl_trading/").status_code == page
    assert client.get("/reconciliation/hl_trading/export.csv").status_code == export


def test_run_now_runs_every_dimension_is_audited_and_only_for_who_may(console_as: Any) -> None:
    analyst = console_as(Role.DATA_ANALYST)
    assert 'id="recon-run-now"' not in analyst.get("/reconciliation/").content.decode()
    assert analyst.post("/reconciliation/run").status_code == 403
    assert not ReconciliationLog.objects.exists()

    risk = console_as(Role.RISK_MANAGER)
    assert 'id="recon-run-now"' in risk.get("/reconciliation/").content.decode()
    response = risk.post("/reconciliation/run", follow=True)
    assert response.status_code == 200
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "Reconciliation ran in" in shown
    dimensions = set(ReconciliationLog.objects.values_list("dimension", flat=True))
    assert {"ledger", "exposure", "user_assets", "bbook"} <= dimensions  # HL ones need HL accounts set up
    entry = AuditEntry.objects.get(action="risk.reconciliation_run")
    assert entry.actor == risk.staff_user and entry.after["rows"] == ReconciliationLog.objects.count()


def test_the_badge_is_the_latest_runs_worst_row_not_its_last_subject(console_as: Any, history: None) -> None:
    """A run writes one row per subject at the same instant: the newest row is just the last subject
    written. Here the newest run has BTC CRITICAL and ETH (written last) OK: the badge says CRITICAL."""
    hl_trading_run("run-newest", 5, "0.4")  # BTC −0.1 → CRITICAL, ETH clean
    newest = ReconciliationLog.objects.filter(dimension="hl_trading").order_by("-created_at", "-id").first()
    assert newest is not None and (newest.subject, newest.status) == ("ETH", "OK")
    html = console_as(Role.RISK_MANAGER).get("/reconciliation/hl_trading/").content.decode()
    badge = html.split('id="recon-latest-status"')[1].split("</span>")[0]
    assert "badge bad" in html.split('id="recon-latest-status"')[0][-60:] and "CRITICAL" in badge
    latest = html.split('id="recon-latest-run"')[1].split("</span>")[0]
    assert "1 of 2 subjects not OK: BTC" in latest
    # one subject: that subject's row of the newest run
    eth = console_as(Role.RISK_MANAGER).get("/reconciliation/hl_trading/?subject=ETH").content.decode()
    assert eth.split('id="recon-latest-status"')[1].split("</span>")[0].endswith(">OK")


def test_details_read_as_a_table_with_units_and_keep_the_raw_json(console_as: Any) -> None:
    """The ledger's violations and the exposure's disagreeing totals are comparisons (expected, actual,
    difference, relative difference, unit); other terms are listed with their unit; the raw JSON stays
    behind a toggle."""
    from risk.reconciliation import _row

    rows = [
        _row(
            "run-d",
            "ledger",
            "*",
            D(0),
            D(2),
            problems=[
                "asset USDC: balances sum to 0.500000, not 0",
                "user account u7:cash::USDC: balance 100.000000 but balance_logs sum to 99.500000",
            ],
            force_critical=True,
        ),
        _row(
            "run-d",
            "exposure",
            "BTC",
            D(0),
            D(1),
            differences={"long_size": "incremental 0.51 != database 0.5"},
            force_critical=True,
        ),
        _row(
            "run-d", "bbook", "INTERNAL", D(10), D(10), fills_realized_pnl=D("-10"), reserve_allocations=D(2)
        ),
    ]
    ReconciliationLog.objects.bulk_create(rows)
    client = console_as(Role.RISK_MANAGER)
    ledger = client.get("/reconciliation/ledger/").content.decode().split('id="recon-runs"')[1]
    table = ledger.split('class="mini recon-compare"')[1].split("</table>")[0]
    assert "Σ balances of USDC" in table and "0.5<span" in table and ">USDC<" in table
    assert "u7:cash::USDC vs its balance logs" in table and "99.5<" in table and "100<" in table
    assert "100.0000%" in table and "0.5000%" in table  # relative: 0.5 of 0.5; 0.5 of 100 (larger side)
    assert "raw JSON" in ledger and "balances sum to 0.500000" in ledger.split("<pre>")[1]
    exposure = client.get("/reconciliation/exposure/").content.decode().split('id="recon-runs"')[1]
    assert "Long size (incremental vs recompute)" in exposure and ">coins<" in exposure
    assert "0.01<" in exposure and "1.9608%" in exposure  # 0.01 of 0.51
    bbook = client.get("/reconciliation/bbook/").content.decode().split('id="recon-runs"')[1]
    terms = bbook.split('class="kv mini recon-terms"')[1].split("</dl>")[0]
    assert "<dt>Fills realized P&amp;L</dt>" in terms and '-10</span><span class="u">USDC' in terms
    assert "{" not in terms  # no JSON in the readable part
