"""In-memory state of the simulated chains: blocks, mempool, balances, transactions, reorgs.

No I/O and no event loop here; ``server.py`` drives it (block timers, HTTP). Everything is
deterministic for a given seed and sequence of calls, except block timestamps (wall clock).
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.chains.addresses import b58encode, canonical_chain, check_address
from sandbox.chains.signing import (
    SigningError,
    address_from_private_key,
    canonical_amount,
    canonical_message,
    derive_private_key,
    tx_hash,
    verify_signature,
)
from sandbox.chains.spec import CHAIN_SPECS, ChainSpec


class ChainError(Exception):
    """A refused request; ``code`` and ``status`` become the JSON error response."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Leg:
    log_index: int
    sender: str
    to: str
    asset: str
    amount: Decimal


@dataclass
class Tx:
    hash: str
    kind: str  # "transfer" (signed broadcast) or "deposit" (simulated outside sender)
    sender: str
    legs: list[Leg]
    fee: Decimal
    fee_asset: str
    nonce: str | None = None
    message: str | None = None
    signature: str | None = None
    status: str = "pending"  # pending | confirmed | dropped
    block: int | None = None
    error: str | None = None
    doomed: bool = False  # failure injection "drop": accepted, then silently dropped from the mempool


@dataclass
class Block:
    height: int
    hash: str
    parent_hash: str
    time: float
    txs: list[str] = field(default_factory=list)


@dataclass
class ChainSettings:
    block_interval: float | None  # None = manual mode (blocks only via the control API)
    token_transfer_fee: Decimal
    native_transfer_fee: Decimal
    start_height: int
    genesis: list[dict[str, Any]]


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, float):
        value = str(value)
    try:
        result = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"{what}: not a number: {value!r}") from exc
    if not result.is_finite() or result < 0:
        raise ValueError(f"{what}: must be a non-negative number")
    return result


_CHAIN_KEYS = {
    "block_interval",
    "manual",
    "token_transfer_fee",
    "native_transfer_fee",
    "start_height",
    "genesis",
}
_GLOBAL_KEYS = {"manual"}


def parse_config(config: dict[str, Any]) -> dict[str, ChainSettings]:
    """The "chains" config section -> settings per chain code. Unknown keys are an error."""
    if not isinstance(config, dict):
        raise ValueError("chains config must be an object")
    per_chain: dict[str, dict[str, Any]] = {}
    for key, value in config.items():
        if key in _GLOBAL_KEYS:
            continue
        code = canonical_chain(key)
        if code is None or not isinstance(value, dict):
            raise ValueError(f"chains config: unknown key {key!r}")
        unknown = set(value) - _CHAIN_KEYS
        if unknown:
            raise ValueError(f"chains config {key}: unknown keys {sorted(unknown)}")
        per_chain[code] = value
    global_manual = bool(config.get("manual", False))
    result = {}
    for code, spec in CHAIN_SPECS.items():
        cfg = per_chain.get(code, {})
        interval: float | None = float(cfg.get("block_interval", spec.block_interval))
        if interval is not None and interval <= 0:
            raise ValueError(f"chains config {code}: block_interval must be > 0")
        if cfg.get("manual", global_manual):
            interval = None
        result[code] = ChainSettings(
            block_interval=interval,
            token_transfer_fee=_decimal(cfg.get("token_transfer_fee", spec.token_transfer_fee), code),
            native_transfer_fee=_decimal(cfg.get("native_transfer_fee", spec.native_transfer_fee), code),
            start_height=int(cfg.get("start_height", spec.start_height)),
            genesis=list(cfg.get("genesis", [])),
        )
    return result


