"""Demo data (``manage.py seed_demo``): platform capital as ledger transfers, and funded hot wallets
on the simulated chains when they are reachable (skipped quietly otherwise). Idempotent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from django.db import transaction

from wallets.chains import spec
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, Chain, TransferKind
from wallets.services.keys import cold_wallet_key, hot_wallet_key

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


def _fund(url: str, chain: str, address: str, asset: str, amount: Decimal) -> None:
    """Top the address up to ``amount`` (the simulated chains live in memory and may have restarted)."""
    answer = requests.get(f"{url}/{chain}/balance/{address}", params={"asset": asset}, timeout=3)
    answer.raise_for_status()
    missing = amount - Decimal(answer.json()["balance"])
    if missing > 0:
        response = requests.post(
            f"{url}/control/{chain}/fund",
            json={"address": address, "asset": asset, "amount": str(missing)},
            timeout=3,
        )
        response.raise_for_status()


def seed_wallets_demo(command: Any) -> None:
    with transaction.atomic():
        for code, amount in CAPITAL.items():
            _capital(code, amount, f"demo:capital:{code}")
    url = settings.CHAINS_API_URL.rstrip("/")
    try:
        requests.get(f"{url}/", timeout=1).raise_for_status()
    except requests.RequestException:
        command.stdout.write("  wallets: simulated chains not reachable; hot wallets not funded")
        return
    for chain in Chain.values:
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
                    _fund(url, chain, address, asset, amount)
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
            _fund(url, chain, hot.address, native, GAS[chain])
            _fund(url, chain, cold.address, native, GAS[chain])
    command.stdout.write(
        "  wallets: platform capital booked; hot and cold wallets funded on the simulated chains"
    )
