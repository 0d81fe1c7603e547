"""Issue #21 in a real browser (Debian chromium via Playwright, live ASGI server): the console as a desk's
back office, each flow done by the role that does it and refused to one that may not.

* A support agent answers "why was I liquidated?" from the client card alone: found by email prefix, the
  journal filtered to liquidations shows the trigger mark, the margin ratio at the trigger, the close
  price and the 80/20 split.
* Support writes a note and a tag, reviews KYC and proposes a 2FA reset that Operations approves.
* Operations restricts the client with an expiry, requests a balance adjustment a Super Admin approves,
  and closes the client's position at market; a Risk Manager cannot reach the client card.
* A Super Admin invites a staff member, changes roles, revokes a session and proposes a TOTP reset that a
  second Super Admin approves; Support is refused the staff page.
* The platform-state banner says in plain words that the HL latency breaker sends every order to
  Hyperliquid, with the live latency; the routing page says the same; the runbook is one click away.

Screenshots: artifacts/screenshots/console-desk-*.png."""

from __future__ import annotations

import os
import re
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD, current_totp
from core.accounts.models import User
from core.accounts.roles import Role
from core.defaults import ensure_all
from tests.browser import SCREENSHOTS, chromium, needs_chromium, screenshot
from tests.test_browser_console_pages import hl_meta

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
DESK_VIEWPORT = {"width": 1440, "height": 900}


