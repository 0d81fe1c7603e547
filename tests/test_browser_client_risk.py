"""The client-risk page in a real browser (Debian chromium via Playwright, live ASGI server): the markout
curves and the B-book attribution draw as uPlot charts with a legend per series, without a script error;
the client card shows the client's group. Screenshot: artifacts/screenshots/console-client-risk.png."""

from __future__ import annotations

import os
from datetime import UTC
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
from risk.client_risk.models import BbookPnlDaily, ClientMetrics
from routing.client_groups import client_group_assign
from routing.decision import ClientGroup
from tests.browser import chromium, needs_chromium, screenshot
from tests.test_browser_console_pages import VIEWPORT

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
D = Decimal


@needs_chromium
@pytest.mark.browser
class ClientRiskInBrowser(ChannelsLiveServerTestCase):
    serve_static = True

    def setUp(self) -> None:
        ensure_all()
        self.client_user = User.objects.create_user("toxic@xbit.test", PASSWORD)
        ClientMetrics.objects.create(
            user_id=self.client_user.pk,
            fills=312,
            measured=312,
            notional=D(250_000),
            mo_1_bp=D("2.2"),
            mo_10_bp=D("3.3"),
            mo_60_bp=D("4.1"),
            mo_300_bp=D("4.4"),
            mo_60_usdc=D("102.5"),
            win_rate=D("0.61"),
            realized_pnl=D("875.25"),
            stale_fills=17,
        )
        client_group_assign(user_id=self.client_user.pk, group=ClientGroup.A, reason="60 s markout +4.1 bp")
        today = timezone.now().astimezone(UTC).date()
        for back, total in ((0, -860), (1, 120)):
            BbookPnlDaily.objects.create(
                day=today - timezone.timedelta(days=back),
                asset="BTC",
                spread_capture=D(40),
                market_move=D(total - 40),
                total=D(total),
            )

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

    def test_the_charts_draw_and_the_card_shows_the_group(self) -> None:
        with chromium() as browser:
            page = self.sign_in(browser)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(self.live_server_url + "/client-risk/")
            page.wait_for_selector("[data-curves='markout-curves'] canvas", timeout=10_000)
            page.wait_for_selector("[data-curves='bbook-attribution'] canvas", timeout=10_000)
            legend = page.inner_text("[data-curves='markout-curves'] .u-legend")
            assert "all fills" in legend and "toxic@xbit.test" in legend
            assert "spread capture" in page.inner_text("[data-curves='bbook-attribution'] .u-legend")
            screenshot(page, "console-client-risk")
            page.goto(f"{self.live_server_url}/users/{self.client_user.pk}/")
            assert page.inner_text("#client-group") == "A"
            assert errors == []
