"""Writes of the wallets app (house style: keyword-only, one transaction each). The ledger API
itself is ``wallets.ledger``; these services build on it."""

from wallets.services.adjustments import adjustment_decide, adjustment_request
from wallets.services.aggregation import (
    aggregation_advance,
    aggregation_plan,
    aggregation_tick,
    aggregation_trigger,
)
from wallets.services.custody import (
    cold_topup_decide,
    cold_topup_propose,
    cold_transfer_send,
    cold_transfer_track,
    hot_wallet_check,
    liquidity_check,
)
from wallets.services.deposits import deposit_credit, deposit_review, deposits_scan
from wallets.services.keys import deposit_address_get_or_create, hot_wallet_key
from wallets.services.monitoring import withdrawal_monitor
from wallets.services.withdrawal_addresses import (
    withdrawal_address_add,
    withdrawal_address_remove,
    withdrawal_whitelist_set,
)
from wallets.services.withdrawal_sending import (
    withdrawal_broadcast,
    withdrawal_send,
    withdrawal_track,
    withdrawals_process_due,
)
from wallets.services.withdrawals import (
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_confirm,
    withdrawal_reject,
    withdrawal_request,
)

__all__ = [
    "adjustment_decide",
    "adjustment_request",
    "aggregation_advance",
    "aggregation_plan",
    "aggregation_tick",
    "aggregation_trigger",
    "cold_topup_decide",
    "cold_topup_propose",
    "cold_transfer_send",
    "cold_transfer_track",
    "deposit_address_get_or_create",
    "deposit_credit",
    "deposit_review",
    "deposits_scan",
    "hot_wallet_check",
    "hot_wallet_key",
    "liquidity_check",
    "withdrawal_address_add",
    "withdrawal_address_remove",
    "withdrawal_approve",
    "withdrawal_broadcast",
    "withdrawal_cancel",
    "withdrawal_confirm",
    "withdrawal_monitor",
    "withdrawal_reject",
    "withdrawal_request",
    "withdrawal_send",
    "withdrawal_track",
    "withdrawal_whitelist_set",
    "withdrawals_process_due",
]
