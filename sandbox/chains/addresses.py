"""Address formats of the simulated chains, as plain functions.

Self-contained on purpose (standard library plus ``eth_utils.keccak``): the house must not import the
sandbox, so it writes its own validators; this module is the reference they can be compared with.

* ETH / ARBITRUM: ``0x`` + 40 hex digits. All-lowercase or all-uppercase hex is accepted as
  "not checksummed"; mixed case must be a valid EIP-55 checksum. Normalized form: EIP-55.
* TRON: base58check of ``0x41 || last 20 bytes of keccak256(uncompressed public key without 0x04)``
  (double-SHA256 checksum, 4 bytes), 34 characters starting with ``T``. Normalized form: unchanged.
* SOL: base58 of a 32-byte ed25519 public key (32-44 characters). Normalized form: unchanged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from eth_utils import keccak

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}

CHAIN_ALIASES = {
    "tron": "TRON",
    "trx": "TRON",
    "eth": "ETH",
    "ethereum": "ETH",
    "sol": "SOL",
    "solana": "SOL",
    "arbitrum": "ARBITRUM",
    "arb": "ARBITRUM",
}

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def canonical_chain(name: str) -> str | None:
    """``"ethereum"``/``"eth"``/``"ETH"`` -> ``"ETH"``; unknown -> None."""
    return CHAIN_ALIASES.get(name.strip().lower())


# --- base58 ------------------------------------------------------------------------------------------


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out: list[str] = []
    while n:
        n, rem = divmod(n, 58)
        out.append(B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        idx = _B58_INDEX.get(ch)
        if idx is None:
            raise ValueError(f"invalid base58 character {ch!r}")
        n = n * 58 + idx
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def _checksum4(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58check_encode(payload: bytes) -> str:
    return b58encode(payload + _checksum4(payload))


def b58check_decode(text: str) -> bytes:
    raw = b58decode(text)
    if len(raw) < 5:
        raise ValueError("too short for base58check")
    payload, check = raw[:-4], raw[-4:]
    if _checksum4(payload) != check:
        raise ValueError("bad base58check checksum")
    return payload


# --- derivation --------------------------------------------------------------------------------------


def eth_checksum(address20: bytes) -> str:
    """EIP-55 checksummed ``0x`` address of 20 raw bytes."""
    if len(address20) != 20:
        raise ValueError("an address is 20 bytes")
    hex_addr = address20.hex()
    digest = keccak(text=hex_addr).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(hex_addr))


def address20_from_public_key(public_key64: bytes) -> bytes:
    """Last 20 bytes of keccak256 of the 64-byte uncompressed secp256k1 public key (no 0x04 prefix)."""
    if len(public_key64) != 64:
        raise ValueError("expected a 64-byte uncompressed public key without the 0x04 prefix")
    return keccak(public_key64)[-20:]


def tron_address(address20: bytes) -> str:
    """TRON base58check address (``T…``) of the same 20 bytes an Ethereum address is made of."""
    return b58check_encode(b"\x41" + address20)


def tron_to_address20(address: str) -> bytes:
    payload = b58check_decode(address)
    if len(payload) != 21 or payload[0] != 0x41:
        raise ValueError("not a TRON mainnet address")
    return payload[1:]


# --- validation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddressCheck:
    valid: bool
    normalized: str | None = None
    reason: str | None = None


def check_evm_address(address: str) -> AddressCheck:
    if not _HEX_ADDRESS.fullmatch(address):
        return AddressCheck(False, reason="must be 0x followed by 40 hex digits")
    body = address[2:]
    normalized = eth_checksum(bytes.fromhex(body))
    if body not in (body.lower(), body.upper()) and address != normalized:
        return AddressCheck(False, reason="bad EIP-55 checksum")
    return AddressCheck(True, normalized=normalized)


def check_tron_address(address: str) -> AddressCheck:
    if len(address) != 34 or not address.startswith("T"):
        return AddressCheck(False, reason="must be 34 base58 characters starting with T")
    try:
        tron_to_address20(address)
    except ValueError as exc:
        return AddressCheck(False, reason=str(exc))
    return AddressCheck(True, normalized=address)


def check_solana_address(address: str) -> AddressCheck:
    if not 32 <= len(address) <= 44:
        return AddressCheck(False, reason="must be 32-44 base58 characters")
    try:
        raw = b58decode(address)
    except ValueError as exc:
        return AddressCheck(False, reason=str(exc))
    if len(raw) != 32 or b58encode(raw) != address:
        return AddressCheck(False, reason="must encode exactly 32 bytes")
    return AddressCheck(True, normalized=address)


def check_address(chain: str, address: str) -> AddressCheck:
    """Validate ``address`` for ``chain`` (any alias accepted)."""
    code = canonical_chain(chain)
    if not isinstance(address, str) or not address:
        return AddressCheck(False, reason="empty address")
    if code in ("ETH", "ARBITRUM"):
        return check_evm_address(address)
    if code == "TRON":
        return check_tron_address(address)
    if code == "SOL":
        return check_solana_address(address)
    return AddressCheck(False, reason=f"unknown chain {chain!r}")


def is_valid_address(chain: str, address: str) -> bool:
    return check_address(chain, address).valid


def normalize_address(chain: str, address: str) -> str:
    """Normalized form of a valid address; ``ValueError`` with the reason otherwise."""
    result = check_address(chain, address)
    if not result.valid or result.normalized is None:
        raise ValueError(f"invalid {chain} address {address!r}: {result.reason}")
    return result.normalized
