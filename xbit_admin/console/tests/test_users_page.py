"""Users (support, spec 07 §9): search by each key, the user page with orders and their routing
decision, positions with venue labels and liquidation prices, and CSV export (export_data only)."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import unquote_plus

import pytest

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from wallets.models import DepositAddress, Withdrawal

pytestmark = pytest.mark.django_db


def found(client: Any, q: str) -> str:
    response = client.get("/users/", {"q": q})
    assert response.status_code == 302, (q, response.status_code)
    return unquote_plus(response["Location"])


def kinds(client: Any, q: str) -> set[tuple[str, int]]:
    return {(h.kind, h.user_id) for h in client.get("/users/", {"q": q, "list": "1"}).context["hits"]}


def test_support_finds_a_user_by_each_key(
    console_as: Any, trader: Any, internal_order: Any, deposit: Any
) -> None:
    client = console_as(Role.SUPPORT)
    page = f"/users/{trader.pk}/"
    assert ("user id", trader.pk) in kinds(client, str(trader.pk))
    assert ("order id", trader.pk) in kinds(client, str(internal_order.pk))
    assert found(client, trader.email.upper()).startswith(page)  # email, case-insensitive
    assert found(client, trader.email.split("@")[0] + "@").startswith(page)  # email prefix
    assert found(client, "0x" + "AB" * 20).startswith(page)  # wallet address, any hex case
    assert found(client, deposit.tx_hash) == f"{page}?found=deposit tx#deposit-{deposit.pk}"
    assert found(client, deposit.tx_hash.upper().replace("0X", "0x")).startswith(page)
    addr = DepositAddress.objects.create(
        user=trader, chain="TRON", address="T" + "Q" * 33, key=_key("TRON", "T" + "Q" * 33)
    )
    assert found(client, addr.address) == f"{page}?found=deposit address"


def _key(chain: str, address: str) -> Any:
    from wallets.models import WalletKey

    return WalletKey.objects.create(
        chain=chain, address=address, purpose="deposit", private_key_encrypted="x"
    )


def test_an_order_id_and_a_withdrawal_tx_hash_lead_to_their_row(
    console_as: Any, trader: Any, internal_order: Any, make_withdrawal: Any
) -> None:
    client = console_as(Role.OPERATIONS)
    response = client.get("/users/", {"q": str(internal_order.pk), "list": "1"})
    hits = response.context["hits"]
    assert any(h.kind == "order id" and h.anchor == f"order-{internal_order.pk}" for h in hits)
    withdrawal = make_withdrawal("500")
    Withdrawal.objects.filter(pk=withdrawal.pk).update(tx_hash="0x" + "7e" * 32)  # as if broadcast
    assert (
        found(client, "0x" + "7E" * 32)
        == f"/users/{trader.pk}/?found=withdrawal tx#withdrawal-{withdrawal.pk}"
    )


def test_nothing_found_says_so(console_as: Any, trader: Any) -> None:
    html = console_as(Role.SUPPORT).get("/users/", {"q": "0x" + "00" * 32}).content.decode()
    assert "0 matches" in html and "Nothing found" in html


def test_the_user_page_shows_the_orders_routing_decision_and_the_position_venue(
    console_as: Any, trader: Any, internal_order: Any, deposit: Any
) -> None:
    response = console_as(Role.SUPPORT).get(f"/users/{trader.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    order = next(o for o in response.context["orders"] if o.pk == internal_order.pk)
    assert order.decision.route == "INTERNAL" and order.decision.reason == "threshold"
    assert f'id="order-{internal_order.pk}"' in html and "INTERNAL · threshold · NORMAL" in html
    position = response.context["open_positions"][0]
    assert position.source == "INTERNAL" and position.live["liquidation_price"] is not None
    assert '<span class="route route-INTERNAL">INTERNAL</span>' in html
    assert deposit.tx_hash in html
    assert "CSV ↓" not in html  # support has no export_data


def test_time_filters_narrow_the_timeline(console_as: Any, trader: Any, internal_order: Any) -> None:
    client = console_as(Role.SUPPORT)
    assert client.get(f"/users/{trader.pk}/", {"range": "24h"}).context["orders"]
    assert client.get(f"/users/{trader.pk}/", {"until": "2001-01-01"}).context["orders"] == []


def test_operations_export_a_section_as_csv_and_the_export_is_audited(
    console_as: Any, trader: Any, internal_order: Any
) -> None:
    client = console_as(Role.OPERATIONS)
    assert "CSV ↓" in client.get(f"/users/{trader.pk}/").content.decode()
    response = client.get(f"/users/{trader.pk}/export/orders.csv", {"range": "all"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "created_at", "asset"] and rows[1][0] == str(internal_order.pk)
    entry = AuditEntry.objects.get(action="console.export")
    assert entry.object_id == str(trader.pk) and entry.after["section"] == "orders"
    for section in (
        "fills",
        "positions",
        "balance_logs",
        "deposits",
        "withdrawals",
        "security",
        "liquidations",
    ):
        assert client.get(f"/users/{trader.pk}/export/{section}.csv").status_code == 200, section


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.DATA_ANALYST])
def test_export_needs_both_export_data_and_view_user_data(role: Role, console_as: Any, trader: Any) -> None:
    assert console_as(role).get(f"/users/{trader.pk}/export/orders.csv").status_code == 403
    assert not AuditEntry.objects.filter(action="console.export").exists()


def test_csv_cells_cannot_smuggle_spreadsheet_formulas() -> None:
    from xbit_admin.console.pages.common import csv_response

    response = csv_response("x.csv", ["a"], [["=HYPERLINK(1)"], ["plain"]])
    body = b"".join(response.streaming_content).decode()
    assert "'=HYPERLINK(1)" in body and "\nplain" in body.replace("\r", "")
