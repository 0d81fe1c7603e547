"""Demo data on the local TRON and Solana stand-ins (``make run``; sandbox/tron, sandbox/solana): hot and
cold wallets topped up through their control APIs (balances read through the adapters, i.e. the chains'
own protocols), and the first demo traders' deposits. Skipped quietly when the stand-ins are not
reachable (a real node has no faucet)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import requests
from django.conf import settings

from core.accounts.models import User
from wallets.chains import ChainUnavailable, adapter_for, adapter_kind
from wallets.chains.solana import MINTS
from wallets.services.keys import deposit_address_get_or_create

UNITS = {"TRX": Decimal(10**6), "USDT": Decimal(10**6), "USDC": Decimal(10**6), "SOL": Decimal(10**9)}


def _control(chain: str) -> str:
    url = settings.TRON_RPC_URL if chain == "TRON" else settings.SOLANA_RPC_URL
    return url.rstrip("/") + "/control"


def reachable(chain: str) -> bool:
    try:
        requests.get(_control(chain) + "/state", timeout=2).raise_for_status()
    except requests.RequestException:
        return False
    return True


def top_up(chain: str, address: str, asset: str, amount: Decimal) -> None:
    """Fund ``address`` so that it holds ``amount`` of ``asset`` (faucet of the stand-in)."""
    try:
        missing = amount - adapter_for(chain).balance(chain, address, asset)
    except ChainUnavailable:
        return
    if missing <= 0:
        return
    raw = int(missing * UNITS[asset])
    if chain == "TRON":
        body: dict[str, object] = {"address": address, "amount": raw, "asset": asset}
    elif asset == "SOL":
        body = {"address": address, "lamports": raw}
    else:
        body = {"address": address, "mint": str(MINTS[asset]), "amount": raw}
    requests.post(_control(chain) + "/fund", json=body, timeout=5).raise_for_status()


DEMO_DEPOSITORS = 6
DEMO_DEPOSITS = {"TRON": "USDT", "SOL": "USDC"}


def _holds(chain: str, address: str, asset: str) -> bool:
    try:
        return adapter_for(chain).balance(chain, address, asset) > 0
    except ChainUnavailable:
        return True  # cannot tell: send nothing rather than twice


def seed_deposits(command: Any) -> None:
    """The first demo traders receive a deposit on TRON (USDT) and Solana (USDC) from an outside holder
    of the stand-in: real signed transfers that the scanner credits after 19 blocks / at finalized.
    Once per trader and chain."""
    traders = User.objects.filter(email__endswith="@demo.xbit.local", is_staff=False).order_by("email")
    for chain, asset in DEMO_DEPOSITS.items():
        if adapter_kind(chain) not in ("tron", "solana") or not reachable(chain):
            continue
        sent = 0
        for index, user in enumerate(traders[:DEMO_DEPOSITORS], start=1):
            address = deposit_address_get_or_create(user=user, chain=chain).address
            if user.deposits.filter(chain=chain).exists() or _holds(chain, address, asset):
                continue  # sent before (credited, or on chain and not yet scanned)
            units = int(Decimal(500 + 125 * index) * UNITS[asset])
            body: dict[str, object] = {"to": address, "amount": units}
            if chain == "SOL":
                body["mint"] = asset
            requests.post(_control(chain) + "/deposit", json=body, timeout=5).raise_for_status()
            sent += 1
        if sent:
            command.stdout.write(f"  wallets: {sent} demo traders sent {asset} deposits on the local {chain}")
