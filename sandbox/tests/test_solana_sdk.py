"""solana-py's and solders' own public API, unmodified, against the Solana stand-in (issue 23): an SPL
``TransferChecked`` (with the recipient's associated token account created, rent paid) built and signed
by solders and sent by solana-py, its status through processed → confirmed → finalized, the
transaction with pre/post token balances, signatures by address, balances per commitment, and Solana's
errors (already processed, signature verification, blockhash not found, a failing instruction)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from sandbox.solana.server import build_app
from sandbox.tests.serve import serving

USDT = Pubkey.from_string("Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB")
TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ATA = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM = Pubkey.from_string("11111111111111111111111111111111")
CONFIRMED = TxOpts(preflight_commitment=Confirmed)


def ata(owner: Pubkey, mint: Pubkey = USDT) -> Pubkey:
    return Pubkey.find_program_address([bytes(owner), bytes(TOKEN), bytes(mint)], ATA)[0]


def create_ata(payer: Pubkey, owner: Pubkey, mint: Pubkey = USDT) -> Instruction:
    metas = [
        AccountMeta(payer, True, True),
        AccountMeta(ata(owner, mint), False, True),
        AccountMeta(owner, False, False),
        AccountMeta(mint, False, False),
        AccountMeta(SYSTEM, False, False),
        AccountMeta(TOKEN, False, False),
    ]
    return Instruction(ATA, bytes([1]), metas)


def transfer_checked(owner: Pubkey, to: Pubkey, amount: int, mint: Pubkey = USDT) -> Instruction:
    metas = [
        AccountMeta(ata(owner, mint), False, True),
        AccountMeta(mint, False, False),
        AccountMeta(ata(to, mint), False, True),
        AccountMeta(owner, True, False),
    ]
    return Instruction(TOKEN, bytes([12]) + amount.to_bytes(8, "little") + bytes([6]), metas)


class Validator:
    def __init__(self, url: str):
        self.url = url

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.post(f"{self.url}/control/{path}", json=body or {}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def run(self, coro_fn: Any) -> Any:
        async def go() -> Any:
            async with AsyncClient(self.url) as client:
                return await coro_fn(client)

        return asyncio.run(go())

    def wallet(self, seed: int, sol: int = 0, usdt: int = 0) -> Keypair:
        kp = Keypair.from_seed(seed.to_bytes(32, "big"))
        if sol:
            self.control("fund", {"address": str(kp.pubkey()), "lamports": sol})
        if usdt:
            self.control("fund", {"address": str(kp.pubkey()), "mint": str(USDT), "amount": usdt})
        return kp


@pytest.fixture(scope="module")
def validator() -> Iterator[Validator]:
    with serving(build_app, seed=23, config={"manual": True}) as url:
        yield Validator(url)


def test_spl_transfer_signed_by_solders_through_every_commitment(validator: Validator) -> None:
    sender = validator.wallet(2001, sol=10**9, usdt=50_000_000)
    receiver = validator.wallet(2002).pubkey()
    validator.control("mine", {"slots": 40})  # the funding is finalized

    async def send(client: AsyncClient) -> Any:
        latest = (await client.get_latest_blockhash(Confirmed)).value
        message = MessageV0.try_compile(
            sender.pubkey(),
            [create_ata(sender.pubkey(), receiver), transfer_checked(sender.pubkey(), receiver, 7_250_000)],
            [],
            latest.blockhash,
        )
        tx = VersionedTransaction(message, [sender])
        sig = (await client.send_transaction(tx, opts=CONFIRMED)).value
        assert sig == tx.signatures[0]
        again = (await client.send_transaction(tx, opts=TxOpts(skip_preflight=True))).value
        assert again == sig  # the same transaction re-sent: the same signature, one transfer
        return sig

    sig = validator.run(send)
    statuses = validator.run(lambda c: c.get_signature_statuses([sig]))
    assert statuses.value == [None]
    validator.control("mine", {"slots": 1})
    status = validator.run(lambda c: c.get_signature_statuses([sig])).value[0]
    assert status.confirmation_status == TransactionConfirmationStatus.Processed and status.err is None
    validator.control("mine", {"slots": 1})
    got = validator.run(lambda c: c.get_transaction(sig, "json", Confirmed, 0)).value
    assert got is not None and got.slot == status.slot
    meta = got.transaction.meta
    assert meta.err is None and meta.fee == 5000
    post = {str(b.owner): int(b.ui_token_amount.amount) for b in meta.post_token_balances}
    pre = {str(b.owner): int(b.ui_token_amount.amount) for b in meta.pre_token_balances}
    assert post[str(receiver)] == 7_250_000 and str(receiver) not in pre
    assert post[str(sender.pubkey())] == 50_000_000 - 7_250_000
    assert meta.pre_balances[0] - meta.post_balances[0] == 5000 + 2_039_280  # fee + the new account's rent
    assert validator.run(lambda c: c.get_transaction(sig, "json", Finalized, 0)).value is None
    balance = validator.run(lambda c: c.get_token_account_balance(ata(receiver), Confirmed)).value
    assert balance.amount == "7250000" and balance.decimals == 6 and balance.ui_amount_string == "7.25"
    sigs = validator.run(lambda c: c.get_signatures_for_address(ata(receiver), commitment=Confirmed)).value
    assert [s.signature for s in sigs] == [sig]
    assert (
        validator.run(lambda c: c.get_signatures_for_address(ata(receiver), commitment=Finalized)).value == []
    )
    validator.control("mine", {"slots": 31})
    status = validator.run(lambda c: c.get_signature_statuses([sig])).value[0]
    assert (
        status.confirmation_status == TransactionConfirmationStatus.Finalized and status.confirmations is None
    )
    info = validator.run(lambda c: c.get_account_info_json_parsed(ata(receiver), Finalized)).value
    assert info.owner == TOKEN and info.data.parsed["info"]["owner"] == str(receiver)
    raw = validator.run(lambda c: c.get_account_info(ata(receiver), Finalized)).value
    assert len(raw.data) == 165 and raw.lamports == 2_039_280
    assert validator.run(lambda c: c.get_balance(receiver, Finalized)).value == 0


def test_solana_errors(validator: Validator) -> None:
    sender = validator.wallet(2011, sol=10**8, usdt=1_000_000)
    receiver = validator.wallet(2012, sol=10**7)
    validator.control("mine", {"slots": 40})

    async def scenario(client: AsyncClient) -> None:
        latest = (await client.get_latest_blockhash(Confirmed)).value
        assert latest.last_valid_block_height == (await client.get_block_height(Confirmed)).value + 150
        # a signature by the wrong key
        message = Message.new_with_blockhash(
            [
                transfer(
                    TransferParams(from_pubkey=sender.pubkey(), to_pubkey=receiver.pubkey(), lamports=1000)
                )
            ],
            sender.pubkey(),
            latest.blockhash,
        )
        forged = VersionedTransaction.populate(message, [receiver.sign_message(bytes(message))])
        with pytest.raises(RPCException, match="SignatureVerificationFailure"):
            await client.send_transaction(forged, opts=CONFIRMED)
        # a failing instruction: refused in preflight; sent anyway it lands with its error and the fee
        too_much = VersionedTransaction(
            Message.new_with_blockhash(
                [
                    create_ata(sender.pubkey(), receiver.pubkey()),
                    transfer_checked(sender.pubkey(), receiver.pubkey(), 2_000_000),
                ],
                sender.pubkey(),
                latest.blockhash,
            ),
            [sender],
        )
        with pytest.raises(RPCException, match="simulation failed"):
            await client.send_transaction(too_much, opts=CONFIRMED)
        failed_sig = (await client.send_transaction(too_much, opts=TxOpts(skip_preflight=True))).value
        validator.control("mine", {"slots": 2})
        failed = (await client.get_transaction(failed_sig, "json", Confirmed, 0)).value
        assert failed.transaction.meta.err is not None and failed.transaction.meta.fee == 5000
        assert (await client.get_signature_statuses([failed_sig])).value[0].err is not None
        assert (
            await client.get_token_account_balance(ata(sender.pubkey()), Confirmed)
        ).value.amount == "1000000"
        # an old blockhash: after 150 blocks it is not found; sent without preflight it never lands
        old = (await client.get_latest_blockhash(Confirmed)).value.blockhash
        validator.control("mine", {"slots": 151})
        stale = VersionedTransaction(
            Message.new_with_blockhash(
                [transfer_checked(sender.pubkey(), receiver.pubkey(), 1)], sender.pubkey(), old
            ),
            [sender],
        )
        with pytest.raises(RPCException, match="Blockhash not found"):
            await client.send_transaction(stale, opts=CONFIRMED)
        stale_sig = (await client.send_transaction(stale, opts=TxOpts(skip_preflight=True))).value
        validator.control("mine", {"slots": 2})
        assert (await client.get_signature_statuses([stale_sig], search_transaction_history=True)).value == [
            None
        ]

    validator.run(scenario)


def test_state_survives_a_restart(tmp_path) -> None:
    state = {"manual": True, "state_file": str(tmp_path / "solana.pickle")}
    with serving(build_app, seed=25, config=dict(state)) as url:
        owner = Validator(url).wallet(2041, sol=7_000, usdt=3_000)
        Validator(url).control("mine", {"slots": 40})
    with serving(build_app, seed=25, config=dict(state)) as url:
        validator = Validator(url)
        assert validator.run(lambda c: c.get_balance(owner.pubkey(), Finalized)).value == 7_000
        balance = validator.run(lambda c: c.get_token_account_balance(ata(owner.pubkey()), Finalized))
        assert balance.value.amount == "3000"


def test_a_system_account_may_not_be_left_below_the_rent_exempt_minimum(validator: Validator) -> None:
    payer = validator.wallet(2051, sol=10**8)
    fresh = validator.wallet(2052).pubkey()
    validator.control("mine", {"slots": 40})
    minimum = validator.run(lambda c: c.get_minimum_balance_for_rent_exemption(0, Confirmed)).value
    assert minimum == 890_880

    async def send(client: AsyncClient, lamports: int) -> Any:
        blockhash = (await client.get_latest_blockhash(Confirmed)).value.blockhash
        ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=fresh, lamports=lamports))
        tx = VersionedTransaction(Message.new_with_blockhash([ix], payer.pubkey(), blockhash), [payer])
        return (await client.send_transaction(tx, opts=CONFIRMED)).value

    with pytest.raises(RPCException, match="InsufficientFundsForRent"):
        validator.run(lambda c: send(c, 5_000))
    validator.run(lambda c: send(c, minimum))
    validator.control("mine", {"slots": 2})
    assert validator.run(lambda c: c.get_balance(fresh, Confirmed)).value == minimum
