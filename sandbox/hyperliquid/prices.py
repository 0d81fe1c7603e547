"""Per-asset price process: seeded random walk with jumps (or candle replay) plus a perp/oracle basis."""

from __future__ import annotations

import csv
import math
import random
from decimal import Decimal
from pathlib import Path

from sandbox.hyperliquid.config import SECONDS_PER_YEAR, AssetSpec
from sandbox.hyperliquid.numbers import round_px


def load_candles_csv(path: str) -> list[float]:
    """Price path from a candles CSV (columns open, high, low, close; header optional).

    Each candle becomes four points: open, then the extreme nearer the open, the other extreme, close.
    """
    points: list[float] = []
    with Path(path).open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"empty candles file {path}")
    header = [c.strip().lower() for c in rows[0]]
    if "open" in header or "o" in header:
        idx = {name: header.index(name) for name in header}
        o_i = idx.get("open", idx.get("o"))
        h_i = idx.get("high", idx.get("h"))
        l_i = idx.get("low", idx.get("l"))
        c_i = idx.get("close", idx.get("c"))
        body = rows[1:]
    else:  # time, open, high, low, close[, volume]
        o_i, h_i, l_i, c_i = 1, 2, 3, 4
        body = rows
    assert o_i is not None and h_i is not None and l_i is not None and c_i is not None
    for row in body:
        if not row:
            continue
        o, h, low, c = float(row[o_i]), float(row[h_i]), float(row[l_i]), float(row[c_i])
        if c >= o:
            points += [o, low, h, c]
        else:
            points += [o, h, low, c]
    return points


# What shapes the path (as opposed to where the price is): taken from the current config when a saved
# engine is restored, so a change of defaults applies without throwing the simulated venue away.
DYNAMICS = (
    "volatility",
    "jump_intensity_per_hour",
    "jump_mean_pct",
    "jump_std_pct",
    "basis_vol_bps",
    "basis_halflife_s",
    "reversion_halflife_s",
)


class PriceProcess:
    """Oracle ("fair" spot) price and the perp's basis over it for one asset."""

    def __init__(self, spec: AssetSpec, seed: int):
        self.spec = spec
        self.rng = random.Random(f"{seed}:price:{spec.name}")
        self.log_px = math.log(float(spec.price))
        self.anchor = self.log_px  # where mean reversion pulls to: the start price or the last one set
        self.basis = 0.0
        self.paused = False
        self.sigma_s = spec.volatility / math.sqrt(SECONDS_PER_YEAR)
        self.replay: list[float] | None = load_candles_csv(spec.replay_csv) if spec.replay_csv else None
        self.replay_point_s = (spec.replay_step_s or 60.0) / 4
        self.replay_elapsed = 0.0
        if self.replay:
            self.log_px = math.log(self.replay[0])

    @property
    def fair(self) -> float:
        return math.exp(self.log_px)

    @property
    def perp_fair(self) -> float:
        return self.fair * (1.0 + self.basis)

    def oracle_px(self) -> Decimal:
        return round_px(self.fair, self.spec.sz_decimals)

    def step(self, dt_s: float) -> None:
        if self.paused or dt_s <= 0:
            return
        rng = self.rng
        # perp basis: Ornstein-Uhlenbeck with the configured stationary stdev
        theta = math.log(2) / max(self.spec.basis_halflife_s, 1e-9)
        decay = math.exp(-theta * dt_s)
        stdev = self.spec.basis_vol_bps / 10_000
        self.basis = self.basis * decay + stdev * math.sqrt(max(0.0, 1 - decay * decay)) * rng.gauss(0.0, 1.0)
        if self.replay:
            self.replay_elapsed += dt_s
            i = int(self.replay_elapsed / self.replay_point_s)
            if i >= len(self.replay):
                i = i % len(self.replay) if self.spec.replay_loop else len(self.replay) - 1
            self.log_px = math.log(self.replay[i])
            return
        sig = self.sigma_s
        halflife = self.spec.reversion_halflife_s
        z = rng.gauss(0.0, 1.0)
        if halflife > 0:
            # log price as an Ornstein-Uhlenbeck process around the anchor (exact step): the same
            # short-term volatility as the random walk, but a long run stays within a few stdevs
            # of the anchor instead of drifting off without bound
            theta = math.log(2) / halflife
            decay = math.exp(-theta * dt_s)
            spread = sig * math.sqrt((1 - decay * decay) / (2 * theta))
            self.log_px = self.anchor + (self.log_px - self.anchor) * decay + spread * z
        else:
            self.log_px += sig * math.sqrt(dt_s) * z - 0.5 * sig * sig * dt_s
        if rng.random() < self.spec.jump_intensity_per_hour * dt_s / 3600:
            jump = math.log1p(max(-0.95, rng.gauss(self.spec.jump_mean_pct, self.spec.jump_std_pct) / 100))
            self.log_px += jump
            self.anchor += jump

    def retune(self, spec: AssetSpec) -> None:
        """Continue from the current price with the dynamics of ``spec``."""
        for name in DYNAMICS:
            setattr(self.spec, name, getattr(spec, name, 0.0))  # 0.0: a field newer than a saved spec
        self.sigma_s = self.spec.volatility / math.sqrt(SECONDS_PER_YEAR)
        if not hasattr(self, "anchor"):  # saved before mean reversion existed
            self.anchor = self.log_px

    def set_price(self, px: float) -> None:
        if px <= 0:
            raise ValueError("price must be positive")
        self.log_px = math.log(px)
        self.anchor = self.log_px  # a price set or shocked is the new normal, not a move to undo

    def shock(self, pct: float) -> None:
        self.set_price(self.fair * (1 + pct / 100))

    def random_jump_pct(self) -> float:
        return self.rng.gauss(self.spec.jump_mean_pct, self.spec.jump_std_pct)
