"""Issue #23 — TRON through its own protocol: the house's TRON adapter (tronpy) against the TRON stand-in
(sandbox/tron). A TRC-20 transfer built and signed by tronpy is credited once after 19 blocks; a
withdrawal end to end; a worker killed between signing and broadcast sends one transaction; an expired
transaction is re-signed, never doubled; a transfer that fails on chain (out of energy) is refunded; a
sweep tops up TRX first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from tronpy import Tron
from tronpy.keys import PrivateKey
from tronpy.providers import HTTPProvider

from sandbox.tests.serve import serving
from sandbox.tron.server import build_app
from wallets.chains.tron import USDT_CONTRACT, TronAdapter
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

pytestmark = pytest.mark.django_db
SUN = 1_000_000
RECIPIENT_KEY = PrivateKey((0xA11CE).to_bytes(32, "big"))
RECIPIENT = RECIPIENT_KEY.public_key.to_base58check_address()


class Node:
    def __init__(self, url: str):
        self.url = url
        self.client = Tron(HTTPProvider(url, timeout=10))

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.post(f"{self.url}/control/{path}", json=body or {}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def state(self) -> Any:
        return requests.get(f"{self.url}/control/state", timeout=10).json()

    def mine(self, blocks: int = 1) -> None:
        self.control("mine", {"blocks": blocks})

    def usdt(self, address: str) -> Decimal:
        return Decimal(self.client.get_contract(USDT_CONTRACT).functions.balanceOf(address)) / SUN

    def trx(self, address: str) -> Decimal:
        account = self.client.provider.make_request(
            "wallet/getaccount", {"address": address, "visible": True}
        )
        return Decimal(account.get("balance", 0)) / SUN

    def transfers_to(self, address: str) -> list[dict[str, Any]]:
        answer = requests.get(
            f"{self.url}/v1/accounts/{address}/transactions/trc20", params={"only_to": "true"}, timeout=10
        )
        return list(answer.json()["data"])

    def fund_hot(self, usdt: str, trx: str = "500") -> str:
        address = hot_wallet_key("TRON").address
        self.control("fund", {"address": address, "amount": int(Decimal(usdt) * SUN), "asset": "USDT"})
        self.control("fund", {"address": address, "amount": int(Decimal(trx) * SUN)})
        book_hot_wallet("TRON", "USDT", usdt, "TRX", trx)
        return address


@pytest.fixture
def tron(settings: Any) -> Iterator[Node]:
    """A TRON stand-in of the test's own (blocks only when the test mines), wired into the settings."""
    with serving(build_app, seed=23, config={"manual": True}) as url:
        settings.CHAIN_ADAPTERS = {**settings.CHAIN_ADAPTERS, "TRON": "tron"}
        settings.TRON_RPC_URL = url
        yield Node(url)


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
    hot = tron.fund_hot("600000")
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
    tron.fund_hot("600000")
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
    tron.fund_hot("600000")
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
    hot = tron.fund_hot("600000", trx="3")  # bandwidth is free, but 3 TRX cannot buy the energy
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
    hot = tron.fund_hot("1000")
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
