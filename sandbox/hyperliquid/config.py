"""Configuration of the Hyperliquid simulator (the ``"hyperliquid"`` section of the sandbox config).

Every key has a default, so ``{}`` works. See ``sandbox/README.md`` for the full list.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.hyperliquid.crypto import keccak
from sandbox.hyperliquid.numbers import D

# Margin tables as HL publishes them in ``meta``: id -> (description, [(lowerBound USD, maxLeverage)]).
# Ids below 50 are single-tier tables whose max leverage is the id.
DEFAULT_MARGIN_TABLES: dict[int, tuple[str, list[tuple[int, int]]]] = {
    56: ("tiered 40x", [(0, 40), (150_000_000, 20)]),
    55: ("tiered 25x", [(0, 25), (100_000_000, 15)]),
    54: ("tiered 20x", [(0, 20), (70_000_000, 10)]),
    52: ("tiered 10x", [(0, 10), (20_000_000, 5)]),
}

# Annualised volatilities of a calm market (roughly 0.5-1.5 % per hour), so that a demo's hour never
# trips the volatility breaker (spec 05: 5 % in an hour) by itself; turbulence is injected through the
# control API (shock, jump, price).
DEFAULT_ASSETS: list[dict[str, Any]] = [
    {
        "name": "BTC",
        "szDecimals": 5,
        "maxLeverage": 40,
        "marginTableId": 56,
        "price": "100000",
        "volatility": 0.4,
    },
    {
        "name": "ETH",
        "szDecimals": 4,
        "maxLeverage": 25,
        "marginTableId": 55,
        "price": "3500",
        "volatility": 0.55,
    },
    {
        "name": "SOL",
        "szDecimals": 2,
        "maxLeverage": 20,
        "marginTableId": 54,
        "price": "180",
        "volatility": 0.7,
    },
    {
        "name": "ARB",
        "szDecimals": 1,
        "maxLeverage": 10,
        "marginTableId": 10,
        "price": "0.8",
        "volatility": 0.75,
    },
    {
        "name": "DOGE",
        "szDecimals": 0,
        "maxLeverage": 10,
        "marginTableId": 10,
        "price": "0.35",
        "volatility": 0.75,
    },
    {
        "name": "AVAX",
        "szDecimals": 2,
        "maxLeverage": 10,
        "marginTableId": 10,
        "price": "35",
        "volatility": 0.7,
    },
    {
        "name": "LINK",
        "szDecimals": 1,
        "maxLeverage": 10,
        "marginTableId": 10,
        "price": "20",
        "volatility": 0.7,
    },
    {
        "name": "HYPE",
        "szDecimals": 2,
        "maxLeverage": 10,
        "marginTableId": 52,
        "price": "40",
        "volatility": 0.8,
    },
]

DEFAULT_BOOK: dict[str, Any] = {
    "levels": 50,  # LP levels per side (l2Book shows 20)
    "half_spread_bps": 0.1,
    "step_bps": 0.5,
    "level_notional": 60000,  # USD at the best level (BTC/ETH; a quarter of it for the others)
    "growth": 1.06,  # size multiplier per level away from the mid
    "jitter": 0.3,  # +/- relative random size variation
}

SECONDS_PER_YEAR = 365 * 24 * 3600


def default_account_key(index: int) -> str:
    """Well-known private key of pre-funded sandbox account ``index`` (never use outside the sandbox)."""
    return "0x" + keccak(f"xbit-sandbox-hyperliquid-account-{index}".encode()).hex()


def _address_of(key: str) -> str:
    from eth_account import Account

    return str(Account.from_key(key).address)


@dataclass
class BookSpec:
    levels: int
    half_spread_bps: float
    step_bps: float
    level_notional: float
    growth: float
    jitter: float


@dataclass
class AssetSpec:
    index: int
    name: str
    sz_decimals: int
    max_leverage: int
    margin_table_id: int
    price: Decimal
    volatility: float  # annualised
    jump_intensity_per_hour: float
    jump_mean_pct: float
    jump_std_pct: float
    basis_vol_bps: float  # stdev of the perp/oracle basis (OU process)
    basis_halflife_s: float
    impact_notional: Decimal
    reversion_halflife_s: float  # oracle pulled back to its anchor (log OU); 0 = a plain random walk
    book: BookSpec
    only_isolated: bool = False
    replay_csv: str | None = None
    replay_step_s: float | None = None
    replay_loop: bool = True
    tiers: list[tuple[Decimal, int]] = field(default_factory=list)


@dataclass
class AccountSpec:
    address: str
    usdc: Decimal
    private_key: str | None = None


@dataclass
class SimConfig:
    seed: int
    clock: str
    start_time_ms: int | None
    step_ms: int
    mark_interval_s: float
    premium_interval_s: float
    funding_interval_s: int
    assets: list[AssetSpec]
    margin_tables: dict[int, tuple[str, list[tuple[int, int]]]]
    accounts: list[AccountSpec]
    taker_fee: Decimal
    maker_fee: Decimal
    interest_rate_8h: Decimal
    funding_clamp_8h: Decimal
    funding_cap_1h: Decimal
    liq_partial_threshold: Decimal
    liq_partial_fraction: Decimal
    liq_cooldown_s: float
    backstop_ratio: Decimal
    ws_idle_timeout_s: float
    ws_publish_ms: int
    timeout_hang_s: float
    lp_address: str
    liquidator_address: str
    max_fills_per_user: int
    raw: dict[str, Any]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _asset_dicts(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    assets = cfg.get("assets")
    defaults = {a["name"]: a for a in DEFAULT_ASSETS}
    if assets is None:
        return [copy.deepcopy(a) for a in DEFAULT_ASSETS]
    if isinstance(assets, dict):  # overrides by name on top of the default universe
        out = []
        for a in DEFAULT_ASSETS:
            out.append(_merge(a, assets.get(a["name"], {})))
        for name, extra in assets.items():
            if name not in defaults:
                out.append({"name": name, **extra})
        return out
    out = []
    for a in assets:
        base = defaults.get(a.get("name", ""), {})
        out.append(_merge(base, a))
    return out


def parse_config(seed: int, cfg: dict[str, Any] | None) -> SimConfig:
    cfg = dict(cfg or {})
    tables = dict(DEFAULT_MARGIN_TABLES)
    for tid, table in (cfg.get("margin_tables") or {}).items():
        tables[int(tid)] = (table.get("description", ""), [(int(t[0]), int(t[1])) for t in table["tiers"]])
    book_default = _merge(DEFAULT_BOOK, cfg.get("book") or {})
    assets: list[AssetSpec] = []
    for i, a in enumerate(_asset_dicts(cfg)):
        sz_dec = int(a.get("szDecimals", 2))
        max_lev = int(a.get("maxLeverage", 10))
        table_id = int(a.get("marginTableId", max_lev))
        if table_id < 50:
            tiers = [(Decimal(0), table_id)]
        else:
            if table_id not in tables:
                raise ValueError(f"unknown marginTableId {table_id} for {a.get('name')}")
            tiers = [(Decimal(lb), lev) for lb, lev in tables[table_id][1]]
        b = _merge(book_default, a.get("book") or {})
        big = a.get("name") in ("BTC", "ETH")
        explicit = "level_notional" in (a.get("book") or {}) or "level_notional" in (cfg.get("book") or {})
        scale = 1.0 if (big or explicit) else 0.25
        assets.append(
            AssetSpec(
                index=i,
                name=str(a["name"]),
                sz_decimals=sz_dec,
                max_leverage=max_lev,
                margin_table_id=table_id,
                price=D(a.get("price", "100")),
                volatility=float(a.get("volatility", 0.8)),
                # jumps are a fault to inject (/control/jump, /control/shock), not part of a normal market
                jump_intensity_per_hour=float(a.get("jump_intensity_per_hour", 0.0)),
                jump_mean_pct=float(a.get("jump_mean_pct", 0.0)),
                jump_std_pct=float(a.get("jump_std_pct", 2.0)),
                basis_vol_bps=float(a.get("basis_vol_bps", 2.0)),
                basis_halflife_s=float(a.get("basis_halflife_s", 120.0)),
                reversion_halflife_s=float(a.get("reversion_halflife_s", 6 * 3600)),
                impact_notional=D(a.get("impact_notional", 20000 if big else 6000)),
                book=BookSpec(
                    levels=int(b["levels"]),
                    half_spread_bps=float(b["half_spread_bps"]),
                    step_bps=float(b["step_bps"]),
                    level_notional=float(b["level_notional"]) * scale,
                    growth=float(b["growth"]),
                    jitter=float(b["jitter"]),
                ),
                only_isolated=bool(a.get("onlyIsolated", False)),
                replay_csv=a.get("replay_csv"),
                replay_step_s=float(a["replay_step_s"]) if a.get("replay_step_s") else None,
                replay_loop=bool(a.get("replay_loop", True)),
                tiers=tiers,
            )
        )
    if "accounts" in cfg:
        accounts = [
            AccountSpec(
                address=str(x["address"]).lower(), usdc=D(x.get("usdc", 0)), private_key=x.get("private_key")
            )
            for x in cfg["accounts"]
        ]
    else:
        n = int(cfg.get("default_accounts", 5))
        usdc = D(cfg.get("default_account_usdc", 1_000_000))
        accounts = []
        for i in range(n):
            key = default_account_key(i)
            accounts.append(AccountSpec(address=_address_of(key).lower(), usdc=usdc, private_key=key))
    fees = cfg.get("fees") or {}
    liq = cfg.get("liquidation") or {}
    funding = cfg.get("funding") or {}
    clock = str(cfg.get("clock", "real"))
    if clock not in ("real", "manual"):
        raise ValueError("hyperliquid.clock must be 'real' or 'manual'")
    return SimConfig(
        seed=seed,
        clock=clock,
        start_time_ms=int(cfg["start_time_ms"]) if cfg.get("start_time_ms") is not None else None,
        step_ms=int(cfg.get("step_ms", 1000)),
        mark_interval_s=float(cfg.get("mark_interval_s", 3)),
        premium_interval_s=float(cfg.get("premium_interval_s", 5)),
        funding_interval_s=int(cfg.get("funding_interval_s", 3600)),
        assets=assets,
        margin_tables=tables,
        accounts=accounts,
        taker_fee=D(fees.get("taker", "0.00045")),
        maker_fee=D(fees.get("maker", "0.00015")),
        interest_rate_8h=D(funding.get("interest_rate_8h", "0.0001")),
        funding_clamp_8h=D(funding.get("clamp_8h", "0.0005")),
        funding_cap_1h=D(funding.get("cap_1h", "0.04")),
        liq_partial_threshold=D(liq.get("partial_threshold_usd", 100000)),
        liq_partial_fraction=D(liq.get("partial_fraction", "0.2")),
        liq_cooldown_s=float(liq.get("cooldown_s", 30)),
        backstop_ratio=D(liq.get("backstop_ratio", "0.6666666666666667")),
        ws_idle_timeout_s=float(cfg.get("ws_idle_timeout_s", 60)),
        ws_publish_ms=int(cfg.get("ws_publish_ms", 200)),
        timeout_hang_s=float(cfg.get("timeout_hang_s", 30)),
        lp_address=str(cfg.get("lp_address", "0x5a4d000000000000000000000000000000000001")).lower(),
        liquidator_address=str(
            cfg.get("liquidator_address", "0x5a4d0000000000000000000000000000000000ff")
        ).lower(),
        max_fills_per_user=int(cfg.get("max_fills_per_user", 10000)),
        raw=cfg,
    )
