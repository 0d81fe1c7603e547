"""Extension points other rooms fill in without ``wallets`` importing them.

Trading registers the cross margin each user currently uses (it owns the margin math)::

    from wallets.hooks import register_cross_margin_provider
    register_cross_margin_provider(lambda user_ids: {uid: Decimal(...) for uid in user_ids})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

CrossMarginProvider = Callable[[list[int]], dict[int, Decimal]]
_providers: list[CrossMarginProvider] = []


def register_cross_margin_provider(provider: CrossMarginProvider) -> None:
    if provider not in _providers:
        _providers.append(provider)


def unregister_cross_margin_provider(provider: CrossMarginProvider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def cross_margin_used(user_ids: Iterable[int]) -> dict[int, Decimal]:
    ids = list(user_ids)
    total = dict.fromkeys(ids, Decimal(0))
    for provider in _providers:
        for user_id, amount in provider(ids).items():
            if user_id in total:
                total[user_id] += amount
    return total


# Trading registers what a user may withdraw (spec 03: never unrealized profit, never the margin that
# open cross positions use). Without a provider the cash balance is the limit.
WithdrawableProvider = Callable[[int], Decimal]
_withdrawable: list[WithdrawableProvider] = []


def register_withdrawable_provider(provider: WithdrawableProvider) -> None:
    if provider not in _withdrawable:
        _withdrawable.append(provider)


def withdrawable_limit(user_id: int) -> Decimal | None:
    """The smallest limit any provider imposes, or None when no provider is registered."""
    limits = [provider(user_id) for provider in _withdrawable]
    return min(limits) if limits else None
