"""XBIT's Python client: the trader REST API (sync ``Client``, asyncio ``AsyncClient``) and the user and
market streams (``UserStream``, ``MarketStream``). Its own package: it imports no Django and nothing of
the server, only httpx and websockets."""

from xbit_client.aio import AsyncClient
from xbit_client.errors import XbitApiError, XbitError, XbitStreamError, XbitTransportError
from xbit_client.models import (
    Account,
    ApiKeyInfo,
    BalanceLog,
    Deposit,
    DepositAddress,
    Fill,
    FundingPayment,
    LeverageSetting,
    Market,
    Me,
    Order,
    OrderError,
    Page,
    Position,
    Quote,
    TokenPair,
    Wallet,
    Withdrawal,
    WithdrawalAddress,
)
from xbit_client.sync import Client

__all__ = [
    "Account",
    "ApiKeyInfo",
    "AsyncClient",
    "BalanceLog",
    "Client",
    "Deposit",
    "DepositAddress",
    "Fill",
    "FundingPayment",
    "LeverageSetting",
    "Market",
    "Me",
    "Order",
    "OrderError",
    "Page",
    "Position",
    "Quote",
    "TokenPair",
    "Wallet",
    "Withdrawal",
    "WithdrawalAddress",
    "XbitApiError",
    "XbitError",
    "XbitStreamError",
    "XbitTransportError",
]
