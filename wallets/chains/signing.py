"""The chains' canonical transfer message, transaction ids, key → address, and signatures.

The message (UTF-8, ``\\n``-joined) that a signed transfer commits to::

    xbit-sandbox-transfer/v1
    chain=<CODE>
    asset=<ASSET>
    from=<normalized sender>
    to=<normalized recipient>
    amount=<amount with exactly the asset's decimals>
    nonce=<1-128 of A-Z a-z 0-9 _ . : ->

secp256k1 chains (ETH, ARBITRUM, TRON) sign it with EIP-191 ``personal_sign`` (``0x`` + r||s||v hex);
SOL with ed25519 (base58). Both schemes are deterministic, so the same withdrawal always yields the
same signed payload and the same transaction id — the property the at-most-once send relies on.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from wallets.chains.addresses import b58encode, normalize_address, tron_address

MESSAGE_HEADER = "xbit-sandbox-transfer/v1"
SECP256K1_CHAINS = frozenset({"ETH", "ARBITRUM", "TRON"})


def canonical_message(
    *, chain: str, asset: str, sender: str, to: str, amount: Decimal, decimals: int, nonce: str
) -> str:
    return "\n".join(
        [
            MESSAGE_HEADER,
            f"chain={chain}",
            f"asset={asset}",
            f"from={normalize_address(chain, sender)}",
            f"to={normalize_address(chain, to)}",
            f"amount={amount:.{decimals}f}",
            f"nonce={nonce}",
        ]
    )


def tx_hash(chain: str, message: str) -> str:
    data = message.encode()
    if chain in ("ETH", "ARBITRUM"):
        return "0x" + keccak(data).hex()
    if chain == "TRON":
        return hashlib.sha256(data).hexdigest()
    if chain == "SOL":
        return b58encode(hashlib.sha512(data).digest())
    raise ValueError(f"unknown chain {chain!r}")


def address_from_private_key(chain: str, key: bytes) -> str:
    if chain in SECP256K1_CHAINS:
        eth_address = Account.from_key(key).address
        return tron_address(bytes.fromhex(eth_address[2:])) if chain == "TRON" else eth_address
    if chain == "SOL":
        return b58encode(Ed25519PrivateKey.from_private_bytes(key).public_key().public_bytes_raw())
    raise ValueError(f"unknown chain {chain!r}")


def sign_message(chain: str, key: bytes, message: str) -> str:
    if chain in SECP256K1_CHAINS:
        signed = Account.sign_message(encode_defunct(text=message), private_key=key)
        return "0x" + bytes(signed.signature).hex()
    if chain == "SOL":
        return b58encode(Ed25519PrivateKey.from_private_bytes(key).sign(message.encode()))
    raise ValueError(f"unknown chain {chain!r}")
