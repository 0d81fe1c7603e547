"""Outgoing transactions of the account-nonce chains (EVM): every signed transaction is stored here
before it is broadcast, with its nonce and its exact signed bytes, and each sending account's next
nonce is a locked row — so nonces are allocated once across processes, and a crash between signing
and broadcasting re-broadcasts the same bytes (``wallets.services.chain_txs``)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from wallets.models.base import Chain, money_field


def wei_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=40, decimal_places=0, **kwargs)  # type: ignore[arg-type]


class ChainNonce(models.Model):
    """The next nonce of one of our sending accounts (row-locked while a nonce is allocated)."""

    chain = models.CharField(max_length=10, choices=Chain.choices)
    address = models.CharField(max_length=64)
    next_nonce = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain", "address"], name="chain_nonce_unique")]

    def __str__(self) -> str:
        return f"{self.chain} {self.address} next nonce {self.next_nonce}"


class ChainTx(models.Model):
    """One signed transaction. ``ref`` names what it pays (``wd-<id>``, ``agg-<id>``, ``agg-<id>-gas``,
    ``cold-<id>``); a replacement of a stuck transaction is the next ``attempt`` with the same nonce."""

    class Status(models.TextChoices):
        SIGNED = "SIGNED", "Signed, not yet broadcast"
        SENT = "SENT", "Broadcast"
        MINED = "MINED", "Mined, receipt status 1"
        FAILED = "FAILED", "Mined, receipt status 0"
        REPLACED = "REPLACED", "Replaced by a later attempt"

    chain = models.CharField(max_length=10, choices=Chain.choices)
    ref = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField(default=0)
    sender = models.CharField(max_length=64)
    nonce = models.BigIntegerField()
    asset = models.CharField(max_length=8)
    to_address = models.CharField(max_length=64)
    amount = money_field()
    raw = models.TextField()  # the signed bytes, 0x-hex: exactly what is (re-)broadcast
    tx_hash = models.CharField(max_length=100)
    gas_limit = models.BigIntegerField()
    max_fee_per_gas = wei_field()
    max_priority_fee_per_gas = wei_field()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SIGNED)
    block = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "chain_txs"
        constraints = [
            models.UniqueConstraint(fields=["chain", "ref", "attempt"], name="chain_tx_ref_attempt_unique"),
            models.UniqueConstraint(
                fields=["chain", "sender", "nonce", "attempt"], name="chain_tx_nonce_attempt_unique"
            ),
            models.UniqueConstraint(fields=["chain", "tx_hash"], name="chain_tx_hash_unique"),
        ]
        indexes = [models.Index(fields=["chain", "status"])]

    def __str__(self) -> str:
        return f"{self.chain} {self.ref}#{self.attempt} nonce {self.nonce} {self.tx_hash}"

    @property
    def max_fee_gwei(self) -> Decimal:
        return (Decimal(self.max_fee_per_gas) / Decimal(10**9)).quantize(Decimal("0.001"))
