"""The funding mirror's figures (reconciliation dimension ``funding_mirror``, spec 04): for every funding
instant in a window of HL's clock ending at the latest settled one, per asset, Σ mirrored HYPERLIQUID
funding (``FundingSettlement.payment``, the users' signed flow) beside what HL booked for the trading
account (``userFunding``). Every instant of the window is compared on each run, so a payment missing from
an earlier hour is still found after later hours have settled; an instant HL booked that we never
settled shows as mirrored 0. ``risk.reconciliation.check_funding_mirror`` turns the lines into rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from core.money import ZERO
from risk.models import FundingRun, FundingSettlement
from trading.models import Source
from trading.venues.hl import gateway

# the instants compared on each run: this much of HL's clock back from the latest settled instant
MIRROR_WINDOW = timedelta(hours=24)
# HL answers at most this many ``userFunding`` rows per call: a full page is followed by the next
USER_FUNDING_PAGE = 500
# an HL row dated this close to one of our instants belongs to it
MATCH_MS = 60_000


@dataclass(frozen=True)
class MirrorLine:
    asset: str
    at: datetime
    mirrored: Decimal
    hl: Decimal


@dataclass(frozen=True)
class MirrorWindow:
    """The instants compared (oldest, latest; ``None`` before any settled instant) and their lines,
    ordered by asset then instant."""

    first: datetime | None
    latest: datetime | None
    lines: list[MirrorLine]


def _user_funding(gw: Any, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """Every ``userFunding`` row in [start, end], page after page (a page restarts at the last row's
    time, so rows sharing it are not lost; duplicates are dropped by (time, coin))."""
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    while True:
        page = gw.user_funding(start_ms, end_ms)
        for entry in page:
            delta = entry.get("delta", entry)
            seen.setdefault((int(entry["time"]), str(delta.get("coin"))), entry)
        if len(page) < USER_FUNDING_PAGE:
            break
        last = max(int(e["time"]) for e in page)
        if last <= start_ms:
            break
        start_ms = last
    return list(seen.values())


def funding_mirror_window(*, window: timedelta = MIRROR_WINDOW) -> MirrorWindow:
    """The comparison's figures (see the module docstring). Raises when HYPERLIQUID funding was mirrored
    but no HL trading account is configured (unknown is never OK)."""
    latest = FundingRun.objects.filter(status=FundingRun.Status.COMPLETED).order_by("-funding_time").first()
    if latest is None:
        return MirrorWindow(None, None, [])
    end = latest.funding_time
    instants = sorted(
        FundingRun.objects.filter(
            status=FundingRun.Status.COMPLETED, funding_time__gt=end - window, funding_time__lte=end
        ).values_list("funding_time", flat=True)
    )
    first = instants[0]
    mirrored: dict[tuple[str, datetime], Decimal] = {
        (row["asset"], row["funding_time"]): row["total"]
        for row in FundingSettlement.objects.filter(
            source=Source.HYPERLIQUID, funding_time__gte=first, funding_time__lte=end
        )
        .values("asset", "funding_time")
        .annotate(total=Sum("payment"))
        .order_by()
    }
    gw = gateway("trading")
    if gw is None:
        if mirrored:
            raise RuntimeError("HYPERLIQUID funding was mirrored but the trading account is not configured")
        return MirrorWindow(first, end, [])
    by_ms = {int(at.timestamp() * 1000): at for at in instants}
    first_ms, end_ms = min(by_ms), max(by_ms)
    hl: defaultdict[tuple[str, datetime], Decimal] = defaultdict(lambda: ZERO)
    for entry in _user_funding(gw, first_ms - MATCH_MS, end_ms + MATCH_MS):
        delta = entry.get("delta", entry)
        coin, usdc = delta.get("coin"), delta.get("usdc")
        if not coin or usdc is None:
            continue
        t = int(entry["time"])
        nearest = min(by_ms, key=lambda ms: abs(ms - t))
        if abs(nearest - t) <= MATCH_MS:
            at = by_ms[nearest]
        elif first_ms <= t <= end_ms:
            at = datetime.fromtimestamp(t / 1000, tz=UTC)  # an instant HL booked that we never settled
        else:
            continue
        hl[(str(coin), at)] += Decimal(str(usdc))
    lines = [
        MirrorLine(asset, at, mirrored.get((asset, at), ZERO), hl.get((asset, at), ZERO))
        for asset, at in sorted(set(mirrored) | set(hl))
    ]
    return MirrorWindow(first, end, lines)
