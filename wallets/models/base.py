"""The wallets' shared vocabulary: chains, ledger account and transfer kinds, the money column."""

from __future__ import annotations

from django.db import models

from core.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS

USDC = "USDC"


def money_field(**kwargs: object) -> models.DecimalField:
    """A money column: the house's digits and decimal places."""
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]


class Chain(models.TextChoices):
    TRON = "TRON", "TRON"
    ETH = "ETH", "Ethereum"
    SOL = "SOL", "Solana"
    ARBITRUM = "ARBITRUM", "Arbitrum"


class AccountKind(models.TextChoices):
    # per user
    CASH = "cash", "Cash (available)"
    ISOLATED_MARGIN = "isolated_margin", "Isolated margin"
    ORDER_HOLD = "order_hold", "Order holds"
    PENDING_WITHDRAWAL = "pending_withdrawal", "Pending withdrawal"
    # platform (identified by these stable codes, plus an optional sub such as "TRON:USDT")
    BBOOK_PNL = "bbook_pnl", "B-book counterparty P&L"
    FEE_REVENUE = "fee_revenue", "Fee revenue"
    RISK_RESERVE = "risk_reserve", "Risk reserve"
    HL_TRADING_CAPITAL = "hl_trading_capital", "HL trading account capital"
    HL_HEDGE_CAPITAL = "hl_hedge_capital", "HL hedge account capital"
    # What the HL accounts paid or received beyond injected capital: users' realized P&L on HL-held
    # positions, HL's own fees, funding (sub = account name). HL account value ≈ capital − hl_pnl.
    HL_PNL = "hl_pnl", "P&L, fees and funding settled on an HL account"
    HOT_WALLET = "hot_wallet", "Hot wallet"
    COLD_WALLET = "cold_wallet", "Cold wallet"
    DEPOSIT_CLEARING = "deposit_clearing", "Deposit clearing"
    WITHDRAWAL_CLEARING = "withdrawal_clearing", "Withdrawal clearing"
    GAS_EXPENSE = "gas_expense", "Gas expense"
    FUNDING_CLEARING = "funding_clearing", "Funding clearing"
    EQUITY = "equity", "Platform equity (capital injections)"
    ADJUSTMENTS = "adjustments", "Manual adjustments"


USER_ACCOUNT_KINDS = frozenset(
    {AccountKind.CASH, AccountKind.ISOLATED_MARGIN, AccountKind.ORDER_HOLD, AccountKind.PENDING_WITHDRAWAL}
)
PLATFORM_ACCOUNT_KINDS = frozenset(set(AccountKind) - USER_ACCOUNT_KINDS)


class TransferKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL_HOLD = "withdrawal_hold", "Withdrawal hold"
    WITHDRAWAL_REFUND = "withdrawal_refund", "Withdrawal refund"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    WITHDRAWAL_FEE = "withdrawal_fee", "Withdrawal fee"
    MARGIN_FREEZE = "margin_freeze", "Margin freeze"
    MARGIN_RELEASE = "margin_release", "Margin release"
    ORDER_HOLD = "order_hold", "Order hold"
    ORDER_RELEASE = "order_release", "Order hold release"
    REALIZED_PNL = "realized_pnl", "Realized P&L"
    TRADING_FEE = "trading_fee", "Trading fee"
    FUNDING = "funding", "Funding"
    LIQUIDATION = "liquidation", "Liquidation"
    RESERVE_ALLOCATION = "reserve_allocation", "Risk reserve allocation"
    DRIFT = "drift", "Drift"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    AGGREGATION = "aggregation", "Aggregation sweep"
    GAS = "gas", "Gas"
    COLD_TRANSFER = "cold_transfer", "Hot/cold transfer"
    CAPITAL = "capital", "Capital injection"
    HEDGE = "hedge", "Hedge P&L"
