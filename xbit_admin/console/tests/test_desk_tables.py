"""Desk tables on the hedge, drift, liquidity, venue and switches pages: sorting, filters and the page
kept in the URL (one table's state survives another's links), CSV of every filtered row in order (audited,
export_data only), tx hashes linked to the chain's explorer, switch history in words; and the venue /
hedge charts bucketed by the database over the whole window."""

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

pytestmark = pytest.mark.django_db


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def _section(html: str, anchor: str) -> str:
    return html.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def _instructions() -> None:
    from risk.hedge_models import HedgeInstruction

    now = timezone.now()
    for n, (asset, status, notional) in enumerate(
        [
            ("BTC", "FILLED", "5000"),
            ("ETH", "FAILED", "1200"),
            ("BTC", "FILLED", "800"),
            ("SOL", "SHADOW", "90"),
        ]
    ):
        HedgeInstruction.objects.create(
            instruction_id=f"hi-{n}",
            asset=asset,
            status=status,
            notional=Decimal(notional),
            filled_notional=Decimal(notional) if status == "FILLED" else Decimal(0),
            created_at=now - timedelta(minutes=n),
        )


def test_the_hedge_order_log_filters_sorts_and_pages_in_the_url_and_exports_what_it_shows(
    console_as: Any,
) -> None:
    _instructions()
    risk = console_as(Role.RISK_MANAGER)
    html = risk.get("/hedge/?orders-status=FILLED&orders-sort=-notional").content.decode()
    log = _section(html, "hedge-orders")
    assert log.index("hi-0") < log.index("hi-2")  # 5,000 before 800
    assert "hi-1" not in log and "hi-3" not in log
    assert "2 rows" in log
    # the per-asset table's sort link keeps the order log's filter and sort
    assert (
        "orders-status=FILLED"
        in _section(html, "hedge-assets").split('data-sort="net"')[0].rsplit("href=", 1)[1]
    )
    # a page past the last is clamped to the last
    page2 = _section(
        risk.get(
            "/hedge/?orders-status=FILLED&orders-sort=notional&orders-per=25&orders-page=2"
        ).content.decode(),
        "hedge-orders",
    )
    assert "page 1 of 1" in page2 and "hi-0" in page2 and "hi-2" in page2
    rows = _csv(risk.get("/hedge/?orders-status=FILLED&orders-sort=notional&format=csv&table=orders"))
    assert [r["instruction_id"] for r in rows] == ["hi-2", "hi-0"]
    assert Decimal(rows[0]["notional"]) == Decimal(800)
    export = AuditEntry.objects.filter(action="console.export", object_type="hedge_orders").get()
    assert export.after["orders-status"] == "FILLED"
    # an unknown choice is said, not silently applied
    refused = risk.get("/hedge/?orders-status=NOPE").content.decode()
    assert "is not one of the choices; not applied" in refused


def test_an_unknown_sort_falls_back_and_says_so(console_as: Any) -> None:
    _instructions()
    html = console_as(Role.DATA_ANALYST).get("/hedge/?orders-sort=password").content.decode()
    assert "Cannot sort by &#x27;password&#x27;; sorted by -created_at." in html


