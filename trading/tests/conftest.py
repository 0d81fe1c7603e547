"""Trading fixtures: markets synced from the sandbox's own ``meta`` (once per session), quotes set in
our market-data cache with the writer the feed uses, and funded traders."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.request import Request, urlopen

import pytest

from sandbox.testing import SandboxProcess
from trading.tests.hl_venue import sandbox_url, venue  # noqa: F401 - the simulated HL for these tests


@pytest.fixture(scope="session")
def hl_meta() -> Iterator[dict[str, Any]]:
    """The simulator's ``meta`` fetched once over HTTP, exactly as HL serves it."""
    with SandboxProcess(seed=7) as sb:
        request = Request(  # noqa: S310 - loopback sandbox
            sb.urls["hyperliquid"] + "/info",
            data=json.dumps({"type": "meta"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urlopen(request, timeout=10) as response:  # noqa: S310 - loopback sandbox
            yield json.loads(response.read())


@pytest.fixture
def markets(db: Any, hl_meta: dict[str, Any]) -> None:
    from trading.markets import markets_sync

    markets_sync(meta=hl_meta)


@pytest.fixture
def set_quote(markets: None) -> Callable[..., None]:
    """Publish a quote for an asset: mark, and a book of ``spread`` around it (mark ± spread/2)."""
    from trading.marketdata import quote_delete, quote_update

    touched: list[str] = []

    def _set(
        asset: str, mark: str, *, bid: str | None = None, ask: str | None = None, oracle: str | None = None
    ) -> None:
        m = Decimal(mark)
        quote_update(
            asset,
            mark=m,
            oracle=Decimal(oracle) if oracle else m,
            mid=m,
            bid=Decimal(bid) if bid else m - Decimal(1),
            ask=Decimal(ask) if ask else m + Decimal(1),
            bid_size=Decimal(100),
            ask_size=Decimal(100),
            funding_rate=Decimal("0.0000125"),
        )
        touched.append(asset)

    yield _set  # type: ignore[misc]
    quote_delete(touched)


@pytest.fixture
def internalization_on(db: Any) -> None:
    from routing.services import routing_config_update

    routing_config_update(
        asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="tests"
    )


@pytest.fixture
def fund(db: Any) -> Callable[[Any, str], None]:
    """Credit a trader's cash as a confirmed deposit would (deposit clearing → cash)."""
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind

    counter = iter(range(1, 10**9))

    def _fund(user: Any, amount: str) -> None:
        ledger_post(
            key=f"test-fund:{user.pk}:{next(counter)}",
            transfers=[
                TransferSpec(
                    AccountRef.platform(AccountKind.DEPOSIT_CLEARING),
                    AccountRef.user(user.pk, AccountKind.CASH),
                    Decimal(amount),
                    TransferKind.DEPOSIT,
                    "test",
                    user.pk,
                )
            ],
        )

    return _fund


@pytest.fixture
def trader(make_trader: Any, fund: Callable[[Any, str], None]) -> Any:
    user = make_trader()
    fund(user, "100000")
    return user
