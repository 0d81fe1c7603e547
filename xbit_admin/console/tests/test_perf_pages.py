"""Issue #9: console pages answer in well under 200 ms with demo data. The figures come from
bench/console_pages.py; these tests pin what makes them hold — the number of SQL queries of the user page
and the alerts page, which must not grow with the rows shown (no N+1) — and check that the user page's
single read of a user's money gives exactly what trading's account view and the wallets' wallet view
give."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import live_config
from core.accounts.roles import Role
from xbit_admin.console.tests.conftest import publish_quote

pytestmark = pytest.mark.django_db

# Session, user, OTP device, two permission reads (the page guard), the signed-in user's roles (nav).
FRAME = 6
# Subject (with its tags, whether 2FA is on and its last sign-in), open positions with the window's
# positions, ledger balances, wallet row, orders, their routing decisions, fills, liquidations (commands
# joined to their closes), funding payments, drift records, balance logs, deposits, withdrawals, security
# events, ledger accounts, deposit addresses; the client card: the journal's staff notes, staff actions
# (audit rows), withdrawal approvals and rejections (the other kinds reuse the sections' rows), active
# restrictions, open four-eyes proposals; the client-risk card: the routing group, the client's metrics.
USER_PAGE = FRAME + 24
# A cross liquidation in the list: its margin ratio at the trigger needs the cash and order holds at its
# detection and the account's cross positions then — two queries, however many cross liquidations.
USER_PAGE_CROSS_LIQUIDATION = 2
# Alerts, their deliveries (one prefetch), open/acknowledged counts, capped resolved count.
ALERTS_PAGE = FRAME + 4


@pytest.fixture(autouse=True)
def _fresh_config_caches() -> Iterator[None]:
    """``_queries`` lets process-local config caches fill from this test's (rolled back) data: drop
    them afterwards so no later test reads markets that no longer exist."""
    yield
    for cache in live_config._registry.values():
        cache.invalidate_local()


def _as_committed() -> None:
    """As in production once the fixtures' configuration writes (markets synced, routing switched on)
    have committed: the test's open transaction still queues their cache-invalidation messages, and
    while it does, each read of that configuration goes to the database (``live_config``). Dropping
    the queued messages lets the page read markets from memory, as every request in production does."""
    connection.run_on_commit[:] = [
        entry for entry in connection.run_on_commit if not hasattr(entry[1], "live_config_name")
    ]


def _queries(client: Any, url: str) -> list[str]:
    _as_committed()
    client.get(url)  # warm: the first request of a client may load caches
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return [q["sql"] for q in ctx.captured_queries]


def _listing(queries: list[str]) -> str:
    return "\n".join(f"{n:2d}. {sql[:160]}" for n, sql in enumerate(queries, 1))


def _order(user: Any, *, side: str, size: str, mode: str, reduce_only: bool = False) -> Any:
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    publish_quote("BTC", "80000")  # a fresh book: an order needs a live price
    order = order_place(
        user=user,
        inp=order_input(
            asset="BTC",
            side=side,
            order_type="MARKET",
            size=size,
            leverage=10,
            margin_mode=mode,
            reduce_only=reduce_only,
        ),
    )
    assert order.status == "FILLED", (order.status, order.error_message)
    return order


def _more_history(trader: Any, make_withdrawal: Callable[[str], Any]) -> None:
    """Many rows in every section of the user page: orders with decisions, fills, open and closed
    positions (isolated and cross), balance logs, deposits, withdrawals and security events."""
    from core.accounts.models import SecurityEvent
    from wallets.models import Deposit

    for _ in range(3):
        _order(trader, side="BUY", size="0.01", mode="CROSS")
        _order(trader, side="SELL", size="0.02", mode="ISOLATED")
    _order(trader, side="SELL", size="0.01", mode="CROSS", reduce_only=True)
    Deposit.objects.bulk_create(
        Deposit(
            chain="ETH",
            tx_hash=f"0x{k:064x}",
            log_index=0,
            user=trader,
            address="0x" + "11" * 20,
            asset="USDT",
            amount=Decimal(100 + k),
            confirmations=12,
            required_confirmations=12,
            status=Deposit.Status.CREDITED,
        )
        for k in range(40)
    )
    # an hour of funding, a drift record, and the isolated short liquidated at a mark of 90,000
    from risk.detection import liquidation_sweep
    from risk.drift import drift_record
    from risk.funding import funding_run
    from risk.liquidation_execute import liquidations_drain
    from trading.models import Position

    funding_run(funding_time=timezone.now())
    short = Position.objects.get(user=trader, status="OPEN", margin_mode="ISOLATED", direction="SHORT")
    drift_record(
        ref=f"perf:{short.pk}",
        kind="CLOSE",
        asset="BTC",
        xbit_pnl=Decimal(2000),
        hl_actual_pnl=Decimal(1980),
        notional=Decimal(40000),
        position_id=short.pk,
    )
    liquidation_sweep(marks={"BTC": Decimal(90000)}, wake=False)
    assert liquidations_drain() == 1
    make_withdrawal("20000")
    make_withdrawal("60000")
    SecurityEvent.objects.bulk_create(
        SecurityEvent(user=trader, kind=SecurityEvent.Kind.LOGIN, ip="127.0.0.1", user_agent="test")
        for _ in range(25)
    )


def test_the_user_page_reads_a_fixed_number_of_queries_however_long_the_history(
    console_as: Any, trader: Any, internal_order: Any, deposit: Any, make_withdrawal: Callable[[str], Any]
) -> None:
    client = console_as(Role.OPERATIONS)  # may export: the CSV links are rendered too
    url = f"/users/{trader.pk}/?range=all"
    few = _queries(client, url)
    _more_history(trader, make_withdrawal)
    many = _queries(client, url)
    page = client.get(url)
    assert len(page.context["orders"]) == 8 and len(page.context["s"]["deposits"]) == 41
    # open: the cross long (the isolated short was liquidated)
    assert len(page.context["open_positions"]) == 1 and len(page.context["s"]["security"]) >= 25
    # the lists read two at a time are exactly what each read alone gives
    from risk.models import DeviationLog, FundingSettlement, LiquidationRecord
    from trading.models import Fill, Position

    shown = page.context["s"]
    assert (
        shown["fills"] == list(Fill.objects.filter(user=trader).order_by("-id")) and len(shown["fills"]) >= 8
    )
    record = LiquidationRecord.objects.get(user=trader)
    assert [(r.position_id, r.close_price, r.loss) for r in shown["liquidations"]] == [
        (record.position_id, record.close_price, record.loss)
    ]
    assert shown["funding"] == list(
        FundingSettlement.objects.filter(user=trader).order_by("-funding_time", "-id")
    )
    assert len(shown["funding"]) >= 2 and len(shown["drift"]) == DeviationLog.objects.count() == 1
    assert shown["positions"] == list(Position.objects.filter(user=trader).order_by("-id"))
    assert page.context["open_positions"] == list(
        Position.objects.filter(user=trader, status="OPEN").order_by("-id")
    )
    assert len(many) == len(few), f"grew from {len(few)} to {len(many)}:\n{_listing(many)}"
    assert len(many) == USER_PAGE, _listing(many)


def test_the_alerts_page_reads_a_fixed_number_of_queries_however_many_alerts_and_deliveries(
    console_as: Any, make_staff: Callable[..., Any]
) -> None:
    from core.alerts.models import Delivery
    from core.alerts.services import alert_acknowledge, alert_raise, alert_resolve_manual

    client = console_as(Role.OPERATIONS)  # may acknowledge: every row carries its two forms
    url = "/alerts/?state=all"
    alert_raise(rule="feed.down", severity="P1", message="feed down")
    few = _queries(client, url)

    operators = [make_staff(Role.OPERATIONS) for _ in range(3)]
    alerts = [
        alert_raise(
            rule=f"perf.rule{k % 5}", subject=f"S{k}", severity=("P0", "P1", "P2")[k % 3], message="m"
        )
        for k in range(40)
    ]
    Delivery.objects.bulk_create(
        Delivery(alert=alert, channel=channel, action="trigger", status="sent")
        for alert in alerts
        for channel in ("slack", "pagerduty")
    )
    for k, alert in enumerate(alerts[:12]):  # acknowledged by different people (no per-row user read)
        alert_acknowledge(alert_id=alert.pk, acting_user=operators[k % 3])
    for alert in alerts[12:18]:
        alert_resolve_manual(alert_id=alert.pk, acting_user=operators[0], reason="handled")
    many = _queries(client, url)

    html = client.get(url).content.decode()
    assert html.count('class="delivery"') == 80 and html.count("Acknowledge</button>") == 23
    assert len(many) == len(few), f"grew from {len(few)} to {len(many)}:\n{_listing(many)}"
    assert len(many) == ALERTS_PAGE, _listing(many)


def test_the_alert_rows_link_to_their_own_actions(console_as: Any) -> None:
    from core.alerts.services import alert_raise

    alert = alert_raise(rule="feed.down", severity="P1", message="feed down")
    client = console_as(Role.OPERATIONS)
    html = client.get("/alerts/").content.decode()
    assert f'action="/alerts/{alert.pk}/ack/"' in html and f'action="/alerts/{alert.pk}/resolve/"' in html
    assert html.count('name="csrfmiddlewaretoken"') >= 3  # both row forms and sign-out
    assert client.post(f"/alerts/{alert.pk}/ack/", {"back_state": "open"}).status_code == 302
    alert.refresh_from_db()
    assert alert.state == "acknowledged"


def test_resolved_alerts_are_counted_up_to_a_cap(console_as: Any, monkeypatch: Any) -> None:
    from core.alerts.models import Alert
    from xbit_admin.console.pages import audit

    monkeypatch.setattr(audit, "RESOLVED_COUNT_CAP", 3)
    client = console_as(Role.SUPPORT)
    Alert.objects.bulk_create(
        Alert(rule="old", subject=f"S{k}", severity="P2", state="resolved", message="m") for k in range(3)
    )
    Alert.objects.create(rule="now", severity="P0", message="m")
    assert client.get("/alerts/").context["counts"] == {"open": 1, "resolved": 3}
    Alert.objects.create(rule="old", subject="S9", severity="P2", state="resolved", message="m")
    assert client.get("/alerts/").context["counts"] == {"open": 1, "resolved": "3+"}
    assert '>resolved <span class="num">3+</span>' in client.get("/alerts/").content.decode()


def test_the_user_pages_money_read_equals_the_account_view_and_the_wallet_view(
    trader: Any, internal_order: Any
) -> None:
    """One read of positions and balances for both cards: the same numbers as trading's
    ``account_view`` and wallets' ``wallet_get`` (which reads cross margin through trading's hook)."""
    from trading.account import account_view
    from wallets.selectors import wallet_get
    from xbit_admin.console.selectors import user_money

    _order(trader, side="BUY", size="0.02", mode="CROSS")
    _order(trader, side="SELL", size="0.05", mode="CROSS")  # net short cross: nonzero cross margin
    publish_quote("BTC", "81234.5")  # marks moved since the fills: non-trivial P&L
    money = user_money(trader.pk)
    assert money.account == account_view(trader.pk) and money.account_error == ""
    assert money.wallet == wallet_get(user_id=trader.pk)
    assert money.wallet.cross_margin_used > 0
    assert [p.pk for p in money.open_positions] == sorted((p.pk for p in money.open_positions), reverse=True)
    assert all(p.live is not None and p.live["id"] == p.pk for p in money.open_positions)


def test_cross_liquidations_cost_two_queries_however_many(
    console_as: Any, market: None, make_trader: Callable[..., Any]
) -> None:
    """The margin ratio at a cross trigger reads the cash and holds at each detection and the account's
    cross positions then: two queries for the page, for one cross liquidation or several."""
    from risk.detection import liquidation_sweep
    from risk.liquidation_execute import liquidations_drain
    from xbit_admin.console.tests.conftest import fund

    user = make_trader()
    client = console_as(Role.OPERATIONS)
    url = f"/users/{user.pk}/?range=all"

    def cross_liquidation(mark: int) -> None:
        fund(user, "1800")
        _order(user, side="BUY", size="0.1", mode="CROSS")
        _order(user, side="BUY", size="0.1", mode="CROSS")
        liquidation_sweep(marks={"BTC": Decimal(mark)}, wake=False)
        assert liquidations_drain() == 1

    cross_liquidation(70000)
    one = _queries(client, url)
    cross_liquidation(69000)
    two = _queries(client, url)
    page = client.get(url)
    assert [r.kind for r in page.context["s"]["liquidations"]] == ["CROSS", "CROSS"]
    assert all(r.margin_ratio is not None for r in page.context["s"]["liquidations"])
    assert len(one) == len(two) == USER_PAGE + USER_PAGE_CROSS_LIQUIDATION, _listing(two)
