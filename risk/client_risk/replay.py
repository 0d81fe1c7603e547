"""What-if replay of client groups over recorded fills: the B-book's P&L under proposed groups against
what actually happened.

The B-book is the counterparty of every INTERNAL fill. Marked to the end of the window, its trading P&L
on a set of fills is ``Σ −side × size × (mark_end − price)`` (round trips cancel the mark: what is left
is the clients' realized P&L with the sign turned, plus the open remainder at the end marks). Under the
proposed groups a client in A would have kept none of their fills on the B-book, a client in B all of
them (a Hyperliquid fill taken internally at the price it got), a HYBRID client what happened. Fees are
left out: the client pays them on either venue."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from risk.client_risk.midhistory import mid_at, mid_series
from routing.client_groups import client_groups_assigned
from routing.decision import ClientGroup
from trading.marketdata import get_quotes
from trading.models import Fill, Source

CENT = Decimal("0.01")
SIDE = {"BUY": 1, "SELL": -1}


@dataclass
class ClientReplay:
    user_id: int
    group: ClientGroup
    fills: int = 0
    actual: Decimal = Decimal(0)
    proposed: Decimal = Decimal(0)


@dataclass
class Replay:
    since: datetime
    until: datetime
    marks: dict[str, Decimal]
    actual: Decimal = Decimal(0)
    proposed: Decimal = Decimal(0)
    clients: dict[int, ClientReplay] = field(default_factory=dict)

    @property
    def difference(self) -> Decimal:
        return self.proposed - self.actual

    def rounded(self) -> Replay:
        """The totals to the cent (each client too)."""
        out = Replay(self.since, self.until, self.marks, _cent(self.actual), _cent(self.proposed))
        for uid, c in self.clients.items():
            out.clients[uid] = ClientReplay(uid, c.group, c.fills, _cent(c.actual), _cent(c.proposed))
        return out


def _cent(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def end_marks(assets: set[str], until: datetime) -> dict[str, Decimal]:
    """Each asset's mid at ``until`` from the mid history, else the current quote's mid."""
    at = until.timestamp()
    marks: dict[str, Decimal] = {}
    for asset in assets:
        mid = mid_at(mid_series(asset, at - 60, at), at, max_age_s=60)
        if mid is not None:
            marks[asset] = mid
    missing = assets - set(marks)
    for asset, quote in get_quotes(sorted(missing)).items():
        if quote.mid is not None:
            marks[asset] = quote.mid
    return marks


def bbook_whatif(
    *,
    since: datetime,
    until: datetime,
    proposed: Mapping[int, ClientGroup] | None = None,
    marks: Mapping[str, Decimal] | None = None,
) -> Replay:
    """Replay the fills in ``[since, until)``. ``proposed`` = each client's group (default: the groups
    assigned now — the classifier's proposal while in SHADOW); ``marks`` = the end marks per asset
    (default :func:`end_marks`). Exact decimals; :meth:`Replay.rounded` for cents."""
    fills = list(
        Fill.objects.filter(created_at__gte=since, created_at__lt=until)
        .order_by("id")
        .values_list("user_id", "asset", "source", "side", "size", "price")
    )
    groups = client_groups_assigned() if proposed is None else proposed
    assets = {f[1] for f in fills}
    prices = dict(marks) if marks is not None else end_marks(assets, until)
    unknown = assets - set(prices)
    if unknown:
        raise ValueError(f"no end mark for {', '.join(sorted(unknown))}")
    result = Replay(since, until, prices)
    per_client: dict[int, ClientReplay] = {}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for user_id, asset, source, side, size, price in fills:
        group = groups.get(user_id, ClientGroup.HYBRID)
        client = per_client.setdefault(user_id, ClientReplay(user_id, group))
        pnl = -SIDE[side] * size * (prices[asset] - price)
        internal = source == Source.INTERNAL
        client.fills += 1
        if internal:
            client.actual += pnl
            totals["actual"] += pnl
        keeps = group is ClientGroup.B or (group is ClientGroup.HYBRID and internal)
        if keeps:
            client.proposed += pnl
            totals["proposed"] += pnl
    result.actual, result.proposed, result.clients = totals["actual"], totals["proposed"], per_client
    return result
