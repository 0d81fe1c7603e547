"""The risk pages in a real browser (Debian chromium via Playwright) against a live ASGI server: an
INTERNAL fill placed through the trading API moves the overview's exposure figure within 1 s (the
risk exposure consumer and the outbox relay run in threads, as in production); every risk page is
screenshotted to artifacts/screenshots/ for review."""

from __future__ import annotations

import json
import os
import threading
import time
from decimal import Decimal
from typing import Any
from urllib.request import Request, urlopen

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD, current_totp
from tests.browser import chromium, needs_chromium, screenshot
from tests.test_browser_console_pages import VIEWPORT, hl_meta
from xbit_admin.accounts.models import User
from xbit_admin.accounts.roles import Role
from xbit_admin.defaults import ensure_all

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

        from xbit_admin.events.services import outbox_relay_batch

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
