"""Signers hold the keys. ``LocalSigner`` derives the EVM chains' keys from one HD seed (BIP-32/44,
``settings.WALLET_HD_MNEMONIC``; ``wallets.chains.hd``) and keeps the other chains' random keys in
``wallet_keys`` encrypted with Fernet (``core.accounts.crypto``). The seed and the private keys exist
only inside this module's methods and are never logged. An HSM or MPC custody signer implements the
same methods (``Signer``)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any, Protocol

from eth_account import Account

from core.accounts import crypto
from wallets.chains import hd, hd_tron_sol, solana, spec, tron
from wallets.chains.addresses import normalize_address
from wallets.chains.base import SignedTx, UnsignedTx
from wallets.chains.signing import address_from_private_key, canonical_message, sign_message, tx_hash
from wallets.models import WalletKey


class Signer(Protocol):
    def generate(self, *, chain: str, purpose: str, index: int | None = None) -> WalletKey:
        """A new key for ``chain`` (HD chains: the key at ``index`` of ``purpose``'s path)."""
        ...

    def sign_transfer(
        self, *, key: WalletKey, asset: str, to: str, amount: Decimal, nonce: str
    ) -> dict[str, Any]:
        """Message chains: the broadcast payload of a transfer (deterministic for equal inputs)."""
        ...

    def sign_transaction(self, *, key: WalletKey, tx: UnsignedTx) -> SignedTx:
        """Account-nonce chains: the signed bytes of ``tx`` from ``key``'s address."""
        ...


class LocalSigner:
    def generate(self, *, chain: str, purpose: str, index: int | None = None) -> WalletKey:
        """The key (saved; the caller's transaction decides if it sticks). HD chains store only the path."""
        if chain in hd.HD_CHAINS:
            path = hd.path_for(chain, purpose, index)
            address = Account.from_key(hd.private_key(path)).address
            return WalletKey.objects.create(
                chain=chain, address=address, purpose=purpose, hd_path=path, private_key_encrypted=""
            )
        if chain in hd_tron_sol.HD_CHAINS:
            path = hd_tron_sol.path_for(chain, purpose, index)
            address = hd_tron_sol.address_of(chain, hd_tron_sol.private_key(path))
            return WalletKey.objects.create(
                chain=chain, address=address, purpose=purpose, hd_path=path, private_key_encrypted=""
            )
        raw = secrets.token_bytes(32)
        address = address_from_private_key(chain, raw)
        return WalletKey.objects.create(
            chain=chain, address=address, purpose=purpose, private_key_encrypted=crypto.encrypt(raw.hex())
        )

    def _private_key(self, key: WalletKey) -> bytes:
        if key.hd_path and key.chain in hd_tron_sol.HD_CHAINS:
            return hd_tron_sol.private_key(key.hd_path)
        if key.hd_path:
            return hd.private_key(key.hd_path)
        return bytes.fromhex(crypto.decrypt(key.private_key_encrypted))

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
        raw = self._private_key(key)
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

    def sign_transaction(self, *, key: WalletKey, tx: UnsignedTx) -> SignedTx:
        if tx.sender != key.address:
            raise ValueError("the transaction's sender is not this key's address")
        raw = self._private_key(key)
        try:
            if tx.chain == "TRON":
                return tron.sign(tx, raw)
            if tx.chain == "SOL":
                return solana.sign(tx, raw)
            signed = Account.sign_transaction(tx.fields, raw)
        finally:
            del raw
        return SignedTx(
            raw="0x" + bytes(signed.raw_transaction).hex(), tx_hash="0x" + bytes(signed.hash).hex()
        )
