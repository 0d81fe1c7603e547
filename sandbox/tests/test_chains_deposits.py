"""Deposits from outside senders, block production, confirmations and the transfer scan API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sandbox.chains.client import ChainsClient, ChainsHTTPError, Wallet
from sandbox.testing import SandboxProcess

TOKENS = {"TRON": ["USDT"], "ETH": ["USDT", "USDC"], "SOL": ["USDT", "USDC"], "ARBITRUM": ["USDC"]}


@pytest.fixture(scope="module")
def chains() -> Iterator[ChainsClient]:
    with SandboxProcess(seed=21, config={"chains": {"manual": True}}) as sb:
        yield ChainsClient(sb.urls["chains"])


@pytest.fixture(autouse=True)
def fresh(chains: ChainsClient) -> None:
    chains.reset()


@pytest.mark.parametrize("chain", sorted(TOKENS))
def test_deposit_confirmations_grow(chains: ChainsClient, chain: str) -> None:
    user = Wallet.from_label(chain, "user-1").address
    asset = TOKENS[chain][-1]
    start = chains.status(chain)["height"]
    tx = chains.deposit(chain, to=user, asset=asset, amount="150.25")
    assert tx["status"] == "pending" and tx["confirmations"] == 0 and tx["block"] is None
    assert chains.transfers(chain, from_height=start)["transfers"] == []  # mempool is not scanned

    chains.mine(chain)
    view = chains.tx(chain, tx["tx_hash"])
    assert view["status"] == "confirmed" and view["block"] == start + 1 and view["confirmations"] == 1
    chains.mine(chain, 18)
    assert chains.tx(chain, tx["tx_hash"])["confirmations"] == 19
    assert chains.status(chain)["height"] == start + 19

    scan = chains.transfers(chain, from_height=start, address=user)
    assert scan["to_height"] == start + 19
    [item] = scan["transfers"]
    assert item["tx_hash"] == tx["tx_hash"] and item["log_index"] == 0
    assert item["to"] == user and item["asset"] == asset and item["amount"] == "150.250000"
    assert item["block"] == start + 1 and item["confirmations"] == 19 and item["kind"] == "deposit"
    block = chains.block(chain, start + 1)
    assert block["txs"] == [tx["tx_hash"]] and block["hash"] == item["block_hash"]
    assert chains.balance(chain, user, asset)["balance"] == "150.250000"


def test_one_tx_with_several_transfers_has_log_indexes(chains: ChainsClient) -> None:
    a, b = Wallet.from_label("ETH", "a").address, Wallet.from_label("ETH", "b").address
    tx = chains.deposit(
        "ETH",
        transfers=[
            {"to": a, "asset": "USDT", "amount": "10"},
            {"to": b, "asset": "USDC", "amount": "20.5"},
            {"to": a, "asset": "USDT", "amount": "30.000001"},
        ],
    )
    chains.mine("ETH")
    items = chains.transfers("ETH", from_height=0)["transfers"]
    assert [(i["tx_hash"], i["log_index"], i["to"], i["amount"]) for i in items] == [
        (tx["tx_hash"], 0, a, "10.000000"),
        (tx["tx_hash"], 1, b, "20.500000"),
        (tx["tx_hash"], 2, a, "30.000001"),
    ]
    only_a = chains.transfers("ETH", from_height=0, address=a.lower())["transfers"]
    assert [i["log_index"] for i in only_a] == [0, 2]
    usdc = chains.transfers("ETH", from_height=0, asset="USDC")["transfers"]
    assert [i["log_index"] for i in usdc] == [1]
    both = chains.transfers("ETH", from_height=0, address=f"{a},{b}")["transfers"]
    assert len(both) == 3
    assert chains.balance("ETH", a)["balances"]["USDT"] == "40.000001"


def test_native_transfers_only_listed_on_request(chains: ChainsClient) -> None:
    user = Wallet.from_label("TRON", "user-native").address
    chains.deposit("TRON", to=user, asset="TRX", amount="5")
    chains.deposit("TRON", to=user, asset="USDT", amount="7")
    chains.mine("TRON")
    assert [i["asset"] for i in chains.transfers("TRON", address=user)["transfers"]] == ["USDT"]
    assert [i["asset"] for i in chains.transfers("TRON", address=user, asset="TRX")["transfers"]] == ["TRX"]
    balance = chains.balance("TRON", user)
    assert balance["native_asset"] == "TRX" and balance["native_balance"] == "5.000000"


def test_scan_paging_never_splits_a_block(chains: ChainsClient) -> None:
    user = Wallet.from_label("SOL", "pager").address
    start = chains.status("SOL")["height"]
    for i in range(5):
        chains.deposit("SOL", to=user, asset="USDC", amount=f"{i + 1}")
        chains.deposit("SOL", to=user, asset="USDC", amount=f"{i + 1}.5")
        chains.mine("SOL")
    seen, cursor = [], start
    while cursor < start + 5:
        page = chains.transfers("SOL", from_height=cursor + 1, limit=3)
        assert page["transfers"], page
        assert len({i["block"] for i in page["transfers"]}) * 2 == len(page["transfers"])
        seen += page["transfers"]
        cursor = page["to_height"]
    assert len(seen) == 10 and len({(i["tx_hash"], i["log_index"]) for i in seen}) == 10


def test_deposit_validation(chains: ChainsClient) -> None:
    user = Wallet.from_label("ARBITRUM", "x").address
    cases = [
        ({"to": user, "asset": "USDT", "amount": "1"}, "unknown_asset"),  # no USDT on Arbitrum
        ({"to": user, "asset": "USDC", "amount": "1.0000001"}, "invalid_amount"),
        ({"to": user, "asset": "USDC", "amount": 1.5}, "invalid_amount"),
        ({"to": user, "asset": "USDC", "amount": "0"}, "invalid_amount"),
        ({"to": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "asset": "USDC", "amount": "1"}, "invalid_address"),
    ]
    for body, code in cases:
        with pytest.raises(ChainsHTTPError) as err:
            chains.deposit("ARBITRUM", **body)
        assert err.value.status == 400 and err.value.code == code, body


def test_blocks_are_produced_on_a_timer(chains: ChainsClient) -> None:
    h0 = chains.status("TRON")["height"]
    time.sleep(0.3)
    assert chains.status("TRON")["height"] == h0  # manual mode
    chains.set_interval("TRON", 0.05)
    user = Wallet.from_label("TRON", "timer").address
    tx = chains.deposit("TRON", to=user, asset="USDT", amount="12")
    deadline = time.monotonic() + 5
    while chains.tx("TRON", tx["tx_hash"])["confirmations"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = chains.status("TRON")
    assert chains.tx("TRON", tx["tx_hash"])["confirmations"] >= 5
    assert status["manual"] is False and status["block_interval"] == 0.05 and status["height"] >= h0 + 5
    assert chains.set_interval("TRON", None)["TRON"]["manual"] is True
    h1 = chains.status("TRON")["height"]
    time.sleep(0.2)
    assert chains.status("TRON")["height"] == h1


def test_status_fields(chains: ChainsClient) -> None:
    status = chains.status("SOL")
    assert status["native_asset"] == "SOL" and status["tokens"] == ["USDT", "USDC"]
    assert status["decimals"] == {"USDT": 6, "USDC": 6, "SOL": 9}
    assert status["manual"] is True and isinstance(status["time"], float)
    eth = chains.status("ETH")
    assert eth["decimals"]["ETH"] == 18 and eth["token_transfer_fee"].startswith("0.0013")
    index = chains.request("GET", "/")
    assert [c["chain"] for c in index["chains"]] == ["TRON", "ETH", "SOL", "ARBITRUM"]
