"""Typed shapes of the trader API's answers. Money, prices and sizes are ``Decimal``.

Every model keeps the fields this client does not know yet in ``extra`` (see ``parsing``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class TokenPair:
    access: str
    refresh: str
    token_type: str
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Me:
    id: int
    email: str | None
    email_verified: bool
    wallet_address: str | None
    kyc_status: str
    trading_restricted: bool
    withdrawals_restricted: bool
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class ApiKeyInfo:
    key_id: str
    label: str
    permissions: list[str]
    ip_allowlist: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    secret: str | None = None  # only in the answer that created the key
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Quote:
    mark: Decimal | None
    oracle: Decimal | None
    mid: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    bid_size: Decimal | None
    ask_size: Decimal | None
    funding_rate: Decimal | None
    premium: Decimal | None
    open_interest: Decimal | None
    mark_age_ms: int | None
    book_age_ms: int | None
    mid_age_ms: int | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Market:
    symbol: str
    sz_decimals: int
    max_leverage: int
    only_isolated: bool
    is_delisted: bool
    trading_state: str
    state_reason: str
    quote: Quote | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class OrderError:
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Order:
    id: int
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    size: Decimal
    limit_price: Decimal | None
    leverage: int | None
    margin_mode: str
    reduce_only: bool
    time_in_force: str
    slippage_bps: int | None
    status: str
    filled_size: Decimal
    avg_fill_price: Decimal | None
    fee_total: Decimal
    position_id: int | None
    error: OrderError | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    replaces: int | None = None  # a modified HYPERLIQUID order: the order this one replaced
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Position:
    id: int
    symbol: str
    direction: str
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    leverage: int
    margin_mode: str
    isolated_margin: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    notional: Decimal
    maintenance_margin: Decimal
    liquidation_price: Decimal | None
    cum_funding_all_time: Decimal
    cum_funding_since_open: Decimal
    opened_at: datetime
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Account:
    equity: Decimal
    cash: Decimal
    order_holds: Decimal
    isolated_margin: Decimal
    cross_margin_used: Decimal
    cross_maintenance_margin: Decimal
    available_to_trade: Decimal
    withdrawable: Decimal
    unrealized_pnl: Decimal
    positions: list[Position]
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class LeverageSetting:
    symbol: str
    margin_mode: str
    leverage: int
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Fill:
    id: int
    order_id: int
    position_id: int | None
    symbol: str
    side: str
    size: Decimal
    price: Decimal
    liquidity: str
    fee: Decimal
    realized_pnl: Decimal
    closed_size: Decimal
    is_liquidation: bool
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class FundingPayment:
    """One funding settlement of one position (``GET /funding``): ``amount`` is signed (negative
    paid, positive received); ``funding_time`` the funding instant it settled."""

    id: int
    symbol: str
    position_id: int
    amount: Decimal
    funding_time: datetime | None
    settled_at: datetime
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class ErrorBody:
    """An error as the API states it (inside a batch result)."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class BulkResult:
    """One entry of a batch (place, cancel, cancel-all): the order, or why not."""

    index: int
    order_id: int | None
    ok: bool
    order: Order | None
    error: ErrorBody | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class CancelAllResult:
    results: list[BulkResult]
    tpsl_cancelled: list[int]
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class ScheduledCancel:
    """The dead-man's switch: every open order is cancelled at ``time`` (epoch ms) unless renewed."""

    time: int | None
    time_iso: datetime | None
    last_fired_at: datetime | None
    fired_count: int
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Tpsl:
    """A take-profit / stop-loss trigger on the mark, attached to a position."""

    id: int
    position_id: int
    symbol: str
    type: str
    side: str
    trigger_price: Decimal
    trigger_above: bool
    size: Decimal | None
    limit_price: Decimal | None
    status: str
    trigger_mark: Decimal | None
    order_id: int | None
    error: OrderError | None
    created_at: datetime
    triggered_at: datetime | None
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class AlgoChild:
    slice: int
    size: Decimal
    scheduled_at: datetime | None
    order_id: int | None
    status: str
    filled_size: Decimal
    avg_fill_price: Decimal | None
    error: OrderError | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class AlgoOrder:
    """A TWAP or size-split parent executed on Hyperliquid as child orders."""

    id: int
    client_order_id: str | None
    type: str
    symbol: str
    side: str
    size: Decimal
    filled_size: Decimal
    remaining_size: Decimal
    avg_price: Decimal | None
    fee_total: Decimal
    children_sent: int
    slices: int | None
    next_slice: int | None
    next_slice_at: datetime | None
    duration_seconds: int | None
    interval_ms: int | None
    randomize: bool
    max_child_size: Decimal | None
    leverage: int | None
    margin_mode: str
    slippage_bps: int | None
    status: str
    error: OrderError | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime
    children: list[AlgoChild] | None = None  # in the detail answer only
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class LedgerBalance:
    kind: str
    sub: str
    asset: str
    balance: Decimal
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Wallet:
    asset: str
    total_balance: Decimal
    available_balance: Decimal
    frozen_margin: Decimal
    cross_margin_used: Decimal
    pending_withdrawal: Decimal
    accounts: list[LedgerBalance]
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class BalanceLog:
    id: int
    type: str
    account_kind: str
    asset: str
    amount: Decimal
    before: Decimal
    after: Decimal
    ref_type: str
    ref_id: str
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class DepositAddress:
    id: int
    chain: str
    address: str
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Deposit:
    id: int
    chain: str
    asset: str
    amount: Decimal
    tx_hash: str
    log_index: int | None
    address: str
    status: str
    confirmations: int
    required_confirmations: int
    created_at: datetime
    credited_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class WithdrawalAddress:
    id: int
    chain: str
    address: str
    label: str
    created_at: datetime
    usable_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Withdrawal:
    id: int
    chain: str
    asset: str
    address: str
    amount: Decimal
    fee: Decimal
    net_amount: Decimal
    status: str
    tier: str | None
    reason_code: str
    reason: str
    tx_hash: str | None
    confirmations: int
    created_at: datetime
    confirmed_at: datetime | None
    broadcast_at: datetime | None
    completed_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Page(Generic[T]):
    """One page of a cursor-paginated list, newest first; pass ``next_cursor`` back for the next one."""

    results: list[T]
    next_cursor: str | None
    previous_cursor: str | None
