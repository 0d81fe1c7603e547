"""B-book P&L attribution per asset and UTC day: where the internal book's money came from.

For one asset and day, with ``M₀`` / ``M₁`` the marks at the day's start and end, ``N₀`` the clients' net
internal size at the start (long +) and each INTERNAL fill ``(side, size, price)`` with HL's mid at the
fill ``m``:

* trading P&L = −[N₀ (M₁ − M₀) + Σ side × size × (M₁ − price)]  (the book is the clients' counterparty)
* **spread capture** = Σ side × size × (price − m)  (what clients paid over HL's mid; 0 without a mid)
* **market move** = trading P&L − spread capture  (the inventory carried while the market moved)
* **funding** = −Σ what the clients' internal positions were settled (they pay us, or we pay them)
* **hedge cost** = −Σ fees and slippage of the hedge orders
* **liquidation income** = isolated margin remainders taken at liquidations (``ExposureDaily``)

Recomputed, never added to: :func:`bbook_attribution_compute` is idempotent (the markout loop keeps
today's current once a minute; ``manage.py bbook_attribution`` recomputes past days)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Case, DecimalField, F, Sum, When
from django.utils import timezone

from core.money import q_usdc
from risk.client_risk.models import BbookPnlDaily, FillMarkout
from risk.hedge_models import HedgeInstruction
from risk.models import ExposureDaily, ExposureSnapshot, FundingSettlement
from trading.marketdata import get_quotes
from trading.models import Fill, Source

ZERO = Decimal(0)
SIDE = {"BUY": 1, "SELL": -1}
COMPONENTS = ("spread_capture", "market_move", "funding", "hedge_cost", "liquidation_income")


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _mark_at(asset: str, at: datetime) -> Decimal | None:
    """The mark at ``at``: the last minute snapshot's at or before it — or, for a day still running
    (``at`` in the future), the live mid (or mark)."""
    if at > timezone.now():
        quote = get_quotes([asset]).get(asset)
        live = (quote.mid or quote.mark) if quote is not None else None
        if live is not None:
            return live
    snap = (
        ExposureSnapshot.objects.filter(asset=asset, at__lte=at, mark__isnull=False).order_by("-at").first()
    )
    return snap.mark if snap is not None else None


def _signed_size() -> Case:
    return Case(
        When(side="BUY", then=F("size")),
        default=-F("size"),
        output_field=DecimalField(max_digits=40, decimal_places=12),
    )


def attribution_for(asset: str, day: date) -> BbookPnlDaily:
    start, end = _bounds(day)
    internal = Fill.objects.filter(asset=asset, source=Source.INTERNAL)
    fills = list(
        internal.filter(created_at__gte=start, created_at__lt=end).values_list("pk", "side", "size", "price")
    )
    net_start = internal.filter(created_at__lt=start).aggregate(n=Sum(_signed_size()))["n"] or ZERO
    m0 = _mark_at(asset, start)
    m1 = _mark_at(asset, end)
    mids = dict(
        FillMarkout.objects.filter(fill_id__in=[f[0] for f in fills], mid_at_fill__isnull=False).values_list(
            "fill_id", "mid_at_fill"
        )
    )
    spread = sum((SIDE[side] * size * (price - mids.get(pk, price)) for pk, side, size, price in fills), ZERO)
    if m1 is not None:
        carried = net_start * (m1 - m0) if m0 is not None else ZERO
        trading = -(
            carried + sum((SIDE[side] * size * (m1 - price) for _pk, side, size, price in fills), ZERO)
        )
    else:
        trading = spread  # no mark at all: nothing to say about the market's move
    funding = -(
        FundingSettlement.objects.filter(
            asset=asset, source=Source.INTERNAL, funding_time__gte=start, funding_time__lt=end
        ).aggregate(s=Sum("collected"))["s"]
        or ZERO
    )
    hedge = -(
        HedgeInstruction.objects.filter(asset=asset, created_at__gte=start, created_at__lt=end)
        .exclude(status__in=[HedgeInstruction.Status.SHADOW, HedgeInstruction.Status.SKIPPED])
        .aggregate(s=Sum(F("fee") + F("slippage")))["s"]
        or ZERO
    )
    daily = ExposureDaily.objects.filter(day=day, asset=asset).first()
    liquidation = daily.liquidation_margin if daily is not None else ZERO
    row = BbookPnlDaily(
        day=day,
        asset=asset,
        spread_capture=q_usdc(spread),
        market_move=q_usdc(trading - spread),
        funding=q_usdc(funding),
        hedge_cost=q_usdc(hedge),
        liquidation_income=q_usdc(liquidation),
        updated_at=timezone.now(),
    )
    row.total = sum((getattr(row, c) for c in COMPONENTS), ZERO)
    return row


def bbook_attribution_compute(day: date | None = None) -> list[BbookPnlDaily]:
    """Recompute and store one day's attribution (default today) for every asset with INTERNAL
    activity that day or a B-book position carried into it."""
    day = day or timezone.now().astimezone(UTC).date()
    _start, end = _bounds(day)
    assets = set(
        Fill.objects.filter(source=Source.INTERNAL, created_at__lt=end)
        .values_list("asset", flat=True)
        .distinct()
    )
    rows = [attribution_for(asset, day) for asset in sorted(assets)]
    rows = [r for r in rows if any(getattr(r, c) for c in COMPONENTS)]
    if rows:
        BbookPnlDaily.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["day", "asset"],
            update_fields=[*COMPONENTS, "total", "updated_at"],
        )
    return rows
