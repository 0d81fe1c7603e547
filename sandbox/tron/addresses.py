"""TRON addresses: ``0x41 || 20 bytes``, shown as hex (``41…``) or base58check (``T…``)."""

from __future__ import annotations

import hashlib

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class BadAddress(ValueError):
    pass


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, rem = divmod(n, 58)
        out = B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        if ch not in B58:
            raise BadAddress(f"invalid base58 character {ch!r}")
        n = n * 58 + B58.index(ch)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _check(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def to_raw(address: str) -> bytes:
    """21 bytes from ``T…`` or ``41…`` hex; ``BadAddress`` otherwise."""
    if len(address) == 42 and address[:2] == "41":
        try:
            return bytes.fromhex(address)
        except ValueError as exc:
            raise BadAddress("invalid hex address") from exc
    if len(address) == 34 and address.startswith("T"):
        raw = b58decode(address)
        if len(raw) == 25 and raw[0] == 0x41 and _check(raw[:21]) == raw[21:]:
            return raw[:21]
    raise BadAddress(f"invalid address {address!r}")


def to_base58(address: str | bytes) -> str:
    raw = address if isinstance(address, bytes) else to_raw(address)
    return b58encode(raw + _check(raw))


def to_hex(address: str | bytes) -> str:
    raw = address if isinstance(address, bytes) else to_raw(address)
    return raw.hex()