def test_the_drift_tables_sort_in_memory_and_export(console_as: Any) -> None:
    from risk.models import DeviationLog

    for n, (asset, deviation, rate) in enumerate(
        [("BTC", "-40", "0.02"), ("ETH", "5", "0.05"), ("SOL", "12", "0.03"), ("SOL", "1", "0.001")]
    ):
        DeviationLog.objects.create(
            ref=f"d-{n}",
            kind="CLOSE",
            asset=asset,
            xbit_pnl=Decimal(1000),
            hl_actual_pnl=Decimal(1000) + Decimal(deviation),
            deviation=Decimal(deviation),
            deviation_rate=Decimal(rate),
            level="ALERT",
        )
    analyst = console_as(Role.DATA_ANALYST)
    ranking = _section(analyst.get("/drift/?ranking-sort=asset").content.decode(), "drift-ranking")
    assert ranking.index("<strong>BTC") < ranking.index("<strong>ETH") < ranking.index("<strong>SOL")
    ranking = _section(analyst.get("/drift/?ranking-sort=-total").content.decode(), "drift-ranking")
    assert ranking.index("<strong>BTC") < ranking.index("<strong>SOL") < ranking.index("<strong>ETH")
    rows = _csv(analyst.get("/drift/?ranking-sort=-total&format=csv&table=ranking"))
    assert [(r["asset"], Decimal(r["total"])) for r in rows] == [
        ("BTC", Decimal(40)),
        ("SOL", Decimal(13)),
        ("ETH", Decimal(5)),
    ]
    # the records table: rate above 1 % only, filtered by asset, rate in % in the CSV
    rows = _csv(analyst.get("/drift/?recent-asset=sol&format=csv&table=recent"))
    assert [r["ref"] for r in rows] == ["d-2"]
    assert Decimal(rows[0]["deviation_rate"]) == Decimal(3)


def test_the_liquidity_tables_link_tx_hashes_to_the_explorer_and_export(console_as: Any) -> None:
    from wallets.models import Aggregation, ChainTx
    from xbit_admin.console.explorers import explorers_ensure

    explorers_ensure()  # as deployment does (the configurable URL per chain, defaults on first start)
    tx = "0x" + "ab" * 32
    Aggregation.objects.create(
        chain="ETH",
        asset="USDT",
        from_address="0x" + "1" * 40,
        to_address="0x" + "2" * 40,
        amount=Decimal(1500),
        trigger=Aggregation.Trigger.MANUAL,
        status=Aggregation.Status.CONFIRMED,
        tx_hash=tx,
    )
    ChainTx.objects.create(
        chain="ARBITRUM",
        ref="sweep:1",
        sender="0x" + "3" * 40,
        nonce=7,
        asset="USDC",
        to_address="0x" + "4" * 40,
        amount=Decimal(250),
        raw="0x00",
        tx_hash="0x" + "cd" * 32,
        gas_limit=21000,
        max_fee_per_gas=Decimal(2_000_000_000),
        max_priority_fee_per_gas=Decimal(1_000_000_000),
    )
    risk = console_as(Role.RISK_MANAGER)
    html = risk.get("/liquidity/").content.decode()
    assert f'href="https://etherscan.io/tx/{tx}"' in _section(html, "aggregations")
    assert 'href="https://arbiscan.io/tx/0x' in _section(html, "chain-txs")
    rows = _csv(risk.get("/liquidity/?chain_txs-chain=arbitrum&format=csv&table=chain_txs"))
    assert [(r["chain"], r["nonce"], Decimal(r["max_fee_gwei"])) for r in rows] == [
        ("ARBITRUM", "7", Decimal(2))
    ]
    assert _csv(risk.get("/liquidity/?chain_txs-chain=ETH&format=csv&table=chain_txs")) == []
    hot = _csv(risk.get("/liquidity/?format=csv&table=hot"))
    assert all("level" in r and "withdrawals" in r for r in hot)


def test_the_switch_history_reads_in_words_filters_and_exports(console_as: Any) -> None:
    from core.switches.models import SwitchChange

    SwitchChange.objects.create(
        name="withdrawals_enabled:ETH", old_value=True, new_value=False, reason="incident", source="SET"
    )
    SwitchChange.objects.create(
        name="degradation_level", old_value=0, new_value=2, reason="drill", source="DEGRADATION"
    )
    admin = console_as(Role.SUPER_ADMIN)
    history = _section(
        admin.get("/switches/?history-switch=withdrawals_enabled").content.decode(), "switch-history"
    )
    assert "withdrawals_enabled:ETH" in history and "degradation_level" not in history
    assert "<td>on</td><td><strong>off</strong></td>" in history
    assert "True" not in history and "False" not in history
    rows = _csv(admin.get("/switches/?history-switch=withdrawals_enabled&format=csv&table=history"))
    assert [(r["name"], r["old"], r["new"], r["old_value"], r["new_value"]) for r in rows] == [
        ("withdrawals_enabled:ETH", "on", "off", "true", "false")
    ]


