"""Per-account clearinghouse: one-way positions, cross/isolated margin, HL margin tables (spec 03)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.hyperliquid.numbers import ZERO, fs, fs_q, fs_usd, usd

DEFAULT_LEVERAGE = 20


class Tiers:
    """A margin table: rows of (lowerBound, maxLeverage, mmr = 1/(2L), deduction)."""

    def __init__(self, tiers: list[tuple[Decimal, int]]):
        self.rows: list[tuple[Decimal, int, Decimal, Decimal]] = []
        ded = ZERO
        prev_mmr: Decimal | None = None
        for lb, lev in sorted(tiers):
            mmr = Decimal(1) / (2 * lev)
            if prev_mmr is not None:
                ded += lb * (mmr - prev_mmr)
            self.rows.append((lb, lev, mmr, ded))
            prev_mmr = mmr

    def tier(self, notional: Decimal) -> tuple[Decimal, int, Decimal, Decimal]:
        row = self.rows[0]
        for r in self.rows:
            if r[0] <= notional:
                row = r
            else:
                break
        return row

    def mm(self, notional: Decimal) -> Decimal:
        _, _, mmr, ded = self.tier(notional)
        return notional * mmr - ded

    def max_leverage(self, notional: Decimal) -> int:
        return self.tier(notional)[1]


@dataclass(slots=True)
class Position:
    coin: str
    szi: Decimal = ZERO
    entry_px: Decimal = ZERO
    isolated: bool = False
    leverage: int = DEFAULT_LEVERAGE
    iso_margin: Decimal = ZERO  # isolated only: margin pool (spec 03)
    cum_all: Decimal = ZERO  # funding paid (positive = paid), as HL's cumFunding
    cum_open: Decimal = ZERO
    cum_change: Decimal = ZERO
    last_liq_ms: int = -(10**15)


@dataclass
class Account:
    address: str
    cash: Decimal = ZERO  # cross collateral: deposits + realised PnL - fees +/- funding - isolated margin
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, tuple[bool, int]] = field(default_factory=dict)  # coin -> (is_cross, value)
    hold_ntl: dict[str, Decimal] = field(default_factory=dict)  # open non-reduce-only order notional
    cum_vlm: Decimal = ZERO
    n_requests: int = 0
    all_time_funding: Decimal = ZERO

    def lev_setting(self, coin: str, max_lev: int) -> tuple[bool, int]:
        return self.leverage.get(coin, (True, min(DEFAULT_LEVERAGE, max_lev)))


@dataclass
class PosView:
    pos: Position
    mark: Decimal
    ntl: Decimal
    upnl: Decimal
    mm: Decimal
    im: Decimal  # mark-based initial margin = ntl / leverage (HL's marginUsed for cross)


def view(pos: Position, mark: Decimal, tiers: Tiers) -> PosView:
    size = abs(pos.szi)
    ntl = size * mark
    upnl = pos.szi * (mark - pos.entry_px)
    return PosView(pos, mark, ntl, upnl, tiers.mm(ntl), ntl / pos.leverage)


@dataclass
class Summary:
    cross_equity: Decimal
    cross_mm: Decimal
    cross_im: Decimal
    cross_upnl: Decimal
    cross_ntl: Decimal
    cross_szi_mark: Decimal
    holds: Decimal
    views: dict[str, PosView]
    total_equity: Decimal
    total_ntl: Decimal
    total_szi_mark: Decimal
    total_margin_used: Decimal
    cross_margin_used: Decimal

    @property
    def available(self) -> Decimal:
        return self.cross_equity - self.cross_im - self.holds

    def withdrawable(self, cash: Decimal) -> Decimal:
        # spec 03: max(0, min(available to trade, cash - holds - sum IM cross)); uPnL never withdrawable
        return max(ZERO, min(self.available, cash - self.holds - self.cross_im))


def summarize(acct: Account, marks: dict[str, Decimal], tiers: dict[str, Tiers]) -> Summary:
    views: dict[str, PosView] = {}
    c_upnl = c_mm = c_im = c_ntl = c_szm = ZERO
    t_ntl = t_szm = ZERO
    iso_equity = ZERO
    t_used = c_used = ZERO
    for coin, pos in acct.positions.items():
        if pos.szi == 0:
            continue
        v = view(pos, marks[coin], tiers[coin])
        views[coin] = v
        t_ntl += v.ntl
        t_szm += pos.szi * v.mark
        if pos.isolated:
            eq = pos.iso_margin + v.upnl
            iso_equity += eq
            t_used += eq
        else:
            c_upnl += v.upnl
            c_mm += v.mm
            c_im += v.im
            c_ntl += v.ntl
            c_szm += pos.szi * v.mark
            t_used += v.im
            c_used += v.im
    holds = ZERO
    for coin, ntl in acct.hold_ntl.items():
        if ntl > 0:
            holds += ntl / acct.lev_setting(coin, 10**6)[1]
    cross_eq = acct.cash + c_upnl
    return Summary(
        cross_equity=cross_eq,
        cross_mm=c_mm,
        cross_im=c_im,
        cross_upnl=c_upnl,
        cross_ntl=c_ntl,
        cross_szi_mark=c_szm,
        holds=holds,
        views=views,
        total_equity=cross_eq + iso_equity,
        total_ntl=t_ntl,
        total_szi_mark=t_szm,
        total_margin_used=t_used,
        cross_margin_used=c_used,
    )


def _solve_liq(
    szi: Decimal, entry: Decimal, collateral: Decimal, other_mm: Decimal, tiers: Tiers
) -> Decimal | None:
    """Mark at which ``collateral + szi*(p - entry) == other_mm + MM(|szi| p)`` (tier-consistent)."""
    size = abs(szi)
    fallback: Decimal | None = None
    for lb, _lev, mmr, ded in tiers.rows:
        denom = szi - size * mmr
        if denom == 0:
            continue
        p = (other_mm - ded - collateral + szi * entry) / denom
        if fallback is None:
            fallback = p
        if p <= 0:
            continue
        ntl = size * p
        if tiers.tier(ntl)[0] == lb:
            return p
    if fallback is not None and fallback > 0:
        return fallback
    return None


def liquidation_px(acct: Account, coin: str, summ: Summary, tiers: Tiers) -> Decimal | None:
    v = summ.views.get(coin)
    if v is None:
        return None
    pos = v.pos
    if pos.isolated:
        return _solve_liq(pos.szi, pos.entry_px, pos.iso_margin, ZERO, tiers)
    # cross: every other cross position held at its mark (HL's definition)
    collateral = summ.cross_equity - v.upnl
    other_mm = summ.cross_mm - v.mm
    return _solve_liq(pos.szi, pos.entry_px, collateral, other_mm, tiers)


def clearinghouse_state(
    acct: Account | None,
    marks: dict[str, Decimal],
    tiers: dict[str, Tiers],
    max_lev: dict[str, int],
    now_ms: int,
) -> dict[str, Any]:
    if acct is None:
        zero = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}
        return {
            "marginSummary": dict(zero),
            "crossMarginSummary": dict(zero),
            "crossMaintenanceMarginUsed": "0.0",
            "withdrawable": "0.0",
            "assetPositions": [],
            "time": now_ms,
        }
    s = summarize(acct, marks, tiers)
    positions = []
    for coin, v in s.views.items():
        pos = v.pos
        lev: dict[str, Any] = {"type": "isolated" if pos.isolated else "cross", "value": pos.leverage}
        if pos.isolated:
            lev["rawUsd"] = fs_usd(pos.iso_margin - pos.szi * pos.entry_px)
            margin_used = pos.iso_margin + v.upnl
        else:
            margin_used = v.im
        entry_margin = abs(pos.szi) * pos.entry_px / pos.leverage
        roe = v.upnl / entry_margin if entry_margin else ZERO
        liq = liquidation_px(acct, coin, s, tiers[coin])
        positions.append(
            {
                "type": "oneWay",
                "position": {
                    "coin": coin,
                    "szi": fs(pos.szi),
                    "leverage": lev,
                    "entryPx": fs_q(pos.entry_px, 8),
                    "positionValue": fs_usd(v.ntl),
                    "unrealizedPnl": fs_usd(v.upnl),
                    "returnOnEquity": fs_q(roe, 10),
                    "liquidationPx": fs_q(liq, 8) if liq is not None else None,
                    "marginUsed": fs_usd(margin_used),
                    "maxLeverage": max_lev[coin],
                    "cumFunding": {
                        "allTime": fs_usd(pos.cum_all),
                        "sinceOpen": fs_usd(pos.cum_open),
                        "sinceChange": fs_usd(pos.cum_change),
                    },
                },
            }
        )
    return {
        "marginSummary": {
            "accountValue": fs_usd(s.total_equity),
            "totalNtlPos": fs_usd(s.total_ntl),
            "totalRawUsd": fs_usd(s.total_equity - s.total_szi_mark),
            "totalMarginUsed": fs_usd(s.total_margin_used),
        },
        "crossMarginSummary": {
            "accountValue": fs_usd(s.cross_equity),
            "totalNtlPos": fs_usd(s.cross_ntl),
            "totalRawUsd": fs_usd(s.cross_equity - s.cross_szi_mark),
            "totalMarginUsed": fs_usd(s.cross_margin_used),
        },
        "crossMaintenanceMarginUsed": fs_usd(s.cross_mm),
        "withdrawable": fs_usd(s.withdrawable(acct.cash)),
        "assetPositions": positions,
        "time": now_ms,
    }


def fill_dir(start: Decimal, is_buy: bool, sz: Decimal) -> str:
    if start == 0:
        return "Open Long" if is_buy else "Open Short"
    if start > 0:
        if is_buy:
            return "Open Long"
        return "Close Long" if sz <= start else "Long > Short"
    if not is_buy:
        return "Open Short"
    return "Close Short" if sz <= -start else "Short > Long"


def apply_fill(
    acct: Account, coin: str, max_lev: int, is_buy: bool, sz: Decimal, px: Decimal, fee: Decimal
) -> tuple[Decimal, Decimal, str]:
    """Update the account for a fill; returns (startPosition, closedPnl, dir). Fee is paid from cash.

    Isolated: opening moves ``size*px/leverage`` from cash into the position's margin; reducing
    returns the proportional margin plus realised PnL (never less than zero: an isolated loss is
    capped at its margin).
    """
    pos = acct.positions.get(coin)
    if pos is None:
        is_cross, lev = acct.lev_setting(coin, max_lev)
        pos = Position(coin=coin, isolated=not is_cross, leverage=lev)
        acct.positions[coin] = pos
    start = pos.szi
    direction = fill_dir(start, is_buy, sz)
    closed = ZERO
    if start == 0 or (start > 0) == is_buy:
        _open(acct, pos, is_buy, sz, px)
    else:
        size = abs(start)
        close_sz = min(sz, size)
        sign = 1 if start > 0 else -1
        closed = close_sz * (px - pos.entry_px) * sign
        if pos.isolated:
            release = pos.iso_margin * close_sz / size
            pos.iso_margin -= release
            acct.cash += max(ZERO, release + closed)
        else:
            acct.cash += closed
        pos.szi = start + (close_sz if is_buy else -close_sz)
        pos.cum_change = ZERO
        if pos.szi == 0:
            if pos.isolated and pos.iso_margin:
                acct.cash += max(ZERO, pos.iso_margin)
            pos.iso_margin = ZERO
            pos.entry_px = ZERO
            pos.cum_open = ZERO
            rest = sz - close_sz
            if rest > 0:
                is_cross, lev = acct.lev_setting(coin, max_lev)
                pos.isolated = not is_cross
                pos.leverage = lev
                _open(acct, pos, is_buy, rest, px)
    acct.cash -= fee
    acct.cum_vlm += sz * px
    if pos.szi == 0:
        del acct.positions[coin]
    return start, closed, direction


def _open(acct: Account, pos: Position, is_buy: bool, sz: Decimal, px: Decimal) -> None:
    size = abs(pos.szi)
    if size == 0:
        pos.entry_px = px
        pos.cum_open = ZERO
    else:
        pos.entry_px = (size * pos.entry_px + sz * px) / (size + sz)
    pos.szi += sz if is_buy else -sz
    pos.cum_change = ZERO
    if pos.isolated:
        margin = usd(sz * px / pos.leverage)
        pos.iso_margin += margin
        acct.cash -= margin
