"""The console pages in a real browser (Debian chromium via Playwright) against a live ASGI server with
real websockets: routing mode switch with its confirmation, banner and log row, pushed live to a
second session; an operator approving a withdrawal; support finding a user by deposit tx hash; an
analyst exporting the audit log. Screenshots of every page go to artifacts/screenshots/."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth.models import Group
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice
from eth_account import Account
from eth_utils import keccak

from conftest import PASSWORD, current_totp
from core.accounts.models import User
from core.accounts.roles import Role
from core.defaults import ensure_all
from tests.browser import chromium, needs_chromium, screenshot

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
VIEWPORT = {"width": 1600, "height": 900}


@cache
def hl_meta() -> dict[str, Any]:
    from sandbox.testing import SandboxProcess

    with SandboxProcess(seed=7) as sb:
        request = Request(  # noqa: S310 - loopback sandbox
            sb.urls["hyperliquid"] + "/info",
            data=json.dumps({"type": "meta"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urlopen(request, timeout=10) as response:  # noqa: S310 - loopback sandbox
            return json.loads(response.read())


@needs_chromium
@pytest.mark.browser
class ConsolePagesInBrowser(ChannelsLiveServerTestCase):
    serve_static = True

    def setUp(self) -> None:
        from routing.services import routing_config_update
        from trading.markets import markets_sync

        ensure_all()
        markets_sync(meta=hl_meta())
        routing_config_update(
            asset="*",
            changes={"global_internalization_enabled": True},
            acting_user=None,
            reason="browser tests",
        )
        self.publish_quotes()

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

    # --- helpers ---------------------------------------------------------------------------------------

    def staff(self, role: Role, name: str) -> User:
        user = User.objects.create_user(f"{name}@xbit.test", PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=str(role)))
        TOTPDevice.objects.create(user=user, name="browser", confirmed=True)
        return user

    def sign_in(self, browser: Any, user: User) -> Any:
        page = browser.new_context(viewport=VIEWPORT, accept_downloads=True).new_page()
        page.goto(self.live_server_url + "/login/")
        page.fill("input[name=email]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.fill("input[name=token]", current_totp(TOTPDevice.objects.get(user=user)))
        page.click("button[type=submit]")
        page.wait_for_selector("#live-indicator.ok", timeout=10_000)
        return page

    def trader_with_activity(self) -> tuple[User, Any, Any]:
        from trading.orders.input import order_input
        from trading.orders.place import order_place
        from wallets.ledger import AccountRef, TransferSpec, ledger_post
        from wallets.models import Deposit

        trader = User.objects.create_user(
            "alice@example.com", PASSWORD, wallet_address="0x" + "ab" * 20, kyc_status="VERIFIED"
        )
        TOTPDevice.objects.create(user=trader, name="phone", confirmed=True)
        ledger_post(
            key=f"browser-fund:{trader.pk}",
            transfers=[
                TransferSpec(
                    AccountRef.platform("deposit_clearing", sub="ETH:USDT"),
                    AccountRef.user(trader.pk, "cash"),
                    Decimal("200000"),
                    "deposit",
                )
            ],
        )
        deposit = Deposit.objects.create(
            chain="ETH",
            tx_hash="0x" + "d5" * 32,
            log_index=0,
            user=trader,
            address=Account.from_key(keccak(text="browser-deposit")).address,
            asset="USDT",
            amount=Decimal("200000"),
            confirmations=12,
            required_confirmations=12,
            status="CREDITED",
        )
        self.publish_quotes()  # fresh book: an order needs a live price
        order = order_place(
            user=trader,
            inp=order_input(
                asset="BTC", side="BUY", order_type="MARKET", size="0.05", leverage=10, margin_mode="ISOLATED"
            ),
        )
        assert order.route == "INTERNAL", order.error_message
        return trader, deposit, order

    def pending_withdrawal(self, trader: User, amount: str) -> Any:
        from django_otp.oath import totp

        from wallets.services import withdrawal_confirm, withdrawal_request

        device = TOTPDevice.objects.get(user=trader)
        TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
        device.refresh_from_db()
        code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
        withdrawal_request(
            user=trader,
            chain="ETH",
            asset="USDT",
            address=Account.from_key(keccak(text=f"browser-out-{amount}")).address,
            amount=amount,
            totp_code=code,
        )
        token = re.search(r"token=([\w\-]+)", mail.outbox[-1].body).group(1)  # type: ignore[union-attr]
        return withdrawal_confirm(token=token)

    # --- scenarios -------------------------------------------------------------------------------------

    def test_a_risk_manager_switches_btc_to_hl_and_a_second_session_sees_it_live(self) -> None:
        from routing.models import RoutingModeLog

        risk, watcher_user = self.staff(Role.RISK_MANAGER, "risk"), self.staff(Role.RISK_MANAGER, "risk2")
        with chromium() as browser:
            watcher = self.sign_in(browser, watcher_user)
            watcher.goto(self.live_server_url + "/routing/")
            watcher.wait_for_function(
                "document.getElementById('routing-live').textContent.includes('subscribed')", timeout=10_000
            )

            page = self.sign_in(browser, risk)
            page.goto(self.live_server_url + "/routing/")
            screenshot(page, "console-routing-01-normal")
            page.click("#assets-table tr[data-asset=BTC] button[data-mode-button=HL_MODE]")
            dialog = page.locator("#confirm-dialog")
            dialog.wait_for(state="visible")
            assert "BTC: NORMAL → HL. New BTC orders go to Hyperliquid." in dialog.inner_text()
            page.click("#confirm-dialog .confirm-ok")  # no reason yet: refused in the dialog
            assert "A reason is required." in dialog.inner_text()
            page.fill("#confirm-dialog textarea", "net exposure above 800k")
            screenshot(page, "console-routing-02-confirm")
            page.click("#confirm-dialog .confirm-ok")
            page.wait_for_selector(".banner.orange[data-asset=BTC]")
            banner = page.inner_text(".banner.orange[data-asset=BTC]")
            assert "net exposure is high, hedge now" in banner and "Recommended hedge size" in banner
            log_row = page.inner_text("#mode-log tbody tr:first-child")
            assert "BTC" in log_row and "NORMAL → HL" in log_row and "risk@xbit.test" in log_row
            assert page.locator("#assets-table tr[data-asset=BTC] .mode-HL_MODE.current").count() == 1
            screenshot(page, "console-routing-03-hl-mode")

            # the second session, never reloaded, shows the new mode, the banner and the log row
            watcher.wait_for_selector(
                "#assets-table tr[data-asset=BTC] .mode-HL_MODE.current", timeout=10_000
            )
            watcher.wait_for_selector(".banner.orange[data-asset=BTC]", timeout=5_000)
            assert "net exposure above 800k" in watcher.inner_text("#mode-log")
            assert watcher.evaluate("performance.getEntriesByType('navigation').length") == 1
            screenshot(watcher, "console-routing-04-second-session-live")

            page.goto(self.live_server_url + "/routing/BTC/")
            page.fill("input[name=normal_threshold]", "0")
            page.fill("input[name=reason]", "try zero")
            page.click("#settings-form button[type=submit]")
            page.click("#confirm-dialog .confirm-ok")
            page.wait_for_selector(".field-error")
            assert "normal_threshold must be greater than zero (got 0)." in page.inner_text(".field-error")
            screenshot(page, "console-routing-05-threshold-refused")
        assert RoutingModeLog.objects.get().operator == risk

    def test_operations_approve_a_withdrawal_and_see_no_routing_controls(self) -> None:
        trader, _deposit, _order = self.trader_with_activity()
        withdrawal = self.pending_withdrawal(trader, "50000")
        ops = self.staff(Role.OPERATIONS, "ops")
        with chromium() as browser:
            page = self.sign_in(browser, ops)
            assert page.locator(".nav a", has_text="Routing").count() == 0
            response = page.goto(self.live_server_url + "/routing/")
            assert response is not None and response.status == 403
            assert page.locator("button[data-mode-button]").count() == 0
            page.goto(self.live_server_url + "/withdrawals/")
            screenshot(page, "console-withdrawals-01-queue")
            page.click(f"#withdrawal-{withdrawal.pk} button.approve")
            assert "signed and broadcast" in page.inner_text("#confirm-dialog")
            page.fill("#confirm-dialog textarea", "known customer")
            page.click("#confirm-dialog .confirm-ok")
            page.wait_for_selector(f"text=Withdrawal {withdrawal.pk} approved")
            screenshot(page, "console-withdrawals-02-approved")
            page.goto(self.live_server_url + "/liquidity/")
            screenshot(page, "console-liquidity")
            page.goto(self.live_server_url + "/alerts/")
            screenshot(page, "console-alerts")
        withdrawal.refresh_from_db()
        assert withdrawal.status in ("APPROVED", "SENDING", "BROADCAST", "FAILED")
        assert withdrawal.approvals.get().approver == ops

    def test_support_finds_a_user_by_deposit_tx_hash_and_sees_the_orders_routing_decision(self) -> None:
        trader, deposit, order = self.trader_with_activity()
        support = self.staff(Role.SUPPORT, "support")
        with chromium() as browser:
            page = self.sign_in(browser, support)
            page.goto(self.live_server_url + "/users/")
            screenshot(page, "console-users-01-search")
            page.keyboard.press("Escape")
            page.keyboard.press("/")
            page.keyboard.type(deposit.tx_hash)
            page.keyboard.press("Enter")
            page.wait_for_selector(f"#order-{order.pk}")
            assert f"/users/{trader.pk}/" in page.url
            assert "found by deposit tx" in page.inner_text(".page-head")
            row = page.inner_text(f"#order-{order.pk}")
            assert "INTERNAL" in row and "threshold" in row and "NORMAL" in row
            assert "INTERNAL" in page.inner_text("#positions")
            assert page.locator("a.export").count() == 0  # support cannot export
            page.evaluate("window.scrollTo(0, 0)")
            screenshot(page, "console-users-02-user-page")

    def test_an_analyst_exports_the_audit_log_but_can_change_nothing(self) -> None:
        self.trader_with_activity()
        analyst = self.staff(Role.DATA_ANALYST, "analyst")
        with chromium() as browser:
            page = self.sign_in(browser, analyst)
            page.goto(self.live_server_url + "/routing/")
            assert page.locator("button[data-mode-button]").count() == 0
            assert page.locator("#assets-table form").count() == 0
            assert page.locator(".nav a", has_text="Withdrawals").count() == 0
            page.goto(self.live_server_url + "/audit/")
            page.click("#verify-chain")
            page.wait_for_selector("text=chain intact")
            screenshot(page, "console-audit")
            with page.expect_download() as info:
                page.click("#audit-export")
            body = Path(info.value.path()).read_text(encoding="utf-8")
            assert body.startswith("id,created_at,actor,ip,action")
            assert "routing.config_update" in body
            page.goto(self.live_server_url + "/alerts/")
            assert page.locator("form[action*='/ack/']").count() == 0
