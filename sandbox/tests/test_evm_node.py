"""The local EVM nodes (sandbox/evm): anvil with our ERC-20 contracts at their fixed addresses, the
compiled artefact matching its Solidity source, the chain control the wallets' tests rely on."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox.evm import compile as token_compile
from sandbox.evm.node import DEPLOYER, TOKENS, USDC_ADDRESS, USDT_ADDRESS, AnvilNode

OUTSIDE = "0x000000000000000000000000000000000000dEaD"


def test_the_checked_in_token_bytecode_is_what_solc_js_compiles_from_the_source():
    if not token_compile.SOLCJS.exists():
        pytest.skip("solc-js not installed (make evm)")
    assert token_compile.main(["--check"]) == 0


def test_anvil_starts_with_usdt_and_usdc_at_fixed_addresses_and_drives_blocks():
    with AnvilNode(chain_id=42161) as node:
        assert int(node.rpc("eth_chainId"), 16) == 42161
        assert TOKENS == {"USDT": USDT_ADDRESS, "USDC": USDC_ADDRESS}
        for address in TOKENS.values():
            assert node.rpc("eth_getCode", address, "latest") not in (None, "0x")
        node.deploy_tokens()  # idempotent: already there
        assert node.nonce(DEPLOYER) == 2

        tx = node.transfer("USDC", OUTSIDE, "12.345678")
        assert node.token_balance("USDC", OUTSIDE) == Decimal("12.345678")
        block = int(node.receipt(tx)["blockNumber"], 16)
        assert node.mine(5) == block + 5

        node.reorg(6)  # the transfer's block is replaced: the transfer is gone
        assert node.receipt(tx) is None and node.token_balance("USDC", OUTSIDE) == 0

        node.set_balance(OUTSIDE, "1.5")
        assert node.eth_balance(OUTSIDE) == Decimal("1.5")
        node.batch_transfer("USDT", [OUTSIDE] * 3, "2")
        assert node.token_balance("USDT", OUTSIDE) == Decimal("6")
