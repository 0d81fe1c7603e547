"""Signers hold the keys. ``LocalSigner`` derives every chain's keys from one HD seed
(``settings.WALLET_HD_MNEMONIC``: BIP-32/44 for the EVM chains, ``wallets.chains.hd``; TRON's secp256k1
path and Solana's SLIP-0010, ``wallets.chains.hd_tron_sol``); only the derivation path is stored. A key
row from before HD custody (``private_key_encrypted``, Fernet, ``core.accounts.crypto``) still signs.
The seed and the private keys exist only inside this module's methods and are never logged. An HSM or
MPC custody signer implements the same methods (``Signer``)."""

from __future__ import annotations

from typing import Protocol

from eth_account import Account

from core.accounts import crypto
from wallets.chains import hd, hd_tron_sol, solana, tron
from wallets.chains.base import SignedTx, UnsignedTx
from wallets.models import WalletKey


class Signer(Protocol):
    def generate(self, *, chain: str, purpose: str, index: int | None = None) -> WalletKey:
        """A new key for ``chain`` (HD chains: the key at ``index`` of ``purpose``'s path)."""
        ...

    def sign_transaction(self, *, key: WalletKey, tx: UnsignedTx) -> SignedTx:
        """The signed bytes of ``tx`` (built by the chain's adapter) from ``key``'s address."""
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
        raise ValueError(f"no HD derivation for chain {chain!r}")

    def _private_key(self, key: WalletKey) -> bytes:
        if key.hd_path and key.chain in hd_tron_sol.HD_CHAINS:
            return hd_tron_sol.private_key(key.hd_path)
        if key.hd_path:
            return hd.private_key(key.hd_path)
        return bytes.fromhex(crypto.decrypt(key.private_key_encrypted))

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
