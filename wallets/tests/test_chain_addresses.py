"""Address formats and key derivation of the four chains: the house's validators
(``wallets.chains.addresses``) and derivations (``wallets.chains.hd_tron_sol``, eth-account) against
known vectors and the chains' own client libraries (tronpy, solders). No chain needed."""

from __future__ import annotations

import pytest
from eth_account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from tronpy import Tron
from tronpy.keys import PrivateKey

from wallets.chains import hd_tron_sol
from wallets.chains.addresses import InvalidAddress, b58decode, b58encode, normalize_address

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


def tronpy_accepts(address: str) -> bool:
    try:
        return bool(Tron.is_base58check_address(address)) and len(Tron.to_canonical_address(address)) == 34
    except ValueError:
        return False


def test_base58_round_trip() -> None:
    for data in (b"", b"\0", b"\0\0\x01", bytes(range(32)), b"\xff" * 64):
        assert b58decode(b58encode(data)) == data
    with pytest.raises(InvalidAddress):
        b58decode("0OIl")


def test_known_key_derivations_agree_with_the_chains_own_libraries() -> None:
    assert Account.from_key(KEY_ONE).address == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    tron = hd_tron_sol.address_of("TRON", KEY_ONE)
    assert tron == "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"
    assert (
        PrivateKey(KEY_ONE).public_key.to_hex_address() == "41" + "7e5f4552091a69125d5dfcb7b8c2659029395bdf"
    )
    sol = hd_tron_sol.address_of("SOL", RFC8032_SECRET)
    assert b58decode(sol) == RFC8032_PUBLIC == bytes(Pubkey.from_string(sol))
    assert sol == str(Keypair.from_seed(RFC8032_SECRET).pubkey())
    with pytest.raises(ValueError):
        hd_tron_sol.address_of("ETH", KEY_ONE)


@pytest.mark.parametrize("chain", sorted(VALID))
def test_our_validators_accept_and_refuse_what_the_chains_do(chain: str) -> None:
    for address in VALID[chain]:
        assert normalize_address(chain, address), address
        if chain == "TRON":
            assert tronpy_accepts(address)
    for address in INVALID[chain]:
        with pytest.raises(InvalidAddress) as err:
            normalize_address(chain, address)
        assert str(err.value), address
        if chain == "TRON":
            assert not tronpy_accepts(address)
    assert normalize_address("ETH", VALID["ETH"][1]) == VALID["ETH"][0]
    with pytest.raises(InvalidAddress):
        normalize_address(chain, "nope")


@pytest.mark.parametrize("chain", ["TRON", "SOL"])
def test_hd_addresses_of_tron_and_solana_are_valid_and_distinct(chain: str) -> None:
    seen = set()
    for index in range(10):
        path = hd_tron_sol.path_for(chain, "deposit", index)
        address = hd_tron_sol.address_of(chain, hd_tron_sol.private_key(path))
        assert normalize_address(chain, address) == address
        seen.add(address)
    assert len(seen) == 10


def test_solana_keys_follow_slip_0010() -> None:
    seed = bytes.fromhex("000102030405060708090a0b0c0d0e0f")  # SLIP-0010's ed25519 test vector 1
    assert hd_tron_sol.slip10_ed25519(seed, "m").hex() == (
        "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"
    )
    assert hd_tron_sol.slip10_ed25519(seed, "m/0'").hex() == (
        "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3"
    )
    with pytest.raises(ValueError):
        hd_tron_sol.slip10_ed25519(seed, "m/0")  # ed25519 has hardened levels only
