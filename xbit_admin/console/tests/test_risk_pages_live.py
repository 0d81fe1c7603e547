"""The stress and reconciliation pages with the real risk modules behind them (not the placeholders)."""

from __future__ import annotations

from typing import Any

import pytest

from core.accounts.roles import Role
from xbit_admin.console.tests.conftest import publish_quote

pytestmark = pytest.mark.django_db


def test_the_stress_page_runs_a_what_if(console_as: Any, market: None) -> None:
    publish_quote("BTC", "80000")
    page = console_as(Role.RISK_MANAGER).get("/stress/?shock_BTC=-15")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Not available yet" not in html and "liquidat" in html.lower()


def test_the_reconciliation_page_shows_the_latest_run(console_as: Any) -> None:
    from risk.reconciliation import reconciliation_run

    reconciliation_run(dimensions=["ledger"])
    page = console_as(Role.RISK_MANAGER).get("/reconciliation/")
    assert page.status_code == 200
    assert "ledger" in page.content.decode()
