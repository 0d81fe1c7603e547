"""Spec 06 — withdrawals: request with TOTP, emailed single-use link, review rules, approval tiers,
sending at most once, completion and refunds."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from core.accounts.models import SecurityEvent
from core.accounts.roles import Role
from core.alerts.models import Alert
from core.errors import ApplicationError, ErrorCode
from wallets.chains import ChainUnavailable
from wallets.chains.evm import EvmAdapter
from wallets.ledger import AccountRef, account_balance
from wallets.models import BlacklistedAddress, LedgerTransfer, Withdrawal
from wallets.services import (
    hot_wallet_check,
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_confirm,
    withdrawal_reject,
    withdrawal_request,
    withdrawal_send,
    withdrawals_process_due,
)
from wallets.services.keys import gas_amount
from wallets.tests.conftest import fund, fund_hot_wallet, outside_address, totp_for
from wallets.tests.evm_fixtures import token_transfers, transfers_to, tx_fee, tx_status

pytestmark = pytest.mark.django_db
RECIPIENT = outside_address("ETH", "withdrawal-recipient")


def cash_of(user) -> Decimal:
    return account_balance(AccountRef.user(user.pk, "cash"))


def pending_of(user) -> Decimal:
    return account_balance(AccountRef.user(user.pk, "pending_withdrawal"))


def request(user, amount, *, address=RECIPIENT, chain="ETH", asset="USDT", code=None) -> Withdrawal:
    return withdrawal_request(
        user=user, chain=chain, asset=asset, address=address, amount=amount, totp_code=code or totp_for(user)
    )


def token_from_mail() -> str:
    return re.search(r"token=([\w\-]+)", mail.outbox[-1].body).group(1)


def _answer_lost(broadcast):
    """The node takes the transaction; its answer never reaches the worker (a timeout)."""

    def lost(self, chain, payload):
        broadcast(self, chain, payload)
        raise ChainUnavailable(f"{chain} eth_sendRawTransaction: ReadTimeout")

    return lost


def request_and_confirm(user, amount, capture, **kwargs) -> Withdrawal:
    """Request, read the emailed link, confirm it; on-commit work (the send task) is NOT run."""
    with capture(execute=True):
        request(user, amount, **kwargs)
    with capture(execute=False):
        withdrawal = withdrawal_confirm(token=token_from_mail())
    return withdrawal


# --- the small tier: no human, broadcast within 10 s --------------------------------------------------


def test_a_withdrawal_below_10k_is_broadcast_within_10_seconds_with_no_human(
    evm, trader, django_capture_on_commit_callbacks
):
    fund(trader, "6000")
    fund_hot_wallet(evm, "ETH", "USDT", "600000")
    evm.automine(False)  # blocks only when the test mines them
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal = request(trader, "5000")
    assert mail.outbox and trader.email in mail.outbox[-1].to
    assert cash_of(trader) == Decimal("6000")  # nothing moves before the email confirmation

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):  # commit → the send task (eager Celery)
        withdrawal_confirm(token=token_from_mail())
    withdrawal.refresh_from_db()
    on_chain = token_transfers(evm, withdrawal.tx_hash)
    elapsed = time.monotonic() - started

    assert withdrawal.status == "BROADCAST" and withdrawal.tier == "auto"
    assert tx_status(evm, withdrawal.tx_hash) == "pending" and on_chain[0]["to"] == RECIPIENT
    assert on_chain[0]["amount"] == Decimal("4999")  # 5000 minus the 1 USDT fee
    assert elapsed < 10, f"took {elapsed:.2f} s"
    assert (cash_of(trader), pending_of(trader)) == (Decimal("1000"), Decimal("5000"))

    evm.mine(12)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and withdrawal.confirmations >= 12
    assert pending_of(trader) == 0
    assert account_balance(AccountRef.platform("fee_revenue")) == Decimal("1")
    assert account_balance(AccountRef.platform("hot_wallet", sub="ETH:USDT")) == Decimal("4999")
    gas = gas_amount(tx_fee(evm, withdrawal.tx_hash))  # the receipt's gas used x price, at 6 decimals
    assert gas > 0
    assert account_balance(AccountRef.platform("gas_expense", sub="ETH", asset="ETH")) == -gas


# --- tiers and four eyes ------------------------------------------------------------------------------


def test_a_50k_withdrawal_waits_for_one_operations_approval(
    evm, trader, make_staff, django_capture_on_commit_callbacks
):
    fund(trader, "60000")
    fund_hot_wallet(evm, "ETH", "USDT", "800000")
    withdrawal = request_and_confirm(trader, "50000", django_capture_on_commit_callbacks)
    assert (withdrawal.status, withdrawal.tier) == ("AWAITING_APPROVAL", "single")
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "AWAITING_APPROVAL" and not withdrawal.tx_hash

    with pytest.raises(ApplicationError) as err:
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=make_staff(Role.SUPPORT))
    assert err.value.code == ErrorCode.PERMISSION_DENIED

    with django_capture_on_commit_callbacks(execute=True):
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=make_staff(Role.OPERATIONS))
    withdrawal.refresh_from_db()
    assert withdrawal.status == "BROADCAST"


def test_a_150k_withdrawal_needs_risk_review_and_operations_approval_by_two_people(
    evm, trader, make_staff, django_capture_on_commit_callbacks
):
    fund(trader, "200000")
    fund_hot_wallet(evm, "ETH", "USDT", "900000")
    withdrawal = request_and_confirm(trader, "150000", django_capture_on_commit_callbacks)
    assert (withdrawal.status, withdrawal.tier) == ("AWAITING_APPROVAL", "dual")

    admin = make_staff(Role.SUPER_ADMIN)  # holds both permissions, yet may give only one approval
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=admin)
    with pytest.raises(ApplicationError) as err:
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=admin)
    assert err.value.code == ErrorCode.FOUR_EYES_REQUIRED
    withdrawal.refresh_from_db()
    assert withdrawal.status == "AWAITING_APPROVAL"

    with django_capture_on_commit_callbacks(execute=True):
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=make_staff(Role.OPERATIONS))
    withdrawal.refresh_from_db()
    assert withdrawal.status == "BROADCAST"
    assert sorted(withdrawal.approvals.values_list("kind", flat=True)) == ["ops", "risk"]


def test_operations_alone_cannot_give_the_risk_review(trader, make_staff, django_capture_on_commit_callbacks):
    fund(trader, "200000")
    withdrawal = request_and_confirm(trader, "150000", django_capture_on_commit_callbacks)
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=make_staff(Role.OPERATIONS))
    with pytest.raises(ApplicationError) as err:
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=make_staff(Role.OPERATIONS))
    assert err.value.code == ErrorCode.PERMISSION_DENIED
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=make_staff(Role.RISK_MANAGER))
    withdrawal.refresh_from_db()
    assert withdrawal.status == "APPROVED"


def test_a_rejected_withdrawal_returns_the_funds_with_the_reason(
    trader, make_staff, django_capture_on_commit_callbacks
):
    fund(trader, "20000")
    withdrawal = request_and_confirm(trader, "15000", django_capture_on_commit_callbacks)
    assert cash_of(trader) == Decimal("5000")
    withdrawal_reject(
        withdrawal_id=withdrawal.pk, acting_user=make_staff(Role.OPERATIONS), reason="source of funds"
    )
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.reason) == ("REJECTED", "source of funds")
    assert (cash_of(trader), pending_of(trader)) == (Decimal("20000"), 0)


# --- automatic review rules -----------------------------------------------------------------------------


def test_a_blacklisted_address_is_rejected_and_refunded(trader, django_capture_on_commit_callbacks):
    fund(trader, "100")
    BlacklistedAddress.objects.create(chain="ETH", address=RECIPIENT, reason="sanctions list")
    withdrawal = request_and_confirm(trader, "50", django_capture_on_commit_callbacks)
    assert (withdrawal.status, withdrawal.reason_code) == ("REJECTED", ErrorCode.ADDRESS_BLACKLISTED)
    assert (cash_of(trader), pending_of(trader)) == (Decimal("100"), 0)


def test_the_fourth_withdrawal_to_one_address_in_24h_goes_to_manual_review(
    trader, django_capture_on_commit_callbacks
):
    fund(trader, "1000")
    for hours_ago in (6, 4, 2):
        earlier = request_and_confirm(trader, "20", django_capture_on_commit_callbacks)
        assert earlier.status == "APPROVED"
        Withdrawal.objects.filter(pk=earlier.pk).update(
            created_at=timezone.now() - timedelta(hours=hours_ago)
        )
    fourth = request_and_confirm(trader, "20", django_capture_on_commit_callbacks)
    assert fourth.status == "AWAITING_APPROVAL" and fourth.manual_review and fourth.tier == "auto"
    assert "address used 3 times in 24 h" in fourth.review_reasons


def test_a_duplicate_to_the_same_address_within_10_minutes_is_refused(
    trader, django_capture_on_commit_callbacks
):
    fund(trader, "1000")
    request_and_confirm(trader, "20", django_capture_on_commit_callbacks)
    with pytest.raises(ApplicationError) as err:
        request(trader, "30")
    assert err.value.code == ErrorCode.DUPLICATE_WITHDRAWAL
    assert cash_of(trader) == Decimal("980")


def test_two_requests_confirmed_one_after_the_other_reject_the_duplicate(
    trader, django_capture_on_commit_callbacks
):
    fund(trader, "1000")
    with django_capture_on_commit_callbacks(execute=True):
        request(trader, "20")
    first_token = token_from_mail()
    with django_capture_on_commit_callbacks(execute=True):
        request(trader, "25")
    second_token = token_from_mail()
    with django_capture_on_commit_callbacks(execute=False):
        assert withdrawal_confirm(token=first_token).status == "APPROVED"
        second = withdrawal_confirm(token=second_token)
    assert (second.status, second.reason_code) == ("REJECTED", ErrorCode.DUPLICATE_WITHDRAWAL)
    assert cash_of(trader) == Decimal("980")


def test_a_security_change_in_the_last_24h_sends_the_withdrawal_to_manual_review(
    trader, django_capture_on_commit_callbacks
):
    fund(trader, "1000")
    SecurityEvent.objects.create(user=trader, kind=SecurityEvent.Kind.PASSWORD_CHANGED)
    withdrawal = request_and_confirm(trader, "100", django_capture_on_commit_callbacks)
    assert withdrawal.status == "AWAITING_APPROVAL" and withdrawal.manual_review


def test_an_abnormal_login_in_the_last_24h_sends_the_withdrawal_to_manual_review(
    trader, django_capture_on_commit_callbacks
):
    fund(trader, "1000")
    SecurityEvent.objects.create(user=trader, kind=SecurityEvent.Kind.LOGIN, details={"abnormal": True})
    withdrawal = request_and_confirm(trader, "100", django_capture_on_commit_callbacks)
    assert withdrawal.status == "AWAITING_APPROVAL" and withdrawal.manual_review


# --- hot wallet levels ---------------------------------------------------------------------------------


def test_a_hot_wallet_below_20k_halts_all_withdrawals_with_a_p0(
    evm, trader, django_capture_on_commit_callbacks
):
    fund(trader, "1000")
    fund_hot_wallet(evm, "ETH", "USDT", "15000")
    with django_capture_on_commit_callbacks(execute=True):
        request(trader, "100")
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal = withdrawal_confirm(token=token_from_mail())  # approved; the send finds the level
    withdrawal.refresh_from_db()
    assert withdrawal.status == "APPROVED" and "halted" in withdrawal.last_error
    assert not withdrawal.tx_hash
    assert Alert.objects.filter(rule="wallets.hot_wallet_emergency", subject="ETH", severity="P0").exists()

    with pytest.raises(ApplicationError) as err:
        request(trader, "50", address=outside_address("ETH", "another"))
    assert err.value.code == ErrorCode.WITHDRAWALS_DISABLED
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "APPROVED"


def test_a_critical_hot_wallet_pauses_withdrawals_above_10k_and_sends_new_ones_to_review(
    evm, trader, make_staff, django_capture_on_commit_callbacks
):
    fund(trader, "30000")
    fund_hot_wallet(evm, "ETH", "USDT", "60000")
    hot_wallet_check(chain="ETH")
    assert Alert.objects.filter(rule="wallets.hot_wallet_critical", subject="ETH", severity="P0").exists()
    small = request_and_confirm(trader, "500", django_capture_on_commit_callbacks)
    assert small.status == "AWAITING_APPROVAL" and small.manual_review  # hot wallet below critical

    big = request_and_confirm(
        trader, "20000", django_capture_on_commit_callbacks, address=outside_address("ETH", "b")
    )
    withdrawal_approve(withdrawal_id=big.pk, acting_user=make_staff(Role.OPERATIONS))
    withdrawal_send(withdrawal_id=big.pk)
    big.refresh_from_db()
    assert big.status == "APPROVED" and "paused" in big.last_error


# --- at most once ------------------------------------------------------------------------------------


def test_a_worker_killed_mid_send_never_pays_twice(
    evm, trader, monkeypatch, django_capture_on_commit_callbacks
):
    fund(trader, "3000")
    fund_hot_wallet(evm, "ETH", "USDC", "700000")
    recipient = outside_address("ETH", f"once-{trader.pk}")
    withdrawal = request_and_confirm(
        trader, "2500", django_capture_on_commit_callbacks, asset="USDC", address=recipient
    )
    assert withdrawal.status == "APPROVED"

    # The node accepts the transaction but the answer never reaches the worker (it "dies").
    evm.automine(False)
    with monkeypatch.context() as patch:
        patch.setattr(EvmAdapter, "broadcast", _answer_lost(EvmAdapter.broadcast))
        withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.status == "SENDING" and withdrawal.payload["nonce"] == f"wd-{withdrawal.pk}"
    assert tx_status(evm, withdrawal.tx_hash) == "pending"

    # A second worker picks the same row up: the claim fails, nothing new is signed or sent.
    withdrawal_send(withdrawal_id=withdrawal.pk)
    # The recovery sweep re-broadcasts exactly the stored payload once the claim is stale.
    Withdrawal.objects.filter(pk=withdrawal.pk).update(claimed_at=timezone.now() - timedelta(minutes=5))
    counts = withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert counts["resent"] == 1 and withdrawal.status == "BROADCAST"

    evm.mine(12)
    withdrawals_process_due()
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED"
    assert evm.token_balance("USDC", recipient) == Decimal("2499")
    sent = transfers_to(evm, "USDC", recipient)
    assert len(sent) == 1
    assert LedgerTransfer.objects.filter(kind="withdrawal", ref_id=str(withdrawal.pk)).count() == 1


def test_a_withdrawal_dropped_by_the_chain_is_rebroadcast_identically(
    evm, trader, django_capture_on_commit_callbacks
):
    fund(trader, "1000")
    fund_hot_wallet(evm, "ETH", "USDT", "700000")
    recipient = outside_address("ETH", f"dropped-{trader.pk}")
    evm.automine(False)
    with django_capture_on_commit_callbacks(execute=True):
        request(trader, "100", address=recipient)
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal_confirm(token=token_from_mail())
    withdrawal = Withdrawal.objects.get(user=trader)
    first_hash = withdrawal.tx_hash
    assert tx_status(evm, first_hash) == "pending"
    evm.rpc("anvil_dropTransaction", first_hash)  # the node evicts it from its mempool
    evm.mine(1)
    assert tx_status(evm, first_hash) == "unknown"
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "BROADCAST" and withdrawal.tx_hash == first_hash
    evm.mine(12)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED"
    assert evm.token_balance("USDT", recipient) == Decimal("99")


# --- bad input moves no money ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("amount", "-5", ErrorCode.INVALID_AMOUNT),
        ("amount", "0", ErrorCode.INVALID_AMOUNT),
        ("amount", "12.1234567", ErrorCode.INVALID_AMOUNT),
        ("amount", "ten", ErrorCode.INVALID_AMOUNT),
        ("amount", "5", ErrorCode.INVALID_AMOUNT),  # below the 10 minimum
        ("chain", "DOGE", ErrorCode.UNKNOWN_CHAIN),
        ("asset", "DAI", ErrorCode.UNKNOWN_ASSET),
        ("asset", "USDC", ErrorCode.UNKNOWN_ASSET),  # TRON carries USDT only
        ("address", "0x1234", ErrorCode.INVALID_ADDRESS),
        ("address", "TXYZ", ErrorCode.INVALID_ADDRESS),
        ("code", "000000", ErrorCode.INVALID_OTP),
        ("amount", "2000", ErrorCode.INSUFFICIENT_BALANCE),
    ],
)
def test_bad_requests_get_a_clear_code_and_move_no_money(trader, field, value, code):
    fund(trader, "1000")
    args = {
        "amount": "100",
        "chain": "TRON",
        "asset": "USDT",
        "address": outside_address("TRON", "x"),
        "code": None,
    }
    args[field] = value
    amount = args.pop("amount")
    with pytest.raises(ApplicationError) as err:
        request(trader, amount, **args)
    assert err.value.code == code
    assert cash_of(trader) == Decimal("1000") and not Withdrawal.objects.exists()
    assert not mail.outbox


def test_a_user_without_2fa_cannot_withdraw(make_trader):
    user = make_trader()
    fund(user, "100")
    with pytest.raises(ApplicationError) as err:
        request(user, "50", code="123456")
    assert err.value.code == ErrorCode.OTP_REQUIRED


def test_a_restricted_user_cannot_withdraw(trader):
    trader.withdrawals_restricted = True
    trader.save()
    fund(trader, "100")
    with pytest.raises(ApplicationError) as err:
        request(trader, "50")
    assert err.value.code == ErrorCode.USER_RESTRICTED


def test_the_email_token_works_once(trader, django_capture_on_commit_callbacks):
    fund(trader, "100")
    withdrawal = request_and_confirm(trader, "50", django_capture_on_commit_callbacks)
    with pytest.raises(ApplicationError) as err:
        withdrawal_confirm(token=token_from_mail())
    assert err.value.code == ErrorCode.INVALID_TOKEN
    assert pending_of(trader) == withdrawal.amount


def test_an_expired_or_unknown_email_token_moves_no_money(trader, django_capture_on_commit_callbacks):
    fund(trader, "100")
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal = request(trader, "50")
    Withdrawal.objects.filter(pk=withdrawal.pk).update(token_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ApplicationError) as err:
        withdrawal_confirm(token=token_from_mail())
    assert err.value.code == ErrorCode.TOKEN_EXPIRED
    withdrawal.refresh_from_db()
    assert withdrawal.status == "EXPIRED" and cash_of(trader) == Decimal("100")
    with pytest.raises(ApplicationError) as err:
        withdrawal_confirm(token="not-a-token")
    assert err.value.code == ErrorCode.INVALID_TOKEN


def test_the_owner_can_cancel_before_sending_and_gets_the_funds_back(
    trader, make_trader, django_capture_on_commit_callbacks
):
    fund(trader, "20000")
    withdrawal = request_and_confirm(trader, "15000", django_capture_on_commit_callbacks)
    with pytest.raises(ApplicationError) as err:
        withdrawal_cancel(user=make_trader(), withdrawal_id=withdrawal.pk)
    assert err.value.code == ErrorCode.NOT_FOUND
    withdrawal_cancel(user=trader, withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.status == "CANCELLED" and cash_of(trader) == Decimal("20000")


def test_kyc_limits_and_a_verified_email_gate_withdrawals(make_trader: Any, settings: Any) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from core.errors import ApplicationError
    from wallets.services.withdrawals import withdrawal_request
    from wallets.tests.conftest import fund, totp_for

    user = make_trader()  # KYC NONE: 10,000 per 24 hours by default
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    fund(user, "50000")
    address = "0x" + "ab" * 20
    with pytest.raises(ApplicationError) as exc:
        withdrawal_request(
            user=user, chain="ETH", asset="USDT", address=address, amount="10001", totp_code=totp_for(user)
        )
    assert exc.value.code == "KYC_LIMIT_EXCEEDED"
    user.email = f"{user.pk}@wallet.invalid"
    user.save()
    with pytest.raises(ApplicationError) as exc:
        withdrawal_request(
            user=user, chain="ETH", asset="USDT", address=address, amount="100", totp_code=totp_for(user)
        )
    assert exc.value.code == "EMAIL_NOT_VERIFIED"
