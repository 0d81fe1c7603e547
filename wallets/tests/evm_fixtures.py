"""The EVM chains on real local nodes for every suite (a pytest plugin: the root conftest names it).

The test settings route ETH and ARBITRUM to the EVM adapter, as production does, with RPC URLs that
lead nowhere: a test that moves coins on those chains asks for a node here.

* ``evm`` — ETH (chain id 1) on the session's anvil (``sandbox.evm``: our USDT/USDC contracts),
  wired into the settings; automine on (tests mine confirmations with ``evm_mine``); afterwards the
  chain is reverted to its state before the test (pending transactions dropped), as the database is
  rolled back.
* ``evm_arbitrum`` — the same for ARBITRUM (chain id 42161) on its own anvil.
* ``evm_own`` — a fresh ETH anvil of the test's own, for reorgs (``anvil_reorg`` invalidates the
  snapshots below it).

Only pytest is imported at module level: the sandbox and pure-math suites load this without Django.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

ANVIL_CHAIN_IDS = {"ETH": 1, "ARBITRUM": 42161}


def wire_evm(node: Any, settings: Any, chain: str = "ETH") -> None:
    """Route ``chain`` to the EVM adapter on ``node`` (the configured tokens at the node's contracts)."""
    from sandbox.evm.node import TOKENS

    assets = settings.EVM_CHAINS[chain].get("tokens") or TOKENS
    settings.CHAIN_ADAPTERS = {**settings.CHAIN_ADAPTERS, chain: "evm"}
    settings.EVM_CHAINS = {
        **settings.EVM_CHAINS,
        chain: {
            **settings.EVM_CHAINS[chain],
            "rpc_url": node.url,
            "chain_id": node.chain_id,
            "tokens": {asset: TOKENS[asset] for asset in assets},
            "timeout": 10.0,
        },
    }


def _reverted_after(node: Any) -> Iterator[Any]:
    snapshot = node.snapshot()
    node.automine(True)
    try:
        yield node
    finally:
        node.rpc("anvil_dropAllTransactions")
        node.automine(True)
        node.revert(snapshot)


@pytest.fixture(scope="session")
def _anvil() -> Iterator[Any]:
    from sandbox.evm.node import AnvilNode

    with AnvilNode(chain_id=ANVIL_CHAIN_IDS["ETH"]) as node:
        yield node


@pytest.fixture(scope="session")
def _anvil_arbitrum() -> Iterator[Any]:
    from sandbox.evm.node import AnvilNode

    with AnvilNode(chain_id=ANVIL_CHAIN_IDS["ARBITRUM"]) as node:
        yield node


@pytest.fixture
def evm(_anvil: Any, settings: Any) -> Iterator[Any]:
    """ETH on a real anvil node (automine; tests mine confirmations), wired into the settings. The
    chain is reverted to its state before the test afterwards, as the database is rolled back."""
    wire_evm(_anvil, settings, "ETH")
    yield from _reverted_after(_anvil)


@pytest.fixture
def evm_arbitrum(_anvil_arbitrum: Any, settings: Any) -> Iterator[Any]:
    """ARBITRUM on its own anvil (chain id 42161), wired and reverted as ``evm``."""
    wire_evm(_anvil_arbitrum, settings, "ARBITRUM")
    yield from _reverted_after(_anvil_arbitrum)


@pytest.fixture
def evm_own(settings: Any) -> Iterator[Any]:
    """A fresh anvil of the test's own, for reorgs (``anvil_reorg`` invalidates snapshots below it)."""
    from sandbox.evm.node import AnvilNode

    with AnvilNode(chain_id=ANVIL_CHAIN_IDS["ETH"]) as node:
        wire_evm(node, settings, "ETH")
        yield node


# --- reading the chain as a block explorer would ------------------------------------------------------


def _topic_address(topic: str) -> str:
    from eth_utils import to_checksum_address

    return str(to_checksum_address("0x" + topic[-40:]))


def token_transfers(node: Any, tx_hash: str) -> list[dict[str, Any]]:
    """The ERC-20 transfers a transaction makes: from its receipt's ``Transfer`` logs once mined, from
    its ``transfer(address,uint256)`` input while it is pending. Each: asset, from, to, amount."""
    from eth_utils import keccak, to_checksum_address

    from sandbox.evm.node import TOKENS, UNITS

    assets = {address.lower(): asset for asset, address in TOKENS.items()}
    receipt = node.receipt(tx_hash)
    if receipt is not None:
        topic = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
        return [
            {
                "asset": assets[log["address"].lower()],
                "from": _topic_address(log["topics"][1]),
                "to": _topic_address(log["topics"][2]),
                "amount": Decimal(int(log["data"], 16)) / UNITS,
            }
            for log in receipt["logs"]
            if log["address"].lower() in assets and log["topics"] and log["topics"][0] == topic
        ]
    sent = node.rpc("eth_getTransactionByHash", tx_hash)
    data = bytes.fromhex(sent["input"][2:])
    if data[:4] != keccak(text="transfer(address,uint256)")[:4] or sent["to"].lower() not in assets:
        return []
    return [
        {
            "asset": assets[sent["to"].lower()],
            "from": to_checksum_address(sent["from"]),
            "to": to_checksum_address("0x" + data[16:36].hex()),
            "amount": Decimal(int.from_bytes(data[36:68], "big")) / UNITS,
        }
    ]


def tx_status(node: Any, tx_hash: str) -> str:
    """``pending`` (in the mempool), ``confirmed`` / ``failed`` (mined: receipt status), ``unknown``."""
    if node.rpc("eth_getTransactionByHash", tx_hash) is None:
        return "unknown"
    receipt = node.receipt(tx_hash)
    if receipt is None:
        return "pending"
    return "confirmed" if int(receipt["status"], 16) == 1 else "failed"


def tx_fee(node: Any, tx_hash: str) -> Decimal:
    """What a mined transaction paid in the native coin (gas used × effective gas price)."""
    from sandbox.evm.node import WEI

    receipt = node.receipt(tx_hash)
    return Decimal(int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)) / WEI


def transfers_to(node: Any, asset: str, address: str) -> list[dict[str, Any]]:
    """Every mined ERC-20 transfer of ``asset`` to ``address`` (``eth_getLogs`` over the whole chain)."""
    from eth_utils import keccak, to_checksum_address

    from sandbox.evm.node import TOKENS, UNITS

    recipient = "0x" + "00" * 12 + to_checksum_address(address)[2:].lower()
    logs = node.rpc(
        "eth_getLogs",
        {
            "fromBlock": "0x0",
            "toBlock": "latest",
            "address": TOKENS[asset],
            "topics": ["0x" + keccak(text="Transfer(address,address,uint256)").hex(), None, recipient],
        },
    )
    return [
        {
            "tx_hash": log["transactionHash"],
            "from": _topic_address(log["topics"][1]),
            "amount": Decimal(int(log["data"], 16)) / UNITS,
        }
        for log in logs
    ]
