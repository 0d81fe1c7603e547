"""Celery tasks: thin, ids in, call a service, safe to run twice. Beat drives scanning and
processing; all work is claimed from database state, so a killed worker loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from celery import shared_task

from core.periodic import register_periodic
from wallets.chains import ChainUnavailable, nonce_adapter
from wallets.models import Chain, ColdTransfer
from wallets.services.aggregation import aggregation_tick
from wallets.services.chain_txs import chain_txs_replace_stuck
from wallets.services.custody import (
    cold_transfer_send,
    cold_transfer_track,
    hot_wallet_check,
    liquidity_check,
)
from wallets.services.deposits import deposits_scan
from wallets.services.monitoring import withdrawal_monitor
from wallets.services.withdrawal_sending import withdrawal_send, withdrawals_process_due

logger = logging.getLogger(__name__)
DEPOSIT_CHAINS = [Chain.TRON, Chain.ETH, Chain.SOL]
ALL_CHAINS = [*DEPOSIT_CHAINS, Chain.ARBITRUM]


def nonce_chains() -> list[str]:
    """The chains on an EVM node: scanned every second (a credit follows the N-th confirmation within
    seconds) and watched for stuck transactions; the others are scanned every 10 s."""
    return [chain for chain in ALL_CHAINS if nonce_adapter(chain) is not None]


def _each_chain(service: Callable[..., object], chains: Iterable[str]) -> None:
    for chain in chains:
        try:
            service(chain=chain)
        except ChainUnavailable as exc:  # transient: the next beat tick retries
            logger.warning("%s(%s): chain unavailable: %s", service.__name__, chain, exc)


@shared_task(name="wallets.scan_deposits", ignore_result=True)
def scan_deposits_task() -> None:
    _each_chain(deposits_scan, [c for c in DEPOSIT_CHAINS if c not in nonce_chains()])


@shared_task(name="wallets.scan_evm_deposits", ignore_result=True)
def scan_evm_deposits_task() -> None:
    _each_chain(deposits_scan, nonce_chains())


@shared_task(name="wallets.replace_stuck", ignore_result=True)
def replace_stuck_task() -> None:
    _each_chain(chain_txs_replace_stuck, nonce_chains())


@shared_task(name="wallets.process_withdrawals", ignore_result=True)
def process_withdrawals_task() -> None:
    withdrawals_process_due()


@shared_task(name="wallets.withdrawal_send", ignore_result=True)
def withdrawal_send_task(withdrawal_id: int) -> None:
    try:
        withdrawal_send(withdrawal_id=withdrawal_id)
    except ChainUnavailable as exc:
        logger.warning("withdrawal %s: chain unavailable, beat will retry: %s", withdrawal_id, exc)


@shared_task(name="wallets.aggregate", ignore_result=True)
def aggregate_task() -> None:
    _each_chain(aggregation_tick, DEPOSIT_CHAINS)


@shared_task(name="wallets.hot_wallets", ignore_result=True)
def hot_wallets_task() -> None:
    _each_chain(hot_wallet_check, ALL_CHAINS)
    liquidity_check()
    for pk in ColdTransfer.objects.filter(status=ColdTransfer.Status.APPROVED).values_list("pk", flat=True):
        cold_transfer_send_task(pk)
    for pk in ColdTransfer.objects.filter(status=ColdTransfer.Status.SENT).values_list("pk", flat=True):
        try:
            cold_transfer_track(transfer_id=pk)
        except ChainUnavailable as exc:
            logger.warning("cold transfer %s: chain unavailable: %s", pk, exc)


@shared_task(name="wallets.cold_transfer_send", ignore_result=True)
def cold_transfer_send_task(transfer_id: int) -> None:
    try:
        cold_transfer_send(transfer_id=transfer_id)
    except ChainUnavailable as exc:
        logger.warning("cold transfer %s: chain unavailable: %s", transfer_id, exc)


@shared_task(name="wallets.monitor", ignore_result=True)
def monitor_task() -> None:
    withdrawal_monitor()


register_periodic("wallets.scan_deposits", "wallets.scan_deposits", 10, queue="wallets")
register_periodic("wallets.scan_evm_deposits", "wallets.scan_evm_deposits", 1, queue="wallets")
register_periodic("wallets.replace_stuck", "wallets.replace_stuck", 15, queue="wallets")
register_periodic("wallets.process_withdrawals", "wallets.process_withdrawals", 3, queue="wallets")
register_periodic("wallets.aggregate", "wallets.aggregate", 60, queue="wallets")
register_periodic("wallets.hot_wallets", "wallets.hot_wallets", 30, queue="wallets")
register_periodic("wallets.monitor", "wallets.monitor", 60, queue="wallets")