class Chain:
    def __init__(self, spec: ChainSpec, settings: ChainSettings, *, seed: int, now: float):
        self.spec = spec
        self.code = spec.code
        self.seed = seed
        self.settings = settings
        self.interval: float | None = settings.block_interval
        self.fork = 0
        self.deposit_seq = 0
        self.txs: dict[str, Tx] = {}
        self.mempool: list[str] = []
        self.nonces: dict[tuple[str, str], str] = {}
        self.balances: dict[tuple[str, str], Decimal] = {}
        # Blocks are stored compactly (timed chains make millions of mostly empty blocks): a timestamp
        # per height, the tx list of non-empty blocks, and fork epochs; hashes are computed on demand.
        self.times = array("d", [now])  # index = height - start_height
        self.block_txs: dict[int, list[str]] = {}
        self.tx_heights: list[int] = []  # heights of blocks that hold transactions, ascending
        self.epochs: list[tuple[int, int]] = [(settings.start_height, 0)]  # (first height, fork id)
        self.external_sender = address_from_private_key(
            self.code, derive_private_key(f"{seed}:{self.code}:external-sender")
        )
        for entry in settings.genesis:
            self.fund(entry["address"], entry.get("asset", spec.native), str(entry["amount"]))

    # --- helpers ----------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.settings.start_height + len(self.times) - 1

    def block_at(self, height: int) -> Block | None:
        idx = height - self.settings.start_height
        if not 0 <= idx < len(self.times):
            return None
        parent = self.block_hash(height - 1) if idx > 0 else ""
        return Block(height, self.block_hash(height), parent, self.times[idx], self.block_txs.get(height, []))

    def block_hash(self, height: int) -> str:
        """Hash of a block: its height, fork epoch and transactions (a reorg changes the epoch)."""
        fork = self.epochs[bisect.bisect_right(self.epochs, (height, 1 << 62)) - 1][1]
        txs = ",".join(self.block_txs.get(height, []))
        digest = hashlib.sha256(f"{self.code}|{self.seed}|{height}|{fork}|{txs}".encode()).digest()
        if self.code in ("ETH", "ARBITRUM"):
            return "0x" + digest.hex()
        if self.code == "SOL":
            return b58encode(digest)
        return digest.hex()

    def address(self, address: Any, what: str = "address") -> str:
        if not isinstance(address, str):
            raise ChainError("invalid_address", f"{what} must be a string")
        result = check_address(self.code, address)
        if not result.valid or result.normalized is None:
            raise ChainError("invalid_address", f"invalid {self.code} {what} {address!r}: {result.reason}")
        return result.normalized

    def asset(self, asset: Any) -> str:
        if not isinstance(asset, str) or asset not in self.spec.assets:
            raise ChainError("unknown_asset", f"{self.code} assets are {', '.join(self.spec.assets)}")
        return asset

    def amount(self, amount: Any, asset: str) -> Decimal:
        try:
            return Decimal(canonical_amount(amount, self.spec.decimals(asset)))
        except SigningError as exc:
            raise ChainError(exc.code, str(exc)) from exc

    def fmt(self, amount: Decimal, asset: str) -> str:
        return format(amount, f".{self.spec.decimals(asset)}f")

    def balance(self, address: str, asset: str) -> Decimal:
        return self.balances.get((address, asset), Decimal(0))

    def _add(self, address: str, asset: str, delta: Decimal) -> None:
        self.balances[(address, asset)] = self.balance(address, asset) + delta

    def _needs(self, tx: Tx) -> dict[str, Decimal]:
        needs: dict[str, Decimal] = {}
        for leg in tx.legs:
            needs[leg.asset] = needs.get(leg.asset, Decimal(0)) + leg.amount
        needs[tx.fee_asset] = needs.get(tx.fee_asset, Decimal(0)) + tx.fee
        return needs

    def pending_out(self, address: str, asset: str) -> Decimal:
        total = Decimal(0)
        for h in self.mempool:
            tx = self.txs[h]
            if tx.kind == "transfer" and tx.sender == address:
                total += self._needs(tx).get(asset, Decimal(0))
        return total

    def confirmations(self, tx: Tx) -> int:
        return self.height - tx.block + 1 if tx.status == "confirmed" and tx.block is not None else 0

    # --- state changes ----------------------------------------------------------------------------

    def fund(self, address: Any, asset: Any, amount: Any) -> Decimal:
        """Credit a balance directly (genesis/faucet): not a transaction, survives reorgs."""
        addr = self.address(address)
        asset_ = self.asset(asset)
        self._add(addr, asset_, self.amount(amount, asset_))
        return self.balance(addr, asset_)

    def deposit(self, legs: list[dict[str, Any]], sender: Any = None) -> Tx:
        """An outside sender pays one or more transfers in one transaction (log_index 0, 1, …)."""
        if not legs:
            raise ChainError("invalid_request", "at least one transfer is required")
        from_ = self.address(sender, "from") if sender is not None else self.external_sender
        parsed = []
        for i, leg in enumerate(legs):
            if not isinstance(leg, dict):
                raise ChainError("invalid_request", "each transfer is an object {to, asset, amount}")
            asset = self.asset(leg.get("asset"))
            parsed.append(
                Leg(i, from_, self.address(leg.get("to"), "to"), asset, self.amount(leg.get("amount"), asset))
            )
        self.deposit_seq += 1
        h = tx_hash(
            self.code, f"xbit-sandbox-deposit/v1\nchain={self.code}\nseed={self.seed}\nseq={self.deposit_seq}"
        )
        tx = Tx(h, "deposit", from_, parsed, Decimal(0), self.spec.native)
        self.txs[h] = tx
        self.mempool.append(h)
        return tx

    def broadcast(self, payload: Any, *, doomed: bool = False) -> tuple[Tx, bool]:
        """Accept a signed transfer into the mempool. Returns (tx, duplicate)."""
        if not isinstance(payload, dict):
            raise ChainError("invalid_request", "body must be a JSON object")
        chain = payload.get("chain")
        if chain is not None and (not isinstance(chain, str) or canonical_chain(chain) != self.code):
            raise ChainError("chain_mismatch", f"payload chain {chain!r} is not {self.code}")
        try:
            message = canonical_message(
                chain=self.code,
                asset=payload.get("asset"),  # type: ignore[arg-type]
                sender=payload.get("from"),  # type: ignore[arg-type]
                to=payload.get("to"),  # type: ignore[arg-type]
                amount=payload.get("amount"),  # type: ignore[arg-type]
                nonce=payload.get("nonce"),  # type: ignore[arg-type]
            )
        except SigningError as exc:
            raise ChainError(exc.code, str(exc)) from exc
        sender = self.address(payload["from"], "from")
        if not verify_signature(self.code, message, payload.get("signature"), sender):
            raise ChainError(
                "bad_signature", f"signature is not valid for {sender} over the canonical message"
            )
        h = tx_hash(self.code, message)
        existing = self.txs.get(h)
        if existing is not None and existing.status != "dropped":
            return existing, True
        nonce = payload["nonce"]
        previous = self.nonces.get((sender, nonce))
        if previous is not None and previous != h and self.txs[previous].status != "dropped":
            raise ChainError(
                "nonce_conflict", f"nonce {nonce!r} of {sender} is already used by {previous}", 409
            )
        asset = payload["asset"]
        amount = self.amount(payload["amount"], asset)
        native = self.spec.native
        fee = self.settings.native_transfer_fee if asset == native else self.settings.token_transfer_fee
        to = self.address(payload["to"], "to")
        tx = Tx(h, "transfer", sender, [Leg(0, sender, to, asset, amount)], fee, native, nonce, message)
        tx.signature = payload["signature"]
        for need_asset, need in self._needs(tx).items():
            available = self.balance(sender, need_asset) - self.pending_out(sender, need_asset)
            if available < need:
                code = (
                    "insufficient_gas" if need_asset == native and asset != native else "insufficient_balance"
                )
                raise ChainError(
                    code,
                    f"{sender} has {self.fmt(available, need_asset)} {need_asset} available "
                    f"(balance minus pending), needs {self.fmt(need, need_asset)}",
                )
        if existing is not None:  # a dropped transaction broadcast again goes back to the mempool
            existing.status, existing.error, existing.block, existing.doomed = "pending", None, None, doomed
            tx = existing
        else:
            tx.doomed = doomed
            self.txs[h] = tx
        self.nonces[(sender, nonce)] = h
        self.mempool.append(h)
        return tx, existing is not None

    def _apply(self, tx: Tx) -> str | None:
        if tx.kind == "transfer":
            needs = self._needs(tx)
            for asset, need in needs.items():
                if self.balance(tx.sender, asset) < need:
                    return f"insufficient {asset} when the block was built"
            for asset, need in needs.items():
                self._add(tx.sender, asset, -need)
        for leg in tx.legs:
            self._add(leg.to, leg.asset, leg.amount)
        return None

    def _revert(self, tx: Tx) -> None:
        for leg in reversed(tx.legs):
            self._add(leg.to, leg.asset, -leg.amount)
        if tx.kind == "transfer":
            for asset, need in self._needs(tx).items():
                self._add(tx.sender, asset, need)

    def _mine_one(self, now: float) -> list[str]:
        height = self.height + 1
        included = []
        for h in self.mempool:
            tx = self.txs[h]
            error = "dropped from the mempool (injected failure)" if tx.doomed else self._apply(tx)
            if error:
                tx.status, tx.error, tx.block = "dropped", error, None
                continue
            tx.status, tx.block, tx.error = "confirmed", height, None
            included.append(h)
        self.mempool = []
        self.times.append(now)
        if included:
            self.block_txs[height] = included
            self.tx_heights.append(height)
        return included

    def mine(self, count: int, now: float) -> list[str]:
        """Mine ``count`` blocks; returns the hashes of the transactions they included."""
        return [h for _ in range(count) for h in self._mine_one(now)]

    def reorg(self, depth: int, reinclude: bool | list[str], replace: bool, now: float) -> dict[str, Any]:
        """Remove the last ``depth`` blocks; their txs are reverted and dropped or put back in the mempool.

        ``replace`` then mines ``depth`` new blocks (different hashes) so the height is unchanged.
        """
        if depth < 1 or depth > len(self.times) - 1:
            raise ChainError("invalid_request", f"depth must be between 1 and {len(self.times) - 1}")
        new_tip = self.height - depth
        removed = [self.block_at(h) for h in range(new_tip + 1, self.height + 1)]
        del self.times[-depth:]
        del self.tx_heights[bisect.bisect_right(self.tx_heights, new_tip) :]
        for block in removed:
            assert block is not None
            self.block_txs.pop(block.height, None)
        keep = set(reinclude) if isinstance(reinclude, list) else None
        requeue, dropped = [], []
        for block in reversed(removed):
            assert block is not None
            for h in reversed(block.txs):
                tx = self.txs[h]
                self._revert(tx)
                tx.block = None
                if reinclude is True or (keep is not None and h in keep):
                    tx.status = "pending"
                    requeue.append(h)
                else:
                    tx.status, tx.error = "dropped", "removed by a chain reorganisation"
                    dropped.append(h)
        requeue.reverse()
        dropped.reverse()
        self.mempool = requeue + self.mempool
        self.fork += 1
        self.epochs = [e for e in self.epochs if e[0] <= new_tip] + [(new_tip + 1, self.fork)]
        if replace:
            self.mine(depth, now)
        return {
            "removed_heights": [b.height for b in removed if b is not None],
            "dropped": dropped,
            "reincluded": requeue,
            "height": self.height,
        }

    # --- views ------------------------------------------------------------------------------------

    def status(self, now: float) -> dict[str, Any]:
        tip = self.block_at(self.height)
        assert tip is not None
        return {
            "chain": self.code,
            "name": self.spec.name,
            "height": tip.height,
            "time": tip.time,
            "block_hash": tip.hash,
            "now": now,
            "manual": self.interval is None,
            "block_interval": self.interval,
            "native_asset": self.spec.native,
            "tokens": list(self.spec.tokens),
            "decimals": {a: self.spec.decimals(a) for a in self.spec.assets},
            "token_transfer_fee": self.fmt(self.settings.token_transfer_fee, self.spec.native),
            "native_transfer_fee": self.fmt(self.settings.native_transfer_fee, self.spec.native),
            "mempool": len(self.mempool),
        }

    def leg_view(self, tx: Tx, leg: Leg) -> dict[str, Any]:
        block = self.block_at(tx.block) if tx.block is not None else None
        return {
            "tx_hash": tx.hash,
            "log_index": leg.log_index,
            "block": tx.block,
            "block_hash": block.hash if block else None,
            "time": block.time if block else None,
            "confirmations": self.confirmations(tx),
            "from": leg.sender,
            "to": leg.to,
            "asset": leg.asset,
            "amount": self.fmt(leg.amount, leg.asset),
            "kind": tx.kind,
        }

    def transfers(
        self,
        *,
        from_height: int,
        to_height: int,
        to: set[str] | None,
        sender: str | None,
        asset: str | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """Transfers in blocks ``from_height..to_height`` (inclusive). Returns (items, last height covered).

        Without ``asset`` only token transfers are listed; pass the native symbol to list native ones.
        Stops at a block boundary once ``limit`` items are collected (a block is never split).
        """
        items: list[dict[str, Any]] = []
        covered = to_height
        start = bisect.bisect_left(self.tx_heights, from_height)
        for height in self.tx_heights[start:]:
            if height > to_height:
                break
            block = self.block_at(height)
            assert block is not None
            found = []
            for h in block.txs:
                tx = self.txs[h]
                for leg in tx.legs:
                    if asset is None and leg.asset not in self.spec.tokens:
                        continue
                    if asset is not None and leg.asset != asset:
                        continue
                    if to is not None and leg.to not in to:
                        continue
                    if sender is not None and leg.sender != sender:
                        continue
                    found.append(self.leg_view(tx, leg))
            if items and len(items) + len(found) > limit:
                covered = height - 1
                break
            items.extend(found)
        return items, covered

    def tx_view(self, tx: Tx) -> dict[str, Any]:
        block = self.block_at(tx.block) if tx.block is not None else None
        return {
            "chain": self.code,
            "tx_hash": tx.hash,
            "kind": tx.kind,
            "status": tx.status,
            "block": tx.block,
            "block_hash": block.hash if block else None,
            "time": block.time if block else None,
            "confirmations": self.confirmations(tx),
            "height": self.height,
            "from": tx.sender,
            "nonce": tx.nonce,
            "fee": self.fmt(tx.fee, tx.fee_asset),
            "fee_asset": tx.fee_asset,
            "transfers": [
                {
                    "log_index": leg.log_index,
                    "from": leg.sender,
                    "to": leg.to,
                    "asset": leg.asset,
                    "amount": self.fmt(leg.amount, leg.asset),
                }
                for leg in tx.legs
            ],
            "error": tx.error,
        }

    def balance_view(self, address: str, asset: str | None) -> dict[str, Any]:
        balances = {a: self.fmt(self.balance(address, a), a) for a in self.spec.assets}
        pending = {a: self.fmt(self.pending_out(address, a), a) for a in self.spec.assets}
        view: dict[str, Any] = {
            "chain": self.code,
            "address": address,
            "height": self.height,
            "native_asset": self.spec.native,
            "native_balance": balances[self.spec.native],
            "balances": balances,
            "pending_out": pending,
        }
        if asset is not None:
            view["asset"] = asset
            view["balance"] = balances[asset]
        return view

    def dump(self) -> dict[str, Any]:
        return {
            "status": {k: v for k, v in self.status(0.0).items() if k != "now"},
            "external_sender": self.external_sender,
            "balances": [
                {"address": addr, "asset": asset, "balance": self.fmt(value, asset)}
                for (addr, asset), value in sorted(self.balances.items())
                if value != 0
            ],
            "mempool": list(self.mempool),
            "txs": [self.tx_view(tx) for tx in self.txs.values()],
            "blocks": [
                {
                    "height": b.height,
                    "hash": b.hash,
                    "parent_hash": b.parent_hash,
                    "time": b.time,
                    "txs": b.txs,
                }
                for h in self.tx_heights
                if (b := self.block_at(h)) is not None
            ],
        }


@dataclass
class FailureRule:
    target: str  # "broadcast" or "read"
    mode: str  # "error", "timeout" or "drop"
    remaining: int
    chain: str | None
    status: int
    hang_seconds: float

    def view(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "remaining": self.remaining,
            "chain": self.chain,
            "status": self.status,
            "hang_seconds": self.hang_seconds,
        }


class World:
    def __init__(self, *, seed: int, config: dict[str, Any], now: float):
        self.seed = seed
        self.config = config
        self.settings = parse_config(config)
        self.chains: dict[str, Chain] = {}
        self.failures: list[FailureRule] = []
        self.reset(now)

    def reset(self, now: float) -> None:
        self.chains = {
            code: Chain(spec, self.settings[code], seed=self.seed, now=now)
            for code, spec in CHAIN_SPECS.items()
        }
        self.failures = []

    def chain(self, name: str) -> Chain:
        code = canonical_chain(name)
        if code is None:
            raise ChainError(
                "unknown_chain", f"unknown chain {name!r}; chains: {', '.join(CHAIN_SPECS)}", 404
            )
        return self.chains[code]

    def take_failure(self, target: str, chain: str) -> FailureRule | None:
        for rule in self.failures:
            if rule.target == target and rule.remaining > 0 and rule.chain in (None, chain):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self.failures.remove(rule)
                return rule
        return None
