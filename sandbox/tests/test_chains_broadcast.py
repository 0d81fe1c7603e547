"""Signed transfers: signatures, idempotent broadcast, balances, gas and nonces."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from sandbox.chains.client import ChainsClient, ChainsHTTPError, Wallet, sign_transfer
from sandbox.chains.signing import canonical_message, tx_hash
from sandbox.testing import SandboxProcess

ASSET = {"TRON": "USDT", "ETH": "USDC", "SOL": "USDT", "ARBITRUM": "USDC"}
NATIVE = {"TRON": "TRX", "ETH": "ETH", "SOL": "SOL", "ARBITRUM": "ETH"}
GAS = {"TRON": "100", "ETH": "0.1", "SOL": "0.1", "ARBITRUM": "0.01"}


@pytest.fixture(scope="module")
def chains() -> Iterator[ChainsClient]:
    config = {"chains": {"manual": True, "tron": {"token_transfer_fee": "14"}}}
    with SandboxProcess(seed=31, config=config) as sb:
        yield ChainsClient(sb.urls["chains"])


@pytest.fixture(autouse=True)
def fresh(chains: ChainsClient) -> None:
    chains.reset()


def funded(
    chains: ChainsClient, chain: str, label: str, amount: str = "1000", gas: str | None = None
) -> Wallet:
    wallet = Wallet.from_label(chain, label)
    chains.fund(chain, wallet.address, amount, ASSET[chain])
    chains.fund(chain, wallet.address, gas or GAS[chain])
    return wallet


def refused(chains: ChainsClient, chain: str, payload: dict[str, str]) -> ChainsHTTPError:
    with pytest.raises(ChainsHTTPError) as err:
        chains.broadcast(chain, payload)
    return err.value


def test_canonical_message_is_documented_format() -> None:
    message = canonical_message(
        chain="ethereum",
        asset="USDT",
        sender="0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
        to="0xdAC17F958D2ee523a2206206994597C13D831ec7",
        amount="12.5",
        nonce="wd-42",
    )
    assert message == (
        "xbit-sandbox-transfer/v1\nchain=ETH\nasset=USDT\nfrom=0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf\n"
        "to=0xdAC17F958D2ee523a2206206994597C13D831ec7\namount=12.500000\nnonce=wd-42"
    )
    assert tx_hash("ETH", message).startswith("0x") and len(tx_hash("ETH", message)) == 66
    assert len(tx_hash("TRON", message)) == 64
    assert 80 <= len(tx_hash("SOL", message)) <= 88


@pytest.mark.parametrize("chain", sorted(ASSET))
def test_transfer_and_idempotent_rebroadcast(chains: ChainsClient, chain: str) -> None:
    hot = funded(chains, chain, "hot")
    user = Wallet.from_label(chain, "user").address
    asset = ASSET[chain]
    gas_before = chains.balance(chain, hot.address)["native_balance"]
    payload = hot.sign_transfer(asset=asset, to=user, amount="25.5", nonce="wd-1")

    first = chains.broadcast(chain, payload)
    assert first["status"] == "pending" and first["duplicate"] is False
    again = chains.broadcast(chain, payload)  # e.g. a retry after a lost response
    assert again["tx_hash"] == first["tx_hash"] and again["duplicate"] is True
    pending = chains.balance(chain, hot.address, asset)
    assert pending["balance"] == "1000.000000" and pending["pending_out"][asset] == "25.500000"
    chains.mine(chain)
    assert chains.broadcast(chain, payload)["status"] == "confirmed"  # still the same single tx
    chains.mine(chain, 2)

    assert chains.balance(chain, user, asset)["balance"] == "25.500000"
    assert chains.balance(chain, hot.address, asset)["balance"] == "974.500000"
    items = chains.transfers(chain, from_height=0, address=user)["transfers"]
    assert len(items) == 1 and items[0]["tx_hash"] == first["tx_hash"] and items[0]["kind"] == "transfer"
    view = chains.tx(chain, first["tx_hash"])
    assert view["status"] == "confirmed" and view["confirmations"] == 3 and view["nonce"] == "wd-1"
    fee = view["fee"]
    gas_after = chains.balance(chain, hot.address)["native_balance"]
    assert Decimal(gas_before) - Decimal(gas_after) == Decimal(fee) > 0
    # the amount is normalized before signing and hashing: "25.50" is the same transaction
    same = hot.sign_transfer(asset=asset, to=user, amount="25.50", nonce="wd-1")
    assert chains.broadcast(chain, same)["tx_hash"] == first["tx_hash"]


@pytest.mark.parametrize("chain", sorted(ASSET))
def test_bad_signatures_are_refused(chains: ChainsClient, chain: str) -> None:
    hot = funded(chains, chain, "hot")
    thief = Wallet.from_label(chain, "thief")
    user = Wallet.from_label(chain, "user").address
    payload = hot.sign_transfer(asset=ASSET[chain], to=user, amount="10", nonce="n-1")

    tampered = dict(payload, amount="11")
    assert refused(chains, chain, tampered).code == "bad_signature"
    redirected = dict(payload, to=thief.address)
    assert refused(chains, chain, redirected).code == "bad_signature"
    forged = dict(thief.sign_transfer(asset=ASSET[chain], to=thief.address, amount="10", nonce="n-1"))
    forged["from"] = hot.address
    assert refused(chains, chain, forged).code == "bad_signature"
    assert refused(chains, chain, dict(payload, signature="")).code == "bad_signature"
    assert refused(chains, chain, dict(payload, signature="0x1234")).code == "bad_signature"
    other_chain = {"TRON": "ETH", "ETH": "ARBITRUM", "SOL": "TRON", "ARBITRUM": "ETH"}[chain]
    assert refused(chains, other_chain, payload).code == "chain_mismatch"
    chains.mine(chain)
    assert chains.balance(chain, user, ASSET[chain])["balance"] == "0.000000"


def test_cross_chain_replay_is_impossible(chains: ChainsClient) -> None:
    eth = funded(chains, "ETH", "same-key")
    arb = funded(chains, "ARBITRUM", "same-key")
    assert eth.address == arb.address  # same secp256k1 key, same address on both EVM chains
    payload = eth.sign_transfer(asset="USDC", to=eth.address, amount="1", nonce="x")
    replay = dict(payload, chain="ARBITRUM")
    assert refused(chains, "ARBITRUM", replay).code == "bad_signature"


@pytest.mark.parametrize("chain", sorted(ASSET))
def test_insufficient_balance_and_gas(chains: ChainsClient, chain: str) -> None:
    asset = ASSET[chain]
    user = Wallet.from_label(chain, "user").address
    rich_no_gas = Wallet.from_label(chain, "no-gas")
    chains.fund(chain, rich_no_gas.address, "500", asset)
    err = refused(chains, chain, rich_no_gas.sign_transfer(asset=asset, to=user, amount="1", nonce="a"))
    assert err.status == 400 and err.code == "insufficient_gas" and NATIVE[chain] in err.body["message"]

    hot = funded(chains, chain, "hot", amount="100")
    err = refused(chains, chain, hot.sign_transfer(asset=asset, to=user, amount="100.000001", nonce="b"))
    assert err.code == "insufficient_balance"
    # pending transfers reserve the balance: 60 + 60 > 100
    chains.broadcast(chain, hot.sign_transfer(asset=asset, to=user, amount="60", nonce="c"))
    err = refused(chains, chain, hot.sign_transfer(asset=asset, to=user, amount="60", nonce="d"))
    assert err.code == "insufficient_balance"
    chains.mine(chain)
    assert chains.balance(chain, hot.address, asset)["balance"] == "40.000000"


def test_gas_runs_out_after_some_transfers(chains: ChainsClient) -> None:
    hot = funded(chains, "TRON", "hot", gas="30")  # 14 TRX per USDT transfer (configured)
    user = Wallet.from_label("TRON", "user").address
    for nonce in ("1", "2"):
        chains.broadcast("TRON", hot.sign_transfer(asset="USDT", to=user, amount="1", nonce=nonce))
    err = refused(chains, "TRON", hot.sign_transfer(asset="USDT", to=user, amount="1", nonce="3"))
    assert err.code == "insufficient_gas"
    chains.mine("TRON")
    assert chains.balance("TRON", hot.address)["native_balance"] == "2.000000"


def test_native_transfer_pays_amount_plus_fee(chains: ChainsClient) -> None:
    hot = Wallet.from_label("SOL", "hot")
    chains.fund("SOL", hot.address, "1")
    user = Wallet.from_label("SOL", "deposit-address").address
    tx = chains.broadcast("SOL", hot.sign_transfer(asset="SOL", to=user, amount="0.25", nonce="gas-topup"))
    chains.mine("SOL")
    assert chains.balance("SOL", user)["native_balance"] == "0.250000000"
    assert chains.balance("SOL", hot.address)["native_balance"] == "0.749995000"
    assert chains.tx("SOL", tx["tx_hash"])["fee"] == "0.000005000"
    err = refused(chains, "SOL", hot.sign_transfer(asset="SOL", to=user, amount="0.749995", nonce="all"))
    assert err.code == "insufficient_balance"


def test_nonce_conflict_and_reuse(chains: ChainsClient) -> None:
    hot = funded(chains, "ETH", "hot")
    user = Wallet.from_label("ETH", "user").address
    chains.broadcast("ETH", hot.sign_transfer(asset="USDC", to=user, amount="5", nonce="wd-7"))
    err = refused(chains, "ETH", hot.sign_transfer(asset="USDC", to=user, amount="6", nonce="wd-7"))
    assert err.status == 409 and err.code == "nonce_conflict"
    other = funded(chains, "ETH", "other")  # nonces are per sender
    chains.broadcast("ETH", other.sign_transfer(asset="USDC", to=user, amount="6", nonce="wd-7"))
    chains.mine("ETH")
    assert chains.balance("ETH", user, "USDC")["balance"] == "11.000000"


def test_malformed_payloads(chains: ChainsClient) -> None:
    hot = funded(chains, "TRON", "hot")
    user = Wallet.from_label("TRON", "user").address
    good = hot.sign_transfer(asset="USDT", to=user, amount="1", nonce="n")
    cases = [
        (dict(good, amount=1), "invalid_amount"),
        (dict(good, amount="1e3"), "invalid_amount"),
        (dict(good, amount="-1"), "invalid_amount"),
        (dict(good, amount="0.0000001"), "invalid_amount"),
        (dict(good, asset="USDC"), "unknown_asset"),
        (dict(good, to="0xdAC17F958D2ee523a2206206994597C13D831ec7"), "invalid_address"),
        (dict(good, nonce="has space"), "invalid_nonce"),
        ({k: v for k, v in good.items() if k != "nonce"}, "invalid_nonce"),
    ]
    for payload, code in cases:
        assert refused(chains, "TRON", payload).code == code, payload
    with pytest.raises(ChainsHTTPError) as err:
        chains.request("POST", "/TRON/broadcast", data="not json")
    assert err.value.code == "invalid_json"


def test_sign_transfer_helper_matches_server(chains: ChainsClient) -> None:
    key = bytes(range(1, 33))
    wallet = Wallet.from_key("SOL", key)
    chains.fund("SOL", wallet.address, "10", "USDC")
    chains.fund("SOL", wallet.address, "1")
    payload = sign_transfer("solana", key.hex(), asset="USDC", to=wallet.address, amount="2", nonce="self")
    assert payload["from"] == wallet.address and payload["chain"] == "SOL"
    assert chains.broadcast("SOL", payload)["status"] == "pending"
