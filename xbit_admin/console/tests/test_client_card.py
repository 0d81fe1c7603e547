"""Issue #21, the client card: one journal per client that answers "why was I liquidated?" and "where is
my withdrawal?", email search by prefix, and the staff actions on a client — notes and tags, restrictions
with an expiry, KYC review, a 2FA reset with four eyes, a balance adjustment with four eyes and the
dealer's close at market — each permission-checked, audited and refused to a role that may not."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from core.accounts.models import ClientRestriction, StaffProposal, User
from core.accounts.roles import Role
from core.audit.models import AuditEntry
from xbit_admin.console.tests.test_no_placeholders import Demo, build_demo

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def demo(market: None, trader: Any, make_trader: Any) -> Demo:
    return build_demo(alice=make_trader(email="alice@xbit.test"), whale=trader)


def _text(html: str) -> str:
    from html import unescape

    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def journal_of(html: str) -> str:
    return html.split('id="journal"', 1)[1].split("</section>", 1)[0]


def test_support_finds_a_client_by_the_beginning_of_their_email(console_as: Any, make_trader: Any) -> None:
    trader = make_trader(email="trader03@example.com")
    make_trader(email="trader04@example.com")
    client = console_as(Role.SUPPORT)
    response = client.get("/users/", {"q": "trader03"})
    assert response.status_code == 302 and response["Location"].startswith(f"/users/{trader.pk}/")
    listing = client.get("/users/", {"q": "trader0"}).content.decode()
    assert "trader03@example.com" in listing and "trader04@example.com" in listing


def test_the_journal_says_why_a_client_was_liquidated(console_as: Any, demo: Demo) -> None:
    from risk.models import LiquidationRecord

    html = (
        console_as(Role.SUPPORT).get(f"/users/{demo.alice.pk}/?range=all&kind=liquidation").content.decode()
    )
    journal = _text(journal_of(html))
    record = LiquidationRecord.objects.get(user=demo.alice, margin_mode="ISOLATED")
    assert "Liquidated: isolated LONG" in journal
    assert "Trigger mark 72,280 USD" in journal and "Close price 72,280 USD" in journal
    ratio = ((record.margin_zeroed + record.xbit_pnl) / D("28.912")) * 100
    assert f"Margin ratio at trigger {ratio:,.1f} %" in journal
    assert (
        f"Split platform / reserve {record.platform_share:,.2f} / {record.reserve_share:,.2f} USDC" in journal
    )
    assert "Reserve share 20 %" in journal and "Venue INTERNAL" in journal
    assert "Why: margin ratio" in journal
    # the filter keeps only liquidations
    assert 'data-kind="order"' not in journal_of(html).split("<tbody>")[1]


def test_the_journal_says_where_a_withdrawal_is_and_who_decided(
    console_as: Any, trader: Any, make_withdrawal: Any
) -> None:
    from wallets.services import withdrawal_reject

    waiting = make_withdrawal("50000")
    rejected = make_withdrawal("20000")
    client = console_as(Role.OPERATIONS)
    operator = User.objects.filter(groups__name=Role.OPERATIONS).first()
    withdrawal_reject(withdrawal_id=rejected.pk, acting_user=operator, reason="address on a watch list")
    journal = _text(journal_of(client.get(f"/users/{trader.pk}/?kind=withdrawal").content.decode()))
    assert f"Withdrawal {waiting.pk}: 50,000.00 USDT on ETH — awaiting_approval" in journal
    assert "Where it is: Waiting for an operations approval (tier single)." in journal
    assert f"Withdrawal {rejected.pk} rejected: address on a watch list {operator.email}" in journal
    assert f"Withdrawal {waiting.pk} confirmed by the client (email link)" in journal


def test_the_journal_exports_as_csv(console_as: Any, demo: Demo) -> None:
    response = console_as(Role.SUPER_ADMIN).get(f"/users/{demo.alice.pk}/journal.csv?range=all")
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0] == "time_utc,kind,event,detail,amount,unit,who,facts"
    assert "liquidation" in body and '""Trigger mark"": ""72,280 USD""' in body
    assert AuditEntry.objects.filter(action="console.export", object_id=str(demo.alice.pk)).exists()
    assert console_as(Role.SUPPORT).get(f"/users/{demo.alice.pk}/journal.csv").status_code == 403


def test_support_writes_notes_and_tags_and_they_land_in_the_journal(console_as: Any, trader: Any) -> None:
    client = console_as(Role.SUPPORT)
    client.post(f"/users/{trader.pk}/note/", {"body": "Called about a late deposit."})
    client.post(f"/users/{trader.pk}/tag/", {"tag": "VIP"})
    html = client.get(f"/users/{trader.pk}/").content.decode()
    assert "Called about a late deposit." in journal_of(html)
    assert '<span class="badge tag">vip' in html
    refused = client.post(f"/users/{trader.pk}/tag/", {"tag": "no spaces allowed"}, follow=True)
    assert "A tag is 1-32 lower-case letters" in refused.content.decode()
    client.post(f"/users/{trader.pk}/tag/", {"tag": "vip", "remove": "1"})
    assert not trader.client_tags.exists()
    assert console_as(Role.DATA_ANALYST).post(f"/users/{trader.pk}/note/", {"body": "x"}).status_code == 403


def test_operations_restricts_a_client_until_an_expiry_and_the_sweep_lifts_it(
    console_as: Any, trader: Any
) -> None:
    from core.accounts.desk import client_restrictions_expire

    client = console_as(Role.OPERATIONS)
    client.post(
        f"/users/{trader.pk}/restrict/", {"kind": "no_withdrawals", "expires": "24h", "reason": "chargeback"}
    )
    client.post(
        f"/users/{trader.pk}/restrict/", {"kind": "reduce_only", "expires": "never", "reason": "abuse"}
    )
    trader.refresh_from_db()
    assert trader.withdrawals_restricted and trader.trading_restricted
    row = ClientRestriction.objects.get(user=trader, kind="no_withdrawals")
    assert row.expires_at is not None and row.created_by.groups.filter(name=Role.OPERATIONS).exists()
    missing_reason = client.post(f"/users/{trader.pk}/restrict/", {"kind": "no_trading"}, follow=True)
    assert "A reason is required. (VALIDATION_ERROR)" in missing_reason.content.decode()
    assert client_restrictions_expire(now=timezone.now() + timedelta(days=2)) == 1
    trader.refresh_from_db()
    assert not trader.withdrawals_restricted and trader.trading_restricted
    assert AuditEntry.objects.filter(action="client.restriction_expired", object_id=str(trader.pk)).exists()
    lift = ClientRestriction.objects.get(user=trader, kind="reduce_only", lifted_at__isnull=True)
    client.post(f"/users/restrictions/{lift.pk}/lift/", {"reason": "resolved"})
    trader.refresh_from_db()
    assert not trader.trading_restricted
    assert (
        console_as(Role.SUPPORT)
        .post(f"/users/{trader.pk}/restrict/", {"kind": "no_trading", "reason": "x"})
        .status_code
        == 403
    )


def test_support_reviews_kyc(console_as: Any, make_trader: Any) -> None:
    pending = make_trader(kyc_status="PENDING")
    client = console_as(Role.SUPPORT)
    client.post(f"/users/{pending.pk}/kyc/", {"status": "VERIFIED", "reason": "passport checked"})
    pending.refresh_from_db()
    assert pending.kyc_status == "VERIFIED"
    entry = AuditEntry.objects.get(action="kyc.status_set", object_id=str(pending.pk))
    assert entry.reason == "passport checked" and entry.after == {"kyc_status": "VERIFIED"}
    assert (
        console_as(Role.RISK_MANAGER)
        .post(f"/users/{pending.pk}/kyc/", {"status": "NONE", "reason": "x"})
        .status_code
        == 403
    )


def test_a_2fa_reset_needs_a_second_person(console_as: Any, trader: Any, make_staff: Any) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from conftest import sign_in

    support = console_as(Role.SUPPORT)
    support.post(f"/users/{trader.pk}/2fa-reset/", {"reason": "lost phone, identity checked by video"})
    proposal = StaffProposal.objects.get(kind="client_2fa_reset", target_user=trader)
    # the proposer cannot approve their own proposal
    own = support.post(f"/proposals/{proposal.pk}/decide/", {"decision": "approve"}, follow=True)
    assert "Another person must approve what you proposed. (FOUR_EYES_REQUIRED)" in own.content.decode()
    assert TOTPDevice.objects.filter(user=trader).exists()
    from django.test import Client

    second = sign_in(Client(), make_staff(Role.OPERATIONS, email="ops2@xbit.test"))
    second.post(f"/proposals/{proposal.pk}/decide/", {"decision": "approve", "reason": "ok"})
    proposal.refresh_from_db()
    assert proposal.status == "APPLIED" and proposal.decided_by.email == "ops2@xbit.test"
    assert not TOTPDevice.objects.filter(user=trader).exists()
    trader.refresh_from_db()
    assert trader.last_security_change_at is not None and trader.tokens_valid_after is not None
    assert AuditEntry.objects.filter(action="client.2fa_reset", object_id=str(trader.pk)).exists()
    assert (
        console_as(Role.RISK_MANAGER).post(f"/users/{trader.pk}/2fa-reset/", {"reason": "x"}).status_code
        == 403
    )


def test_a_balance_adjustment_is_requested_by_operations_and_approved_by_someone_else(
    console_as: Any, trader: Any
) -> None:
    from wallets.models import BalanceAdjustment

    ops = console_as(Role.OPERATIONS)
    page = ops.get(f"/users/{trader.pk}/adjustments/")
    assert page.status_code == 200 and "Request an adjustment" in page.content.decode()
    ops.post(f"/users/{trader.pk}/adjustments/", {"amount": "250.5", "reason": "fee refund, ticket 881"})
    adjustment = BalanceAdjustment.objects.get(user=trader)
    assert adjustment.status == "REQUESTED" and adjustment.amount == D("250.5")
    bad = ops.post(f"/users/{trader.pk}/adjustments/", {"amount": "1e3", "reason": "x"}, follow=True)
    assert "(INVALID_AMOUNT)" in bad.content.decode()
    assert ops.post(f"/adjustments/{adjustment.pk}/decide/", {"decision": "approve"}).status_code == 403
    admin = console_as(Role.SUPER_ADMIN)
    admin.post(f"/adjustments/{adjustment.pk}/decide/", {"decision": "approve", "reason": "checked"})
    adjustment.refresh_from_db()
    assert adjustment.status == "APPROVED"
    assert console_as(Role.SUPPORT).get(f"/users/{trader.pk}/adjustments/").status_code == 403


def test_operations_closes_a_clients_position_at_market(console_as: Any, internal_order: Any) -> None:
    from trading.models import Position

    position = Position.objects.get(user=internal_order.user, status="OPEN")
    user_id = internal_order.user_id
    for role in (Role.SUPPORT, Role.RISK_MANAGER):
        refused = console_as(role).post(f"/users/{user_id}/positions/{position.pk}/close/", {"reason": "x"})
        assert refused.status_code == 403
    risk = console_as(Role.OPERATIONS)  # the desk's dealer tool
    html = risk.get(f"/users/{user_id}/").content.decode()
    assert "Close at market" in html
    response = risk.post(
        f"/users/{user_id}/positions/{position.pk}/close/",
        {"reason": "client unreachable, margin call"},
        follow=True,
    )
    position.refresh_from_db()
    assert position.status == "CLOSED", response.content.decode()[:500]
    entry = AuditEntry.objects.get(action="client.position_close", object_id=str(user_id))
    assert entry.reason == "client unreachable, margin call" and entry.after["position_id"] == position.pk


def test_the_profile_shows_the_last_login_from_the_security_events(console_as: Any, trader: Any) -> None:
    from core.accounts.models import SecurityEvent
    from core.accounts.security_events import security_event_record

    security_event_record(user=trader, kind=SecurityEvent.Kind.LOGIN)
    html = console_as(Role.SUPPORT).get(f"/users/{trader.pk}/").content.decode()
    last = html.split('id="last-login">', 1)[1].split("</dd>", 1)[0]
    assert "—" not in last and "ago" in last or "now" in last


def test_no_trading_refuses_opening_at_once_and_lifting_it_keeps_a_reduce_only_restriction(
    console_as: Any, trader: Any
) -> None:
    from core.accounts.desk import client_restrict, client_restriction_lift

    ops = console_as(Role.OPERATIONS).staff_user
    client_restrict(user_id=trader.pk, kind="reduce_only", reason="abuse", acting_user=ops)
    blocked = client_restrict(user_id=trader.pk, kind="no_trading", reason="fraud review", acting_user=ops)
    trader.refresh_from_db()
    assert trader.trading_blocked and trader.trading_restricted
    client_restriction_lift(restriction_id=blocked.pk, reason="cleared", acting_user=ops)
    trader.refresh_from_db()
    assert not trader.trading_blocked and trader.trading_restricted  # the reduce-only one still stands


def test_a_client_under_no_trading_cannot_even_close_but_the_dealer_can(
    console_as: Any, internal_order: Any
) -> None:
    from core.accounts.desk import client_restrict
    from core.errors import ApplicationError
    from trading.models import Position
    from trading.positions import position_close

    trader = internal_order.user
    position = Position.objects.get(user=trader, status="OPEN")
    client_restrict(
        user_id=trader.pk,
        kind="no_trading",
        reason="fraud review",
        acting_user=console_as(Role.OPERATIONS).staff_user,
    )
    trader.refresh_from_db()
    with pytest.raises(ApplicationError) as refused:
        position_close(user=trader, position_id=position.pk)
    assert refused.value.code == "USER_RESTRICTED" and "may not trade" in refused.value.message
    # the restriction stops the client, not the desk: a dealer closes the position at market
    console_as(Role.OPERATIONS).post(
        f"/users/{trader.pk}/positions/{position.pk}/close/", {"reason": "close out under review"}
    )
    position.refresh_from_db()
    assert position.status == "CLOSED"


def test_the_journal_shows_margin_moves_and_fills_at_the_ticks_price(
    console_as: Any, internal_order: Any
) -> None:
    html = (
        console_as(Role.SUPPORT)
        .get(f"/users/{internal_order.user_id}/?kind=margin&kind=fill")
        .content.decode()
    )
    journal = _text(journal_of(html))
    assert "Cash moved into a position's margin" in journal and "-80.00 USDC" in journal
    assert "Fill: BUY 0.01 BTC at 80,001 USD on INTERNAL" in journal  # BTC's tick: whole dollars


def test_a_large_withdrawal_says_who_reviewed_it_and_what_it_still_waits_for(
    console_as: Any, trader: Any, make_withdrawal: Any
) -> None:
    from wallets.services import withdrawal_approve

    large = make_withdrawal("150000")
    assert large.tier == "dual"
    risk = console_as(Role.RISK_MANAGER).staff_user
    withdrawal_approve(withdrawal_id=large.pk, acting_user=risk, note="source of funds checked")
    journal = _text(
        journal_of(console_as(Role.SUPPORT).get(f"/users/{trader.pk}/?kind=withdrawal").content.decode())
    )
    assert "Where it is: Waiting for an operations approval (tier dual)." in journal
    assert f"Withdrawal {large.pk} risk review given {risk.email}" in journal
