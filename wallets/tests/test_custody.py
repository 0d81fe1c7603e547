"""Spec 06 — aggregation sweeps, hot wallet levels, liquidity coverage, cold-wallet top-ups, config."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.accounts.roles import Role
from core.alerts.models import Alert
from core.audit.models import AuditEntry
from core.errors import ApplicationError, ErrorCode
from wallets.chains import hd_tron_sol
from wallets.config import chain_config, chain_config_update
from wallets.ledger import AccountRef, account_balance
from wallets.models import Aggregation, ChainState, ColdTransfer, Deposit, WalletKey
from wallets.services import (
    aggregation_tick,
    cold_topup_decide,
    cold_transfer_track,
    deposit_address_get_or_create,
    deposits_scan,
    hot_wallet_check,
    liquidity_check,
)
from wallets.services.keys import cold_wallet_key
from wallets.tests.conftest import fund, fund_hot_wallet

pytestmark = pytest.mark.django_db


def test_a_deposit_above_the_threshold_is_swept_to_the_hot_wallet_with_gas_booked(tron, make_trader):
    user = make_trader()
    hot = fund_hot_wallet(tron, "TRON", "USDT", "1", gas="1000")
    address = deposit_address_get_or_create(user=user, chain="TRON").address
    tron.deposit(address, "2500")
    tron.mine(19)
    deposits_scan(chain="TRON")

    aggregation_tick(chain="TRON")  # threshold (1,000) exceeded; the address has no TRX: gas first
    sweep = Aggregation.objects.get(from_address=address)
    assert (sweep.status, sweep.amount, sweep.to_address, sweep.trigger) == (
        "GAS_SENT",
        Decimal("2500"),
        hot,
        "threshold",
    )
    tron.mine(19)  # the TRX top-up confirmed
    aggregation_tick(chain="TRON")
    sweep.refresh_from_db()
    assert sweep.status == "SENT" and sweep.tx_hash
    tron.mine(19)
    aggregation_tick(chain="TRON")
    sweep.refresh_from_db()
    assert sweep.status == "CONFIRMED" and sweep.gas_used > 0 and sweep.gas_asset == "TRX"
    assert Deposit.objects.get(user=user).aggregation_id == sweep.pk

    assert tron.usdt(hot) == Decimal("2501") and tron.usdt(address) == 0
    assert account_balance(AccountRef.platform("deposit_clearing", sub="TRON:USDT")) == 0
    assert account_balance(AccountRef.platform("hot_wallet", sub="TRON:USDT")) == Decimal("-2500")
    assert account_balance(AccountRef.platform("gas_expense", sub="TRON", asset="TRX")) == -sweep.gas_used
    aggregation_tick(chain="TRON")  # nothing left: no new sweep
    assert Aggregation.objects.filter(from_address=address).count() == 1


def test_the_scheduled_sweep_takes_addresses_below_the_threshold(evm, make_trader):
    user = make_trader()
    fund_hot_wallet(evm, "ETH", "USDT", "1", gas="10")
    address = deposit_address_get_or_create(user=user, chain="ETH").address
    evm.transfer("USDT", address, "50")  # mined at once: its block is the first confirmation
    evm.mine(11)
    deposits_scan(chain="ETH")
    ChainState.objects.filter(chain="ETH").update(last_scheduled_sweep_at=None)
    aggregation_tick(chain="ETH")
    assert Aggregation.objects.get(from_address=address).trigger == "schedule"


def test_hot_wallet_levels_raise_and_resolve_alerts(sol):
    fund_hot_wallet(sol, "SOL", "USDC", "300000")
    assert hot_wallet_check(chain="SOL").hot_level == "warning"
    assert Alert.objects.filter(rule="wallets.hot_wallet_warning", subject="SOL", state="open").exists()
    fund_hot_wallet(sol, "SOL", "USDT", "300000")
    assert hot_wallet_check(chain="SOL").hot_level == "safe"
    assert not Alert.objects.filter(rule="wallets.hot_wallet_warning", subject="SOL", state="open").exists()


def test_a_critical_hot_wallet_proposes_a_cold_top_up_that_a_risk_officer_approves(
    evm, make_staff, make_trader
):
    fund_hot_wallet(evm, "ETH", "USDT", "50000")
    cold = cold_wallet_key("ETH")
    evm.mint("USDT", cold.address, "5000000")
    evm.set_balance(cold.address, "1")
    hot_wallet_check(chain="ETH")
    proposal = ColdTransfer.objects.get(chain="ETH", direction="to_hot")
    assert (proposal.status, proposal.amount) == ("PROPOSED", Decimal("1200000"))
    hot_wallet_check(chain="ETH")  # no second proposal while one is open
    assert ColdTransfer.objects.filter(chain="ETH", direction="to_hot").count() == 1

    with pytest.raises(ApplicationError) as err:
        cold_topup_decide(transfer_id=proposal.pk, acting_user=make_staff(Role.OPERATIONS), approve=True)
    assert err.value.code == ErrorCode.PERMISSION_DENIED
    cold_topup_decide(transfer_id=proposal.pk, acting_user=make_staff(Role.RISK_MANAGER), approve=True)
    from wallets.services import cold_transfer_send

    cold_transfer_send(transfer_id=proposal.pk)
    cold_transfer_send(transfer_id=proposal.pk)  # a repeat sends nothing new
    evm.mine(11)  # mined at once: its block is the first of the 12 confirmations
    cold_transfer_track(transfer_id=proposal.pk)
    proposal.refresh_from_db()
    assert proposal.status == "CONFIRMED"
    assert hot_wallet_check(chain="ETH").hot_level == "safe"
    assert account_balance(AccountRef.platform("cold_wallet", sub="ETH:USDT")) == Decimal("1200000")
    assert account_balance(AccountRef.platform("hot_wallet", sub="ETH:USDT")) == Decimal("-1200000")


def test_liquidity_coverage_below_30_percent_alerts(evm_arbitrum, make_trader):
    user = make_trader()
    fund(user, "1000000")
    fund_hot_wallet(evm_arbitrum, "ARBITRUM", "USDC", "100000")
    hot_wallet_check(chain="ARBITRUM")
    coverage = liquidity_check()
    assert coverage is not None and coverage < Decimal("0.3")
    assert Alert.objects.filter(rule="wallets.liquidity_coverage").exists()


def test_operators_change_confirmations_at_run_time_and_the_change_is_audited(make_staff):
    admin = make_staff(Role.SUPER_ADMIN)
    chain_config_update(
        chain="TRON", changes={"confirmations": 25}, acting_user=admin, reason="exchange advisory"
    )
    assert chain_config("TRON").confirmations == 25
    entry = AuditEntry.objects.get(action="wallets.chain_config.update")
    assert (entry.before, entry.after, entry.reason) == (
        {"confirmations": 19},
        {"confirmations": 25},
        "exchange advisory",
    )


def test_keys_are_never_at_rest_and_never_printed(sol):
    fund_hot_wallet(sol, "SOL", "USDC", "1")
    key = WalletKey.objects.get(chain="SOL", purpose="hot")
    # every chain's keys come from the HD seed: only the derivation path is stored (SLIP-0010 here)
    assert key.hd_path == "m/44'/501'/0'/1'/0'" and key.private_key_encrypted == ""
    secret = hd_tron_sol.private_key(key.hd_path).hex()
    assert secret not in repr(key) and secret not in str(key)
