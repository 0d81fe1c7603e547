"""HD keys (BIP-32/BIP-44) of the EVM chains, all from one seed: ``settings.WALLET_HD_MNEMONIC``.

Paths (coin type 60; one BIP-44 account per chain, so a chain's addresses never collide with another's)::

    deposit address of user U on ETH       m/44'/60'/0'/0/U
    deposit address of user U on ARBITRUM  m/44'/60'/1'/0/U
    hot wallet / cold wallet               m/44'/60'/<account>'/1/0 and /1/1

So a deposit address is recomputed from the user id and no per-address key is stored (``WalletKey``
keeps the path only). Only the signer calls ``private_key``; nothing here logs the seed or a key.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

HD_ACCOUNT = {"ETH": 0, "ARBITRUM": 1}
HD_CHAINS = frozenset(HD_ACCOUNT)
PLATFORM_INDEX = {"hot": 0, "cold": 1}


class HDConfigurationError(RuntimeError):
    pass


def path_for(chain: str, purpose: str, index: int | None) -> str:
    account = HD_ACCOUNT[chain]
    if purpose == "deposit":
        if index is None or not 0 <= index < 2**31:
            raise ValueError("a deposit key needs an index (the user id) below 2^31")
        return f"m/44'/60'/{account}'/0/{index}"
    return f"m/44'/60'/{account}'/1/{PLATFORM_INDEX[purpose]}"


@lru_cache(maxsize=2)
def _seed(mnemonic: str) -> bytes:
    return seed_from_mnemonic(mnemonic, "")


@lru_cache(maxsize=4096)
def _key(mnemonic: str, path: str) -> bytes:
    return key_from_seed(_seed(mnemonic), path)


def private_key(path: str) -> bytes:
    mnemonic = getattr(settings, "WALLET_HD_MNEMONIC", "")
    if not mnemonic:
        raise HDConfigurationError("WALLET_HD_MNEMONIC is not set: the EVM chains' keys cannot be derived")
    return _key(mnemonic, path)