def test_the_venue_samples_table_and_the_72_hour_chart_cover_the_whole_window(console_as: Any) -> None:
    from trading.models import HLAccountSnapshot
    from xbit_admin.console.models import VenueLatencySample

    now = timezone.now()
    # three days every 15 s: more rows than the page ever loads, one spike 70 h ago
    VenueLatencySample.objects.bulk_create(
        VenueLatencySample(
            created_at=now - timedelta(seconds=15 * k),
            latency_ms=Decimal(1500 if k == 16_800 else 100),
            connected=k != 16_800,
        )
        for k in range(17_200)
    )
    HLAccountSnapshot.objects.bulk_create(
        HLAccountSnapshot(
            account="hedge",
            account_value=Decimal(1000),
            total_margin_used=Decimal(0),
            maintenance_margin_used=Decimal(100),
            withdrawable=Decimal(0),
            total_notional=Decimal(0),
            margin_ratio=Decimal("1.2") if k == 40_000 else Decimal(10),
            created_at=now - timedelta(seconds=5 * k),
        )
        for k in range(0, 51_000, 20)
    )
    risk = console_as(Role.RISK_MANAGER)
    html = risk.get("/venue/?hours=72").content.decode()

    def chart(name: str) -> dict[str, list[float]]:
        return json.loads(html.split(f'id="{name}"', 1)[1].split(">", 1)[1].split("</script>", 1)[0])

    latency = chart("venue-latency-data")
    assert len(latency["x"]) <= 600
    assert latency["x"][0] <= (now - timedelta(hours=71)).timestamp()  # the chart reaches back 3 days
    assert max(latency["y"]) == 1500.0  # the spike survives the bucketing
    ratio = chart("venue-ratio-hedge")
    assert min(ratio["y"]) == 120.0 and len(ratio["x"]) <= 600
    rows = _csv(risk.get("/venue/?hours=72&samples-connected=no&format=csv&table=samples"))
    assert [(Decimal(r["latency_ms"]), r["connected"]) for r in rows] == [(Decimal(1500), "no")]
    samples = _section(risk.get("/venue/?hours=1&samples-sort=-latency_ms").content.decode(), "venue-samples")
    assert "240 rows" in samples  # 1 h at one sample per 15 s
    assert console_as(Role.SUPPORT).get("/venue/?format=csv&table=samples").status_code == 403


def test_the_beat_rolls_up_each_accounts_lowest_ratio_and_the_charts_read_the_rollup(console_as: Any) -> None:
    from trading.models import HLAccountSnapshot
    from xbit_admin.console.venue import venue_sample

    now = timezone.now()
    for name, seconds, ratio in (
        ("hedge", 50, "3"),
        ("hedge", 30, "1.4"),
        ("hedge", 10, "2"),
        ("trading", 20, "5"),
    ):
        HLAccountSnapshot.objects.create(
            account=name,
            account_value=Decimal(1000),
            total_margin_used=Decimal(0),
            maintenance_margin_used=Decimal(100),
            withdrawable=Decimal(0),
            total_notional=Decimal(0),
            margin_ratio=Decimal(ratio),
            created_at=now - timedelta(seconds=seconds),
        )
    first = venue_sample()
    assert (first.hedge_margin_ratio, first.trading_margin_ratio) == (Decimal("1.4"), Decimal(5))
    again = venue_sample()  # nothing new since the first sample
    assert (again.hedge_margin_ratio, again.trading_margin_ratio) == (None, None)
    # the charts read the samples, not the snapshots: gone snapshots still chart, the current figure does not
    HLAccountSnapshot.objects.all().delete()
    risk = console_as(Role.RISK_MANAGER)
    html = risk.get("/venue/").content.decode()
    chart = json.loads(html.split('id="venue-ratio-hedge"', 1)[1].split(">", 1)[1].split("</script>", 1)[0])
    assert chart["y"] == [140.0]
    hedge = risk.get("/hedge/").content.decode()
    assert json.loads(hedge.split('id="hedge-ratio"', 1)[1].split(">", 1)[1].split("</script>", 1)[0])[
        "y"
    ] == [140.0]


