"""Block-explorer links for transaction hashes, per chain, from the database (``ExplorerUrl``)."""

from __future__ import annotations

from core.defaults import register
from core.live_config import LiveConfig
from xbit_admin.console.models import ExplorerUrl

DEFAULT_EXPLORERS: dict[str, str] = {
    "ETH": "https://etherscan.io/tx/{tx}",
    "ARBITRUM": "https://arbiscan.io/tx/{tx}",
    "TRON": "https://tronscan.org/#/transaction/{tx}",
    "SOL": "https://solscan.io/tx/{tx}",
}


def _load() -> dict[str, str]:
    return dict(ExplorerUrl.objects.values_list("chain", "url"))


EXPLORERS: LiveConfig[dict[str, str]] = LiveConfig("console_explorers", _load)


@register
def explorers_ensure() -> None:
    for chain, url in DEFAULT_EXPLORERS.items():
        ExplorerUrl.objects.get_or_create(chain=chain, defaults={"url": url})


def explorer_url(chain: str, tx: str) -> str | None:
    """The explorer page of ``tx`` on ``chain``, or None when no explorer is configured."""
    if not tx:
        return None
    try:
        template = EXPLORERS.get().get((chain or "").upper())
    except Exception:  # a database without the table yet (migrating): no link, never an error
        return None
    return template.replace("{tx}", tx) if template else None
