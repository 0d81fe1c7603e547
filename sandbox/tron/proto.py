"""The protobuf bytes of a TRON ``Transaction.raw`` (``core/Tron.proto``), enough for the contracts the
stand-in executes: the transaction id is ``sha256`` of these bytes, as on the real chain.

Field numbers (proto3, zero values omitted, fields in number order): ``raw``: ref_block_bytes 1,
ref_block_num 3, ref_block_hash 4, expiration 8, data 10, contract 11, timestamp 14, fee_limit 18.
``Contract``: type 1, parameter 2 (``google.protobuf.Any``: type_url 1, value 2), Permission_id 5.
``TransferContract``: owner 1, to 2, amount 3. ``TriggerSmartContract``: owner 1, contract 2,
call_value 3, data 4, call_token_value 5, token_id 6.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sandbox.tron.addresses import to_raw

CONTRACT_TYPES = {"TransferContract": 1, "TriggerSmartContract": 31}


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value) if value else b""


def _bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value if value else b""


def _contract_value(kind: str, value: dict[str, Any]) -> bytes:
    if kind == "TransferContract":
        return (
            _bytes(1, to_raw(value["owner_address"]))
            + _bytes(2, to_raw(value["to_address"]))
            + _int(3, int(value["amount"]))
        )
    if kind == "TriggerSmartContract":
        return (
            _bytes(1, to_raw(value["owner_address"]))
            + _bytes(2, to_raw(value["contract_address"]))
            + _int(3, int(value.get("call_value", 0)))
            + _bytes(4, bytes.fromhex(value.get("data", "")))
            + _int(5, int(value.get("call_token_value", 0)))
            + _int(6, int(value.get("token_id", 0)))
        )
    raise ValueError(f"contract type {kind} is not supported by the stand-in")


def raw_bytes(raw: dict[str, Any]) -> bytes:
    contracts = b""
    for contract in raw["contract"]:
        kind = contract["type"]
        param = contract["parameter"]
        any_msg = _bytes(1, param["type_url"].encode()) + _bytes(2, _contract_value(kind, param["value"]))
        body = (
            _int(1, CONTRACT_TYPES[kind])
            + _bytes(2, any_msg)
            + _int(5, int(contract.get("Permission_id", 0)))
        )
        contracts += _bytes(11, body)
    return (
        _bytes(1, bytes.fromhex(raw["ref_block_bytes"]))
        + _int(3, int(raw.get("ref_block_num", 0)))
        + _bytes(4, bytes.fromhex(raw["ref_block_hash"]))
        + _int(8, int(raw["expiration"]))
        + _bytes(10, bytes.fromhex(raw.get("data", "")))
        + contracts
        + _int(14, int(raw.get("timestamp", 0)))
        + _int(18, int(raw.get("fee_limit", 0)))
    )


def txid(raw: dict[str, Any]) -> str:
    return hashlib.sha256(raw_bytes(raw)).hexdigest()
