"""Fixtures for the wallets suite: funded users and hot wallets, TOTP codes, an eager Celery (tasks run
in-process after commit). The chains are the plugins' local nodes: ETH and Arbitrum on anvil (``evm`` /
``evm_arbitrum`` / ``evm_own``, ``wallets.tests.evm_fixtures``), TRON and SOL on their stand-ins
(``tron`` / ``sol``, ``wallets.tests.tron_sol_fixtures``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from sandbox.evm.node import AnvilNode


@pytest.fixture(autouse=True)
def _eager_celery() -> Iterator[None]:
    from xbit_admin.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _own_hd_seed(settings: Any) -> None:
    """Each test's custody starts from its own HD seed, as its database starts empty: the EVM keys are
    derived, so one seed for every test would share hot wallets across tests on the session's chains."""
    from eth_account.hdaccount import generate_mnemonic
    from eth_account.hdaccount.mnemonic import Language

    settings.WALLET_HD_MNEMONIC = generate_mnemonic(12, Language.ENGLISH)


@pytest.fixture
def trader(make_trader: Callable[..., Any]) -> Any:
    """A verified trader (KYC VERIFIED: the tier tests move 50k and 150k) with a TOTP device."""
    user = make_trader(kyc_status="VERIFIED")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user


def totp_for(user: Any) -> str:
    """A code the device will accept now (resets the device's replay guard: tests make many requests)."""
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1, throttling_failure_count=0)
    device.refresh_from_db()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


_funding = iter(range(1, 10**9))


def fund(user: Any, amount: Decimal | str) -> None:
    """Give a user cash as a credited deposit would (clearing -> cash)."""
    from wallets.ledger import AccountRef, TransferSpec, ledger_post

    ledger_post(
        key=f"test-funding:{user.pk}:{next(_funding)}",
        transfers=[
            TransferSpec(
                debit=AccountRef.platform("deposit_clearing", sub="ETH:USDT"),
                credit=AccountRef.user(user.pk, "cash"),
                amount=Decimal(amount),
                kind="deposit",
            )
        ],
    )


def fund_hot_wallet(chain_node: Any, chain: str, asset: str, amount: str, gas: str = "100") -> str:
    """Tokens and gas on ``chain``'s hot wallet, on chain only (the ledger is the test's business):
    minted and ``anvil_setBalance`` on an EVM node (``evm`` / ``evm_arbitrum``), the stand-in's faucet
    on TRON (``tron``) and Solana (``sol``)."""
    from wallets.chains import spec
    from wallets.services import hot_wallet_key

    address = hot_wallet_key(chain).address
    if isinstance(chain_node, AnvilNode):
        chain_node.mint(asset, address, amount)
        chain_node.set_balance(address, gas)
        return address
    chain_node.fund(address, asset, amount)
    chain_node.fund(address, spec.NATIVE[chain], gas)
    return address


def outside_address(chain: str, label: str) -> str:
    """A deterministic address outside the platform (same label -> same address)."""
    from eth_account import Account
    from eth_utils import keccak

    secret = keccak(text=f"outside:{label}")
    if chain.upper() in ("ETH", "ARBITRUM"):
        return str(Account.from_key(secret).address)
    from wallets.chains import hd_tron_sol

    return hd_tron_sol.address_of(chain.upper(), secret)


# --- EVM chains on anvil (the evm / evm_arbitrum / evm_own fixtures: wallets.tests.evm_fixtures) ---------


def fund_evm_hot_wallet(node: Any, asset: str, amount: str, gas: str = "10") -> str:
    """Tokens and gas on the ETH hot wallet, on chain and in the ledger (equity -> hot wallet)."""
    from wallets.chains import spec
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.services import hot_wallet_key

    address = hot_wallet_key("ETH").address
    node.mint(asset, address, amount)
    node.set_balance(address, gas)
    for value, sub, kind_asset in ((amount, f"ETH:{asset}", "USDC"), (gas, "ETH:ETH", spec.NATIVE["ETH"])):
        if Decimal(value) == 0:
            continue
        ledger_post(
            key=f"test-hot:{sub}:{next(_funding)}",
            transfers=[
                TransferSpec(
                    debit=AccountRef.platform("hot_wallet", sub=sub, asset=kind_asset),
                    credit=AccountRef.platform("equity", asset=kind_asset),
                    amount=Decimal(value),
                    kind="capital",
                )
            ],
        )
    return address
