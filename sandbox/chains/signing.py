"""Canonical transfer message, transaction hashes, keys and signatures of the simulated chains.

See ``sandbox/chains/README.md`` ("Signed transfers") for the format; the house reimplements it.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal, InvalidOperation

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from sandbox.chains.addresses import b58decode, b58encode, canonical_chain, normalize_address, tron_address
from sandbox.chains.spec import CHAIN_SPECS

MESSAGE_HEADER = "xbit-sandbox-transfer/v1"
_AMOUNT = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_NONCE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


class SigningError(ValueError):
    """A payload field or signature is malformed; ``code`` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def canonical_amount(amount: object, decimals: int) -> str:
    """``"12.5"`` -> ``"12.500000"`` (exactly ``decimals`` fractional digits); strings only, > 0."""
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
        raise SigningError("invalid_amount", "amount must be a decimal string such as '12.5'")
    frac = amount.partition(".")[2]
    if len(frac) > decimals:
        raise SigningError("invalid_amount", f"amount has more than {decimals} decimal places")
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guarantees a number
        raise SigningError("invalid_amount", str(exc)) from exc
    if value <= 0:
        raise SigningError("invalid_amount", "amount must be positive")
    return format(value, f".{decimals}f")


def check_nonce(nonce: object) -> str:
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise SigningError("invalid_nonce", "nonce must be 1-128 characters of A-Z a-z 0-9 _ . : -")
    return nonce


def canonical_message(*, chain: str, asset: str, sender: str, to: str, amount: str, nonce: str) -> str:
    """The exact UTF-8 text that is signed. Normalizes chain, addresses and amount; validates all."""
    code = canonical_chain(chain) if isinstance(chain, str) else None
    if code is None:
        raise SigningError("unknown_chain", f"unknown chain {chain!r}")
    spec = CHAIN_SPECS[code]
    if not isinstance(asset, str) or asset not in spec.assets:
        raise SigningError("unknown_asset", f"{code} assets are {', '.join(spec.assets)}")
    try:
        sender_n = normalize_address(code, sender)
        to_n = normalize_address(code, to)
    except (ValueError, TypeError) as exc:
        raise SigningError("invalid_address", str(exc)) from exc
    lines = [
        MESSAGE_HEADER,
        f"chain={code}",
        f"asset={asset}",
        f"from={sender_n}",
        f"to={to_n}",
        f"amount={canonical_amount(amount, spec.decimals(asset))}",
        f"nonce={check_nonce(nonce)}",
    ]
    return "\n".join(lines)


def tx_hash(chain: str, message: str) -> str:
    """Transaction id of a canonical message, in the chain's usual format."""
    data = message.encode()
    code = canonical_chain(chain)
    if code in ("ETH", "ARBITRUM"):
        return "0x" + keccak(data).hex()
    if code == "TRON":
        return hashlib.sha256(data).hexdigest()
    if code == "SOL":
        return b58encode(hashlib.sha512(data).digest())
    raise SigningError("unknown_chain", f"unknown chain {chain!r}")


def derive_private_key(label: str) -> bytes:
    """Deterministic 32-byte private key from a label (tests, demo and simulated outside senders)."""
    return hashlib.sha256(("xbit-sandbox-key:" + label).encode()).digest()


def _key_bytes(private_key: bytes | str) -> bytes:
    if isinstance(private_key, str):
        private_key = bytes.fromhex(private_key.removeprefix("0x"))
    if len(private_key) != 32:
        raise ValueError("a private key is 32 bytes")
    return private_key


def address_from_private_key(chain: str, private_key: bytes | str) -> str:
    code = canonical_chain(chain)
    key = _key_bytes(private_key)
    if code in ("ETH", "ARBITRUM", "TRON"):
        eth_address = Account.from_key(key).address
        return tron_address(bytes.fromhex(eth_address[2:])) if code == "TRON" else eth_address
    if code == "SOL":
        return b58encode(Ed25519PrivateKey.from_private_bytes(key).public_key().public_bytes_raw())
    raise ValueError(f"unknown chain {chain!r}")


def sign_message(chain: str, private_key: bytes | str, message: str) -> str:
    """secp256k1 chains: EIP-191 personal_sign, ``0x`` + 130 hex (r||s||v). SOL: base58 of 64 bytes."""
    code = canonical_chain(chain)
    key = _key_bytes(private_key)
    if code in ("ETH", "ARBITRUM", "TRON"):
        signed = Account.sign_message(encode_defunct(text=message), private_key=key)
        return "0x" + bytes(signed.signature).hex()
    if code == "SOL":
        return b58encode(Ed25519PrivateKey.from_private_bytes(key).sign(message.encode()))
    raise ValueError(f"unknown chain {chain!r}")


def recover_signer(chain: str, message: str, signature: str) -> str | None:
    """secp256k1 chains only: the address (chain format) that signed ``message``, or None."""
    code = canonical_chain(chain)
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65:
            return None
        eth_address = Account.recover_message(encode_defunct(text=message), signature=raw)
    except Exception:  # malformed signatures raise assorted errors inside eth_keys
        return None
    return tron_address(bytes.fromhex(eth_address[2:])) if code == "TRON" else eth_address


def verify_signature(chain: str, message: str, signature: object, sender: str) -> bool:
    """True when ``signature`` over ``message`` was made by the key of ``sender`` (normalized)."""
    if not isinstance(signature, str) or not signature:
        return False
    code = canonical_chain(chain)
    if code in ("ETH", "ARBITRUM", "TRON"):
        return recover_signer(code, message, signature) == sender
    if code == "SOL":
        try:
            sig = b58decode(signature)
            public = Ed25519PublicKey.from_public_bytes(b58decode(sender))
            if len(sig) != 64:
                return False
            public.verify(sig, message.encode())
        except (InvalidSignature, ValueError):
            return False
        return True
    return False
