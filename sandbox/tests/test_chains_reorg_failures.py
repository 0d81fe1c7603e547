"""Reorgs, failure injection, state dump, reset and determinism of the simulated chains."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from sandbox.chains.client import ChainsClient, ChainsHTTPError, Wallet
from sandbox.testing import SandboxProcess

GENESIS = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"  # address of private key 1


@pytest.fixture(scope="module")
def chains() -> Iterator[ChainsClient]:
    with SandboxProcess(seed=41, config={"chains": {"manual": True}}) as sb:
        yield ChainsClient(sb.urls["chains"])


@pytest.fixture(autouse=True)
def fresh(chains: ChainsClient) -> None:
    chains.reset()


def hot_wallet(chains: ChainsClient, chain: str = "ETH") -> Wallet:
    wallet = Wallet.from_label(chain, "hot")
    chains.fund(chain, wallet.address, "1000", "USDT")
    chains.fund(chain, wallet.address, "1")
    return wallet


def test_reorg_drops_a_deposit(chains: ChainsClient) -> None:
    user = Wallet.from_label("TRON", "user").address
    start = chains.status("TRON")["height"]
    chains.mine("TRON", 2)
    tx = chains.deposit("TRON", to=user, asset="USDT", amount="500")
    chains.mine("TRON", 5)
    old_block = chains.block("TRON", start + 3)
    assert chains.tx("TRON", tx["tx_hash"])["confirmations"] == 5

    result = chains.reorg("TRON", 5)  # reinclude defaults to false, replace to true
    assert result["dropped"] == [tx["tx_hash"]] and result["reincluded"] == []
    assert result["height"] == start + 7
    view = chains.tx("TRON", tx["tx_hash"])
    assert view["status"] == "dropped" and view["confirmations"] == 0 and view["block"] is None
    assert "reorg" in view["error"]
    assert chains.transfers("TRON", from_height=start, address=user)["transfers"] == []
    assert chains.balance("TRON", user, "USDT")["balance"] == "0.000000"
    assert chains.block("TRON", start + 3)["hash"] != old_block["hash"]
    chains.mine("TRON", 20)
    assert chains.tx("TRON", tx["tx_hash"])["status"] == "dropped"


def test_reorg_with_reinclusion_moves_the_transfer(chains: ChainsClient) -> None:
    user = Wallet.from_label("ETH", "user").address
    keep = chains.deposit("ETH", to=user, asset="USDT", amount="1")
    lose = chains.deposit("ETH", to=user, asset="USDC", amount="2")
    chains.mine("ETH")
    chains.mine("ETH", 3)
    result = chains.reorg("ETH", 4, reinclude=[keep["tx_hash"]], replace=False)
    assert result["reincluded"] == [keep["tx_hash"]] and result["dropped"] == [lose["tx_hash"]]
    assert chains.tx("ETH", keep["tx_hash"])["status"] == "pending"
    assert chains.status("ETH")["height"] == result["height"]
    chains.mine("ETH", 2)
    keep_view = chains.tx("ETH", keep["tx_hash"])
    assert keep_view["status"] == "confirmed" and keep_view["confirmations"] == 2
    balances = chains.balance("ETH", user)["balances"]
    assert balances["USDT"] == "1.000000" and balances["USDC"] == "0.000000"


def test_reorg_of_a_withdrawal_reverts_and_reinclusion_reapplies(chains: ChainsClient) -> None:
    hot = hot_wallet(chains)
    user = Wallet.from_label("ETH", "user").address
    sent = chains.broadcast("ETH", hot.sign_transfer(asset="USDT", to=user, amount="100", nonce="w1"))
    chains.mine("ETH")
    chains.reorg("ETH", 1)  # dropped: the money is back and the signed tx can be broadcast again
    assert chains.balance("ETH", hot.address, "USDT")["balance"] == "1000.000000"
    assert chains.balance("ETH", hot.address)["native_balance"] == "1.000000000000000000"
    again = chains.broadcast("ETH", hot.sign_transfer(asset="USDT", to=user, amount="100", nonce="w1"))
    assert again["tx_hash"] == sent["tx_hash"] and again["status"] == "pending"
    chains.reorg("ETH", 1, reinclude=True)  # the replacement block picks up the pending tx
    assert chains.tx("ETH", sent["tx_hash"])["status"] == "confirmed"
    assert chains.balance("ETH", user, "USDT")["balance"] == "100.000000"


def test_reorg_depth_is_checked(chains: ChainsClient) -> None:
    with pytest.raises(ChainsHTTPError) as err:
        chains.reorg("SOL", 1)  # only the genesis block exists
    assert err.value.code == "invalid_request"


def test_injected_broadcast_error_is_not_applied(chains: ChainsClient) -> None:
    hot = hot_wallet(chains)
    user = Wallet.from_label("ETH", "user").address
    payload = hot.sign_transfer(asset="USDT", to=user, amount="5", nonce="e1")
    chains.fail(count=2, mode="error", status=502, chain="ETH")
    for _ in range(2):
        with pytest.raises(ChainsHTTPError) as err:
            chains.broadcast("ETH", payload)
        assert err.value.status == 502 and err.value.code == "injected_failure"
    assert chains.state("ETH")["chains"]["ETH"]["mempool"] == []
    assert chains.broadcast("ETH", payload)["duplicate"] is False  # third attempt goes through
    chains.mine("ETH")
    assert chains.balance("ETH", user, "USDT")["balance"] == "5.000000"


def test_injected_timeout_applies_the_tx_and_retry_is_safe(chains: ChainsClient) -> None:
    hot = hot_wallet(chains)
    user = Wallet.from_label("ETH", "user").address
    payload = hot.sign_transfer(asset="USDT", to=user, amount="7", nonce="t1")
    chains.fail(count=1, mode="timeout", hang_seconds=5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        chains.broadcast("ETH", payload, timeout=0.3)
    retry = chains.broadcast("ETH", payload)  # accepted despite the timeout: same tx, no double pay
    assert retry["duplicate"] is True and retry["status"] == "pending"
    chains.mine("ETH")
    assert chains.balance("ETH", user, "USDT")["balance"] == "7.000000"
    assert len(chains.transfers("ETH", from_height=0, address=user)["transfers"]) == 1


def test_injected_drop_accepts_then_loses_the_tx(chains: ChainsClient) -> None:
    hot = hot_wallet(chains, "TRON")
    chains.fund("TRON", hot.address, "100")
    user = Wallet.from_label("TRON", "user").address
    payload = hot.sign_transfer(asset="USDT", to=user, amount="3", nonce="d1")
    chains.fail(count=1, mode="drop", chain="tron")
    accepted = chains.broadcast("TRON", payload)
    assert accepted["status"] == "pending"
    chains.mine("TRON")
    assert chains.tx("TRON", accepted["tx_hash"])["status"] == "dropped"
    assert chains.balance("TRON", user, "USDT")["balance"] == "0.000000"
    assert chains.broadcast("TRON", payload)["status"] == "pending"  # re-broadcast of a dropped tx
    chains.mine("TRON")
    assert chains.tx("TRON", accepted["tx_hash"])["status"] == "confirmed"


def test_injected_read_failures(chains: ChainsClient) -> None:
    chains.fail(count=1, mode="error", target="read", chain="SOL")
    chains.status("ETH")  # other chain unaffected
    with pytest.raises(ChainsHTTPError) as err:
        chains.status("SOL")
    assert err.value.status == 503
    assert chains.status("SOL")["chain"] == "SOL"
    chains.fail(count=1, mode="timeout", target="read", hang_seconds=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        chains.request("GET", "/ETH/transfers", timeout=0.3)
    chains.fail(count=5, mode="error")
    assert len(chains.state()["failures"]) == 1
    chains.fail(clear=True)
    assert chains.state()["failures"] == []
    with pytest.raises(ChainsHTTPError):
        chains.fail(mode="explode")


def test_state_dump_and_deterministic_reset(chains: ChainsClient) -> None:
    user = Wallet.from_label("SOL", "user").address
    first = chains.deposit("SOL", to=user, asset="USDC", amount="9")
    chains.mine("SOL")
    block_hash = chains.status("SOL")["block_hash"]
    dump = chains.state("SOL")["chains"]["SOL"]
    assert dump["balances"] == [{"address": user, "asset": "USDC", "balance": "9.000000"}]
    assert [t["tx_hash"] for t in dump["txs"]] == [first["tx_hash"]]
    assert dump["blocks"][0]["txs"] == [first["tx_hash"]]
    assert chains.state()["seed"] == 41

    chains.reset()
    assert chains.state("SOL")["chains"]["SOL"]["txs"] == []
    again = chains.deposit("SOL", to=user, asset="USDC", amount="9")
    chains.mine("SOL")
    assert again["tx_hash"] == first["tx_hash"]  # same seed and calls -> same hashes
    assert chains.status("SOL")["block_hash"] == block_hash


def test_config_is_applied() -> None:
    config = {
        "chains": {
            "tron": {"manual": True, "start_height": 5, "genesis": [{"address": GENESIS, "amount": "42"}]},
            "ETH": {"block_interval": 0.02},
        }
    }
    with SandboxProcess(seed=1, config=config) as sb:
        client = ChainsClient(sb.urls["chains"])
        tron = client.status("TRON")
        assert tron["height"] == 5 and tron["manual"] is True
        assert client.balance("TRON", GENESIS)["native_balance"] == "42.000000"
        assert client.status("ETH")["block_interval"] == 0.02
        assert client.status("SOL")["block_interval"] == 0.4
