"""Issue #22 — ETH deposits on a real local node (anvil, JSON-RPC through web3): ERC-20 Transfer logs
credited once at 12 confirmations, reorgs, native coins held, HD deposit addresses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.accounts.roles import Role
from core.alerts.models import Alert
from core.errors import ApplicationError, ErrorCode
from wallets.chains import hd
from wallets.ledger import AccountRef, account_balance
from wallets.models import ChainState, Deposit, LedgerTransfer
from wallets.services import deposit_address_get_or_create, deposit_review, deposits_scan

pytestmark = pytest.mark.django_db


def cash_of(user) -> Decimal:
    return account_balance(AccountRef.user(user.pk, "cash"))


def test_deposit_addresses_come_from_the_hd_seed_by_user_id(evm, make_trader):
    from eth_account import Account

    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="ETH")
    assert address.key.private_key_encrypted == ""
    assert address.key.hd_path == f"m/44'/60'/0'/0/{user.pk}"
    assert Account.from_key(hd.private_key(address.key.hd_path)).address == address.address
    assert "private" not in repr(address.key)


def test_1234_56_usdt_is_credited_once_after_12_confirmations_not_at_11(evm, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="ETH").address
    deposits_scan(chain="ETH")
    tx_hash = evm.transfer("USDT", address, "1234.56")  # mined at once: its block is confirmation 1
    block = int(evm.receipt(tx_hash)["blockNumber"], 16)
    evm.mine(10)
    deposits_scan(chain="ETH")
    deposit = Deposit.objects.get(user=user)
    assert (deposit.status, deposit.confirmations, deposit.block_height) == ("PENDING", 11, block)
    assert (deposit.tx_hash, deposit.amount, deposit.asset) == (tx_hash, Decimal("1234.56"), "USDT")
    assert deposit.block_hash == evm.receipt(tx_hash)["blockHash"]
    assert cash_of(user) == 0

    evm.mine(1)
    report = deposits_scan(chain="ETH")
    deposit.refresh_from_db()
    assert report.credited == 1 and (deposit.status, deposit.confirmations) == ("CREDITED", 12)
    assert cash_of(user) == Decimal("1234.56")

    # replay: the scanner reads the same blocks again from scratch, twice
    ChainState.objects.filter(chain="ETH").update(scanned_height=block - 5, scanned_hash="")
    assert deposits_scan(chain="ETH").credited == 0
    ChainState.objects.filter(chain="ETH").update(scanned_height=None)
    assert deposits_scan(chain="ETH").credited == 0
    assert cash_of(user) == Decimal("1234.56")
    assert Deposit.objects.filter(user=user).count() == 1
    assert LedgerTransfer.objects.filter(batch__key=deposit.ledger_key).count() == 1


def test_a_reorg_removing_the_block_before_confirmation_credits_nothing(evm_own, make_trader):
    evm = evm_own
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="ETH").address
    deposits_scan(chain="ETH")
    tx_hash = evm.transfer("USDT", address, "500")
    evm.mine(3)
    deposits_scan(chain="ETH")
    deposit = Deposit.objects.get(user=user)
    assert (deposit.status, deposit.confirmations) == ("PENDING", 4)

    evm.reorg(6)  # the last 6 blocks, the deposit's included, replaced by empty ones
    assert evm.receipt(tx_hash) is None
    evm.mine(20)
    deposits_scan(chain="ETH")
    deposit.refresh_from_db()
    assert (deposit.status, deposit.block_height, deposit.block_hash) == ("DROPPED", None, "")
    assert cash_of(user) == 0


def test_after_confirmation_a_deeper_reorg_never_credits_again_and_pages(evm_own, make_trader):
    evm = evm_own
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="ETH").address
    deposits_scan(chain="ETH")
    evm.transfer("USDT", address, "300")
    evm.mine(11)
    deposits_scan(chain="ETH")
    deposit = Deposit.objects.get(user=user)
    assert deposit.status == "CREDITED"

    evm.reorg(14)  # deeper than the 12 confirmations (our documented assumption: does not happen)
    evm.mine(2)
    deposits_scan(chain="ETH")
    deposits_scan(chain="ETH")
    deposit.refresh_from_db()
    assert deposit.status == "CREDITED" and cash_of(user) == Decimal("300")
    assert LedgerTransfer.objects.filter(batch__key=deposit.ledger_key).count() == 1
    assert Alert.objects.filter(rule="wallets.deposit_reorged_after_credit", subject=str(deposit.pk)).exists()


def test_native_eth_sent_to_a_deposit_address_is_held_for_review_never_credited(evm, make_trader, make_staff):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="ETH").address
    deposits_scan(chain="ETH")
    evm.send(to=address, value=2 * 10**17)  # 0.2 ETH
    evm.mine(11)
    deposits_scan(chain="ETH")
    deposit = Deposit.objects.get(user=user)
    assert (deposit.asset, deposit.amount, deposit.status) == ("ETH", Decimal("0.2"), "HELD")
    assert "not credited" in deposit.review_note and cash_of(user) == 0
    with pytest.raises(ApplicationError) as err:
        deposit_review(
            deposit_id=deposit.pk, acting_user=make_staff(Role.OPERATIONS), approve=True, note="ok"
        )
    assert err.value.code == ErrorCode.INVALID_STATE