@needs_chromium
@pytest.mark.browser
class DeskInBrowser(ChannelsLiveServerTestCase):
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

    # --- helpers ---------------------------------------------------------------------------------------

    def staff(self, role: Role, name: str) -> User:
        user = User.objects.create_user(f"{name}@xbit.test", PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=str(role)))
        TOTPDevice.objects.create(user=user, name="browser", confirmed=True)
        return user

    def sign_in(self, browser: Any, user: User, viewport: dict[str, int] | None = None) -> Any:
        TOTPDevice.objects.filter(user=user).update(last_t=-1)  # a second sign-in in the same 30 s
        page = browser.new_context(viewport=viewport or DESK_VIEWPORT, accept_downloads=True).new_page()
        page.goto(self.live_server_url + "/login/")
        page.fill("input[name=email]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.fill("input[name=token]", current_totp(TOTPDevice.objects.get(user=user)))
        page.click("button[type=submit]")
        page.wait_for_selector("#live-indicator.ok", timeout=10_000)
        return page

    @staticmethod
    def confirm(page: Any, submit_selector: str, reason: str = "") -> None:
        page.click(submit_selector)
        dialog = page.locator("#confirm-dialog")
        dialog.wait_for(state="visible")
        if reason:
            page.fill("#confirm-dialog textarea", reason)
        page.click("#confirm-dialog .confirm-ok")
        page.wait_for_load_state("load")

    @staticmethod
    def flash(page: Any) -> str:
        return page.inner_text(".flash")

    def trader(self, email: str, *, kyc: str = "NONE") -> User:
        from xbit_admin.console.tests.conftest import fund

        user = User.objects.create_user(email, PASSWORD, kyc_status=kyc)
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        fund(user, "20000")
        return user

    # --- scenarios -------------------------------------------------------------------------------------

    def test_support_answers_why_was_i_liquidated_from_the_client_card(self) -> None:
        from risk.models import LiquidationRecord
        from xbit_admin.console.tests.conftest import fund
        from xbit_admin.console.tests.test_no_placeholders import build_demo

        alice = User.objects.create_user("trader03@example.com", PASSWORD)
        whale = User.objects.create_user("whale@example.com", PASSWORD)
        fund(whale, "300000")
        build_demo(alice=alice, whale=whale)
        record = LiquidationRecord.objects.get(user=alice, margin_mode="ISOLATED")
        support, analyst = self.staff(Role.SUPPORT, "support"), self.staff(Role.RISK_MANAGER, "risk")
        with chromium() as browser:
            page = self.sign_in(browser, support)
            page.goto(self.live_server_url + "/users/")
            page.fill("input[name=q]", "trader03")  # the beginning of the email is enough
            page.press("input[name=q]", "Enter")
            page.wait_for_url(re.compile(rf".*/users/{alice.pk}/.*"))
            page.goto(f"{self.live_server_url}/users/{alice.pk}/?range=all#journal")
            page.click('.journal-filter a[data-kind="liquidation"]')
            page.wait_for_url(re.compile(r".*kind=liquidation.*"))
            journal = page.inner_text("#journal-rows")
            assert journal.count("Liquidated:") == 2, journal
            isolated = page.locator("#journal-rows tr", has_text="Liquidated: isolated").inner_text()
            ratio = ((record.margin_zeroed + record.xbit_pnl) / Decimal("28.912")) * 100
            assert "Trigger mark" in isolated and "72,280 USD" in isolated
            assert f"{ratio:,.1f} %" in isolated, isolated
            assert "Close price" in isolated
            assert f"{record.platform_share:,.2f} / {record.reserve_share:,.2f} USDC" in isolated
            assert "Reserve share" in isolated and "20 %" in isolated
            assert "Why: margin ratio" in isolated and "INTERNAL" in isolated
            screenshot(page, "console-desk-01-client-card-why-liquidated")
            page.locator("#journal").screenshot(
                path=str(SCREENSHOTS / "console-desk-02-journal-liquidations.png")
            )
            assert page.locator("#journal-export").count() == 0  # support may not export
            # a risk manager cannot read the client card (no view_user_data)
            risk = self.sign_in(browser, analyst)
            response = risk.goto(f"{self.live_server_url}/users/{alice.pk}/")
            assert response is not None and response.status == 403
            # operations exports the journal as CSV
            ops = self.sign_in(browser, self.staff(Role.OPERATIONS, "ops"))
            ops.goto(f"{self.live_server_url}/users/{alice.pk}/?range=all&kind=liquidation")
            with ops.expect_download() as download:
                ops.click("#journal-export")
            body = open(download.value.path(), encoding="utf-8").read()  # noqa: SIM115
            assert body.splitlines()[0] == "time_utc,kind,event,detail,amount,unit,who,facts"
            assert "72,280 USD" in body and body.count("\nliquidation") + body.count(",liquidation,") >= 2

    def test_support_notes_tags_kyc_and_a_2fa_reset_that_operations_approves(self) -> None:
        from core.accounts.models import StaffProposal

        client = self.trader("bob@example.com", kyc="PENDING")
        support, ops = self.staff(Role.SUPPORT, "support"), self.staff(Role.OPERATIONS, "ops")
        analyst = self.staff(Role.DATA_ANALYST, "analyst")
        with chromium() as browser:
            page = self.sign_in(browser, support)
            page.goto(f"{self.live_server_url}/users/{client.pk}/")
            page.fill("#note-form textarea", "Client called: asks where the 2FA reset stands.")
            page.click("#note-form button[type=submit]")
            assert "Note added" in self.flash(page)
            page.fill("#tag-form input[name=tag]", "vip")
            page.click("#tag-form button[type=submit]")
            assert "vip" in page.inner_text("#client-tags")
            page.select_option("#kyc-form select[name=status]", "VERIFIED")
            self.confirm(page, "#kyc-form button[type=submit]", "passport and selfie match")
            assert page.inner_text("#kyc-status") == "Verified"
            self.confirm(page, "#reset-2fa-form button[type=submit]", "lost phone; identity checked on video")
            assert "a second person must approve it" in self.flash(page)
            assert "(yours: another person approves)" in page.inner_text("#staff-actions")
            journal = page.inner_text("#journal-rows")
            assert (
                "Client called: asks where the 2FA reset stands." in journal and "kyc: status set" in journal
            )
            screenshot(page, "console-desk-03-support-actions")

            second = self.sign_in(browser, ops)
            second.goto(f"{self.live_server_url}/users/{client.pk}/")
            proposal = StaffProposal.objects.get(target_user=client)
            self.confirm(
                second, f'.proposal[data-proposal="{proposal.pk}"] button:has-text("Approve")', "checked"
            )
            assert "approved and applied" in self.flash(second)
            assert second.inner_text("#two-factor") == "off"
            screenshot(second, "console-desk-04-2fa-reset-approved")

            viewer = self.sign_in(browser, analyst)
            response = viewer.goto(f"{self.live_server_url}/users/{client.pk}/")
            assert response is not None and response.status == 403
            assert viewer.request.post(f"{self.live_server_url}/users/{client.pk}/note/").status == 403

    def test_operations_restricts_adjusts_and_closes_a_position(self) -> None:
        from trading.models import Position
        from wallets.models import BalanceAdjustment
        from xbit_admin.console.tests.test_no_placeholders import buy, quote

        client = self.trader("carol@example.com", kyc="VERIFIED")
        quote("BTC", "80000")
        buy(client, "0.01", 10, "ISOLATED")
        position = Position.objects.get(user=client, status="OPEN")
        ops, admin = self.staff(Role.OPERATIONS, "ops"), self.staff(Role.SUPER_ADMIN, "admin")
        support = self.staff(Role.SUPPORT, "support")
        with chromium() as browser:
            page = self.sign_in(browser, ops)
            page.goto(f"{self.live_server_url}/users/{client.pk}/")
            page.select_option("#restrict-form select[name=kind]", "no_withdrawals")
            page.select_option("#restrict-form select[name=expires]", "7d")
            self.confirm(page, "#restrict-form button[type=submit]", "chargeback under review")
            assert "Restricted: No withdrawals, until" in self.flash(page)
            assert "chargeback under review" in page.inner_text("#restrictions")
            client.refresh_from_db()
            assert client.withdrawals_restricted
            screenshot(page, "console-desk-05-restricted")

            page.click("#adjust-link")
            page.fill("#adjust-amount", "125.50")
            page.fill("#adjust-form textarea[name=reason]", "fee refund, ticket 881")
            self.confirm(page, "#adjust-form button[type=submit]")
            assert "another person must approve it" in self.flash(page)
            adjustment = BalanceAdjustment.objects.get(user=client)
            screenshot(page, "console-desk-06-adjustment-requested")
            quote("BTC", "80000")
            page.goto(f"{self.live_server_url}/users/{client.pk}/")
            self.confirm(
                page, f"#position-{position.pk} .close-position button", "margin call, client unreachable"
            )
            assert f"Position {position.pk} closed at market" in self.flash(page), self.flash(page)
            position.refresh_from_db()
            assert position.status == "CLOSED"

            second = self.sign_in(browser, admin)
            second.goto(f"{self.live_server_url}/users/{client.pk}/adjustments/")
            self.confirm(
                second, f'tr[data-adjustment="{adjustment.pk}"] button:has-text("Approve")', "ticket checked"
            )
            assert "approved" in self.flash(second)
            screenshot(second, "console-desk-07-adjustment-approved")
            adjustment.refresh_from_db()
            assert adjustment.status == "APPROVED" and adjustment.decided_by == admin

            viewer = self.sign_in(browser, support)
            viewer.goto(f"{self.live_server_url}/users/{client.pk}/")
            assert (
                viewer.locator("#restrict-form").count() == 0
                and viewer.locator(".close-position").count() == 0
            )
            response = viewer.goto(f"{self.live_server_url}/users/{client.pk}/adjustments/")
            assert response is not None and response.status == 403

    def test_a_super_admin_manages_staff_and_a_second_approves_a_totp_reset(self) -> None:
        from core.accounts.models import StaffSession

        first, second = self.staff(Role.SUPER_ADMIN, "admin1"), self.staff(Role.SUPER_ADMIN, "admin2")
        support = self.staff(Role.SUPPORT, "support")
        with chromium() as browser:
            agent = self.sign_in(browser, support)
            assert agent.goto(self.live_server_url + "/staff/").status == 403
            page = self.sign_in(browser, first)
            page.goto(self.live_server_url + "/staff/")
            page.fill("#invite-email", "dealer@xbit.test")
            page.check('#invite-form input[value="Operations"]')
            page.fill("#invite-reason", "new dealer on the desk")
            page.click("#invite-form button[type=submit]")
            assert "dealer@xbit.test invited." in page.inner_text("#invite-result")
            screenshot(page, "console-desk-08-staff")
            page.goto(f"{self.live_server_url}/staff/{support.pk}/")
            session = StaffSession.objects.get(user=support)
            self.confirm(page, f'tr[data-session="{session.pk}"] button', "shared screen left signed in")
            assert f"Session {session.pk} of support@xbit.test ended." in self.flash(page)
            assert agent.goto(self.live_server_url + "/").url.endswith("/login/?next=/")
            self.confirm(page, "#totp-reset-form button[type=submit]", "phone replaced")
            assert "another Super Admin must approve it" in self.flash(page)
            screenshot(page, "console-desk-09-staff-member")

            other = self.sign_in(browser, second)
            other.goto(self.live_server_url + "/proposals/")
            self.confirm(other, "#open-proposals button:has-text('Approve')", "confirmed with them by phone")
            assert "approved and applied" in self.flash(other)
            screenshot(other, "console-desk-10-proposals")
            assert not TOTPDevice.objects.filter(user=support).exists()

    def test_the_banner_says_the_latency_breaker_sends_orders_to_hl_with_the_live_figure(self) -> None:
        from risk.breakers import hl_latency_check
        from trading.marketdata import latency_clear, latency_update
        from trading.selectors import FEED_NAME

        def latency(ms: float) -> None:
            latency_update(FEED_NAME, round_trips_ms=[ms] * 5, measured_at=time.time())

        from django.utils import timezone

        from trading.models import FeedStatus

        FeedStatus.objects.create(name=FEED_NAME, connected=True, last_message_at=timezone.now())
        support, risk = self.staff(Role.SUPPORT, "support"), self.staff(Role.RISK_MANAGER, "risk")
        try:
            with chromium() as browser:
                page = self.sign_in(browser, support)
                page.wait_for_selector("#platform-banner[data-level=ok]", timeout=10_000)
                assert "All normal" in page.inner_text("#platform-banner")
                latency(1020)
                verdict: list[str] = []
                # outside Playwright's event loop: the breaker's broadcast uses async_to_sync
                checker = threading.Thread(target=lambda: verdict.append(hl_latency_check()))
                checker.start()
                checker.join()
                assert verdict == ["TRIPPED"]
                page.wait_for_selector("#platform-banner[data-level=bad]", timeout=10_000)
                text = page.inner_text("#platform-banner")
                assert (
                    "New orders are all sent to Hyperliquid: internalization halted because HL market-data "
                    "latency is 1,020 ms, limit 500 ms" in text
                ), text
                screenshot(page, "console-desk-11-banner-hl-latency")
                latency(1350)  # the live figure, not the one at the trip
                page.wait_for_function(
                    "document.getElementById('platform-banner').textContent.includes('1,350 ms')",
                    timeout=10_000,
                )
                page.click("#platform-banner .pb-runbook")
                page.wait_for_url(re.compile(r".*/runbooks/breaker/HL_LATENCY/"))
                assert "Automatic when latency is back under" in page.inner_text("#runbook-undo")
                screenshot(page, "console-desk-12-runbook")

                desk = self.sign_in(browser, risk)
                desk.goto(self.live_server_url + "/routing/")
                banner = desk.inner_text('[data-forced-hl="hl_latency"]')
                assert "Internalization halted platform-wide." in banner and "1,350 ms" in banner
                screenshot(desk, "console-desk-13-routing-forced-hl")
                nav = desk.locator('.nav a:has-text("Stress test")')
                live = desk.locator("#live-age")
                # at 1440 px the nav wraps: the last link is not under the live-age indicator
                box, other = nav.bounding_box(), live.bounding_box()
                assert box is not None and other is not None
                overlap = not (
                    box["x"] + box["width"] <= other["x"]
                    or other["x"] + other["width"] <= box["x"]
                    or box["y"] + box["height"] <= other["y"]
                    or other["y"] + other["height"] <= box["y"]
                )
                assert not overlap, (box, other)
        finally:
            latency_clear(FEED_NAME)

    def test_a_risk_manager_watches_venue_health_and_support_is_refused(self) -> None:
        from datetime import timedelta

        from django.utils import timezone

        from trading.marketdata import latency_clear, latency_update
        from trading.models import HLAccountSnapshot
        from trading.selectors import FEED_NAME
        from xbit_admin.console.venue import venue_sample

        now = timezone.now()
        for name, ratios in (("trading", ("6.1", "5.4", "4.8")), ("hedge", ("3.4", "2.6", "2.2"))):
            for minutes, ratio in zip((50, 30, 10), ratios, strict=True):
                HLAccountSnapshot.objects.create(
                    account=name,
                    account_value=Decimal(250_000),
                    total_margin_used=Decimal(0),
                    maintenance_margin_used=Decimal(1),
                    withdrawable=Decimal(0),
                    total_notional=Decimal(0),
                    margin_ratio=Decimal(ratio),
                    created_at=now - timedelta(minutes=minutes),
                )
        risk, support = self.staff(Role.RISK_MANAGER, "risk"), self.staff(Role.SUPPORT, "support")
        try:
            for ms in (180.0, 240.0, 620.0):
                latency_update(FEED_NAME, round_trips_ms=[ms] * 5, measured_at=time.time())
                venue_sample()
            with chromium() as browser:
                page = self.sign_in(browser, risk)
                page.goto(self.live_server_url + "/venue/")
                assert page.inner_text("#venue-latency") == "620 ms"
                assert "480%" in page.inner_text("#venue-account-trading")
                assert "220%" in page.inner_text("#venue-account-hedge")
                page.wait_for_selector(".chart canvas", timeout=10_000)
                assert page.locator(".chart canvas").count() >= 3  # latency and both accounts' ratios
                screenshot(page, "console-desk-14-venue-health")
                agent = self.sign_in(browser, support)
                assert agent.goto(self.live_server_url + "/venue/").status == 403
        finally:
            latency_clear(FEED_NAME)

    def test_four_eyes_on_risk_needs_a_second_risk_manager(self) -> None:
        from core.accounts.models import StaffProposal
        from risk.config import risk_config

        admin = self.staff(Role.SUPER_ADMIN, "admin")
        first, second = self.staff(Role.RISK_MANAGER, "risk1"), self.staff(Role.RISK_MANAGER, "risk2")
        analyst = self.staff(Role.DATA_ANALYST, "analyst")
        before = risk_config().daily_loss_trip
        with chromium() as browser:
            page = self.sign_in(browser, admin)
            page.goto(self.live_server_url + "/switches/#switch-risk_four_eyes")
            self.confirm(page, '#switch-risk_four_eyes button[data-set="True"]', "quarter close: two people")
            assert page.inner_text("#switch-risk_four_eyes [data-current]") == "on"

            proposer = self.sign_in(browser, first)
            proposer.goto(self.live_server_url + "/risk-config/")
            row = "#f-risk-daily_loss_trip"
            proposer.fill(f"{row} input[name=value]", "300000")
            self.confirm(proposer, f"{row} button[type=submit]", "volatile week")
            assert "proposed (#" in self.flash(proposer)
            assert risk_config().daily_loss_trip == before
            assert "(yours: another Risk Manager approves)" in proposer.inner_text("#four-eyes-risk")
            screenshot(proposer, "console-desk-15-four-eyes-proposed")

            viewer = self.sign_in(browser, analyst)
            assert viewer.goto(self.live_server_url + "/proposals/").status == 403
            viewer.goto(self.live_server_url + "/risk-config/")
            assert viewer.locator("#four-eyes-risk form").count() == 0

            approver = self.sign_in(browser, second)
            approver.goto(self.live_server_url + "/risk-config/")
            proposal = StaffProposal.objects.get(kind="risk_config")
            self.confirm(
                approver, f'#four-eyes-risk [data-proposal="{proposal.pk}"] button:has-text("Approve")'
            )
            assert "approved and applied" in self.flash(approver)
            assert risk_config().daily_loss_trip == Decimal(300_000)
            screenshot(approver, "console-desk-16-four-eyes-applied")

    def test_the_client_list_and_the_runbook_index(self) -> None:
        for i in range(12):
            self.trader(f"client{i:02d}@example.com", kyc="VERIFIED" if i % 3 == 0 else "NONE")
        ops = self.staff(Role.OPERATIONS, "ops")
        with chromium() as browser:
            page = self.sign_in(browser, ops)
            page.goto(self.live_server_url + "/users/?per=25")
            page.select_option('select[data-filter="kyc"]', "VERIFIED")
            page.click(".table-tools button[type=submit]")
            page.wait_for_url(re.compile(r".*kyc=VERIFIED.*"))
            page.click('#clients-table a[data-sort="email"]')
            page.wait_for_url(re.compile(r".*sort=email.*"))
            emails = page.locator("#clients-table tbody tr td:nth-child(2)").all_inner_texts()
            assert emails == sorted(emails) and len(emails) == 4, emails
            screenshot(page, "console-desk-17-client-list")
            page.goto(self.live_server_url + "/runbooks/")
            screenshot(page, "console-desk-18-runbooks")

    def test_a_risk_manager_works_the_hedge_order_log_as_a_desk_table_and_support_is_refused(self) -> None:
        """Filter and sort kept in the URL (the per-asset table's links keep them), a page past the first,
        the CSV downloaded as shown; the liquidity tables' tx hashes link to the explorer."""
        from datetime import timedelta

        from django.utils import timezone

        from risk.hedge_models import HedgeInstruction
        from wallets.models import Aggregation
        from xbit_admin.console.explorers import explorers_ensure

        now = timezone.now()
        for n in range(30):
            HedgeInstruction.objects.create(
                instruction_id=f"desk-{n:02d}",
                asset=("BTC", "ETH")[n % 2],
                status=("FILLED", "FAILED", "SHADOW")[n % 3],
                notional=Decimal(1000 + 100 * n),
                filled_notional=Decimal(1000 + 100 * n) if n % 3 == 0 else Decimal(0),
                created_at=now - timedelta(minutes=n),
            )
        explorers_ensure()
        Aggregation.objects.create(
            chain="ETH",
            asset="USDT",
            from_address="0x" + "1" * 40,
            to_address="0x" + "2" * 40,
            amount=Decimal(1500),
            trigger=Aggregation.Trigger.MANUAL,
            status=Aggregation.Status.CONFIRMED,
            tx_hash="0x" + "ab" * 32,
        )
        risk = self.staff(Role.RISK_MANAGER, "risk")
        support = self.staff(Role.SUPPORT, "support")
        with chromium() as browser:
            page = self.sign_in(browser, risk)
            page.goto(self.live_server_url + "/hedge/?orders-per=25")
            tools = 'form.table-tools[data-table="orders"]'
            page.select_option(f'{tools} select[data-filter="status"]', "FILLED")
            page.click(f"{tools} button[type=submit]")
            page.wait_for_url(re.compile(r".*orders-status=FILLED.*"))
            page.click('#hedge-orders a[data-sort="notional"]')
            page.wait_for_url(re.compile(r".*orders-sort=notional.*"))
            ids = page.locator("#hedge-orders tbody tr td:nth-child(9)").all_inner_texts()
            assert ids == [f"desk-{n:02d}" for n in range(0, 30, 3)], ids  # FILLED, smallest notional first
            # the per-asset table's sort link keeps the order log's filter and sort
            page.click('#hedge-assets a[data-sort="gap"]')
            page.wait_for_url(re.compile(r".*assets-sort=gap.*"))
            assert "orders-status=FILLED" in page.url and "orders-sort=notional" in page.url
            assert page.locator("#hedge-orders tbody tr").count() == 10
            screenshot(page, "console-desk-19-hedge-order-log")
            with page.expect_download() as download:
                page.click('#hedge-orders a[data-csv="orders"]')
            lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
            assert lines[0].startswith("created_at,asset,kind,notional") and len(lines) == 11
            assert lines[1].split(",")[-2] == "desk-00"  # instruction_id, as sorted on the page
            page.goto(self.live_server_url + "/liquidity/")
            link = page.locator("#aggregations a.tx").first
            assert link.get_attribute("href") == "https://etherscan.io/tx/0x" + "ab" * 32
            screenshot(page, "console-desk-20-liquidity-tables")
            agent = self.sign_in(browser, support)
            assert agent.goto(self.live_server_url + "/hedge/").status == 403
            assert agent.goto(self.live_server_url + "/hedge/?format=csv&table=orders").status == 403
