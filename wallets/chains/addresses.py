"""Address formats of the supported chains (our own validators; no network needed).

* ETH / ARBITRUM: ``0x`` + 40 hex digits; all-lower/all-upper accepted, mixed case must be EIP-55.
  Normalized form: EIP-55.
* TRON: base58check of ``0x41 || 20 bytes`` (34 characters starting with ``T``).
* SOL: base58 of a 32-byte ed25519 public key.
"""

from __future__ import annotations

import hashlib
import re

from eth_utils import keccak

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class InvalidAddress(ValueError):
    pass


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
            raise InvalidAddress(f"invalid base58 character {ch!r}")
        n = n * 58 + idx
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def _checksum4(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def eth_checksum(address20: bytes) -> str:
    hex_addr = address20.hex()
    digest = keccak(text=hex_addr).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(hex_addr))


def tron_address(address20: bytes) -> str:
    payload = b"\x41" + address20
    return b58encode(payload + _checksum4(payload))


def _evm(address: str) -> str:
    if not _HEX_ADDRESS.fullmatch(address):
        raise InvalidAddress("must be 0x followed by 40 hex digits")
    body = address[2:]
    normalized = eth_checksum(bytes.fromhex(body))
    if body not in (body.lower(), body.upper()) and address != normalized:
        raise InvalidAddress("bad EIP-55 checksum")
    return normalized


def _tron(address: str) -> str:
    if len(address) != 34 or not address.startswith("T"):
        raise InvalidAddress("must be 34 base58 characters starting with T")
    raw = b58decode(address)
    payload, check = raw[:-4], raw[-4:]
    if len(payload) != 21 or payload[0] != 0x41 or _checksum4(payload) != check:
        raise InvalidAddress("bad TRON address checksum")
    return address


def _solana(address: str) -> str:
    if not 32 <= len(address) <= 44:
        raise InvalidAddress("must be 32-44 base58 characters")
    raw = b58decode(address)
    if len(raw) != 32 or b58encode(raw) != address:
        raise InvalidAddress("must encode exactly 32 bytes")
    return address


_VALIDATORS = {"ETH": _evm, "ARBITRUM": _evm, "TRON": _tron, "SOL": _solana}


def normalize_address(chain: str, address: object) -> str:
    """The normalized form of a valid address; ``InvalidAddress`` (with the reason) otherwise."""
    if not isinstance(address, str) or not address.strip():
        raise InvalidAddress("empty address")
    validator = _VALIDATORS.get(chain)
    if validator is None:
        raise InvalidAddress(f"unknown chain {chain!r}")
    return validator(address.strip())
