"""Issue #17, finding 6: the Content-Security-Policy does not break the console. Chromium reports every
blocked script, style or connection as a console message; a Risk Manager signs in and opens the pages
with charts, live websockets and forms, and the browser blocks nothing (and the websocket connects)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD, current_totp
from core.accounts.models import User
from core.accounts.roles import Role
from core.defaults import ensure_all
from tests.browser import chromium, needs_chromium

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

PAGES = [
    "/",
    "/routing/",
    "/hedge/",
    "/drift/",
    "/liquidations/",
    "/reconciliation/",
    "/risk-config/",
    "/stress/",
]


@needs_chromium
@pytest.mark.browser
class ConsoleUnderItsContentSecurityPolicy(ChannelsLiveServerTestCase):
    serve_static = True

    def setUp(self) -> None:
        ensure_all()
        self.user = User.objects.create_user("csp-browser@xbit.test", PASSWORD, is_staff=True)
        self.user.groups.add(Group.objects.get(name=Role.RISK_MANAGER))
        self.device = TOTPDevice.objects.create(user=self.user, name="browser", confirmed=True)

    def test_the_console_runs_with_nothing_blocked(self) -> None:
        blocked: list[str] = []
        page: Any = None

        def watch(message: Any) -> None:
            if "Content Security Policy" in message.text or "Refused to" in message.text:
                blocked.append(f"{page.url}: {message.text[:160]} @ {message.location}")

        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 800}, bypass_csp=False)
            page.on("console", watch)
            page.goto(self.live_server_url + "/login/")
            page.fill("input[name=email]", self.user.email)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.fill("input[name=token]", current_totp(self.device))
            page.click("button[type=submit]")
            page.wait_for_selector("#live-indicator.ok", timeout=10_000)  # the websocket connected
            for path in PAGES:
                response = page.goto(self.live_server_url + path)
                assert response is not None and response.status in (200, 403), (
                    path,
                    response and response.status,
                )
                assert "content-security-policy" in response.headers, path
                page.wait_for_load_state("networkidle")
            page.goto(self.live_server_url + "/api/docs/")
            page.wait_for_selector(".swagger-ui .info", timeout=15_000)  # the split view's script ran
        assert not blocked, blocked
