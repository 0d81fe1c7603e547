"""Solana through its own protocol: the house's Solana adapter (solana-py, solders) against
the Solana stand-in (sandbox/solana; the session's stand-in, reset for each test: the ``sol`` fixture).
An SPL transfer built and signed by solders is credited once at
``finalized``; a withdrawal end to end (the recipient's token account created, rent paid); a worker
killed between signing and broadcast sends one transaction; an expired blockhash is re-signed, never
doubled; a transfer that fails on chain is refunded; a sweep tops up SOL first."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from wallets.chains import hd_tron_sol
from wallets.chains.solana import MINTS, SolanaAdapter, transfer_instructions
from wallets.ledger import AccountRef, account_balance
from wallets.models import Aggregation, Deposit, WalletConfig, Withdrawal
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
from wallets.tests.tron_sol_fixtures import SolanaValidator

pytestmark = pytest.mark.django_db
RECIPIENT = str(Keypair.from_seed((0xA11CE).to_bytes(32, "big")).pubkey())
FINALITY = 32  # slots until a slot is finalized (31 behind the tip) and seen at confirmed


def fund_hot(sol: SolanaValidator, usdc: str, gas: str = "10") -> str:
    """USDC and SOL on the Solana hot wallet, on chain and in the ledger."""
    address = hot_wallet_key("SOL").address
    sol.fund(address, "SOL", gas)
    sol.fund(address, "USDC", usdc)
    book_hot_wallet("SOL", "USDC", usdc, "SOL", gas)
    return address


def test_an_spl_transfer_signed_by_solders_is_credited_once_at_finalized(sol, make_trader):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="SOL").address
    assert len(bytes(Pubkey.from_string(address))) == 32
    deposits_scan(chain="SOL")
    outside = Keypair.from_seed((0xB0B).to_bytes(32, "big"))
    sol.control("fund", {"address": str(outside.pubkey()), "lamports": 10**9})
    sol.control("fund", {"address": str(outside.pubkey()), "mint": str(MINTS["USDT"]), "amount": 900 * 10**6})
    sol.mine(2)

    async def send(client: AsyncClient) -> Any:
        blockhash = (await client.get_latest_blockhash(Confirmed)).value.blockhash
        ixs = transfer_instructions(outside.pubkey(), Pubkey.from_string(address), "USDT", Decimal(250))
        tx = VersionedTransaction(Message.new_with_blockhash(ixs, outside.pubkey(), blockhash), [outside])
        return (await client.send_transaction(tx, opts=TxOpts(preflight_commitment=Confirmed))).value

    signature = str(sol.rpc(send))
    sol.mine(2)
    report = deposits_scan(chain="SOL")
    deposit = Deposit.objects.get(user=user)
    assert report.credited == 0 and deposit.status == "PENDING" and deposit.confirmations == 0
    assert (deposit.tx_hash, deposit.asset, deposit.amount) == (signature, "USDT", Decimal(250))
    assert deposit.from_address == str(outside.pubkey())
    sol.mine(FINALITY - 3)
    assert deposits_scan(chain="SOL").credited == 0  # confirmed, not finalized
    sol.mine(1)
    assert deposits_scan(chain="SOL").credited == 1  # finalized
    assert deposits_scan(chain="SOL").credited == 0
    assert cash_of(user) == Decimal(250) and Deposit.objects.filter(user=user).count() == 1


def test_a_usdc_withdrawal_end_to_end(sol, trader, django_capture_on_commit_callbacks):
    fund(trader, "800")
    hot = fund_hot(sol, "600000")
    withdrawal = approved_withdrawal(
        trader, "SOL", "USDC", RECIPIENT, "500", django_capture_on_commit_callbacks
    )
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.status == "BROADCAST"
    sol.mine(FINALITY)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED"
    assert sol.token(RECIPIENT) == Decimal(500) and sol.token(hot) == Decimal(599500)
    assert cash_of(trader) == Decimal(300)
    spent = Decimal(10 * 10**9 - sol.lamports(hot)) / 10**9
    assert spent == Decimal("0.00204428")  # the fee and the recipient's new token account's rent
    gas = -account_balance(AccountRef.platform("hot_wallet", sub="SOL:SOL", asset="SOL"))
    assert gas == Decimal(10) - Decimal("0.002045")  # booked at the ledger's 6 decimals, rounded up


def test_killed_between_signing_and_broadcast_sends_exactly_one_transaction(
    sol, trader, django_capture_on_commit_callbacks, monkeypatch
):
    fund(trader, "800")
    fund_hot(sol, "600000")
    withdrawal = approved_withdrawal(
        trader, "SOL", "USDC", RECIPIENT, "500", django_capture_on_commit_callbacks
    )

    def die(*args: Any, **kwargs: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(SolanaAdapter, "broadcast", die)
        with pytest.raises(Killed):
            withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    signed = withdrawal.payload
    assert withdrawal.status == "SENDING" and signed["tx_hash"] == withdrawal.tx_hash

    WalletConfig.objects.update_or_create(pk=1, defaults={"resend_after_seconds": 0})
    withdrawal_send(withdrawal_id=withdrawal.pk)
    withdrawals_process_due()
    sol.mine(1)
    withdrawals_process_due()  # the same bytes again: the cluster already has the signature
    sol.mine(FINALITY)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and withdrawal.tx_hash == signed["tx_hash"]
    assert sol.signatures(RECIPIENT) == [signed["tx_hash"]]
    assert sol.token(RECIPIENT) == Decimal(500) and cash_of(trader) == Decimal(300)


def test_an_expired_blockhash_is_re_signed_and_never_doubled(
    sol, trader, django_capture_on_commit_callbacks, monkeypatch
):
    fund(trader, "800")
    fund_hot(sol, "600000")
    withdrawal = approved_withdrawal(
        trader, "SOL", "USDC", RECIPIENT, "500", django_capture_on_commit_callbacks
    )

    def die(*args: Any, **kwargs: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(SolanaAdapter, "broadcast", die)
        with pytest.raises(Killed):
            withdrawal_send(withdrawal_id=withdrawal.pk)
    first = Withdrawal.objects.get(pk=withdrawal.pk).payload
    WalletConfig.objects.update_or_create(pk=1, defaults={"resend_after_seconds": 0})

    sol.mine(160)  # the blockhash is gone, but not yet beyond the *finalized* block height: wait
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "SENDING" and withdrawal.tx_hash == first["tx_hash"]
    sol.mine(FINALITY)
    withdrawals_process_due()  # expired for good and unknown: re-signed on a new blockhash, sent
    withdrawal.refresh_from_db()
    assert withdrawal.status == "BROADCAST" and withdrawal.tx_hash != first["tx_hash"]
    assert withdrawal.payload["attempt"] == 1
    sol.mine(FINALITY)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED"
    raw = base64.b64decode(first["raw"])
    with pytest.raises(RPCException, match="BlockhashNotFound|Blockhash not found"):
        sol.rpc(lambda c: c.send_raw_transaction(raw, TxOpts(preflight_commitment=Confirmed)))
    assert sol.signatures(RECIPIENT) == [withdrawal.tx_hash]
    assert sol.token(RECIPIENT) == Decimal(500) and cash_of(trader) == Decimal(300)


def test_a_transfer_that_fails_on_chain_is_refunded(
    sol, trader, django_capture_on_commit_callbacks, monkeypatch
):
    fund(trader, "800")
    hot = fund_hot(sol, "600000")
    withdrawal = approved_withdrawal(
        trader, "SOL", "USDC", RECIPIENT, "500", django_capture_on_commit_callbacks
    )
    real = SolanaAdapter.broadcast
    key = Keypair.from_seed(hd_tron_sol.private_key(hot_wallet_key("SOL").hd_path))
    elsewhere = Keypair.from_seed((0xD0D).to_bytes(32, "big")).pubkey()

    def drained_first(self: SolanaAdapter, chain: str, payload: dict[str, Any]) -> Any:
        # another transaction empties the hot wallet's token account ahead of ours in the same slot
        async def drain(client: AsyncClient) -> None:
            blockhash = (await client.get_latest_blockhash(Confirmed)).value.blockhash
            ixs = transfer_instructions(key.pubkey(), elsewhere, "USDC", Decimal(600000))
            tx = VersionedTransaction(Message.new_with_blockhash(ixs, key.pubkey(), blockhash), [key])
            await client.send_transaction(tx, opts=TxOpts(skip_preflight=True))

        sol.rpc(drain)
        return real(self, chain, payload)  # its preflight (at confirmed) still sees the tokens

    monkeypatch.setattr(SolanaAdapter, "broadcast", drained_first)
    withdrawal_send(withdrawal_id=withdrawal.pk)
    monkeypatch.undo()
    sol.mine(FINALITY)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.reason_code) == ("FAILED", "TX_REVERTED")
    assert cash_of(trader) == Decimal(800)
    assert sol.token(RECIPIENT) == 0 and sol.token(hot) == 0


def test_a_sweep_tops_up_sol_first_and_the_hot_wallet_matches_the_ledger(sol, make_trader):
    hot = fund_hot(sol, "1000")
    users = [make_trader() for _ in range(2)]
    addresses = [deposit_address_get_or_create(user=u, chain="SOL").address for u in users]
    deposits_scan(chain="SOL")
    for i, address in enumerate(addresses):
        sol.control("deposit", {"to": address, "mint": "USDC", "amount": (100 + i) * 10**6})
    sol.mine(FINALITY + 1)
    assert deposits_scan(chain="SOL").credited == 2

    sweeps = aggregation_plan(chain="SOL", trigger=Aggregation.Trigger.MANUAL)
    assert len(sweeps) == 2
    for _ in range(3):
        for sweep in sweeps:
            aggregation_advance(aggregation_id=sweep.pk)
        sol.mine(FINALITY + 1)
    assert all(Aggregation.objects.get(pk=s.pk).gas_tx_hash for s in sweeps)
    assert {Aggregation.objects.get(pk=s.pk).status for s in sweeps} == {"CONFIRMED"}
    assert all(sol.token(a) == 0 for a in addresses)
    record = -account_balance(AccountRef.platform("hot_wallet", sub="SOL:USDC"))
    assert sol.token(hot) == record == Decimal(1000 + 100 + 101)


def test_an_unhealthy_node_is_retried_with_the_same_transaction(
    sol, trader, django_capture_on_commit_callbacks
):
    fund(trader, "800")
    fund_hot(sol, "600000")
    withdrawal = approved_withdrawal(
        trader, "SOL", "USDC", RECIPIENT, "500", django_capture_on_commit_callbacks
    )
    WalletConfig.objects.update_or_create(pk=1, defaults={"resend_after_seconds": 0})
    sol.control("fail", {"target": "send", "mode": "error", "count": 1})
    withdrawal_send(withdrawal_id=withdrawal.pk)  # -32005 node unhealthy: nothing sent, nothing refunded
    withdrawal.refresh_from_db()
    assert withdrawal.status == "SENDING" and sol.state()["mempool"] == []
    # the same error without its data object (solders cannot parse it): unavailable too, never a crash
    sol.control("fail", {"target": "send", "mode": "error", "bare": True, "count": 1})
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    signed = withdrawal.tx_hash
    assert withdrawal.status == "SENDING" and signed and sol.state()["mempool"] == []
    assert cash_of(trader) == Decimal(300)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.tx_hash) == ("BROADCAST", signed)
    sol.mine(FINALITY)
    withdrawals_process_due()
    withdrawal.refresh_from_db()
    assert withdrawal.status == "COMPLETED" and sol.signatures(RECIPIENT) == [signed]
    assert sol.token(RECIPIENT) == Decimal(500) and cash_of(trader) == Decimal(300)
