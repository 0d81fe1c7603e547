"""Spec 06 — beat-driven processing, monitoring and the demo seeder."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from solders.keypair import Keypair
from tronpy.keys import PrivateKey

from core.alerts.models import Alert
from core.periodic import BEAT_SCHEDULE
from wallets import tasks
from wallets.demo import seed_wallets_demo
from wallets.demo_tron_sol import seed_deposits as seed_tron_sol_deposits
from wallets.ledger import AccountRef, account_balance
from wallets.models import Withdrawal
from wallets.services import deposit_address_get_or_create, deposits_scan, hot_wallet_key, withdrawal_monitor
from wallets.tests.chain_flows import approved_withdrawal
from wallets.tests.conftest import fund, outside_address
from wallets.tests.test_withdrawals import request_and_confirm

pytestmark = pytest.mark.django_db


class _Command:
    def __init__(self) -> None:
        self.stdout = io.StringIO()


def test_beat_drives_scanning_and_processing_on_the_wallets_queue():
    for name, seconds in [("wallets.scan_deposits", 30), ("wallets.process_withdrawals", 10)]:
        entry = BEAT_SCHEDULE[name]
        assert entry["schedule"] <= seconds and entry["options"]["queue"] == "wallets"


def test_the_beat_tasks_credit_a_deposit_with_no_direct_service_call(
    tron, sol, evm, evm_arbitrum, make_trader
):
    user = make_trader()
    address = deposit_address_get_or_create(user=user, chain="ETH").address
    evm.transfer("USDC", address, "75")  # mined at once: its block is the first confirmation
    evm.mine(11)
    tasks.scan_deposits_task()
    tasks.scan_evm_deposits_task()
    tasks.replace_stuck_task()
    tasks.process_withdrawals_task()
    tasks.aggregate_task()
    tasks.hot_wallets_task()
    tasks.monitor_task()
    assert account_balance(AccountRef.user(user.pk, "cash")) == Decimal("75")


def test_tasks_return_quietly_when_the_chains_are_down(settings, make_trader):
    settings.TRON_RPC_URL = settings.SOLANA_RPC_URL = "http://127.0.0.1:9"
    settings.EVM_CHAINS = {
        chain: {**conf, "rpc_url": "http://127.0.0.1:9"} for chain, conf in settings.EVM_CHAINS.items()
    }
    tasks.scan_deposits_task()
    tasks.scan_evm_deposits_task()
    tasks.replace_stuck_task()
    tasks.process_withdrawals_task()
    tasks.withdrawal_send_task(123456)


def test_a_large_pending_queue_raises_an_alert(trader, django_capture_on_commit_callbacks):
    fund(trader, "700000")
    request_and_confirm(trader, "600000", django_capture_on_commit_callbacks)
    report = withdrawal_monitor()
    assert report["queue"] == 1
    assert Alert.objects.filter(rule="wallets.withdrawal_queue", severity="P1").exists()


def test_the_demo_seeder_books_capital_and_funds_hot_wallets_idempotently(tron, sol, evm, evm_arbitrum):
    seed_wallets_demo(_Command())
    sol.mine(2)  # the faucet's tokens show at "confirmed", where the seeder reads balances
    seed_wallets_demo(_Command())
    sol.mine(2)
    assert account_balance(AccountRef.platform("risk_reserve")) == Decimal("1000000")
    # HL capital is booked from HL's own figure once the accounts exist (trading.hl_accounts), not here
    assert account_balance(AccountRef.platform("hl_trading_capital")) == 0
    hot = hot_wallet_key("TRON").address
    assert tron.usdt(hot) == Decimal("750000")  # topped up once
    assert sol.token(hot_wallet_key("SOL").address, "USDC") == Decimal("750000")
    assert evm.token_balance("USDT", hot_wallet_key("ETH").address) == Decimal("750000")  # minted once
    assert evm_arbitrum.token_balance("USDC", hot_wallet_key("ARBITRUM").address) == Decimal("750000")


def test_the_demo_traders_deposits_on_tron_and_solana_are_credited_once(tron, sol, make_trader):
    traders = [make_trader(email=f"trader{i}@demo.xbit.local") for i in range(2)]
    seed_tron_sol_deposits(_Command())
    tron.mine(1)
    sol.mine(2)
    seed_tron_sol_deposits(_Command())  # a second seeding (make run restarted) sends nothing new
    tron.mine(19)
    sol.mine(32)
    deposits_scan(chain="TRON")
    deposits_scan(chain="SOL")
    for index, trader in enumerate(traders, start=1):
        assert [(d.chain, d.asset, d.status) for d in trader.deposits.order_by("chain")] == [
            ("SOL", "USDC", "CREDITED"),
            ("TRON", "USDT", "CREDITED"),
        ]
        assert account_balance(AccountRef.user(trader.pk, "cash")) == 2 * Decimal(500 + 125 * index)
    seed_tron_sol_deposits(_Command())
    tron.mine(19)
    sol.mine(32)
    assert deposits_scan(chain="TRON").credited == 0 and deposits_scan(chain="SOL").credited == 0


def test_on_the_demo_wallets_withdrawals_flow_on_every_chain_and_a_chain_down_holds_only_its_own(
    tron, sol, evm, evm_arbitrum, trader, settings, django_capture_on_commit_callbacks
):
    seed_wallets_demo(_Command())  # the hot wallets of make run's demo, on the four local chains
    sol.mine(2)
    fund(trader, "3000")
    recipients = {
        "SOL": str(Keypair.from_seed((0x501).to_bytes(32, "big")).pubkey()),  # first: the lowest id
        "TRON": PrivateKey((0x7A0).to_bytes(32, "big")).public_key.to_base58check_address(),
        "ETH": outside_address("ETH", "demo-withdrawal"),
    }
    asset = {"SOL": "USDC", "TRON": "USDT", "ETH": "USDT"}
    withdrawals = {
        chain: approved_withdrawal(
            trader, chain, asset[chain], address, "500", django_capture_on_commit_callbacks
        )
        for chain, address in recipients.items()
    }
    tasks.process_withdrawals_task()
    status = {c: Withdrawal.objects.get(pk=w.pk).status for c, w in withdrawals.items()}
    assert status == {"SOL": "BROADCAST", "TRON": "BROADCAST", "ETH": "BROADCAST"}

    solana_url, settings.SOLANA_RPC_URL = settings.SOLANA_RPC_URL, "http://127.0.0.1:9"  # Solana is down
    tron.mine(19)
    evm.mine(11)
    tasks.process_withdrawals_task()
    status = {c: Withdrawal.objects.get(pk=w.pk).status for c, w in withdrawals.items()}
    assert status == {"SOL": "BROADCAST", "TRON": "COMPLETED", "ETH": "COMPLETED"}

    settings.SOLANA_RPC_URL = solana_url  # back
    sol.mine(32)
    tasks.process_withdrawals_task()
    assert {Withdrawal.objects.get(pk=w.pk).status for w in withdrawals.values()} == {"COMPLETED"}
    assert tron.usdt(recipients["TRON"]) == sol.token(recipients["SOL"], "USDC") == Decimal(500)
    assert evm.token_balance("USDT", recipients["ETH"]) == Decimal(500)
    assert account_balance(AccountRef.user(trader.pk, "cash")) == Decimal(1500)
