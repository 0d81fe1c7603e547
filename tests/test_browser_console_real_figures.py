"""Issue #16 in a real browser (Debian chromium via Playwright, live ASGI server, the exposure consumer and
the outbox relay in threads): the user page shows a liquidated user's liquidations (trigger mark, margin
ratio at the trigger, close, split), funding payments and drift records; the routing page's HL_MODE
banner shows the recommended hedge size and a fill moves it live; the reconciliation drill-down's badge
is the latest run's worst row and its details read as a table. Screenshots: artifacts/screenshots/
console-real-figures-*.png."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth.models import Group
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD, current_totp
from core.accounts.models import User
from core.accounts.roles import Role
from core.defaults import ensure_all
from tests.browser import SCREENSHOTS, chromium, needs_chromium, screenshot
from tests.test_browser_console_pages import VIEWPORT, hl_meta
from tests.test_browser_console_risk import Workers

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


@needs_chromium
@pytest.mark.browser
class RealFiguresInBrowser(ChannelsLiveServerTestCase):
    serve_static = True

    def setUp(self) -> None:
        from routing.services import routing_config_update
        from trading.markets import markets_sync
        from xbit_admin.console.tests.test_no_placeholders import quote

        ensure_all()
        markets_sync(meta=hl_meta())
        routing_config_update(
            asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="browser"
        )
        quote("BTC", "80000")

    def sign_in(self, browser: Any) -> Any:
        admin = User.objects.create_user("admin@xbit.test", PASSWORD, is_staff=True)
        admin.groups.add(Group.objects.get(name=str(Role.SUPER_ADMIN)))
        TOTPDevice.objects.create(user=admin, name="browser", confirmed=True)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.goto(self.live_server_url + "/login/")
        page.fill("input[name=email]", admin.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.fill("input[name=token]", current_totp(TOTPDevice.objects.get(user=admin)))
        page.click("button[type=submit]")
        page.wait_for_selector("#live-indicator.ok", timeout=10_000)
        return page

    @staticmethod
    def exposure_settled(long_size: str, timeout: float = 10.0) -> None:
        from risk.models import ExposureAsset

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = ExposureAsset.objects.filter(asset="BTC").first()
            if row is not None and row.long_size == Decimal(long_size):
                return
            time.sleep(0.05)
        raise AssertionError(f"the exposure consumer did not reach {long_size} BTC long")

    @staticmethod
    def reconciliation_history() -> None:
        from risk.hedge_models import ReconciliationLog
        from risk.reconciliation import _row

        rows = []
        for minutes, run_id, btc in ((30, "run-a", "0.5"), (20, "run-b", "0.4995"), (10, "run-c", "0.4")):
            for row in (
                _row(run_id, "hl_trading", "BTC", Decimal("0.5"), Decimal(btc), unit="coins"),
                _row(run_id, "hl_trading", "ETH", Decimal("2"), Decimal("2"), unit="coins"),
            ):
                row.created_at = timezone.now() - timedelta(minutes=minutes)
                rows.append(row)
        ledger = _row(
            "run-c",
            "ledger",
            "*",
            Decimal(0),
            Decimal(1),
            problems=["user account u7:cash::USDC: balance 100.000000 but balance_logs sum to 99.500000"],
            force_critical=True,
        )
        rows.append(ledger)
        ReconciliationLog.objects.bulk_create(rows)

    def test_the_user_routing_and_reconciliation_pages_show_real_figures(self) -> None:
        from trading.orders.input import order_input
        from trading.orders.place import order_place
        from xbit_admin.console.tests.conftest import fund
        from xbit_admin.console.tests.test_no_placeholders import build_demo, quote

        alice = User.objects.create_user("alice@example.com", PASSWORD)
        whale = User.objects.create_user("whale@example.com", PASSWORD)
        fund(whale, "300000")
        self.reconciliation_history()
        with Workers(), chromium() as browser:
            time.sleep(0.3)  # the consumer group exists before the first event
            build_demo(alice=alice, whale=whale, recompute_exposure=False)
            self.exposure_settled("1.3")
            page = self.sign_in(browser)

            page.goto(f"{self.live_server_url}/users/{alice.pk}/?range=all")
            liquidations = page.inner_text("#liquidations")
            assert "72,280" in liquidations and "74,100" in liquidations and "reserve 20%" in liquidations
            assert "arrive with" not in page.content() and "comes with the" not in page.content()
            assert "0.0012%" in page.inner_text("#funding-payments")
            assert "-20.00" in page.inner_text("#drift-records")
            screenshot(page, "console-real-figures-01-user")
            page.locator("#liquidations").screenshot(
                path=str(SCREENSHOTS / "console-real-figures-02-liquidations.png")
            )

            page.goto(self.live_server_url + "/routing/")
            page.wait_for_function(
                "document.getElementById('routing-live').textContent.includes('subscribed')", timeout=10_000
            )
            size = '[data-hedge-size="BTC"]'
            assert page.inner_text(size) == "BUY 0.65 BTC ≈ 52,000 USDC"
            screenshot(page, "console-real-figures-02-routing-hl-mode")
            # the whale closes 0.05 BTC (a close goes to the venue holding the position, whatever the mode):
            # the consumer pushes the exposure and the banner follows without a reload
            quote("BTC", "80000")
            order = order_place(
                user=whale,
                inp=order_input(
                    asset="BTC",
                    side="SELL",
                    order_type="MARKET",
                    size="0.05",
                    leverage=10,
                    margin_mode="CROSS",
                    reduce_only=True,
                ),
            )
            assert order.status == "FILLED" and order.route == "INTERNAL", (order.status, order.error_message)
            page.wait_for_function(
                f"document.querySelector('{size}').textContent === 'BUY 0.625 BTC ≈ 50,000 USDC'",
                timeout=5_000,
            )
            assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
            screenshot(page, "console-real-figures-03-routing-live")

            page.goto(self.live_server_url + "/reconciliation/hl_trading/")
            assert page.inner_text("#recon-latest-status") == "CRITICAL"
            assert "1 of 2 subjects not OK: BTC" in page.inner_text("#recon-latest-run")
            screenshot(page, "console-real-figures-04-reconciliation-hl_trading")
            page.goto(self.live_server_url + "/reconciliation/ledger/")
            table = page.inner_text("#recon-runs table.recon-compare")
            assert "u7:cash::USDC vs its balance logs" in table and "0.5000%" in table
            page.click("#recon-runs details.raw summary")
            assert "balance_logs sum to 99.500000" in page.inner_text("#recon-runs details.raw pre")
            screenshot(page, "console-real-figures-05-reconciliation-ledger")
            page.goto(self.live_server_url + "/reconciliation/")
            assert "u7:cash::USDC vs its balance logs" in page.inner_text("#recon-latest")
            screenshot(page, "console-real-figures-06-reconciliation")
            page.goto(self.live_server_url + "/hedge/")
            assert "BUY 0.625 BTC ≈ 50,000 USD" in page.inner_text("#hedge-banners")
            screenshot(page, "console-real-figures-07-hedge")
