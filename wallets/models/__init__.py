"""Money: the double-entry ledger, custody (keys, deposit addresses, hot/cold wallets), deposits,
aggregation sweeps and withdrawals (spec 06).

Sign convention of the ledger (see ``wallets.ledger``): a transfer moves ``amount`` out of its
``debit`` account into its ``credit`` account, so Σ of all balances per asset is always 0. User
accounts are liabilities and never negative (CHECK constraint). Custody accounts (deposit clearing,
hot and cold wallets) hold the opposite sign: ``-balance`` is what the platform holds on chain.
"""

from wallets.models.base import (
    PLATFORM_ACCOUNT_KINDS,
    USDC,
    USER_ACCOUNT_KINDS,
    AccountKind,
    Chain,
    TransferKind,
)
from wallets.models.chain_txs import ChainNonce, ChainTx
from wallets.models.custody import (
    Aggregation,
    ChainConfig,
    ChainState,
    Deposit,
    DepositAddress,
    WalletConfig,
    WalletKey,
)
from wallets.models.ledger import (
    BalanceAdjustment,
    BalanceLog,
    LedgerAccount,
    LedgerBatch,
    LedgerTransfer,
    Wallet,
)
from wallets.models.withdrawals import (
    BlacklistedAddress,
    ColdTransfer,
    UserWalletSettings,
    Withdrawal,
    WithdrawalAddress,
    WithdrawalApproval,
)

__all__ = [
    "PLATFORM_ACCOUNT_KINDS",
    "USDC",
    "USER_ACCOUNT_KINDS",
    "AccountKind",
    "Aggregation",
    "BalanceAdjustment",
    "BalanceLog",
    "BlacklistedAddress",
    "Chain",
    "ChainConfig",
    "ChainNonce",
    "ChainState",
    "ChainTx",
    "ColdTransfer",
    "Deposit",
    "DepositAddress",
    "LedgerAccount",
    "LedgerBatch",
    "LedgerTransfer",
    "TransferKind",
    "UserWalletSettings",
    "Wallet",
    "WalletConfig",
    "WalletKey",
    "Withdrawal",
    "WithdrawalAddress",
    "WithdrawalApproval",
]
