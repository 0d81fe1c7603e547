"""Local EVM nodes: Foundry's ``anvil`` (npm ``@foundry-rs/anvil-linux-amd64``, installed by ``make evm``)
with our ERC-20 stand-ins for USDT and USDC deployed at set-up.

``AnvilNode`` starts one anvil (one chain id) on a port, waits for its JSON-RPC, deploys the tokens from
``Token.json`` (compiled from ``Token.sol`` by solc-js) with anvil's first dev account — nonce 0 and 1,
so USDT and USDC always land at the same addresses (``USDT_ADDRESS``/``USDC_ADDRESS``) — and drives the
chain with anvil's own RPC: ``evm_mine``, ``anvil_setBalance``, ``evm_snapshot``/``evm_revert``,
``anvil_reorg``, automine on/off. It imports nothing of the platform (the sandbox rule).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_utils import keccak, to_checksum_address

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ANVIL = ROOT / ".xbit" / "node" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
# anvil's well-known first dev account (public test key of its default mnemonic): deployer and faucet
DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEPLOYER = Account.from_key(DEPLOYER_KEY).address
USDT_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # CREATE(DEPLOYER, nonce 0)
USDC_ADDRESS = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"  # CREATE(DEPLOYER, nonce 1)
TOKENS = {"USDT": USDT_ADDRESS, "USDC": USDC_ADDRESS}
UNITS = Decimal(10**6)
WEI = Decimal(10**18)


def anvil_binary() -> str:
    found = os.environ.get("ANVIL_BIN") or (str(ANVIL) if ANVIL.exists() else shutil.which("anvil"))
    if not found:
        raise FileNotFoundError(
            f"anvil not found at {ANVIL}: run `make evm` (npm @foundry-rs/anvil-linux-amd64)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _addr(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(to_checksum_address(address)[2:])


def _abi_string(text: str) -> bytes:
    data = text.encode()
    return _word(len(data)) + data.ljust((len(data) + 31) // 32 * 32, b"\0")


class AnvilNode:
    """One anvil process (or an already running node at ``url``) and helpers to drive it."""

    def __init__(
        self,
        *,
        chain_id: int,
        port: int | None = None,
        block_time: float | None = None,
        state_file: Path | None = None,
        url: str | None = None,
    ):
        self.chain_id = chain_id
        self.port = port or free_port()
        self.block_time = block_time
        self.state_file = state_file
        self.url = url or f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self._ids = iter(range(1, 10**12))

    # --- process ----------------------------------------------------------------------------------

    def start(self) -> AnvilNode:
        args = [
            anvil_binary(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--silent",
            "--base-fee",
            "1000000000",
            "--gas-limit",
            "60000000",
        ]
        if self.block_time:
            args += ["--block-time", str(self.block_time)]
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(self.state_file), "--state-interval", "10"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)  # noqa: S603 - anvil, fixed arguments
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {self.proc.returncode}")
            with contextlib.suppress(requests.RequestException):
                self.rpc("eth_chainId")
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("anvil did not answer within 30 s")
        self.deploy_tokens()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- JSON-RPC ---------------------------------------------------------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        answer = self.session.post(self.url, json=body, timeout=30).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result")

    def height(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, blocks: int = 1) -> int:
        self.rpc("anvil_mine", hex(blocks))
        return self.height()

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> bool:
        return bool(self.rpc("evm_revert", snapshot_id))

    def reorg(self, depth: int) -> None:
        """Replace the last ``depth`` blocks with new empty ones (their transactions are gone)."""
        self.rpc("anvil_reorg", depth, [])

    def automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", on)

    def set_next_base_fee(self, wei: int) -> None:
        self.rpc("anvil_setNextBlockBaseFeePerGas", hex(wei))

    def set_balance(self, address: str, eth: Decimal | str | int) -> None:
        self.rpc("anvil_setBalance", to_checksum_address(address), hex(int(Decimal(eth) * WEI)))

    def eth_balance(self, address: str) -> Decimal:
        return Decimal(int(self.rpc("eth_getBalance", to_checksum_address(address), "latest"), 16)) / WEI

    def token_balance(self, asset: str, address: str) -> Decimal:
        data = "0x" + (_selector("balanceOf(address)") + _addr(address)).hex()
        return Decimal(int(self.rpc("eth_call", {"to": TOKENS[asset], "data": data}, "latest"), 16)) / UNITS

    def nonce(self, address: str, block: str = "latest") -> int:
        return int(self.rpc("eth_getTransactionCount", to_checksum_address(address), block), 16)

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        return self.rpc("eth_getTransactionReceipt", tx_hash)  # type: ignore[no-any-return]

    # --- transactions from a key (the deployer/faucet by default) ---------------------------------

    def send(
        self,
        *,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        key: str = DEPLOYER_KEY,
        gas: int | None = None,
        wait: bool = True,
    ) -> str:
        account = Account.from_key(key)
        base = int(self.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": self.nonce(account.address, "pending"),
            "value": value,
            "data": "0x" + data.hex(),
            "maxFeePerGas": 3 * base + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        call = {
            k: v
            for k, v in {
                "from": account.address,
                "to": tx.get("to"),
                "data": tx["data"],
                "value": hex(value),
            }.items()
            if v is not None
        }
        tx["gas"] = gas or int(int(self.rpc("eth_estimateGas", call), 16) * 1.3) + 21_000
        signed = Account.sign_transaction(tx, key)
        tx_hash = self.rpc("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
        if wait:
            deadline = time.monotonic() + 60
            while self.receipt(tx_hash) is None and time.monotonic() < deadline:
                time.sleep(0.02)
        return str(tx_hash)

    def deploy_tokens(self) -> None:
        """Deploy USDT and USDC (once: a node restored from its state file has them already)."""
        artefact = json.loads((HERE / "Token.json").read_text())
        for nonce, (asset, address) in enumerate(TOKENS.items()):
            if self.rpc("eth_getCode", address, "latest") not in (None, "0x"):
                continue
            if self.nonce(DEPLOYER) != nonce:
                raise RuntimeError(f"cannot deploy {asset} at {address}: the deployer's nonce is not {nonce}")
            name = "Tether USD (XBIT local)" if asset == "USDT" else "USD Coin (XBIT local)"
            args = _word(64) + _word(64 + len(_abi_string(name))) + _abi_string(name) + _abi_string(asset)
            self.send(to=None, data=bytes.fromhex(artefact["bytecode"][2:]) + args, gas=3_000_000)
            if self.rpc("eth_getCode", address, "latest") in (None, "0x"):
                raise RuntimeError(f"{asset} deployment did not land at {address}")

    def mint(self, asset: str, to: str, amount: Decimal | str | int, *, wait: bool = True) -> str:
        data = _selector("mint(address,uint256)") + _addr(to) + _word(int(Decimal(amount) * UNITS))
        return self.send(to=TOKENS[asset], data=data, wait=wait)

    def transfer(
        self, asset: str, to: str, amount: Decimal | str | int, *, key: str = DEPLOYER_KEY, wait: bool = True
    ) -> str:
        """An ERC-20 ``transfer`` from ``key``'s account (minted to it first when it is the faucet)."""
        units = int(Decimal(amount) * UNITS)
        if key == DEPLOYER_KEY and self.token_balance(asset, DEPLOYER) < Decimal(amount):
            self.mint(asset, DEPLOYER, Decimal(amount) * 1000)
        data = _selector("transfer(address,uint256)") + _addr(to) + _word(units)
        return self.send(to=TOKENS[asset], data=data, key=key, wait=wait)

    def batch_transfer(
        self, asset: str, recipients: list[str], amount_each: Decimal | str, *, wait: bool = True
    ) -> str:
        """One transaction, ``len(recipients)`` Transfer logs (the faucet pays)."""
        units = int(Decimal(amount_each) * UNITS)
        total = Decimal(amount_each) * len(recipients)
        if self.token_balance(asset, DEPLOYER) < total:
            self.mint(asset, DEPLOYER, total * 10)
        n = len(recipients)
        head = _word(64) + _word(64 + 32 + 32 * n)
        data = (
            _selector("batchTransfer(address[],uint256[])")
            + head
            + _word(n)
            + b"".join(_addr(r) for r in recipients)
            + _word(n)
            + _word(units) * n
        )
        return self.send(to=TOKENS[asset], data=data, wait=wait, gas=30_000 + 40_000 * n)
