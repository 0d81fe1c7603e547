"""Spec 06 — deposits: ETH on a real local node (anvil: ERC-20 transfers, blocks mined by the test),
TRON and SOL on their stand-ins (TronGrid's TRC-20 scan, Solana's JSON-RPC; blocks mined by the test)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from solders.pubkey import Pubkey
from tronpy.keys import PrivateKey

from core.accounts.roles import Role
from core.errors import ApplicationError, ErrorCode
from wallets.ledger import AccountRef, TransferSpec, account_balance, ledger_post
from wallets.models import Deposit, LedgerTransfer
from wallets.services import deposit_address_get_or_create, deposit_credit, deposit_review, deposits_scan

pytestmark = pytest.mark.django_db


def cash_of(user) -> Decimal:
    return account_balance(AccountRef.user(user.pk, "cash"))


def test_each_user_gets_one_permanent_deposit_address_per_chain(tron, make_trader):
    alice, bob = make_trader(), make_trader()
    first = deposit_address_get_or_create(user=alice, chain="TRON")
    assert deposit_address_get_or_create(user=alice, chain="tron").address == first.address
    assert tron.client.is_address(first.address) and first.address.startswith("T")
    assert deposit_address_get_or_create(user=bob, chain="TRON").address != first.address
    assert deposit_address_get_or_create(user=alice, chain="ETH").address.startswith("0x")
    sol_address = deposit_address_get_or_create(user=alice, chain="SOL").address
    assert str(Pubkey.from_string(sol_address)) == sol_address and sol_address != first.address


def test_arbitrum_and_unknown_chains_take_no_user_deposits(make_trader):
    user = make_trader()
    with pytest.raises(ApplicationError) as err:
        deposit_address_get_or_create(user=user, chain="ARBITRUM")
    assert err.value.code == ErrorCode.CHAIN_DISABLED
    with pytest.raises(ApplicationError) as err:
        deposit_address_get_or_create(user=user, chain="DOGE")
    assert err.value.code == ErrorCode.UNKNOWN_CHAIN


def test_a_deposit_is_credited_at_19_tron_confirmations_exactly_once(tron, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="TRON").address
    txid = tron.deposit(address, "250.5")
    tron.mine(18)
    deposits_scan(chain="TRON")
    deposit = Deposit.objects.get(user=user)
    assert (deposit.status, deposit.confirmations, deposit.tx_hash) == ("PENDING", 18, txid)
    assert cash_of(user) == 0

    tron.mine(1)
    report = deposits_scan(chain="TRON")
    deposits_scan(chain="TRON")  # scanned twice: still one credit
    deposit.refresh_from_db()
    assert report.credited == 1 and deposit.status == "CREDITED"
    assert cash_of(user) == Decimal("250.5")
    assert Deposit.objects.filter(user=user).count() == 1
    assert LedgerTransfer.objects.filter(batch__key=deposit.ledger_key).count() == 1


def test_a_worker_dying_mid_credit_loses_nothing_and_credits_once(evm, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="ETH").address
    evm.transfer("USDC", address, "100")  # mined at once: its block is the first confirmation
    evm.mine(11)

    class WorkerKilled(Exception):
        pass

    # The worker records the deposit and dies inside the crediting transaction: everything rolls back.
    with pytest.raises(WorkerKilled), transaction.atomic():
        deposits_scan(chain="ETH")
        assert cash_of(user) == Decimal("100")
        raise WorkerKilled
    assert not Deposit.objects.filter(user=user).exists()
    assert cash_of(user) == 0

    deposits_scan(chain="ETH")
    assert cash_of(user) == Decimal("100")
    deposit = Deposit.objects.get(user=user)
    # Even a worker that had posted the ledger transfer but not marked the row cannot double-credit:
    # the ledger key is derived from (chain, tx, log index).
    Deposit.objects.filter(pk=deposit.pk).update(status="PENDING")
    deposit_credit(deposit_id=deposit.pk)
    assert cash_of(user) == Decimal("100")
    assert Deposit.objects.get(pk=deposit.pk).status == "CREDITED"


def test_a_reorg_before_the_required_confirmations_drops_the_pending_deposit(evm_own, make_trader):
    evm = evm_own  # its own node: anvil_reorg invalidates the shared node's snapshots
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="ETH").address
    evm.transfer("USDT", address, "500")  # mined at once: 3 confirmations with the next 2 blocks
    evm.mine(2)
    deposits_scan(chain="ETH")
    assert Deposit.objects.get(user=user).status == "PENDING"

    evm.reorg(3)  # the block holding the deposit is replaced; the tx is dropped
    report = deposits_scan(chain="ETH")
    evm.mine(15)
    deposits_scan(chain="ETH")
    deposit = Deposit.objects.get(user=user)
    assert report.dropped == 1 and deposit.status == "DROPPED"
    assert cash_of(user) == 0


@pytest.mark.parametrize("amount", ["9.99", "100000.01"])
def test_amounts_outside_10_to_100000_are_held_for_review_not_credited(sol, make_trader, make_staff, amount):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="SOL").address
    sol.deposit(address, amount, "USDC")
    sol.mine(32)  # finalized
    report = deposits_scan(chain="SOL")
    deposit = Deposit.objects.get(user=user)
    assert report.held == 1 and deposit.status == "HELD"
    assert cash_of(user) == 0

    operator = make_staff(Role.OPERATIONS)
    deposit_review(deposit_id=deposit.pk, acting_user=operator, approve=True, note="sender verified")
    assert cash_of(user) == Decimal(amount)
    deposits_scan(chain="SOL")
    assert cash_of(user) == Decimal(amount)


def test_a_deposit_in_an_unsupported_token_or_to_a_stranger_is_ignored(tron, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="TRON").address
    outside = PrivateKey((0xFEE).to_bytes(32, "big"))
    sender = outside.public_key.to_base58check_address()
    tron.fund(sender, "TRX", "100")
    tron.fund(sender, "USDT", "100")
    # the native coin (a TransferContract signed by tronpy) is not a deposit asset
    native = tron.client.trx.transfer(sender, address, 50 * 10**6).build().sign(outside).broadcast()
    stranger = tron.deposit(PrivateKey((0x5EE).to_bytes(32, "big")).public_key.to_base58check_address(), "40")
    tron.mine(19)
    assert tron.trx(address) == 50 and tron.state()["txs"][native.txid]["block"] > 0
    assert tron.state()["txs"][stranger]["block"] > 0
    report = deposits_scan(chain="TRON")
    assert not Deposit.objects.exists() and report.credited == 0


def test_a_credited_deposit_cannot_be_posted_again_with_other_content(tron, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="TRON").address
    tron.deposit(address, "20")
    tron.mine(19)
    deposits_scan(chain="TRON")
    deposit = Deposit.objects.get(user=user)
    with pytest.raises(ApplicationError) as err:
        ledger_post(
            key=deposit.ledger_key,
            transfers=[
                TransferSpec(
                    debit=AccountRef.platform("deposit_clearing", sub="TRON:USDT"),
                    credit=AccountRef.user(user.pk, "cash"),
                    amount=Decimal("2000"),
                    kind="deposit",
                )
            ],
        )
    assert err.value.code == ErrorCode.IDEMPOTENCY_CONFLICT
