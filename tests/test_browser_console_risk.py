"""The risk pages in a real browser (Debian chromium via Playwright) against a live ASGI server: an
INTERNAL fill placed through the trading API moves the overview's exposure figure within 1 s (the
risk exposure consumer and the outbox relay run in threads, as in production); every risk page is
screenshotted to artifacts/screenshots/ for review."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.request import Request, urlopen

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD, current_totp
from core.accounts.models import User
from core.accounts.roles import Role
from core.defaults import ensure_all
from tests.browser import chromium, needs_chromium, screenshot
from tests.test_browser_console_pages import VIEWPORT, hl_meta

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


class Workers:
    """The exposure consumer and the outbox relay, each looping in a thread until stopped."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._consumer, daemon=True),
            threading.Thread(target=self._relay, daemon=True),
        ]

    def _consumer(self) -> None:
        from django.db import connection

        from risk.exposure import run_consumer

        try:
            run_consumer(consumer_name="browser-test", stop=self.stop.is_set, block_ms=50)
        finally:
            connection.close()

    def _relay(self) -> None:
        from django.db import connection

        from core.events.services import outbox_relay_batch

        try:
            while not self.stop.is_set():
                if not outbox_relay_batch():
                    time.sleep(0.02)
        finally:
            connection.close()

    def __enter__(self) -> Workers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)


