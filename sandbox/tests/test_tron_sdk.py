"""tronpy's own public API, unmodified, against the TRON stand-in (issue 23): TRC-20 and TRX transfers
built, signed and broadcast by tronpy, their receipts, TRON's error codes (duplicate, signature, TAPoS,
expiration, balance), energy burnt or ``OUT_OF_ENERGY``, a revert, and TronGrid's TRC-20 listing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from tronpy import Tron
from tronpy.exceptions import (
    AddressNotFound,
    BadSignature,
    TaposError,
    TransactionError,
    TransactionNotFound,
    UnknownError,
    ValidationError,
)
from tronpy.keys import PrivateKey
from tronpy.providers import HTTPProvider
from tronpy.tron import Transaction

from sandbox.tests.serve import serving
from sandbox.tron.server import build_app

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
SUN = 1_000_000


class Node:
    def __init__(self, url: str):
        self.url = url
        self.client = Tron(HTTPProvider(url, timeout=10))

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.post(f"{self.url}/control/{path}", json=body or {}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def account(self, n: int, trx: int = 0, usdt: int = 0) -> tuple[PrivateKey, str]:
        key = PrivateKey(n.to_bytes(32, "big"))
        address = key.public_key.to_base58check_address()
        if trx:
            self.control("fund", {"address": address, "amount": trx * SUN})
        if usdt:
            self.control("fund", {"address": address, "amount": usdt * SUN, "asset": "USDT"})
        return key, address


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with serving(build_app, seed=23, config={"manual": True, "solid_depth": 19}) as url:
        yield Node(url)


def test_trc20_transfer_built_signed_and_broadcast_by_tronpy(node: Node) -> None:
    key, sender = node.account(1001, trx=100, usdt=1_000)
    _, receiver = node.account(1002)
    contract = node.client.get_contract(USDT)
    assert contract.functions.balanceOf(sender) == 1_000 * SUN
    assert contract.functions.decimals() == 6
    txn = (
        contract.functions.transfer(receiver, 12_500_000)
        .with_owner(sender)
        .fee_limit(30 * SUN)
        .build()
        .sign(key)
    )
    ret = txn.broadcast()
    assert ret["result"] is True and ret.txid == txn.txid
    with pytest.raises(TransactionNotFound):
        node.client.get_transaction_info(txn.txid)  # not in a block yet
    with pytest.raises(UnknownError) as dup:
        node.client.broadcast(txn)  # the identical transaction again
    assert dup.value.args[1] == "DUP_TRANSACTION_ERROR"
    node.control("mine", {"blocks": 1})
    assert ret.result() is True  # tronpy reads contractResult
    info = node.client.get_transaction_info(txn.txid)
    assert info["receipt"]["result"] == "SUCCESS" and info["receipt"]["energy_usage_total"] == 29_650
    assert info["fee"] == info["receipt"]["energy_fee"] + info["receipt"].get("net_fee", 0)
    assert info["log"][0]["topics"][0].startswith("ddf252ad")
    assert node.client.get_transaction(txn.txid)["ret"][0]["contractRet"] == "SUCCESS"
    assert contract.functions.balanceOf(receiver) == 12_500_000
    assert contract.functions.balanceOf(sender) == 987_500_000
    assert node.client.get_account_balance(sender) == 100 - __import__("decimal").Decimal(info["fee"]) / SUN

    listing = requests.get(
        f"{node.url}/v1/accounts/{receiver}/transactions/trc20",
        params={"only_to": "true", "contract_address": USDT, "limit": 50},
        timeout=10,
    ).json()
    assert listing["success"] is True
    assert [(d["transaction_id"], d["value"], d["from"], d["to"]) for d in listing["data"]] == [
        (txn.txid, "12500000", sender, receiver)
    ]
    assert listing["data"][0]["token_info"]["decimals"] == 6
    unsolid = requests.get(
        f"{node.url}/v1/accounts/{receiver}/transactions/trc20", params={"only_confirmed": "true"}, timeout=10
    ).json()
    assert unsolid["data"] == []  # not yet solidified (19 blocks)
    node.control("mine", {"blocks": 19})
    solid = requests.get(
        f"{node.url}/v1/accounts/{receiver}/transactions/trc20", params={"only_confirmed": "true"}, timeout=10
    ).json()
    assert [d["transaction_id"] for d in solid["data"]] == [txn.txid]
    assert node.client.get_solid_transaction_info(txn.txid)["id"] == txn.txid


def test_trx_transfer_creates_the_account_and_charges_bandwidth(node: Node) -> None:
    key, sender = node.account(1011, trx=50)
    _, fresh = node.account(1012)
    with pytest.raises(AddressNotFound):
        node.client.get_account(fresh)
    txn = node.client.trx.transfer(sender, fresh, 3 * SUN).build().sign(key)
    txn.broadcast()
    node.control("mine", {"blocks": 1})
    assert node.client.get_account_balance(fresh) == 3
    info = node.client.get_transaction_info(txn.txid)
    assert info["receipt"]["net_usage"] > 0  # free bandwidth
    assert node.client.get_account_balance(sender) == 50 - 3 - 1  # 1 TRX to create the account


def test_tron_error_codes() -> None:
    with serving(build_app, seed=24, config={"manual": True}) as url:
        _error_codes(Node(url))


def _error_codes(node: Node) -> None:
    key, sender = node.account(1021, trx=20, usdt=10)
    other, _ = node.account(1022)
    _, receiver = node.account(1023)
    contract = node.client.get_contract(USDT)
    forged = contract.functions.transfer(receiver, SUN).with_owner(sender).fee_limit(10 * SUN).build()
    forged._permission = None  # the client's own permission check would stop us first
    with pytest.raises(BadSignature):
        forged.sign(other).broadcast()

    tapos = contract.functions.transfer(receiver, SUN).with_owner(sender).fee_limit(10 * SUN).build()
    raw = tapos.to_json()["raw_data"]
    raw["ref_block_hash"] = "00" * 8
    bad_ref = Transaction(raw, client=node.client)
    with pytest.raises(TaposError):
        bad_ref.sign(key).broadcast()

    poor_key, poor = node.account(1024, trx=1)
    with pytest.raises(ValidationError):
        node.client.trx.transfer(poor, receiver, 5 * SUN).build().sign(poor_key).broadcast()

    expiring = (
        contract.functions.transfer(receiver, SUN).with_owner(sender).fee_limit(10 * SUN).build().sign(key)
    )
    node.control("time", {"advance_seconds": 120})  # the chain's clock: 2 minutes later
    node.control("mine", {"blocks": 1})
    with pytest.raises(TransactionError, match="expiration"):
        node.client.broadcast(expiring)


def test_failed_trc20_transfers_keep_the_fee(node: Node) -> None:
    key, sender = node.account(1031, trx=40, usdt=5)
    _, receiver = node.account(1032)
    contract = node.client.get_contract(USDT)
    too_much = (
        contract.functions.transfer(receiver, 6 * SUN)
        .with_owner(sender)
        .fee_limit(20 * SUN)
        .build()
        .sign(key)
    )
    too_much.broadcast()
    low_limit = contract.functions.transfer(receiver, SUN).with_owner(sender).fee_limit(SUN).build().sign(key)
    low_limit.broadcast()
    node.control("mine", {"blocks": 1})
    revert = node.client.get_transaction_info(too_much.txid)
    assert revert["result"] == "FAILED" and revert["receipt"]["result"] == "REVERT" and revert["fee"] > 0
    out = node.client.get_transaction_info(low_limit.txid)
    assert out["receipt"]["result"] == "OUT_OF_ENERGY" and out["receipt"]["energy_fee"] == SUN
    assert node.client.get_transaction(too_much.txid)["ret"][0]["contractRet"] == "REVERT"
    assert contract.functions.balanceOf(sender) == 5 * SUN and contract.functions.balanceOf(receiver) == 0


def test_state_survives_a_restart(tmp_path) -> None:
    state = {"manual": True, "state_file": str(tmp_path / "tron.pickle")}
    with serving(build_app, seed=25, config=dict(state)) as url:
        node = Node(url)
        _, address = node.account(1041, trx=7, usdt=3)
        node.control("mine", {"blocks": 2})
    with serving(build_app, seed=25, config=dict(state)) as url:
        node = Node(url)
        assert node.client.get_account_balance(address) == 7
        assert node.client.get_contract(USDT).functions.balanceOf(address) == 3 * SUN
