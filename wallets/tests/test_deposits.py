"""Spec 06 — deposits: ETH on a real local node (anvil: ERC-20 transfers, blocks mined by the test),
TRON and SOL on the simulated chains (manual blocks)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from core.accounts.roles import Role
from core.errors import ApplicationError, ErrorCode
from wallets.ledger import AccountRef, TransferSpec, account_balance, ledger_post
from wallets.models import Deposit, LedgerTransfer
from wallets.services import deposit_address_get_or_create, deposit_credit, deposit_review, deposits_scan

pytestmark = pytest.mark.django_db


def cash_of(user) -> Decimal:
    return account_balance(AccountRef.user(user.pk, "cash"))


def test_each_user_gets_one_permanent_deposit_address_per_chain(chains, make_trader):
    alice, bob = make_trader(), make_trader()
    first = deposit_address_get_or_create(user=alice, chain="TRON")
    assert deposit_address_get_or_create(user=alice, chain="tron").address == first.address
    assert first.address.startswith("T")
    assert deposit_address_get_or_create(user=bob, chain="TRON").address != first.address
    assert deposit_address_get_or_create(user=alice, chain="ETH").address.startswith("0x")
    assert chains.validate("SOL", deposit_address_get_or_create(user=alice, chain="SOL").address)["valid"]


def test_arbitrum_and_unknown_chains_take_no_user_deposits(make_trader):
    user = make_trader()
    with pytest.raises(ApplicationError) as err:
        deposit_address_get_or_create(user=user, chain="ARBITRUM")
    assert err.value.code == ErrorCode.CHAIN_DISABLED
    with pytest.raises(ApplicationError) as err:
        deposit_address_get_or_create(user=user, chain="DOGE")
    assert err.value.code == ErrorCode.UNKNOWN_CHAIN


def test_a_deposit_is_credited_at_19_tron_confirmations_exactly_once(chains, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="TRON").address
    tx = chains.deposit("TRON", to=address, asset="USDT", amount="250.5")
    chains.mine("TRON", 18)
    deposits_scan(chain="TRON")
    deposit = Deposit.objects.get(user=user)
    assert (deposit.status, deposit.confirmations, deposit.tx_hash) == ("PENDING", 18, tx["tx_hash"])
    assert cash_of(user) == 0

    chains.mine("TRON", 1)
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
def test_amounts_outside_10_to_100000_are_held_for_review_not_credited(
    chains, make_trader, make_staff, amount
):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="SOL").address
    chains.deposit("SOL", to=address, asset="USDC", amount=amount)
    chains.mine("SOL", 32)
    report = deposits_scan(chain="SOL")
    deposit = Deposit.objects.get(user=user)
    assert report.held == 1 and deposit.status == "HELD"
    assert cash_of(user) == 0

    operator = make_staff(Role.OPERATIONS)
    deposit_review(deposit_id=deposit.pk, acting_user=operator, approve=True, note="sender verified")
    assert cash_of(user) == Decimal(amount)
    deposits_scan(chain="SOL")
    assert cash_of(user) == Decimal(amount)


def test_a_deposit_in_an_unsupported_token_or_to_a_stranger_is_ignored(chains, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="TRON").address
    chains.fund("TRON", address, "5", "TRX")
    chains.deposit("TRON", to=address, asset="TRX", amount="50")  # native coin: not a deposit asset
    chains.mine("TRON", 19)
    deposits_scan(chain="TRON")
    assert not Deposit.objects.filter(user=user).exists()


def test_a_credited_deposit_cannot_be_posted_again_with_other_content(chains, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="TRON").address
    chains.deposit("TRON", to=address, asset="USDT", amount="20")
    chains.mine("TRON", 19)
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
