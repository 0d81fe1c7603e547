"""Demo data (``manage.py seed_demo``): platform capital as ledger transfers, funded hot and cold wallets
— on the local anvil nodes for ETH/Arbitrum (tokens minted by the contracts' owner, gas by
``anvil_setBalance``), on the TRON and Solana stand-ins through their control APIs
(``wallets.demo_tron_sol``) — when they are reachable (skipped quietly otherwise), and the first demo
traders' deposits: real ERC-20 transfers to their ETH deposit addresses from their own outside wallets,
credited by the scanner after 12 blocks, and signed USDT/USDC transfers to their TRON and Solana
deposit addresses, credited after 19 blocks and at finalized. Idempotent."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_utils import keccak, to_checksum_address

from core.accounts.management.commands.seed_demo import DEMO_SEEDERS
from core.accounts.models import User
from wallets import demo_tron_sol
from wallets.chains import adapter_kind, spec
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, Chain, TransferKind
from wallets.services.keys import cold_wallet_key, deposit_address_get_or_create, hot_wallet_key

logger = logging.getLogger(__name__)

# HL accounts' capital is booked from what HL holds once their agents exist (trading.hl_accounts)
CAPITAL = {
    # above the reserve breaker's normal level (500,000): the first loss it absorbs must not warn
    AccountKind.RISK_RESERVE: Decimal(1_000_000),
}
HOT_FUNDING = Decimal(750_000)
COLD_FUNDING = Decimal(5_000_000)
GAS = {"TRON": Decimal(100_000), "ETH": Decimal(50), "SOL": Decimal(500), "ARBITRUM": Decimal(10)}


def _capital(code: str, amount: Decimal, key: str, *, sub: str = "", asset: str = "USDC") -> None:
    ledger_post(
        key=key,
        transfers=[
            TransferSpec(
                debit=AccountRef.platform(AccountKind.EQUITY, asset=asset),
                credit=AccountRef.platform(code, sub=sub, asset=asset),
                amount=amount,
                kind=TransferKind.CAPITAL,
                ref_type="demo",
                ref_id=code,
            )
        ],
    )


# The local anvil nodes' well-known dev accounts (public keys of anvil's default mnemonic): account 0
# deployed the token contracts and may mint; accounts 1.. stand for the demo traders' own wallets.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEMO_DEPOSITORS = 6


def _anvil_key(index: int) -> bytes:
    return key_from_seed(seed_from_mnemonic(ANVIL_MNEMONIC, ""), f"m/44'/60'/0'/0/{index}")


def _evm_conf(chain: str) -> dict[str, Any]:
    conf: dict[str, Any] = settings.EVM_CHAINS[chain]
    return conf


def _evm_rpc(chain: str, method: str, *params: Any) -> Any:
    url = _evm_conf(chain)["rpc_url"]
    body = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10
    )
    answer = body.json()
    if "error" in answer:
        raise RuntimeError(f"{chain} {method}: {answer['error']}")
    return answer.get("result")


_nonces: dict[tuple[str, str], int] = {}
_pending: list[tuple[str, str]] = []  # (chain, tx hash) sent and not yet waited for


def _evm_send(chain: str, key: bytes, asset: str, signature: str, *words: bytes) -> str:
    """A token contract call signed by ``key`` (EIP-1559), sent without waiting: each sender's nonces
    are counted here, so several calls go into the same block (:func:`_evm_settle` waits for them).
    Waiting for each call's block made the demo seed most of a first ``make run``'s start-up."""
    conf = _evm_conf(chain)
    sender = Account.from_key(key).address
    base = int(_evm_rpc(chain, "eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    nonce = _nonces.get((chain, sender))
    if nonce is None:
        nonce = int(_evm_rpc(chain, "eth_getTransactionCount", sender, "pending"), 16)
    _nonces[(chain, sender)] = nonce + 1
    tx = {
        "type": 2,
        "chainId": int(conf["chain_id"]),
        "nonce": nonce,
        "to": to_checksum_address(conf["tokens"][asset]),
        "value": 0,
        "data": "0x" + (keccak(text=signature)[:4] + b"".join(words)).hex(),
        "gas": 120_000,
        "maxFeePerGas": 3 * base + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    signed = Account.sign_transaction(tx, key)
    tx_hash = str(_evm_rpc(chain, "eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex()))
    _pending.append((chain, tx_hash))
    return tx_hash


def _evm_settle() -> None:
    """Wait until every call sent is mined (30 s at most); a reverted one is said, not hidden."""
    deadline = time.monotonic() + 30
    while _pending and time.monotonic() < deadline:
        chain, tx_hash = _pending[0]
        receipt = _evm_rpc(chain, "eth_getTransactionReceipt", tx_hash)
        if not receipt:
            time.sleep(0.1)
            continue
        _pending.pop(0)
        if int(receipt.get("status", "0x1"), 16) != 1:
            logger.warning("demo: %s call %s reverted", chain, tx_hash)
    _pending.clear()
    _nonces.clear()  # the next seed reads them again (the node may have restarted)


def _word_address(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(to_checksum_address(address)[2:])


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _evm_ready(chain: str) -> bool:
    """The node answers and the token contracts are deployed (the node process deploys them at start)."""
    for _ in range(100):
        try:
            if all(
                _evm_rpc(chain, "eth_getCode", a, "latest") not in (None, "0x")
                for a in _evm_conf(chain)["tokens"].values()
            ):
                return True
        except (requests.RequestException, RuntimeError, ValueError):
            pass
        time.sleep(0.3)
    return False


def _evm_fund(chain: str, address: str, asset: str, amount: Decimal) -> None:
    if asset == spec.NATIVE[chain]:
        have = Decimal(int(_evm_rpc(chain, "eth_getBalance", address, "latest"), 16)) / Decimal(10**18)
        if have < amount:
            _evm_rpc(chain, "anvil_setBalance", address, hex(int(amount * 10**18)))
        return
    have = _token_balance(chain, address, asset)
    if have < amount:
        units = int((amount - have) * 10**spec.TOKEN_DECIMALS)
        _evm_send(chain, _anvil_key(0), asset, "mint(address,uint256)", _word_address(address), _word(units))


def _token_balance(chain: str, address: str, asset: str) -> Decimal:
    data = "0x" + (keccak(text="balanceOf(address)")[:4] + _word_address(address)).hex()
    token = _evm_conf(chain)["tokens"][asset]
    return Decimal(
        int(_evm_rpc(chain, "eth_call", {"to": token, "data": data}, "latest") or "0x0", 16)
    ) / Decimal(10**spec.TOKEN_DECIMALS)


def _fund(chain: str, address: str, asset: str, amount: Decimal) -> None:
    """Top the address up to ``amount`` (the local chains may have restarted without their state)."""
    if adapter_kind(chain) == "evm":
        _evm_fund(chain, address, asset, amount)
    else:
        demo_tron_sol.top_up(chain, address, asset, amount)


def seed_wallets_demo(command: Any) -> None:
    with transaction.atomic():
        for code, amount in CAPITAL.items():
            _capital(code, amount, f"demo:capital:{code}")
    for chain in Chain.values:
        if adapter_kind(chain) == "evm" and not _evm_ready(chain):
            command.stdout.write(f"  wallets: the {chain} node is not reachable; its wallets not funded")
            continue
        if adapter_kind(chain) in ("tron", "solana") and not demo_tron_sol.reachable(chain):
            command.stdout.write(f"  wallets: the {chain} stand-in is not reachable; its wallets not funded")
            continue
        hot, cold = hot_wallet_key(chain), cold_wallet_key(chain)
        native = spec.NATIVE[chain]
        for asset in spec.TOKENS[chain]:
            sub = spec.custody_sub(chain, asset)
            # Custody accounts hold the negative of what is on chain: equity -> hot is booked as
            # hot_wallet debited (holding) and equity credited (owners' capital).
            with transaction.atomic():
                for kind, amount, address in (
                    (AccountKind.HOT_WALLET, HOT_FUNDING, hot.address),
                    (AccountKind.COLD_WALLET, COLD_FUNDING, cold.address),
                ):
                    ledger_post(
                        key=f"demo:{kind}:{sub}",
                        transfers=[
                            TransferSpec(
                                debit=AccountRef.platform(kind, sub=sub),
                                credit=AccountRef.platform(AccountKind.EQUITY),
                                amount=amount,
                                kind=TransferKind.CAPITAL,
                                ref_type="demo",
                                ref_id=sub,
                            )
                        ],
                    )
                    _fund(chain, address, asset, amount)
        with transaction.atomic():
            ledger_post(
                key=f"demo:gas:{chain}",
                transfers=[
                    TransferSpec(
                        debit=AccountRef.platform(
                            AccountKind.HOT_WALLET, sub=spec.custody_sub(chain, native), asset=native
                        ),
                        credit=AccountRef.platform(AccountKind.EQUITY, asset=native),
                        amount=GAS[chain],
                        kind=TransferKind.CAPITAL,
                        ref_type="demo",
                        ref_id=chain,
                    )
                ],
            )
            _fund(chain, hot.address, native, GAS[chain])
            _fund(chain, cold.address, native, GAS[chain])
    _evm_settle()
    command.stdout.write(
        "  wallets: platform capital booked; hot and cold wallets funded on the local chains"
    )
    # after the other seeders (the demo traders are created by trading's, which comes later)
    if seed_demo_deposits not in DEMO_SEEDERS:
        DEMO_SEEDERS.append(seed_demo_deposits)
    if demo_tron_sol.seed_deposits not in DEMO_SEEDERS:
        DEMO_SEEDERS.append(demo_tron_sol.seed_deposits)


def seed_demo_deposits(command: Any) -> None:
    """The first demo traders deposit USDT on ETH from their own wallets (anvil dev accounts 1..6):
    real ERC-20 transfers the scanner credits after 12 confirmations. Once per trader."""
    if adapter_kind(Chain.ETH) != "evm" or not _evm_ready(Chain.ETH):
        return
    traders = User.objects.filter(email__endswith="@demo.xbit.local", is_staff=False).order_by("email")
    transfers: list[tuple[bytes, str, int]] = []
    for index, user in enumerate(traders[:DEMO_DEPOSITORS], start=1):
        address = deposit_address_get_or_create(user=user, chain=Chain.ETH).address
        if _token_balance(Chain.ETH, address, "USDT") > 0 or user.deposits.exists():
            continue
        key = _anvil_key(index)
        amount = Decimal(1_000 + 250 * index)
        units = int(amount * 10**spec.TOKEN_DECIMALS)
        wallet = Account.from_key(key).address
        _evm_send(
            Chain.ETH, _anvil_key(0), "USDT", "mint(address,uint256)", _word_address(wallet), _word(units)
        )
        transfers.append((key, address, units))
    _evm_settle()  # every trader's wallet holds its USDT before any of them sends
    for key, address, units in transfers:
        _evm_send(Chain.ETH, key, "USDT", "transfer(address,uint256)", _word_address(address), _word(units))
    _evm_settle()
    sent = len(transfers)
    if sent:
        command.stdout.write(f"  wallets: {sent} demo traders sent USDT deposits on the local ETH node")
