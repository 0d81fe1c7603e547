"""Issue #22 — withdrawals, stuck transactions and sweeps on a real local node (anvil): EIP-1559,
one nonce per transfer whatever crashes, replacement with the same nonce, sweeps with gas top-ups."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core import mail

from wallets.chains.evm import EvmAdapter
from wallets.config import chain_config
from wallets.ledger import AccountRef, account_balance
from wallets.models import (
    Aggregation,
    ChainConfig,
    ChainTx,
    Deposit,
    LedgerTransfer,
    WalletConfig,
    Withdrawal,
)
from wallets.services import (
    aggregation_advance,
    aggregation_plan,
    deposit_address_get_or_create,
    deposits_scan,
    withdrawal_confirm,
    withdrawal_request,
    withdrawal_send,
    withdrawals_process_due,
)
from wallets.services.chain_txs import chain_txs_replace_stuck
from wallets.tasks import withdrawal_send_task
from wallets.tests.conftest import fund, fund_evm_hot_wallet, totp_for

pytestmark = pytest.mark.django_db
RECIPIENT = "0x1111111111111111111111111111111111111111"


@contextlib.contextmanager
def _no_capture() -> Iterator[None]:
    """Outside a test transaction (``transaction=True``) on-commit work runs by itself."""
    yield


class Killed(BaseException):
    """The worker process dies here (nothing after this line runs; the database keeps what committed)."""


def cash_of(user) -> Decimal:
    return account_balance(AccountRef.user(user.pk, "cash"))


def approved_withdrawal(user, amount: str, capture, asset: str = "USDC") -> Withdrawal:
    chain_config("ETH")
    ChainConfig.objects.filter(chain="ETH").update(withdrawal_fee=0)
    with capture(execute=True):
        withdrawal_request(
            user=user, chain="ETH", asset=asset, address=RECIPIENT, amount=amount, totp_code=totp_for(user)
        )
    token = re.search(r"token=([\w\-]+)", mail.outbox[-1].body).group(1)
    with capture(execute=False):  # the send task is run by the test
        withdrawal = withdrawal_confirm(token=token)
    assert withdrawal.status == "APPROVED"
    return withdrawal


def test_a_500_usdc_withdrawal_is_eip1559_mined_with_status_1_and_debited_once(
    evm, trader, django_capture_on_commit_callbacks
):
    fund(trader, "800")
    hot = fund_evm_hot_wallet(evm, "USDC", "600000")
    withdrawal = approved_withdrawal(trader, "500", django_capture_on_commit_callbacks)
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.status == "BROADCAST"
    sent = evm.rpc("eth_getTransactionByHash", withdrawal.tx_hash)
    assert sent["type"] == "0x2" and int(sent["maxFeePerGas"], 16) > 0 and int(sent["nonce"], 16) == 0
    assert sent["from"].lower() == hot.lower()
    assert int(evm.receipt(withdrawal.tx_hash)["status"], 16) == 1

    evm.mine(11)
    withdrawals_process_due()
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.confirmations) == ("COMPLETED", 12)
    assert cash_of(trader) == Decimal("300")
    assert evm.token_balance("USDC", RECIPIENT) == Decimal("500")
    assert evm.token_balance("USDC", hot) == Decimal("599500")
    assert (
        LedgerTransfer.objects.filter(
            batch__key=f"withdrawal:{withdrawal.pk}:complete", kind="withdrawal"
        ).count()
        == 1
    )
    assert evm.nonce(hot) == 1


def test_killed_between_signing_and_broadcast_sends_exactly_one_transaction(
    evm, trader, django_capture_on_commit_callbacks, monkeypatch
):
    fund(trader, "800")
    hot = fund_evm_hot_wallet(evm, "USDC", "600000")
    withdrawal = approved_withdrawal(trader, "500", django_capture_on_commit_callbacks)

    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(EvmAdapter, "broadcast", die)
        with pytest.raises(Killed):
            withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    signed = ChainTx.objects.get(ref=f"wd-{withdrawal.pk}")
    assert withdrawal.status == "SENDING" and withdrawal.payload["raw"] == signed.raw
    assert evm.nonce(hot, "pending") == 0  # nothing reached the node

    # the restarted workers: the stale SENDING row is re-broadcast (same bytes), the task re-run is a no-op
    WalletConfig.objects.update_or_create(pk=1, defaults={"resend_after_seconds": 0})
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawals_process_due()
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawals_process_due()
    evm.mine(12)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and withdrawal.tx_hash == signed.tx_hash
    assert evm.nonce(hot) == 1 and ChainTx.objects.filter(sender=hot).count() == 1
    assert evm.token_balance("USDC", RECIPIENT) == Decimal("500")
    assert cash_of(trader) == Decimal("300")


def test_a_stuck_low_fee_transaction_is_replaced_with_the_same_nonce_and_confirmed(
    evm, trader, django_capture_on_commit_callbacks
):
    fund(trader, "800")
    hot = fund_evm_hot_wallet(evm, "USDC", "600000")
    withdrawal = approved_withdrawal(trader, "500", django_capture_on_commit_callbacks)
    evm.automine(False)
    withdrawal_send(withdrawal_id=withdrawal.pk)
    first = ChainTx.objects.get(ref=f"wd-{withdrawal.pk}")
    evm.set_next_base_fee(int(first.max_fee_per_gas) * 4)  # the market moved: its fee is now too low
    evm.mine(1)
    assert evm.receipt(first.tx_hash) is None

    ChainConfig.objects.filter(chain="ETH").update(replace_after_seconds=0)
    replaced = chain_txs_replace_stuck(chain="ETH")
    assert len(replaced) == 1
    second = replaced[0]
    assert (second.nonce, second.attempt) == (first.nonce, 1)
    assert second.max_fee_per_gas > first.max_fee_per_gas * 4
    evm.mine(1)
    assert int(evm.receipt(second.tx_hash)["status"], 16) == 1
    evm.automine(True)
    evm.mine(11)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and withdrawal.tx_hash == second.tx_hash
    assert evm.receipt(first.tx_hash) is None and evm.nonce(hot) == 1
    assert evm.token_balance("USDC", RECIPIENT) == Decimal("500")
    assert ChainTx.objects.get(pk=first.pk).status == "REPLACED"
    assert chain_txs_replace_stuck(chain="ETH") == []


def test_a_sweep_of_ten_deposit_addresses_tops_up_gas_and_the_hot_wallet_matches_the_ledger(evm, make_trader):
    hot = fund_evm_hot_wallet(evm, "USDT", "600000")
    users = [make_trader() for _ in range(10)]
    addresses = [deposit_address_get_or_create(user=u, chain="ETH").address for u in users]
    deposits_scan(chain="ETH")
    for i, address in enumerate(addresses):
        evm.transfer("USDT", address, str(100 + i))
    evm.mine(12)
    assert deposits_scan(chain="ETH").credited == 10

    sweeps = aggregation_plan(chain="ETH", trigger=Aggregation.Trigger.MANUAL)
    assert len(sweeps) == 10
    for _ in range(3):
        for sweep in sweeps:
            aggregation_advance(aggregation_id=sweep.pk)
    assert all(Aggregation.objects.get(pk=s.pk).gas_tx_hash for s in sweeps)  # each address got gas first
    assert {Aggregation.objects.get(pk=s.pk).status for s in sweeps} == {"SENT"}
    evm.mine(12)
    for sweep in sweeps:
        aggregation_advance(aggregation_id=sweep.pk)
    assert {Aggregation.objects.get(pk=s.pk).status for s in sweeps} == {"CONFIRMED"}

    swept = sum(Decimal(100 + i) for i in range(10))
    assert all(evm.token_balance("USDT", a) == 0 for a in addresses)
    onchain = evm.token_balance("USDT", hot)
    record = -account_balance(AccountRef.platform("hot_wallet", sub="ETH:USDT"))
    assert onchain == record == Decimal(600000) + swept
    assert Deposit.objects.filter(aggregation__isnull=False).count() == 10


SEND_AND_DIE = """
import os, signal, sys
import django
django.setup()
from django.conf import settings
settings.CHAIN_ADAPTERS = {**settings.CHAIN_ADAPTERS, "ETH": "evm"}
settings.EVM_CHAINS = {**settings.EVM_CHAINS, "ETH": json.loads(os.environ["TEST_EVM_ETH"])}
from wallets.chains.evm import EvmAdapter
from wallets.services import withdrawal_send

