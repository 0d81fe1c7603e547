"""The console shell in a real browser: a staff member signs in with password + TOTP, lands on the
overview, and the live channel connects over a real websocket."""

from __future__ import annotations

import os

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD, current_totp
from core.accounts.models import User
from core.accounts.roles import Role
from core.defaults import ensure_all
from tests.browser import chromium, needs_chromium, screenshot

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


@needs_chromium
@pytest.mark.browser
class ConsoleShellInBrowser(ChannelsLiveServerTestCase):
    serve_static = True

    def setUp(self) -> None:
        ensure_all()
        self.user = User.objects.create_user("risk-browser@xbit.test", PASSWORD, is_staff=True)
        self.user.groups.add(Group.objects.get(name=Role.RISK_MANAGER))
        self.device = TOTPDevice.objects.create(user=self.user, name="browser", confirmed=True)

    def test_sign_in_with_totp_reaches_a_live_overview(self) -> None:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            page.goto(self.live_server_url + "/")
            assert "/login/" in page.url
            screenshot(page, "shell-01-login")
            page.fill("input[name=email]", self.user.email)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            assert "/otp/" in page.url
            page.fill("input[name=token]", current_totp(self.device))
            page.click("button[type=submit]")
            page.wait_for_selector("text=Overview")
            # the live channel (heartbeat websocket) connects and the age label starts counting
            page.wait_for_selector("#live-indicator.ok", timeout=10_000)
            page.wait_for_function(
                "document.getElementById('live-age').textContent.startsWith('updated')", timeout=10_000
            )
            screenshot(page, "shell-02-overview")
            assert page.locator(".nav a", has_text="Overview").count() == 1
            assert "Risk Manager" in page.inner_text(".who")
