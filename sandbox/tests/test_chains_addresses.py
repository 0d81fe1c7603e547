"""Address formats: the pure reference module and the ``/{chain}/validate/{address}`` endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.chains.addresses import (
    b58decode,
    b58encode,
    check_address,
    is_valid_address,
    normalize_address,
    tron_address,
    tron_to_address20,
)
from sandbox.chains.client import ChainsClient, ChainsHTTPError, Wallet
from sandbox.chains.signing import address_from_private_key
from sandbox.testing import SandboxProcess

KEY_ONE = (1).to_bytes(32, "big")
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

VALID = {
    "TRON": ["TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"],
    "ETH": [
        "0xdAC17F958D2ee523a2206206994597C13D831ec7",
        "0xdac17f958d2ee523a2206206994597c13d831ec7",
        "0xDAC17F958D2EE523A2206206994597C13D831EC7",
    ],
    "SOL": [
        "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY2oGUGSiaMrWNYb",
        "11111111111111111111111111111111",
    ],
    "ARBITRUM": ["0xaf88d065e77c8cC2239327C5EDb3A432268e5831"],
}
INVALID = {
    "TRON": [
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u",  # checksum
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6",  # length
        "0xdAC17F958D2ee523a2206206994597C13D831ec7",
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj0t",  # '0' is not base58
    ],
    "ETH": [
        "0xdAC17F958D2ee523a2206206994597C13D831eC7",  # checksum (one letter's case flipped)
        "0xdAC17F958D2ee523a2206206994597C13D831e",
        "dAC17F958D2ee523a2206206994597C13D831ec7",
        "0xgAC17F958D2ee523a2206206994597C13D831ec7",
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
    ],
    "SOL": [
        "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZw",  # 28 bytes
        "z" * 44,  # 33 bytes
        "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1vv",  # too long
        "0PjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        "0xdAC17F958D2ee523a2206206994597C13D831ec7",
    ],
    "ARBITRUM": ["0xaf88d065e77c8cC2239327C5EDb3A432268e5832x", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"],
}


@pytest.fixture(scope="module")
def chains() -> Iterator[ChainsClient]:
    with SandboxProcess(seed=11, config={"chains": {"manual": True}}) as sb:
        yield ChainsClient(sb.urls["chains"])


def test_base58_round_trip() -> None:
    for data in (b"", b"\0", b"\0\0\x01", bytes(range(32)), b"\xff" * 64):
        assert b58decode(b58encode(data)) == data
    with pytest.raises(ValueError):
        b58decode("0OIl")


def test_known_key_derivations() -> None:
    assert address_from_private_key("ETH", KEY_ONE) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert address_from_private_key("ARBITRUM", KEY_ONE) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert address_from_private_key("TRON", KEY_ONE) == "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"
    tron = address_from_private_key("TRON", KEY_ONE)
    assert tron_to_address20(tron).hex() == "7e5f4552091a69125d5dfcb7b8c2659029395bdf"
    assert tron_address(tron_to_address20(tron)) == tron
    sol = address_from_private_key("SOL", RFC8032_SECRET)
    assert b58decode(sol) == RFC8032_PUBLIC and 32 <= len(sol) <= 44


@pytest.mark.parametrize("chain", sorted(VALID))
def test_pure_validation(chain: str) -> None:
    for address in VALID[chain]:
        assert is_valid_address(chain, address), address
    for address in INVALID[chain]:
        result = check_address(chain, address)
        assert not result.valid and result.reason, address
    assert normalize_address("eth", VALID["ETH"][1]) == VALID["ETH"][0]
    with pytest.raises(ValueError):
        normalize_address(chain, "nope")


@pytest.mark.parametrize("chain", sorted(VALID))
def test_generated_wallets_are_valid(chain: str) -> None:
    for i in range(20):
        wallet = Wallet.from_label(chain, f"w{i}")
        assert is_valid_address(chain, wallet.address)
        if chain == "TRON":
            assert len(wallet.address) == 34 and wallet.address[0] == "T"
        elif chain == "SOL":
            assert 32 <= len(wallet.address) <= 44
        else:
            assert wallet.address == normalize_address(chain, wallet.address.lower())


@pytest.mark.parametrize("chain", sorted(VALID))
def test_validate_endpoint(chains: ChainsClient, chain: str) -> None:
    for address in VALID[chain]:
        body = chains.validate(chain.lower(), address)
        assert body["valid"] is True and body["chain"] == chain, body
        assert body["normalized"] == normalize_address(chain, address)
    for address in INVALID[chain]:
        body = chains.validate(chain, address)
        assert body["valid"] is False and body["reason"], body


def test_chain_aliases_and_unknown_chain(chains: ChainsClient) -> None:
    assert chains.status("ethereum")["chain"] == "ETH"
    assert chains.status("solana")["chain"] == "SOL"
    assert chains.status("arb")["chain"] == "ARBITRUM"
    with pytest.raises(ChainsHTTPError) as err:
        chains.status("dogecoin")
    assert err.value.status == 404 and err.value.code == "unknown_chain"


def test_balance_of_invalid_address_is_refused(chains: ChainsClient) -> None:
    with pytest.raises(ChainsHTTPError) as err:
        chains.balance("TRON", "0xdAC17F958D2ee523a2206206994597C13D831ec7")
    assert err.value.status == 400 and err.value.code == "invalid_address"