@needs_chromium
@pytest.mark.browser
class RiskPagesInBrowser(ChannelsLiveServerTestCase):
    serve_static = True

    def setUp(self) -> None:
        from routing.services import routing_config_update
        from trading.markets import markets_sync
        from wallets.ledger import AccountRef, TransferSpec, ledger_post

        ensure_all()
        markets_sync(meta=hl_meta())
        routing_config_update(
            asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="browser"
        )
        self.publish_quotes()
        self.trader = User.objects.create_user("bob@example.com", PASSWORD, kyc_status="VERIFIED")
        ledger_post(
            key=f"browser-risk-fund:{self.trader.pk}",
            transfers=[
                TransferSpec(
                    AccountRef.platform("deposit_clearing", sub="ETH:USDT"),
                    AccountRef.user(self.trader.pk, "cash"),
                    Decimal("200000"),
                    "deposit",
                )
            ],
        )

    @staticmethod
    def publish_quotes() -> None:
        from trading.marketdata import quote_update

        for asset, mark in (("BTC", "80000"), ("ETH", "3000")):
            m = Decimal(mark)
            quote_update(
                asset,
                mark=m,
                oracle=m,
                mid=m,
                bid=m - 1,
                ask=m + 1,
                bid_size=Decimal(50),
                ask_size=Decimal(50),
            )

    def api(self, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = Request(  # noqa: S310 - the test's own live server
            self.live_server_url + path, data=json.dumps(body).encode(), headers=headers
        )
        with urlopen(request, timeout=10) as response:  # noqa: S310 - the test's own live server
            return json.loads(response.read())

    def buy(self, token: str, size: str) -> None:
        self.publish_quotes()  # fresh book: an order needs a live price
        order = self.api(
            "/api/v1/orders",
            {
                "symbol": "BTC",
                "side": "BUY",
                "type": "MARKET",
                "size": size,
                "margin_mode": "ISOLATED",
                "leverage": 10,
            },
            token,
        )
        assert order["status"] == "FILLED", order

    def sign_in(self, browser: Any, role: Role, name: str) -> Any:
        user = User.objects.create_user(f"{name}@xbit.test", PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=str(role)))
        TOTPDevice.objects.create(user=user, name="browser", confirmed=True)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.goto(self.live_server_url + "/login/")
        page.fill("input[name=email]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.fill("input[name=token]", current_totp(TOTPDevice.objects.get(user=user)))
        page.click("button[type=submit]")
        page.wait_for_selector("#live-indicator.ok", timeout=10_000)
        return page

    def test_an_internal_fill_through_the_api_moves_the_overview_exposure_within_a_second(self) -> None:
        token = self.api("/api/v1/auth/login", {"email": self.trader.email, "password": PASSWORD})["access"]
        with Workers(), chromium() as browser:
            time.sleep(0.3)  # the consumer group exists before the first event
            page = self.sign_in(browser, Role.RISK_MANAGER, "risk")
            page.wait_for_function("document.getElementById('ov-age').textContent.startsWith('updated')")
            self.buy(token, "0.01")  # the BTC row appears (≈ 800 USD)
            cell = '[data-net-asset="BTC"]'
            page.wait_for_selector(cell, timeout=5_000)
            page.wait_for_function(f"document.querySelector('{cell}').textContent === '800'", timeout=5_000)
            started = time.monotonic()
            self.buy(token, "0.02")  # 0.03 BTC ≈ 2,400 USD
            page.wait_for_function(f"document.querySelector('{cell}').textContent === '2,400'", timeout=5_000)
            elapsed = time.monotonic() - started
            assert elapsed < 1.0, f"exposure figure moved after {elapsed:.2f} s"
            assert page.inner_text("#ov-age").startswith("updated")
            screenshot(page, "console-risk-01-overview")
            page.goto(self.live_server_url + "/risk-config/")
            page.fill("#f-risk-daily_loss_alert input[name=value]", "0")
            page.click("#f-risk-daily_loss_alert button[type=submit]")
            dialog = page.locator("#confirm-dialog")
            dialog.wait_for(state="visible")
            assert "→ 0 USD" in dialog.inner_text()
            page.fill("textarea[name=confirm_reason]", "test the refusal")
            screenshot(page, "console-risk-02-config-confirm")
            page.click(".confirm-ok")
            page.wait_for_selector("#f-risk-daily_loss_alert .field-error")
            assert "must be greater than zero" in page.inner_text("#f-risk-daily_loss_alert")
            screenshot(page, "console-risk-03-config-refused")
            for n, path in enumerate(
                ["liquidations", "drift", "hedge", "reconciliation", "stress/?shock_BTC=-15"], 4
            ):
                page.goto(f"{self.live_server_url}/{path}")
                page.wait_for_load_state("networkidle")
                screenshot(page, f"console-risk-{n:02d}-{path.split('/')[0]}")

    def test_stress_reconciliation_drill_down_and_the_live_hedge_account(self) -> None:
        """The stress result, the reconciliation drill-down chart and the hedge account's margin ratio
        updated live by a real manual hedge on the sandbox's HL hedge account (screenshots 09–12)."""
        import requests

        from risk.hedge_orders import hedge_manual_order
        from risk.reconciliation import reconciliation_run
        from sandbox.testing import SandboxProcess
        from trading.hl_accounts import account_health, hl_sandbox_accounts_setup
        from trading.markets import hl_info, markets_sync
        from trading.venues.hl import reset_gateways

        token = self.api("/api/v1/auth/login", {"email": self.trader.email, "password": PASSWORD})["access"]
        with (
            SandboxProcess(seed=43, config={"hyperliquid": {"clock": "real"}}) as sb,
            self.settings(HL_API_URL=sb.urls["hyperliquid"], HL_TIMEOUT_SECONDS=3.0),
            Workers(),
        ):
            hl = sb.urls["hyperliquid"]
            requests.post(f"{hl}/control/prices/pause", json={}, timeout=10).raise_for_status()
            reset_gateways()
            markets_sync(info=hl_info(base_url=hl))
            hl_sandbox_accounts_setup(base_url=hl)
            time.sleep(0.3)  # the consumer group exists before the first event
            self.buy(token, "0.05")  # users long 0.05 BTC INTERNAL (≈ 4,000 USD)
            self.quote_from_hl(hl, "ETH")  # the hedge below trades at HL's own price
            account_health("hedge")  # a first snapshot: the account is flat
            self.seed_hl_trading_history()
            with chromium() as browser:
                self.drive_stress_reconciliation_and_hedge(browser, hedge_manual_order, reconciliation_run)
            reset_gateways()

    def drive_stress_reconciliation_and_hedge(
        self, browser: Any, hedge_manual_order: Any, recon: Any
    ) -> None:
        # Playwright's sync API runs an event loop in this thread: server-side code that pushes to the
        # channel layer (async_to_sync) runs in a worker thread, as it would in a Celery worker
        def off_loop(fn: Any, **kwargs: Any) -> Any:
            from django.db import connection

            def call() -> Any:
                try:
                    return fn(**kwargs)
                finally:
                    connection.close()

            with ThreadPoolExecutor(1) as pool:
                return pool.submit(call).result(timeout=60)

        page = self.sign_in(browser, Role.RISK_MANAGER, "risk")
        manager = User.objects.get(email="risk@xbit.test")

        # hedge: the margin ratio follows the hedge account live
        page.goto(self.live_server_url + "/hedge/")
        page.wait_for_function(
            "document.getElementById('hedge-health-age').textContent.includes('waiting for the next')"
        )
        assert page.inner_text('[data-field="margin_ratio"]') == "no position"
        instruction = off_loop(
            hedge_manual_order,
            acting_user=manager,
            asset="ETH",
            side="SELL",
            notional="20000",
            reason="browser",
        )
        assert instruction.status == "FILLED", instruction.error
        done = time.monotonic()
        page.wait_for_function(
            "document.querySelector('[data-field=\"margin_ratio\"]').textContent.endsWith('%')",
            timeout=5_000,
        )
        elapsed = time.monotonic() - done
        assert elapsed < 1.0, f"the hedge account's margin ratio showed {elapsed:.2f} s after the snapshot"
        page.wait_for_function(  # the data's age, refreshed on the next tick (250 ms)
            "document.getElementById('hedge-health-age').textContent.startsWith('live · snapshot')"
        )
        assert not page.is_hidden("#hedge-gauge")
        page.wait_for_selector(  # the order log's live region follows the "hedge" topic
            f"#hedge-orders >> text={instruction.instruction_id}", timeout=5_000
        )
        screenshot(page, "console-risk-09-hedge-live")

        # stress: BTC −15 %, ETH −10 %
        page.goto(self.live_server_url + "/stress/?shock_BTC=-15&shock_ETH=-10")
        page.wait_for_selector("#stress-summary")
        assert "platform p&l under the shock" in page.inner_text("#stress-summary").lower()
        assert page.locator("#stress-table tbody tr").count() >= 2
        screenshot(page, "console-risk-10-stress-result")

        # reconciliation: real runs, plus an hour of hl_trading history with a deviation to look at
        for _ in range(2):
            off_loop(recon, dimensions=["ledger", "exposure", "user_assets", "bbook", "hl_hedge"])
        page.goto(self.live_server_url + "/reconciliation/")
        page.wait_for_selector("#recon-summary")
        screenshot(page, "console-risk-11-reconciliation")
        page.click('#recon-summary a[data-dimension="hl_trading"]')
        page.wait_for_selector("#recon-deviation-chart canvas")
        page.wait_for_selector("#recon-rate-chart canvas")
        assert page.locator("#recon-runs tbody tr").count() == 24
        screenshot(page, "console-risk-12-reconciliation-hl_trading")
        page.goto(self.live_server_url + "/reconciliation/hl_trading/?subject=BTC")
        page.wait_for_selector("#recon-deviation-chart canvas")
        screenshot(page, "console-risk-13-reconciliation-hl_trading-btc")

    @staticmethod
    def quote_from_hl(hl: str, asset: str) -> None:
        import requests

        from trading.marketdata import quote_update

        book = requests.post(f"{hl}/info", json={"type": "l2Book", "coin": asset}, timeout=10).json()
        mid = (Decimal(book["levels"][0][0]["px"]) + Decimal(book["levels"][1][0]["px"])) / 2
        quote_update(
            asset,
            mark=mid,
            oracle=mid,
            mid=mid,
            bid=mid - 1,
            ask=mid + 1,
            bid_size=Decimal(5),
            ask_size=Decimal(5),
        )

    @staticmethod
    def seed_hl_trading_history() -> None:
        """12 runs, 5 minutes apart: BTC drifts off by up to 0.2 % and back, ETH stays clean."""
        from django.utils import timezone

        from risk.hedge_models import ReconciliationLog
        from risk.reconciliation import _row

        now = timezone.now()
        rows = []
        for n, off in enumerate(
            ["0", "0", "0.0001", "0.0003", "0.0006", "0.001", "0.0004", "0", "0", "0", "0", "0"]
        ):
            run_id = f"seed-{n:02d}"
            for row in (
                _row(
                    run_id, "hl_trading", "BTC", Decimal("0.5"), Decimal("0.5") - Decimal(off), unit="coins"
                ),
                _row(run_id, "hl_trading", "ETH", Decimal("2"), Decimal("2"), unit="coins"),
            ):
                row.created_at = now - timezone.timedelta(minutes=5 * (12 - n))
                rows.append(row)
        ReconciliationLog.objects.bulk_create(rows)
