"""TRON through its own protocol: the house's TRON adapter (tronpy) against the TRON stand-in
(sandbox/tron; the session's stand-in, reset for each test: the ``tron`` fixture). A TRC-20 transfer built and signed by tronpy is credited once after 19 blocks; a
withdrawal end to end; a worker killed between signing and broadcast sends one transaction; an expired
transaction is re-signed, never doubled; a transfer that fails on chain (out of energy) is refunded; a
sweep tops up TRX first; the fee limit and the expiry are audited run-time config."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from tronpy.keys import PrivateKey

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from wallets.chains.tron import USDT_CONTRACT, TronAdapter
from wallets.config import chain_config, chain_config_update
from wallets.ledger import AccountRef, account_balance
from wallets.models import Aggregation, Deposit, LedgerTransfer, WalletConfig, Withdrawal
from wallets.services import (
    aggregation_advance,
    aggregation_plan,
    deposit_address_get_or_create,
    deposits_scan,
    hot_wallet_key,
    withdrawal_send,
    withdrawals_process_due,
)
from wallets.tests.chain_flows import Killed, approved_withdrawal, book_hot_wallet, cash_of
from wallets.tests.conftest import fund
from wallets.tests.tron_sol_fixtures import SUN, TronNode

pytestmark = pytest.mark.django_db
RECIPIENT_KEY = PrivateKey((0xA11CE).to_bytes(32, "big"))
RECIPIENT = RECIPIENT_KEY.public_key.to_base58check_address()


def fund_hot(tron: TronNode, usdt: str, trx: str = "500") -> str:
    """USDT and TRX on the TRON hot wallet, on chain and in the ledger."""
    address = hot_wallet_key("TRON").address
    tron.fund(address, "USDT", usdt)
    tron.fund(address, "TRX", trx)
    book_hot_wallet("TRON", "USDT", usdt, "TRX", trx)
    return address


def test_a_trc20_transfer_signed_by_tronpy_is_credited_once_after_19_blocks(tron, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="TRON").address
    assert address.startswith("T") and len(address) == 34
    deposits_scan(chain="TRON")
    outside = PrivateKey((0xB0B).to_bytes(32, "big"))
    sender = outside.public_key.to_base58check_address()
    tron.control("fund", {"address": sender, "amount": 100 * SUN})
    tron.control("fund", {"address": sender, "amount": 1_000 * SUN, "asset": "USDT"})
    contract = tron.client.get_contract(USDT_CONTRACT)
    txn = contract.functions.transfer(address, 250 * SUN).with_owner(sender).fee_limit(30 * SUN).build()
    txn.sign(outside).broadcast()
    tron.mine(1)

    report = deposits_scan(chain="TRON")
    deposit = Deposit.objects.get(user=user)
    assert report.credited == 0 and deposit.status == "PENDING"
    assert (deposit.tx_hash, deposit.amount, deposit.from_address) == (txn.txid, Decimal(250), sender)
    tron.mine(17)
    assert deposits_scan(chain="TRON").credited == 0  # 18 confirmations
    tron.mine(1)
    assert deposits_scan(chain="TRON").credited == 1  # the 19th
    assert deposits_scan(chain="TRON").credited == 0
    deposit.refresh_from_db()
    assert (deposit.status, deposit.confirmations) == ("CREDITED", 19)
    assert cash_of(user) == Decimal(250) and Deposit.objects.filter(user=user).count() == 1


def test_a_usdt_withdrawal_end_to_end(tron, trader, django_capture_on_commit_callbacks):
    fund(trader, "800")
    hot = fund_hot(tron, "600000")
    withdrawal = approved_withdrawal(
        trader, "TRON", "USDT", RECIPIENT, "500", django_capture_on_commit_callbacks
    )
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.status == "BROADCAST" and len(withdrawal.tx_hash) == 64
    tron.mine(1)
    info = tron.client.get_transaction_info(withdrawal.tx_hash)
    assert info["receipt"]["result"] == "SUCCESS" and info["fee"] > 0
    tron.mine(18)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.confirmations) == ("COMPLETED", 19)
    assert tron.usdt(RECIPIENT) == Decimal(500) and tron.usdt(hot) == Decimal(599500)
    assert cash_of(trader) == Decimal(300)
    gas = -account_balance(AccountRef.platform("hot_wallet", sub="TRON:TRX", asset="TRX"))
    assert gas == Decimal(500) - Decimal(info["fee"]) / SUN == tron.trx(hot)  # the burnt TRX is booked
    completed = LedgerTransfer.objects.filter(
        batch__key=f"withdrawal:{withdrawal.pk}:complete", kind="withdrawal"
    )
    assert completed.count() == 1


def test_killed_between_signing_and_broadcast_sends_exactly_one_transaction(
    tron, trader, django_capture_on_commit_callbacks, monkeypatch
):
    fund(trader, "800")
    fund_hot(tron, "600000")
    withdrawal = approved_withdrawal(
        trader, "TRON", "USDT", RECIPIENT, "500", django_capture_on_commit_callbacks
    )

    def die(*args: Any, **kwargs: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(TronAdapter, "broadcast", die)
        with pytest.raises(Killed):
            withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    signed = withdrawal.payload
    assert withdrawal.status == "SENDING" and signed["tx_hash"] == withdrawal.tx_hash
    assert tron.state()["mempool"] == []  # nothing reached the node

    WalletConfig.objects.update_or_create(pk=1, defaults={"resend_after_seconds": 0})
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawals_process_due()
    withdrawals_process_due()  # the same bytes again: DUP_TRANSACTION_ERROR is success
    tron.mine(19)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and withdrawal.tx_hash == signed["tx_hash"]
    assert [t["transaction_id"] for t in tron.transfers_to(RECIPIENT)] == [signed["tx_hash"]]
    assert tron.usdt(RECIPIENT) == Decimal(500) and cash_of(trader) == Decimal(300)


def test_an_expired_transaction_is_re_signed_and_never_doubled(
    tron, trader, django_capture_on_commit_callbacks, monkeypatch
):
    fund(trader, "800")
    fund_hot(tron, "600000")
    withdrawal = approved_withdrawal(
        trader, "TRON", "USDT", RECIPIENT, "500", django_capture_on_commit_callbacks
    )
    real = TronAdapter.broadcast

    def sent_then_died(self: TronAdapter, chain: str, payload: dict[str, Any]) -> Any:
        real(self, chain, payload)
        raise Killed  # broadcast, and the worker died before it could note it

    with monkeypatch.context() as patch:
        patch.setattr(TronAdapter, "broadcast", sent_then_died)
        with pytest.raises(Killed):
            withdrawal_send(withdrawal_id=withdrawal.pk)
    first = Withdrawal.objects.get(pk=withdrawal.pk).payload
    # no block for two minutes of chain time: the transaction expires in the pool, never packed
    tron.control("time", {"advance_seconds": 120})
    tron.mine(1)
    assert (
        tron.client.provider.make_request("wallet/gettransactioninfobyid", {"value": first["tx_hash"]}) == {}
    )

    WalletConfig.objects.update_or_create(pk=1, defaults={"resend_after_seconds": 0})
    withdrawals_process_due()  # re-broadcast -> TRANSACTION_EXPIRATION_ERROR -> re-signed, sent
    withdrawal.refresh_from_db()
    assert withdrawal.status == "BROADCAST" and withdrawal.tx_hash != first["tx_hash"]
    assert withdrawal.payload["attempt"] == 1
    tron.mine(19)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED"
    answer = tron.client.provider.make_request("wallet/broadcasttransaction", json.loads(first["raw"]))
    assert answer["code"] == "TRANSACTION_EXPIRATION_ERROR"  # the first can never land
    assert [t["transaction_id"] for t in tron.transfers_to(RECIPIENT)] == [withdrawal.tx_hash]
    assert tron.usdt(RECIPIENT) == Decimal(500) and cash_of(trader) == Decimal(300)


def test_a_transfer_that_runs_out_of_energy_on_chain_is_refunded(
    tron, trader, django_capture_on_commit_callbacks
):
    fund(trader, "800")
    hot = fund_hot(tron, "600000", trx="3")  # bandwidth is free, but 3 TRX cannot buy the energy
    withdrawal = approved_withdrawal(
        trader, "TRON", "USDT", RECIPIENT, "500", django_capture_on_commit_callbacks
    )
    assert cash_of(trader) == Decimal(300)
    withdrawal_send(withdrawal_id=withdrawal.pk)
    tron.mine(19)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    info = tron.client.get_transaction_info(withdrawal.tx_hash)
    assert info["receipt"]["result"] == "OUT_OF_ENERGY" and info["result"] == "FAILED"
    assert (withdrawal.status, withdrawal.reason_code) == ("FAILED", "TX_REVERTED")
    assert cash_of(trader) == Decimal(800)
    assert tron.usdt(RECIPIENT) == 0 and tron.usdt(hot) == Decimal(600000) and tron.trx(hot) == 0


def test_a_sweep_tops_up_trx_first_and_the_hot_wallet_matches_the_ledger(tron, make_trader):
    hot = fund_hot(tron, "1000")
    users = [make_trader() for _ in range(2)]
    addresses = [deposit_address_get_or_create(user=u, chain="TRON").address for u in users]
    deposits_scan(chain="TRON")
    for i, address in enumerate(addresses):
        tron.control("deposit", {"to": address, "amount": (100 + i) * SUN})
    tron.mine(19)
    assert deposits_scan(chain="TRON").credited == 2

    sweeps = aggregation_plan(chain="TRON", trigger=Aggregation.Trigger.MANUAL)
    assert len(sweeps) == 2
    for sweep in sweeps:
        aggregation_advance(aggregation_id=sweep.pk)  # TRX top-up (activates the account)
    assert all(Aggregation.objects.get(pk=s.pk).gas_tx_hash for s in sweeps)
    tron.mine(19)
    for _ in range(2):
        for sweep in sweeps:
            aggregation_advance(aggregation_id=sweep.pk)
        tron.mine(19)
    assert {Aggregation.objects.get(pk=s.pk).status for s in sweeps} == {"CONFIRMED"}
    assert all(tron.usdt(a) == 0 for a in addresses)
    record = -account_balance(AccountRef.platform("hot_wallet", sub="TRON:USDT"))
    assert tron.usdt(hot) == record == Decimal(1000 + 100 + 101)


def test_the_fee_limit_and_expiry_are_audited_run_time_config(
    tron, trader, make_staff, django_capture_on_commit_callbacks
):
    assert (chain_config("TRON").fee_limit_native, chain_config("TRON").tx_expiration_seconds) == (50, 60)
    admin = make_staff(Role.SUPER_ADMIN)
    chain_config_update(
        chain="TRON",
        changes={"fee_limit_native": "20", "tx_expiration_seconds": 90},
        acting_user=admin,
        reason="energy price advisory",
    )
    entry = AuditEntry.objects.get(action="wallets.chain_config.update")
    assert (entry.before, entry.after) == (
        {"fee_limit_native": "50.000000", "tx_expiration_seconds": 60},
        {"fee_limit_native": "20", "tx_expiration_seconds": 90},
    )
    fund(trader, "800")
    fund_hot(tron, "600000")
    withdrawal = approved_withdrawal(
        trader, "TRON", "USDT", RECIPIENT, "500", django_capture_on_commit_callbacks
    )
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    raw = json.loads(withdrawal.payload["raw"])["raw_data"]
    head = tron.client.get_latest_block()["block_header"]["raw_data"]["timestamp"]
    assert raw["fee_limit"] == 20 * SUN  # the signed transaction carries the operator's limit
    assert 85_000 <= raw["expiration"] - head <= 90_000
    tron.mine(19)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and tron.usdt(RECIPIENT) == Decimal(500)
    # a limit too low for the energy of a transfer: the call runs out of energy on chain, refunded
    chain_config_update(
        chain="TRON", changes={"fee_limit_native": "1"}, acting_user=admin, reason="test a low limit"
    )
    other = PrivateKey((0xC0DE).to_bytes(32, "big")).public_key.to_base58check_address()
    again = approved_withdrawal(trader, "TRON", "USDT", other, "100", django_capture_on_commit_callbacks)
    withdrawal_send(withdrawal_id=again.pk)
    tron.mine(19)
    withdrawals_process_due()
    again.refresh_from_db()
    info = tron.client.get_transaction_info(again.tx_hash)
    assert info["receipt"]["result"] == "OUT_OF_ENERGY" and again.status == "FAILED"
    assert cash_of(trader) == Decimal(300) and tron.usdt(other) == 0


def test_a_node_error_or_a_lost_broadcast_answer_never_sends_twice(
    tron, trader, settings, django_capture_on_commit_callbacks
):
    settings.TRON_RPC_TIMEOUT = 1.0
    fund(trader, "800")
    fund_hot(tron, "600000")
    withdrawal = approved_withdrawal(
        trader, "TRON", "USDT", RECIPIENT, "500", django_capture_on_commit_callbacks
    )
    WalletConfig.objects.update_or_create(pk=1, defaults={"resend_after_seconds": 0})
    tron.control("fail", {"target": "broadcast", "mode": "error", "status": 503, "count": 1})
    withdrawal_send(withdrawal_id=withdrawal.pk)  # the node answers 503: nothing reached it
    withdrawal.refresh_from_db()
    signed = withdrawal.tx_hash
    assert withdrawal.status != "BROADCAST" and signed and tron.state()["mempool"] == []

    # the node takes the transaction but its answer never arrives (the client times out)
    tron.control("fail", {"target": "broadcast", "mode": "timeout", "hang_seconds": 2, "count": 1})
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status != "BROADCAST" and tron.state()["mempool"] == [signed]
    withdrawals_process_due()  # the same bytes again: DUP_TRANSACTION_ERROR is success
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.tx_hash) == ("BROADCAST", signed)
    tron.mine(19)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED"
    assert [t["transaction_id"] for t in tron.transfers_to(RECIPIENT)] == [signed]
    assert tron.usdt(RECIPIENT) == Decimal(500) and cash_of(trader) == Decimal(300)
