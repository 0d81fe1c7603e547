"""HD keys of TRON and Solana from the same BIP-39 seed as the EVM chains (``settings.WALLET_HD_MNEMONIC``).

* TRON shares the secp256k1 path family (BIP-32/44, coin type 195, as TronLink and tronpy's
  ``TRON_DEFAULT_PATH``): deposit address of user U ``m/44'/195'/0'/0/U``; hot ``m/44'/195'/0'/1/0``,
  cold ``m/44'/195'/0'/1/1``. The address is base58check(``0x41`` ‖ keccak(pubkey)[-20:]).
* Solana uses SLIP-0010 for ed25519 (every level hardened; coin type 501): deposit address of user U
  ``m/44'/501'/0'/0'/U'``; hot ``m/44'/501'/0'/1'/0'``, cold ``m/44'/501'/0'/1'/1'``. The 32-byte
  SLIP-0010 key is the ed25519 seed; the address is base58 of the public key.

Only the signer calls ``private_key``; nothing here logs the seed or a key.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from solders.keypair import Keypair
from tronpy.keys import PrivateKey

HD_CHAINS = frozenset({"TRON", "SOL"})
PLATFORM_INDEX = {"hot": 0, "cold": 1}
HARDENED = 0x8000_0000


class HDConfigurationError(RuntimeError):
    pass


def path_for(chain: str, purpose: str, index: int | None) -> str:
    if purpose == "deposit":
        if index is None or not 0 <= index < 2**31:
            raise ValueError("a deposit key needs an index (the user id) below 2^31")
        return f"m/44'/195'/0'/0/{index}" if chain == "TRON" else f"m/44'/501'/0'/0'/{index}'"
    platform = PLATFORM_INDEX[purpose]
    return f"m/44'/195'/0'/1/{platform}" if chain == "TRON" else f"m/44'/501'/0'/1'/{platform}'"


def slip10_ed25519(seed: bytes, path: str) -> bytes:
    """SLIP-0010 ed25519 private key (32 bytes) at ``path``; every level must be hardened."""
    digest = hmac.new(b"ed25519 seed", seed, hashlib.sha512).digest()
    key, chain_code = digest[:32], digest[32:]
    parts = path.split("/")
    if parts[0] != "m":
        raise ValueError(f"bad path {path!r}")
    for part in parts[1:]:
        if not part.endswith("'"):
            raise ValueError("ed25519 derivation supports hardened levels only")
        index = int(part[:-1]) + HARDENED
        digest = hmac.new(chain_code, b"\0" + key + index.to_bytes(4, "big"), hashlib.sha512).digest()
        key, chain_code = digest[:32], digest[32:]
    return key


@lru_cache(maxsize=2)
def _seed(mnemonic: str) -> bytes:
    return seed_from_mnemonic(mnemonic, "")


@lru_cache(maxsize=4096)
def _key(mnemonic: str, path: str) -> bytes:
    seed = _seed(mnemonic)
    return slip10_ed25519(seed, path) if path.startswith("m/44'/501'") else key_from_seed(seed, path)


def private_key(path: str) -> bytes:
    mnemonic = getattr(settings, "WALLET_HD_MNEMONIC", "")
    if not mnemonic:
        raise HDConfigurationError("WALLET_HD_MNEMONIC is not set: TRON and Solana keys cannot be derived")
    return _key(mnemonic, path)


def address_of(chain: str, key: bytes) -> str:
    if chain == "TRON":
        return str(PrivateKey(key).public_key.to_base58check_address())
    if chain == "SOL":
        return str(Keypair.from_seed(key).pubkey())
    raise ValueError(f"not a TRON/SOL chain: {chain!r}")