def die(*args, **kwargs):  # signed and stored, not yet broadcast: the process is killed here
    os.kill(os.getpid(), signal.SIGKILL)

EvmAdapter.broadcast = die
withdrawal_send(withdrawal_id=int(sys.argv[1]))
"""


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_sigkilled_between_signing_and_broadcast_leaves_one_transaction(
    evm, make_trader, settings, monkeypatch
):
    import json
    import os
    import subprocess
    import sys

    from django.db import connection
    from django_otp.plugins.otp_totp.models import TOTPDevice

    trader = make_trader(kyc_status="VERIFIED")
    TOTPDevice.objects.create(user=trader, name="phone", confirmed=True)
    fund(trader, "800")
    hot = fund_evm_hot_wallet(evm, "USDC", "600000")
    # the send task is the child process below, not the confirmation's on-commit task
    monkeypatch.setattr(withdrawal_send_task, "apply_async", lambda *args, **kwargs: None)
    withdrawal = approved_withdrawal(trader, "500", lambda execute: _no_capture())

    env = dict(
        os.environ,
        DATABASE_URL=os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"],
        WALLET_HD_MNEMONIC=settings.WALLET_HD_MNEMONIC,
        TEST_EVM_ETH=json.dumps(settings.EVM_CHAINS["ETH"]),
    )
    child = subprocess.run(
        [sys.executable, "-c", "import json\n" + SEND_AND_DIE, str(withdrawal.pk)], env=env, timeout=120
    )
    assert child.returncode == -9  # SIGKILL
    withdrawal.refresh_from_db()
    signed = ChainTx.objects.get(ref=f"wd-{withdrawal.pk}")
    assert withdrawal.status == "SENDING" and withdrawal.payload["raw"] == signed.raw
    assert evm.nonce(hot, "pending") == 0  # nothing reached the node

    WalletConfig.objects.update_or_create(pk=1, defaults={"resend_after_seconds": 0})
    withdrawals_process_due()  # the restarted beat: the same stored bytes
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawals_process_due()
    evm.mine(12)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and withdrawal.tx_hash == signed.tx_hash
    assert evm.nonce(hot) == 1 and ChainTx.objects.filter(sender=hot).count() == 1
    assert evm.token_balance("USDC", RECIPIENT) == Decimal("500")
    assert cash_of(trader) == Decimal("300")


def test_a_hot_wallet_without_gas_keeps_the_signed_nonce_until_it_can_pay(
    evm, trader, make_staff, django_capture_on_commit_callbacks
):
    from core.accounts.roles import Role
    from core.errors import ApplicationError, ErrorCode
    from wallets.services import withdrawal_cancel, withdrawal_reject

    fund(trader, "800")
    hot = fund_evm_hot_wallet(evm, "USDC", "600000", gas="0")
    withdrawal = approved_withdrawal(trader, "500", django_capture_on_commit_callbacks)
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    signed = ChainTx.objects.get(ref=f"wd-{withdrawal.pk}")
    assert withdrawal.status == "APPROVED" and withdrawal.last_error.startswith("insufficient_gas")
    for refuse in (
        lambda: withdrawal_cancel(user=trader, withdrawal_id=withdrawal.pk),
        lambda: withdrawal_reject(
            withdrawal_id=withdrawal.pk, acting_user=make_staff(Role.OPERATIONS), reason="x"
        ),
    ):
        with pytest.raises(ApplicationError) as err:
            refuse()
        assert err.value.code == ErrorCode.INVALID_STATE

    evm.set_balance(hot, "1")
    withdrawals_process_due()
    evm.mine(11)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and withdrawal.tx_hash == signed.tx_hash
    assert ChainTx.objects.filter(sender=hot).count() == 1 and evm.nonce(hot) == 1


def test_arbitrum_runs_on_its_own_node_and_chain_id(settings):
    """Arbitrum (chain id 42161): the hot wallet read on chain, a hot -> cold transfer signed for 42161,
    confirmed and booked; the same adapter as ETH, its own node and HD account."""
    from sandbox.evm.node import TOKENS, AnvilNode
    from wallets.models import ColdTransfer
    from wallets.services import cold_transfer_send, cold_transfer_track, hot_wallet_check
    from wallets.services.keys import cold_wallet_key, hot_wallet_key

    with AnvilNode(chain_id=42161) as node:
        settings.CHAIN_ADAPTERS = {**settings.CHAIN_ADAPTERS, "ARBITRUM": "evm"}
        settings.EVM_CHAINS = {
            **settings.EVM_CHAINS,
            "ARBITRUM": {"rpc_url": node.url, "chain_id": 42161, "tokens": {"USDC": TOKENS["USDC"]}},
        }
        hot = hot_wallet_key("ARBITRUM")
        assert hot.hd_path == "m/44'/60'/1'/1/0"
        node.mint("USDC", hot.address, "800000")
        node.set_balance(hot.address, "1")
        assert hot_wallet_check(chain="ARBITRUM").hot_balance == Decimal("800000")

        transfer = ColdTransfer.objects.create(
            chain="ARBITRUM", asset="USDC", direction="to_cold", amount=Decimal("1000"), status="APPROVED"
        )
        cold_transfer_send(transfer_id=transfer.pk)
        transfer.refresh_from_db()
        sent = node.rpc("eth_getTransactionByHash", transfer.tx_hash)
        assert int(sent["chainId"], 16) == 42161 and sent["type"] == "0x2"
        node.mine(12)
        assert cold_transfer_track(transfer_id=transfer.pk).status == "CONFIRMED"
        assert node.token_balance("USDC", cold_wallet_key("ARBITRUM").address) == Decimal("1000")
