"""Order book per asset: liquidity-provider (LP) ladder re-centred on the moving price + user orders.

The LP ladder is rebuilt lazily after each price step (so depth consumed by takers replenishes on
the next step). User orders rest with price-time priority; at the same price user orders are ahead
of the LP. A resting user order whose price the LP ladder moves through is filled at its own price
(the simulated market trading through it).
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from sandbox.hyperliquid.config import AssetSpec
from sandbox.hyperliquid.numbers import ZERO, D, fs, pow10, round_px, round_sz, tick_for


@dataclass(slots=True)
class Order:
    oid: int
    user: str
    coin: str
    asset: int
    is_buy: bool
    limit_px: Decimal
    sz: Decimal
    orig_sz: Decimal
    tif: str
    reduce_only: bool
    cloid: str | None
    timestamp: int
    status: str = "open"
    status_ts: int = 0
    trigger_px: Decimal | None = None
    is_market: bool = False
    tpsl: str | None = None
    triggered: bool = False
    children: list[Any] = field(default_factory=list)

    @property
    def side(self) -> str:
        return "B" if self.is_buy else "A"

    def wire(self) -> dict[str, Any]:
        """``openOrders`` / ``orderUpdates`` shape."""
        out: dict[str, Any] = {
            "coin": self.coin,
            "side": self.side,
            "limitPx": fs(self.limit_px),
            "sz": fs(self.sz),
            "oid": self.oid,
            "timestamp": self.timestamp,
            "origSz": fs(self.orig_sz),
        }
        if self.reduce_only:
            out["reduceOnly"] = True
        if self.cloid:
            out["cloid"] = self.cloid
        return out

    def frontend(self) -> dict[str, Any]:
        is_trigger = self.trigger_px is not None
        if is_trigger:
            kind = ("Take Profit" if self.tpsl == "tp" else "Stop") + (
                " Market" if self.is_market else " Limit"
            )
            above = (self.tpsl == "tp") != self.is_buy  # sell TP / buy SL trigger when price rises
            cond = f"Price {'above' if above else 'below'} {fs(self.trigger_px or ZERO)}"
        else:
            kind, cond = "Limit", "N/A"
        return {
            "coin": self.coin,
            "side": self.side,
            "limitPx": fs(self.limit_px),
            "sz": fs(self.sz),
            "oid": self.oid,
            "timestamp": self.timestamp,
            "triggerCondition": cond,
            "isTrigger": is_trigger,
            "triggerPx": fs(self.trigger_px) if is_trigger else "0.0",
            "children": [],
            "isPositionTpsl": False,
            "reduceOnly": self.reduce_only,
            "orderType": kind,
            "origSz": fs(self.orig_sz),
            "tif": None if is_trigger else self.tif,
            "cloid": self.cloid,
        }


Fill = tuple[Decimal, Decimal, Order | None]  # (px, sz, maker order or None for the LP)


class Book:
    def __init__(self, spec: AssetSpec, seed: int):
        self.spec = spec
        self.coin = spec.name
        self.sz_dec = spec.sz_decimals
        self.lot = pow10(spec.sz_decimals)
        self.bid_levels: dict[Decimal, deque[Order]] = {}
        self.ask_levels: dict[Decimal, deque[Order]] = {}
        self.bid_keys: list[Decimal] = []  # -px ascending (best first)
        self.ask_keys: list[Decimal] = []  # px ascending (best first)
        self.lp_bids: list[list[Decimal]] = []
        self.lp_asks: list[list[Decimal]] = []
        self.center = float(spec.price)
        self.lp_dirty = True
        self.epoch = 0
        rng = random.Random(f"{seed}:book:{spec.name}")
        self._jitter = [1 + spec.book.jitter * (2 * rng.random() - 1) for _ in range(4099)]
        self._growth = [spec.book.growth**i for i in range(spec.book.levels)]
        self.lp_best_bid = ZERO
        self.lp_best_ask = ZERO
        self.set_center(self.center)

    # ---- LP ladder -------------------------------------------------------------------------
    def set_center(self, center: float) -> None:
        self.center = center
        half = self.spec.book.half_spread_bps / 10_000
        bb = round_px(center * (1 - half), self.sz_dec, "down")
        ba = round_px(center * (1 + half), self.sz_dec, "up")
        if ba <= bb:
            ba = bb + tick_for(bb, self.sz_dec)
        self.lp_best_bid, self.lp_best_ask = bb, ba
        self.epoch += 1
        self.lp_dirty = True

    def ensure_lp(self) -> None:
        if not self.lp_dirty:
            return
        spec = self.spec.book
        c = self.center
        half = spec.half_spread_bps / 10_000
        step = spec.step_bps / 10_000
        bids: list[list[Decimal]] = []
        asks: list[list[Decimal]] = []
        jit = self._jitter
        base = self.epoch * 7919
        prev_b: Decimal | None = None
        prev_a: Decimal | None = None
        for i in range(spec.levels):
            off = half + i * step
            if i == 0:
                pb, pa = self.lp_best_bid, self.lp_best_ask
            else:
                pb = round_px(c * (1 - off), self.sz_dec, "down") if off < 1 else ZERO
                pa = round_px(c * (1 + off), self.sz_dec, "up")
            if prev_b is not None and pb >= prev_b:
                pb = prev_b - tick_for(prev_b, self.sz_dec)
            if prev_a is not None and pa <= prev_a:
                pa = prev_a + tick_for(prev_a, self.sz_dec)
            notional = spec.level_notional * self._growth[i]
            szb = round_sz(D(notional * jit[(base + 2 * i) % 4099] / c), self.sz_dec)
            sza = round_sz(D(notional * jit[(base + 2 * i + 1) % 4099] / c), self.sz_dec)
            if pb > 0:
                bids.append([pb, max(szb, self.lot)])
            asks.append([pa, max(sza, self.lot)])
            prev_b, prev_a = pb, pa
        self.lp_bids, self.lp_asks = bids, asks
        self.lp_dirty = False

    def _lp_top(self, bid: bool) -> Decimal | None:
        if self.lp_dirty:
            return self.lp_best_bid if bid else self.lp_best_ask
        for px, sz in self.lp_bids if bid else self.lp_asks:
            if sz > 0:
                return px
        return None

    # ---- top of book ---------------------------------------------------------------------------
    def best_bid(self) -> Decimal | None:
        lp = self._lp_top(True)
        if self.bid_keys:
            u = -self.bid_keys[0]
            return u if lp is None or u > lp else lp
        return lp

    def best_ask(self) -> Decimal | None:
        lp = self._lp_top(False)
        if self.ask_keys:
            u = self.ask_keys[0]
            return u if lp is None or u < lp else lp
        return lp

    def mid(self) -> Decimal | None:
        b, a = self.best_bid(), self.best_ask()
        if b is None or a is None:
            return None
        return (b + a) / 2

    # ---- user orders ---------------------------------------------------------------------------
    def add(self, order: Order) -> None:
        px = order.limit_px
        if order.is_buy:
            q = self.bid_levels.get(px)
            if q is None:
                q = self.bid_levels[px] = deque()
                bisect.insort(self.bid_keys, -px)
        else:
            q = self.ask_levels.get(px)
            if q is None:
                q = self.ask_levels[px] = deque()
                bisect.insort(self.ask_keys, px)
        q.append(order)

    def remove(self, order: Order) -> None:
        px = order.limit_px
        levels = self.bid_levels if order.is_buy else self.ask_levels
        q = levels.get(px)
        if q is None:
            return
        try:
            q.remove(order)
        except ValueError:
            return
        if not q:
            self._drop_level(order.is_buy, px)

    def _drop_level(self, is_bid: bool, px: Decimal) -> None:
        if is_bid:
            del self.bid_levels[px]
            i = bisect.bisect_left(self.bid_keys, -px)
            del self.bid_keys[i]
        else:
            del self.ask_levels[px]
            i = bisect.bisect_left(self.ask_keys, px)
            del self.ask_keys[i]

    # ---- matching ------------------------------------------------------------------------------
    def match(
        self, is_buy: bool, limit_px: Decimal, sz: Decimal, user: str, *, dry: bool = False
    ) -> tuple[list[Fill], list[Order]]:
        """Take liquidity up to ``limit_px``; returns the fills and own resting orders cancelled
        (self-trade prevention: the resting order is expired). ``dry`` leaves the book untouched."""
        self.ensure_lp()
        lp = self.lp_asks if is_buy else self.lp_bids
        keys = self.ask_keys if is_buy else self.bid_keys
        levels = self.ask_levels if is_buy else self.bid_levels
        fills: list[Fill] = []
        cancelled: list[Order] = []
        rem = sz
        li = 0
        ki = 0
        qi = 0
        lp_used: dict[int, Decimal] = {}
        ord_used: dict[int, Decimal] = {}
        while rem > 0:
            while li < len(lp) and lp[li][1] - lp_used.get(li, ZERO) <= 0:
                li += 1
            lp_px = lp[li][0] if li < len(lp) else None
            if dry:
                u_px = None
                while ki < len(keys):
                    px_k = keys[ki] if is_buy else -keys[ki]
                    q = levels[px_k]
                    while qi < len(q) and (
                        q[qi].user == user or q[qi].sz - ord_used.get(q[qi].oid, ZERO) <= 0
                    ):
                        qi += 1
                    if qi < len(q):
                        u_px = px_k
                        break
                    ki += 1
                    qi = 0
            else:
                u_px = (keys[0] if is_buy else -keys[0]) if keys else None
            use_user = u_px is not None and (lp_px is None or (u_px <= lp_px if is_buy else u_px >= lp_px))
            if use_user:
                assert u_px is not None
                if (u_px > limit_px) if is_buy else (u_px < limit_px):
                    break
                q = levels[u_px]
                if dry:
                    o = q[qi]
                    take = min(rem, o.sz - ord_used.get(o.oid, ZERO))
                    ord_used[o.oid] = ord_used.get(o.oid, ZERO) + take
                    rem -= take
                    fills.append((u_px, take, o))
                    continue
                o = q[0]
                if o.user == user:
                    q.popleft()
                    if not q:
                        self._drop_level(not is_buy, u_px)
                    cancelled.append(o)
                    continue
                take = min(rem, o.sz)
                o.sz -= take
                rem -= take
                fills.append((u_px, take, o))
                if o.sz <= 0:
                    q.popleft()
                    if not q:
                        self._drop_level(not is_buy, u_px)
            elif lp_px is not None:
                if (lp_px > limit_px) if is_buy else (lp_px < limit_px):
                    break
                avail = lp[li][1] - lp_used.get(li, ZERO)
                take = min(rem, avail)
                if dry:
                    lp_used[li] = lp_used.get(li, ZERO) + take
                else:
                    lp[li][1] -= take
                rem -= take
                fills.append((lp_px, take, None))
            else:
                break
        return fills, cancelled

    def would_cross(self, is_buy: bool, px: Decimal) -> bool:
        best = self.best_ask() if is_buy else self.best_bid()
        if best is None:
            return False
        return px >= best if is_buy else px <= best

    def crossed_resting(self) -> list[Order]:
        """User orders the LP ladder has moved through (to be filled at their own price)."""
        out: list[Order] = []
        ask = self.lp_best_ask
        while self.bid_keys and -self.bid_keys[0] >= ask:
            px = -self.bid_keys[0]
            out.extend(self.bid_levels[px])
            self._drop_level(True, px)
        bid = self.lp_best_bid
        while self.ask_keys and self.ask_keys[0] <= bid:
            px = self.ask_keys[0]
            out.extend(self.ask_levels[px])
            self._drop_level(False, px)
        return out

    # ---- views ---------------------------------------------------------------------------------
    def levels(self, depth: int = 20, n_sig_figs: int | None = None) -> list[list[dict[str, Any]]]:
        self.ensure_lp()
        out: list[list[dict[str, Any]]] = []
        for is_bid in (True, False):
            agg: dict[Decimal, list[Any]] = {}
            for px, sz in self.lp_bids if is_bid else self.lp_asks:
                if sz > 0:
                    agg[px] = [sz, 1]
            keys = self.bid_keys if is_bid else self.ask_keys
            lv = self.bid_levels if is_bid else self.ask_levels
            for k in keys[: depth + 5]:
                px = -k if is_bid else k
                q = lv[px]
                tot = sum((o.sz for o in q), ZERO)
                cur = agg.get(px)
                if cur is None:
                    agg[px] = [tot, len(q)]
                else:
                    cur[0] += tot
                    cur[1] += len(q)
            if n_sig_figs:
                bucketed: dict[Decimal, list[Any]] = {}
                for px, (sz, n) in agg.items():
                    bpx = _sig_round(px, n_sig_figs, up=not is_bid)
                    cur = bucketed.get(bpx)
                    if cur is None:
                        bucketed[bpx] = [sz, n]
                    else:
                        cur[0] += sz
                        cur[1] += n
                agg = bucketed
            pxs = sorted(agg, reverse=is_bid)[:depth]
            out.append([{"px": fs(p), "sz": fs(agg[p][0]), "n": agg[p][1]} for p in pxs])
        return out

    def impact_px(self, is_bid: bool, notional: Decimal) -> Decimal | None:
        """Average price to fill ``notional`` USD against bids (is_bid) or asks."""
        self.ensure_lp()
        far = Decimal(0) if is_bid else Decimal(10) ** 12
        fills, _ = self.match(not is_bid, far, Decimal(10) ** 12, "", dry=True)
        got_ntl = ZERO
        got_sz = ZERO
        for px, sz, _o in fills:
            if got_ntl + px * sz >= notional:
                need = (notional - got_ntl) / px
                got_sz += need
                got_ntl = notional
                break
            got_ntl += px * sz
            got_sz += sz
        if got_sz <= 0:
            return None
        return got_ntl / got_sz


def _sig_round(px: Decimal, sig: int, up: bool) -> Decimal:
    if px == 0:
        return px
    q = Decimal(1).scaleb(px.adjusted() - sig + 1)
    return (px / q).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR) * q
