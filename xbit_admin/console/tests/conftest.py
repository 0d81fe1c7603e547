"""Console page fixtures: a synced market with a live quote, a trader with an internal fill (and its
routing decision), a deposit, and withdrawals waiting for approval — all made through the real
services, as production would."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.request import Request, urlopen

import pytest

from sandbox.testing import SandboxProcess


@pytest.fixture(scope="session")
def hl_meta() -> Iterator[dict[str, Any]]:
    with SandboxProcess(seed=7) as sb:
        request = Request(  # noqa: S310 - loopback sandbox
            sb.urls["hyperliquid"] + "/info",
            data=json.dumps({"type": "meta"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urlopen(request, timeout=10) as response:  # noqa: S310 - loopback sandbox
            yield json.loads(response.read())


def publish_quote(asset: str, mark: str) -> None:
    from trading.marketdata import quote_update

    m = Decimal(mark)
    quote_update(
        asset,
        mark=m,
        oracle=m,
        mid=m,
        bid=m - 1,
        ask=m + 1,
        bid_size=Decimal(100),
        ask_size=Decimal(100),
        funding_rate=Decimal("0.0000125"),
    )


@pytest.fixture
def market(db: Any, hl_meta: dict[str, Any]) -> Iterator[None]:
    """Markets synced, BTC quoted at 80,000, internalization switched on platform-wide."""
    from routing.services import routing_config_update
    from trading.marketdata import quote_delete
    from trading.markets import markets_sync

    markets_sync(meta=hl_meta)
    routing_config_update(
        asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="tests"
    )
    publish_quote("BTC", "80000")
    yield
    quote_delete(["BTC"])


_keys = iter(range(1, 10**9))


def fund(user: Any, amount: str) -> None:
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind

    ledger_post(
        key=f"console-test-fund:{user.pk}:{next(_keys)}",
        transfers=[
            TransferSpec(
                AccountRef.platform(AccountKind.DEPOSIT_CLEARING, sub="ETH:USDT"),
                AccountRef.user(user.pk, AccountKind.CASH),
                Decimal(amount),
                TransferKind.DEPOSIT,
                "test",
                user.pk,
            )
        ],
    )


@pytest.fixture
def trader(make_trader: Callable[..., Any]) -> Any:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    # KYC VERIFIED: the withdrawal pages exercise the 50k / 150k tiers (unverified accounts stop at 10k)
    user = make_trader(wallet_address="0x" + "ab" * 20, kyc_status="VERIFIED")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    fund(user, "300000")
    return user


@pytest.fixture
def internal_order(market: None, trader: Any) -> Any:
    """A filled INTERNAL market order (0.01 BTC ≈ 800 USDC) with its routing decision."""
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    publish_quote("BTC", "80000")  # fresh book: an order needs a live price
    order = order_place(
        user=trader,
        inp=order_input(
            asset="BTC", side="BUY", order_type="MARKET", size="0.01", leverage=10, margin_mode="ISOLATED"
        ),
    )
    assert order.status == "FILLED" and order.route == "INTERNAL", (order.status, order.error_message)
    return order


@pytest.fixture
def deposit(trader: Any) -> Any:
    """A credited-looking deposit row for search (the chain scanner is tested in wallets)."""
    from wallets.models import Deposit

    return Deposit.objects.create(
        chain="ETH",
        tx_hash="0x" + "d5" * 32,
        log_index=0,
        user=trader,
        address="0x" + "11" * 20,
        asset="USDT",
        amount=Decimal("2500"),
        confirmations=12,
        required_confirmations=12,
        status=Deposit.Status.CREDITED,
    )


def _totp(user: Any) -> str:
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user=user, confirmed=True)
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1, throttling_failure_count=0)
    device.refresh_from_db()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


_addresses = iter(range(1, 10**6))


def request_withdrawal(user: Any, amount: str, capture: Callable[..., Any]) -> Any:
    """Request, confirm through the emailed link (the send task is not run)."""
    from django.core import mail
    from eth_account import Account
    from eth_utils import keccak

    from wallets.services import withdrawal_confirm, withdrawal_request

    address = Account.from_key(keccak(text=f"console-recipient-{next(_addresses)}")).address
    with capture(execute=True):
        withdrawal_request(
            user=user, chain="ETH", asset="USDT", address=address, amount=amount, totp_code=_totp(user)
        )
    token = re.search(r"token=([\w\-]+)", mail.outbox[-1].body).group(1)  # type: ignore[union-attr]
    with capture(execute=False):
        return withdrawal_confirm(token=token)


@pytest.fixture
def make_withdrawal(trader: Any, django_capture_on_commit_callbacks: Any) -> Callable[[str], Any]:
    return lambda amount: request_withdrawal(trader, amount, django_capture_on_commit_callbacks)
