"""Risk reads for the console and the ops API (no writes): the hedge overview, the HL_MODE banner, the
hedge recommendations and the stress view. Selectors read PostgreSQL and the quote cache only — never
HL (the mirrors are refreshed by the beat)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db.models import Sum

from core.money import ZERO
from risk.exposure import exposure_current
from risk.hedge_config import hedge_config, policy_for
from risk.hedge_models import HedgeInstruction, HedgePosition
from risk.hedge_policy import health_level, target_hedge
from risk.marks import effective_marks
from risk.stress import stress_run
from routing.selectors import asset_routing
from trading.models import HLAccountSnapshot
from trading.selectors import market_get


def _hedge_row(
    asset: str, pos: HedgePosition | None, mark: Decimal | None, exposure: Any, cfg: Any
) -> dict[str, Any]:
    size = pos.size if pos else ZERO
    net = exposure.net_notional if exposure is not None and mark else ZERO
    target = target_hedge(net, policy_for(cfg))
    current = size * mark if mark else ZERO
    fees = pos.fees_to_date if pos else ZERO
    funding = pos.funding_all_time if pos else ZERO
    slippage = pos.slippage_to_date if pos else ZERO
    cost = fees + funding + slippage
    hedge_pnl = (pos.realized_pnl_to_date + pos.unrealized_pnl) if pos else ZERO
    # client-loss revenue protected = what the hedge earned while the B-book lost to its clients
    protected = max(ZERO, hedge_pnl)
    return {
        "asset": asset,
        "mark": mark,
        "net_exposure": net,
        "target_notional": target.notional,
        "target_ratio": target.ratio,
        "current_notional": current,
        "coverage": (abs(current) / abs(net)) if net else None,
        "gap": target.notional - current,
        "size": size,
        "entry_price": pos.entry_price if pos else None,
        "unrealized_pnl": pos.unrealized_pnl if pos else ZERO,
        "realized_pnl": pos.realized_pnl_to_date if pos else ZERO,
        "margin_used": pos.margin_used if pos else ZERO,
        "leverage": pos.leverage if pos else 0,
        "liquidation_price": pos.liquidation_price if pos else None,
        "fees": fees,
        "funding": funding,
        "slippage": slippage,
        "cost_to_date": cost,
        "protected": protected,
        "roi": (protected / cost) if cost > 0 else None,
        "updated_at": pos.updated_at if pos else None,
    }


def hedge_overview() -> dict[str, Any]:
    """The Hedge page: mode, the hedge account's last snapshot and health level, per-asset hedge rows
    (target, current, gap, coverage, costs, ROI) and the latest instructions."""
    cfg = hedge_config()
    exposures = exposure_current()
    positions = {p.asset: p for p in HedgePosition.objects.all()}
    assets = sorted(set(exposures) | {a for a, p in positions.items() if p.size})
    marks = effective_marks(assets)
    rows = {a: _hedge_row(a, positions.get(a), marks.get(a), exposures.get(a), cfg) for a in assets}
    snapshot = HLAccountSnapshot.objects.filter(account="hedge").order_by("-id").first()
    totals = HedgePosition.objects.aggregate(
        fees=Sum("fees_to_date"), funding=Sum("funding_all_time"), slippage=Sum("slippage_to_date")
    )
    return {
        "mode": cfg.hedge_mode,
        "assets": rows,
        "account": {
            "account_value": snapshot.account_value if snapshot else None,
            "margin_ratio": snapshot.margin_ratio if snapshot else None,
            "withdrawable": snapshot.withdrawable if snapshot else None,
            "health": health_level(snapshot.margin_ratio) if snapshot else None,
            "at": snapshot.created_at if snapshot else None,
        },
        "cost_to_date": sum((v or ZERO for v in totals.values()), ZERO),
        "instructions": list(
            HedgeInstruction.objects.order_by("-created_at").values(
                "instruction_id",
                "asset",
                "kind",
                "status",
                "notional",
                "filled_notional",
                "fee",
                "slippage",
                "error",
                "created_at",
            )[:50]
        ),
    }


def hl_mode_banner(asset: str) -> dict[str, Any] | None:
    """The orange HL_MODE banner (spec 01): present while the asset is in HL_MODE, with its net exposure
    and the recommended hedge size (target − current hedge, signed: + buy)."""
    live = asset_routing(asset)
    if live.mode.value != "HL_MODE":
        return None
    mark = effective_marks([asset]).get(asset)
    row = _hedge_row(
        asset,
        HedgePosition.objects.filter(asset=asset).first(),
        mark,
        exposure_current().get(asset),
        hedge_config(),
    )
    return {
        "asset": asset,
        "message": f"{asset} is in HL_MODE: net exposure is high, hedge now",
        "net_exposure": row["net_exposure"],
        "current_hedge": row["current_notional"],
        "recommended_hedge": row["gap"],
        "recommended_side": "BUY" if row["gap"] > 0 else "SELL",
        "target_hedge": row["target_notional"],
    }


def hedge_recommendations(assets: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per asset, what the hedge policy wants now (``hl_mode_banner``'s figures, for many assets in one
    read: the hedge positions, the exposure totals and the marks once): users' net exposure, the target
    hedge and its tier ratio, the current hedge, and the order that closes the gap (signed notional,
    side, size at the mark); ``acts`` is False when the gap is below the minimum hedge order."""
    names = sorted(set(assets))
    if not names:
        return {}
    cfg = hedge_config()
    marks = effective_marks(names)
    exposures = exposure_current(marks)
    positions = {p.asset: p for p in HedgePosition.objects.filter(asset__in=names)}
    minimum = max(cfg.min_order_notional, Decimal(10))  # HL's own minimum order value is 10 USD
    out = {}
    for asset in names:
        row = _hedge_row(asset, positions.get(asset), marks.get(asset), exposures.get(asset), cfg)
        gap, mark = row["gap"], row["mark"]
        out[asset] = {
            "asset": asset,
            "mark": mark,
            "net_exposure": row["net_exposure"],
            "target_hedge": row["target_notional"],
            "target_ratio": row["target_ratio"],
            "current_hedge": row["current_notional"],
            "recommended_hedge": gap,
            "recommended_side": "BUY" if gap > 0 else "SELL",
            "recommended_size": _hedge_size(asset, gap, mark),
            "min_order_notional": minimum,
            "first_tier": cfg.tier1_threshold,
            "acts": abs(gap) >= minimum,
            "hedge_mode": cfg.hedge_mode,
        }
    return out


def _hedge_size(asset: str, notional: Decimal, mark: Decimal | None) -> Decimal | None:
    """|notional| in coins at ``mark``, down to the asset's size step (as the hedge order is sized)."""
    if not mark:
        return None
    step = Decimal(1).scaleb(-market_get(asset).sz_decimals)
    return (abs(notional) / mark).quantize(step, rounding=ROUND_DOWN)


def stress_view(shocks: dict[str, Any]) -> dict[str, Any]:
    """What-if for per-asset price shocks (``{"BTC": "-0.15"}``); changes nothing."""
    return stress_run(shocks={a: Decimal(str(v)) for a, v in shocks.items()}).as_dict()