def test_the_switches_breakers_and_routing_tables_export_csv(console_as: Any, market: None) -> None:
    admin = console_as(Role.SUPER_ADMIN)
    switches = _csv(admin.get("/switches/?format=csv&table=switches"))
    assert switches and {"key", "current", "default", "who_may_change"} <= set(switches[0])
    assert all(r["current"] not in ("True", "False") for r in switches)  # in words, as on the page
    assert 'data-csv="switches"' in admin.get("/switches/").content.decode()
    breakers = _csv(admin.get("/risk-config/?format=csv&table=breakers"))
    assert {r["kind"] for r in breakers} >= {"KILL_SWITCH"} and all(r["state"] for r in breakers)
    assets = _csv(admin.get("/routing/?format=csv&table=assets"))
    btc = next(r for r in assets if r["asset"] == "BTC")
    assert btc["mode"] and Decimal(btc["normal_threshold"]) > 0 and btc["effect"]
    modes = _csv(admin.get("/routing/?format=csv&table=modes"))
    assert isinstance(modes, list)
    # the decision log keeps its own CSV (no table name)
    decisions = admin.get("/routing/?format=csv")
    assert b"".join(decisions.streaming_content).decode().startswith("created_at,order_id")
    kinds = set(AuditEntry.objects.filter(action="console.export").values_list("object_type", flat=True))
    assert {"switches", "breakers", "routing_assets", "routing_modes", "routing_decisions"} <= kinds


def test_adjustments_reconciliation_and_staff_sessions_export_csv(console_as: Any, trader: Any) -> None:
    from wallets.models import BalanceAdjustment

    admin = console_as(Role.SUPER_ADMIN)
    BalanceAdjustment.objects.create(
        user=trader, amount=Decimal("-12.5"), reason="fee refund reversal", requested_by=admin.staff_user
    )
    rows = _csv(admin.get(f"/users/{trader.pk}/adjustments/?format=csv"))
    assert [(Decimal(r["amount"]), r["requested_by"], r["status"]) for r in rows] == [
        (Decimal("-12.5"), admin.staff_user.email, "REQUESTED")
    ]
    assert isinstance(_csv(admin.get("/reconciliation/?format=csv")), list)
    sessions = _csv(admin.get(f"/staff/{admin.staff_user.pk}/?format=csv&table=sessions"))
    assert sessions and sessions[0]["state"] == "live"
    assert console_as(Role.SUPPORT).get(f"/users/{trader.pk}/adjustments/?format=csv").status_code == 403


def test_the_overview_exposure_and_the_risk_config_thresholds_export_csv(
    console_as: Any, internal_order: Any
) -> None:
    from risk.exposure import exposure_recompute
    from xbit_admin.console.live_overview import overview_fragment

    exposure_recompute(apply=True)  # the exposure tables from the open position (no consumer in page tests)
    risk = console_as(Role.RISK_MANAGER)
    exposure = _csv(risk.get("/?format=csv&table=exposure"))
    btc = next(r for r in exposure if r["asset"] == "BTC")
    assert Decimal(btc["net"]) != 0 and btc["positions"] == "1"
    assert 'data-csv="exposure"' in overview_fragment(risk.staff_user)  # the pushed region keeps the link
    thresholds = _csv(risk.get("/risk-config/?format=csv&table=thresholds"))
    names = {r["name"] for r in thresholds}
    assert {"daily_loss_trip", "normal_threshold"} <= names
    assert all(r["value"] not in ("", None) for r in thresholds if r["name"] == "daily_loss_trip")
