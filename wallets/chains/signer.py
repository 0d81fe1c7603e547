"""Signers hold the keys. ``LocalSigner`` keeps them in ``wallet_keys`` encrypted with Fernet
(``core.accounts.crypto``); the plaintext exists only inside ``sign`` and is never logged.
An HSM signer (Turnkey in the seed) implements the same two methods."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any, Protocol

from core.accounts import crypto
from wallets.chains import spec
from wallets.chains.addresses import normalize_address
from wallets.chains.signing import address_from_private_key, canonical_message, sign_message, tx_hash
from wallets.models import WalletKey


class Signer(Protocol):
    def generate(self, *, chain: str, purpose: str) -> WalletKey: ...

    def sign_transfer(
        self, *, key: WalletKey, asset: str, to: str, amount: Decimal, nonce: str
    ) -> dict[str, Any]: ...


class LocalSigner:
    def generate(self, *, chain: str, purpose: str) -> WalletKey:
        """A new random key and its address (saved; the caller's transaction decides if it sticks)."""
        raw = secrets.token_bytes(32)
        address = address_from_private_key(chain, raw)
        return WalletKey.objects.create(
            chain=chain, address=address, purpose=purpose, private_key_encrypted=crypto.encrypt(raw.hex())
        )

    def sign_transfer(
        self, *, key: WalletKey, asset: str, to: str, amount: Decimal, nonce: str
    ) -> dict[str, Any]:
        """The broadcast payload of a transfer from ``key``'s address. Deterministic for equal inputs."""
        chain = key.chain
        message = canonical_message(
            chain=chain,
            asset=asset,
            sender=key.address,
            to=to,
            amount=amount,
            decimals=spec.decimals(chain, asset),
            nonce=nonce,
        )
        raw = bytes.fromhex(crypto.decrypt(key.private_key_encrypted))
        try:
            signature = sign_message(chain, raw, message)
        finally:
            del raw
        return {
            "chain": chain,
            "asset": asset,
            "from": key.address,
            "to": normalize_address(chain, to),
            "amount": f"{amount:.{spec.decimals(chain, asset)}f}",
            "nonce": nonce,
            "signature": signature,
            "tx_hash": tx_hash(chain, message),
        }
