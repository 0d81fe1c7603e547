"""The simulated exchange: clock, prices, books, clearinghouse, funding, liquidations, histories.

Everything here is synchronous and single-threaded (driven by the aiohttp event loop); the server
module only translates HTTP/websocket traffic into calls on :class:`Engine`.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sandbox.hyperliquid.book import Book, Order
from sandbox.hyperliquid.candles import INTERVALS, CandleStore
from sandbox.hyperliquid.clearinghouse import (
    Account,
    Position,
    Summary,
    Tiers,
    apply_fill,
    clearinghouse_state,
    summarize,
)
from sandbox.hyperliquid.config import AssetSpec, SimConfig
from sandbox.hyperliquid.crypto import (
    USER_SIGNED_TYPES,
    SignerCache,
    keccak,
    recover_l1_signer,
    recover_user_signed,
)
from sandbox.hyperliquid.numbers import (
    ZERO,
    D,
    fs,
    fs_q,
    fs_usd,
    parse_decimal,
    round_px,
    round_sz,
    usd,
    valid_px,
    valid_sz,
)
from sandbox.hyperliquid.prices import PriceProcess

DAY_MS = 86_400_000
NONCE_KEEP = 100
MAX_FILLS_RESPONSE = 2000
MAX_CLOSED_ORDERS = 200_000  # orderStatus/historicalOrders remember this many finished orders
ZERO_HASH = "0x" + "0" * 64


# Spot is not traded in the sandbox, but its metadata exists as on HL, so clients that resolve spot
# names at start-up (the SDK's ``Info`` does, for every subscription's coin) work: USDC and two pairs,
# one with a canonical name (``PURR/USDC``) and one known by its index (``@1``), as on HL.
SPOT_TOKENS: list[dict[str, Any]] = [
    {
        "name": "USDC",
        "szDecimals": 8,
        "weiDecimals": 8,
        "index": 0,
        "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
    },
    {
        "name": "PURR",
        "szDecimals": 0,
        "weiDecimals": 5,
        "index": 1,
        "tokenId": "0xc1fb593aeffbeb02f85e0308e9956a90",
    },
    {
        "name": "HFUN",
        "szDecimals": 2,
        "weiDecimals": 8,
        "index": 2,
        "tokenId": "0xbaf265ef389da684513d98d68edf4eae",
    },
]
SPOT_PAIRS: list[dict[str, Any]] = [
    {"tokens": [1, 0], "name": "PURR/USDC", "index": 0, "isCanonical": True},
    {"tokens": [2, 0], "name": "@1", "index": 1, "isCanonical": False},
]
SPOT_PX = {"PURR/USDC": "0.2", "@1": "25.0"}
SPOT_ASSET_OFFSET = 10_000
# state added after engines were first saved (``--state-dir``): restored engines get these empty
LATE_STATE: dict[str, Any] = {
    "spot_usdc": dict,  # user -> spot USDC (``usdClassTransfer``)
    "ledger_updates": dict,  # user -> userNonFundingLedgerUpdates records
    "builder_approvals": dict,  # (user, builder) -> max fee rate approved
    "order_builders": dict,  # oid -> (builder, fee rate) charged on its fills
    "referral_codes": dict,  # code -> owner
    "referred_by": dict,  # user -> code
    "tpsl_waiting": dict,  # parent oid -> its normalTpsl children (wire orders) waiting for its fill
    "position_tpsl": set,  # oids placed with grouping positionTpsl
}


def wall_ms() -> int:
    return int(time.time() * 1000)


class ActionError(Exception):
    """Whole-request failure: ``{"status": "err", "response": msg}``."""


class UnknownInfoType(Exception):
    """An ``/info`` type the sandbox does not serve: answered as HL answers a type it does not know
    (HTTP 422, the JSON body failed to deserialize: unknown variant)."""

    def __init__(self, info_type: Any, known: list[str]):
        super().__init__(info_type)
        self.info_type = info_type
        self.known = known

    def __str__(self) -> str:
        if self.info_type is None:
            return "missing field `type`"
        expected = ", ".join(f"`{k}`" for k in self.known)
        return f"unknown variant `{self.info_type}`, expected one of {expected}"


def ok_default() -> dict[str, Any]:
    return {"status": "ok", "response": {"type": "default"}}


def _median(a: Decimal, b: Decimal, c: Decimal) -> Decimal:
    return sorted((a, b, c))[1]


class Engine:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.signer_cache = SignerCache()
        self.last_signer: str | None = None
        self._pending_builder: tuple[str, Decimal] | None = None
        self.reset()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A restored engine (``--state-dir``) saved before some state existed gets it empty."""
        self.__dict__.update(state)
        for name, factory in LATE_STATE.items():
            if name not in self.__dict__:
                setattr(self, name, factory())
        self.__dict__.setdefault("_pending_builder", None)

    # ================================================================================ lifecycle
    def reset(self) -> None:
        cfg = self.cfg
        wall = wall_ms()
        if cfg.start_time_ms is not None:
            start = cfg.start_time_ms
        elif self.manual:
            start = wall - wall % 1000  # whole seconds: readable timestamps in deterministic tests
        else:
            # Real time starts AT the wall clock. Rounding the start down to a whole second and keeping
            # the difference as an offset put every HL timestamp up to 999 ms behind the wall clock for
            # the life of the engine (and across --state-dir restarts).
            start = wall
        self.offset_ms = start - wall
        self.now_ms = start
        self.step_ms = cfg.step_ms
        self.specs: list[AssetSpec] = cfg.assets
        self.spec: dict[str, AssetSpec] = {a.name: a for a in cfg.assets}
        self.coins = [a.name for a in cfg.assets]
        self.prices = {a.name: PriceProcess(a, cfg.seed) for a in cfg.assets}
        self.books = {a.name: Book(a, cfg.seed) for a in cfg.assets}
        self.tiers = {a.name: Tiers(a.tiers) for a in cfg.assets}
        self.max_lev = {a.name: a.max_leverage for a in cfg.assets}
        self.oracle: dict[str, Decimal] = {}
        self.mark: dict[str, Decimal] = {}
        self.ema: dict[str, float] = dict.fromkeys(self.coins, 0.0)
        self.last_trade: dict[str, Decimal | None] = dict.fromkeys(self.coins)
        self.premium_samples: dict[str, list[Decimal]] = {c: [] for c in self.coins}
        self.last_premium: dict[str, Decimal] = dict.fromkeys(self.coins, ZERO)
        self.impact: dict[str, tuple[Decimal, Decimal]] = {}
        self.funding_history: dict[str, list[dict[str, Any]]] = {c: [] for c in self.coins}
        self.prev_day: dict[str, deque[tuple[int, Decimal]]] = {c: deque() for c in self.coins}
        self.day_vlm: dict[str, deque[tuple[int, Decimal, Decimal]]] = {c: deque() for c in self.coins}
        self.day_ntl: dict[str, Decimal] = dict.fromkeys(self.coins, ZERO)
        self.day_base: dict[str, Decimal] = dict.fromkeys(self.coins, ZERO)
        self.candles = CandleStore(self.coins)
        self.accounts: dict[str, Account] = {}
        self.agents: dict[str, str] = {}  # agent -> master
        self.agent_names: dict[tuple[str, str], str] = {}  # (master, name) -> agent
        self.agent_valid_until: dict[str, int] = {}
        self.nonces: dict[str, list[int]] = {}
        self.orders: dict[int, Order] = {}
        self.open_orders: dict[str, dict[int, Order]] = {}
        self.ro_open: dict[str, set[int]] = {}
        self.triggers: dict[str, dict[int, Order]] = {c: {} for c in self.coins}
        self.cloids: dict[tuple[str, str], int] = {}
        self.closed_oids: deque[int] = deque()
        self.fills: dict[str, deque[dict[str, Any]]] = {}
        self.fundings: dict[str, list[dict[str, Any]]] = {}
        self.users_by_coin: dict[str, set[str]] = {c: set() for c in self.coins}
        self.scheduled_cancel: dict[str, int] = {}
        self.next_oid = 1_000_000
        self.next_tid = 1
        self.next_lid = 1
        self.events: list[tuple[str, str, Any]] = []
        self.dirty_coins: set[str] = set(self.coins)
        self.dirty_mids = True
        self.liquidations: list[dict[str, Any]] = []
        for name, factory in LATE_STATE.items():
            setattr(self, name, factory())
        self.next_step_ms = start + self.step_ms
        self.next_mark_ms = start + int(cfg.mark_interval_s * 1000)
        self.next_premium_ms = start + int(cfg.premium_interval_s * 1000)
        fi = cfg.funding_interval_s * 1000
        self.next_funding_ms = (start // fi + 1) * fi
        self.next_minute_ms = start - start % 60_000 + 60_000
        for coin in self.coins:
            book = self.books[coin]
            pp = self.prices[coin]
            book.set_center(pp.perp_fair)
            self.oracle[coin] = pp.oracle_px()
            self.mark[coin] = self.oracle[coin]
            mid = book.mid() or self.oracle[coin]
            self.candles.update(coin, start, mid)
            self.prev_day[coin].append((start, self.mark[coin]))
        for spec in cfg.accounts:
            self.deposit(spec.address, spec.usdc)
        self.events.clear()

    # ================================================================================ clock
    @property
    def manual(self) -> bool:
        return self.cfg.clock == "manual"

    def sync(self) -> None:
        """Real-time mode: run every step due up to the wall clock (+ offset)."""
        if not self.manual:
            self.advance_to(wall_ms() + self.offset_ms)

    def advance(self, seconds: float) -> None:
        ms = int(round(seconds * 1000))
        if self.manual:
            self.advance_to(self.now_ms + ms)
        else:
            self.offset_ms += ms
            self.sync()

    def advance_to(self, t_ms: int) -> None:
        while True:
            if self.next_funding_ms <= t_ms and self.next_funding_ms < self.next_step_ms:
                # the hour falls between two steps (the real-time clock's steps are not on whole
                # seconds): funding is paid on the positions and oracle as they stand AT the hour,
                # before any request dated after it is applied — a trade at hour + 67 ms must not be
                # in the hour's funding, as on HL
                at = self.next_funding_ms
                self.now_ms = max(self.now_ms, at)
                self.next_funding_ms += self.cfg.funding_interval_s * 1000
                self._settle_funding(at)
                continue
            if self.next_step_ms > t_ms:
                break
            self.now_ms = self.next_step_ms
            self._step(self.step_ms / 1000)
            self.next_step_ms += self.step_ms
        if t_ms > self.now_ms:
            self.now_ms = t_ms

    def _step(self, dt: float) -> None:
        t = self.now_ms
        for coin in self.coins:
            self.prices[coin].step(dt)
            self._recenter(coin, dt)
        if t >= self.next_mark_ms:
            self.next_mark_ms += int(self.cfg.mark_interval_s * 1000)
            self.update_marks()
        if t >= self.next_premium_ms:
            self.next_premium_ms += int(self.cfg.premium_interval_s * 1000)
            self._sample_premiums()
        if t >= self.next_funding_ms:
            at = self.next_funding_ms
            self.next_funding_ms += self.cfg.funding_interval_s * 1000
            self._settle_funding(at)
        if t >= self.next_minute_ms:
            self.next_minute_ms += 60_000
            for coin in self.coins:
                dq = self.prev_day[coin]
                dq.append((t, self.mark[coin]))
                while len(dq) > 1 and dq[1][0] <= t - DAY_MS:
                    dq.popleft()
        if self.scheduled_cancel:
            for user, at in list(self.scheduled_cancel.items()):
                if at <= t:
                    del self.scheduled_cancel[user]
                    self._cancel_all(user, "scheduledCancel")
        self.dirty_mids = True

    def _recenter(self, coin: str, dt: float) -> None:
        pp = self.prices[coin]
        book = self.books[coin]
        book.set_center(pp.perp_fair)
        crossed = book.crossed_resting()
        for o in crossed:
            self._fill_resting_vs_lp(o)
        self.oracle[coin] = pp.oracle_px()
        mid = book.mid()
        if mid is not None:
            diff = float(mid - self.oracle[coin])
            alpha = 1 - math.exp(-dt / 150.0) if dt > 0 else 1.0
            self.ema[coin] += alpha * (diff - self.ema[coin])
            self.candles.update(coin, self.now_ms, mid)
        self.dirty_coins.add(coin)

    # ================================================================================ prices
    def update_marks(self, coins: list[str] | None = None) -> None:
        """HL mark: median(oracle + 150 s EMA(mid - oracle), median(bid, ask, last trade), perp fair)."""
        for coin in coins or self.coins:
            book = self.books[coin]
            oracle = self.oracle[coin]
            bid, ask = book.best_bid(), book.best_ask()
            mid = book.mid() or oracle
            last = self.last_trade[coin] or mid
            a = oracle + D(self.ema[coin])
            b = _median(bid or mid, ask or mid, last)
            c = D(self.prices[coin].perp_fair)
            self.mark[coin] = round_px(_median(a, b, c), self.spec[coin].sz_decimals)
            self.dirty_coins.add(coin)
        self._check_triggers(coins)
        self.check_liquidations(coins)

    def set_price(self, coin: str, px: float) -> None:
        self.prices[coin].set_price(px)
        self._reprice(coin)

    def shock(self, coin: str, pct: float) -> None:
        self.prices[coin].shock(pct)
        self._reprice(coin)

    def jump(self, coin: str, pct: float | None) -> float:
        if pct is None:
            pct = self.prices[coin].random_jump_pct()
        self.prices[coin].shock(pct)
        self._reprice(coin)
        return pct

    def _reprice(self, coin: str) -> None:
        self._recenter(coin, 0.0)
        self.dirty_mids = True
        self.update_marks([coin])

    def _impact_px(self, coin: str, is_bid: bool) -> Decimal:
        """Impact price on the LP ladder (deterministic: ignores user orders and consumed depth)."""
        spec = self.spec[coin]
        b = spec.book
        c = self.books[coin].center
        target = float(spec.impact_notional)
        got_ntl = 0.0
        got_sz = 0.0
        for i in range(b.levels):
            off = b.half_spread_bps / 10_000 + i * b.step_bps / 10_000
            px = c * (1 - off) if is_bid else c * (1 + off)
            ntl = b.level_notional * b.growth**i
            if got_ntl + ntl >= target:
                need = target - got_ntl
                got_sz += need / px
                got_ntl = target
                break
            got_ntl += ntl
            got_sz += ntl / px
        return D(round(got_ntl / got_sz, 10)) if got_sz else D(c)

    def _sample_premiums(self) -> None:
        for coin in self.coins:
            oracle = self.oracle[coin]
            ib = self._impact_px(coin, True)
            ia = self._impact_px(coin, False)
            self.impact[coin] = (ib, ia)
            prem = (max(ib - oracle, ZERO) - max(oracle - ia, ZERO)) / oracle
            prem = prem.quantize(Decimal("1e-10"))
            self.premium_samples[coin].append(prem)
            self.last_premium[coin] = prem

    def _funding_rate(self, coin: str) -> tuple[Decimal, Decimal, int]:
        samples = self.premium_samples[coin]
        n = len(samples)
        avg = sum(samples, ZERO) / n if n else self.last_premium[coin]
        cfg = self.cfg
        f8 = avg + min(max(cfg.interest_rate_8h - avg, -cfg.funding_clamp_8h), cfg.funding_clamp_8h)
        rate = min(max(f8 / 8, -cfg.funding_cap_1h), cfg.funding_cap_1h)
        return rate.quantize(Decimal("1e-10")), avg.quantize(Decimal("1e-10")), n

    def _settle_funding(self, at: int) -> None:
        for coin in self.coins:
            rate, prem, n = self._funding_rate(coin)
            self.premium_samples[coin] = []
            self.funding_history[coin].append(
                {"coin": coin, "fundingRate": fs(rate), "premium": fs(prem), "time": at}
            )
            oracle = self.oracle[coin]
            for user in sorted(self.users_by_coin[coin]):
                acct = self.accounts[user]
                pos = acct.positions.get(coin)
                if pos is None or pos.szi == 0:
                    continue
                paid = usd(pos.szi * oracle * rate)
                if pos.isolated:
                    pos.iso_margin -= paid
                else:
                    acct.cash -= paid
                pos.cum_all += paid
                pos.cum_open += paid
                pos.cum_change += paid
                acct.all_time_funding += paid
                delta = {
                    "type": "funding",
                    "coin": coin,
                    "usdc": fs_usd(-paid),
                    "szi": fs(pos.szi),
                    "fundingRate": fs(rate),
                    "nSamples": n,
                }
                rec = {"time": at, "hash": ZERO_HASH, "delta": delta}
                self.fundings.setdefault(user, []).append(rec)
                ws = {k: v for k, v in delta.items() if k != "type"}
                ws["time"] = at
                self.events.append(("userFundings", user, ws))
                self.events.append(("user", user, {"funding": ws}))
        self.check_liquidations()

    # ================================================================================ accounts
    def account(self, user: str) -> Account | None:
        return self.accounts.get(user.lower())

    def fund(self, user: str, usdc: Decimal) -> Account:
        user = user.lower()
        acct = self.accounts.get(user)
        if acct is None:
            acct = self.accounts[user] = Account(address=user)
            self.open_orders[user] = {}
            self.fills[user] = deque(maxlen=self.cfg.max_fills_per_user)
        acct.cash += usdc
        self.check_liquidations_for(user)
        return acct

    def deposit(self, user: str, usdc: Decimal) -> Account:
        """Money arriving from outside (the bridge; ``/control/fund``): credited, with its ledger update."""
        acct = self.fund(user, usdc)
        self._ledger_update(acct.address, {"type": "deposit", "usdc": fs_usd(usdc)})
        return acct

    def _ledger_update(self, user: str, delta: dict[str, Any], tx_hash: str = ZERO_HASH) -> None:
        """A ``userNonFundingLedgerUpdates`` record (info and websocket)."""
        rec = {"time": self.now_ms, "hash": tx_hash, "delta": delta}
        self.ledger_updates.setdefault(user, []).append(rec)
        self.events.append(("userNonFundingLedgerUpdates", user, rec))

    def set_position(
        self,
        user: str,
        coin: str,
        szi: Decimal,
        entry_px: Decimal | None,
        leverage: int | None,
        isolated: bool | None,
        margin: Decimal | None,
    ) -> None:
        """Control API: overwrite a position directly (no fills, no cash movement except margin)."""
        acct = self.accounts.get(user.lower()) or self.fund(user, ZERO)
        old = acct.positions.pop(coin, None)
        if old is not None and old.isolated:
            acct.cash += old.iso_margin
        is_cross_set, lev_set = acct.lev_setting(coin, self.max_lev[coin])
        iso = (not is_cross_set) if isolated is None else isolated
        lev = leverage or lev_set
        acct.leverage[coin] = (not iso, lev)
        if szi != 0:
            pos = Position(
                coin=coin, szi=szi, entry_px=entry_px or self.mark[coin], isolated=iso, leverage=lev
            )
            if iso:
                pos.iso_margin = margin if margin is not None else usd(abs(szi) * pos.entry_px / lev)
                acct.cash -= pos.iso_margin
            acct.positions[coin] = pos
            self.users_by_coin[coin].add(acct.address)
        else:
            self.users_by_coin[coin].discard(acct.address)
        self.check_liquidations_for(acct.address)

    def summary(self, acct: Account) -> Summary:
        return summarize(acct, self.mark, self.tiers)

    # ================================================================================ exchange
    def exchange(self, payload: dict[str, Any], signer_hint: str | None = None) -> dict[str, Any]:
        """Apply one signed ``/exchange`` request. ``signer_hint`` (the checksum address the same
        client signed with last) only selects the signature-verification fast path."""
        self.last_signer = None
        try:
            return self._exchange(payload, signer_hint)
        except ActionError as exc:
            return {"status": "err", "response": str(exc)}

    def _exchange(self, payload: dict[str, Any], signer_hint: str | None) -> dict[str, Any]:
        action = payload.get("action")
        nonce = payload.get("nonce")
        sig = payload.get("signature")
        if not isinstance(action, dict) or not isinstance(nonce, int) or not isinstance(sig, dict):
            raise ActionError("Failed to deserialize the JSON body into the target type")
        atype = action.get("type")
        if not isinstance(atype, str) or not atype:
            raise ActionError("Failed to deserialize the JSON body into the target type")
        if getattr(self, f"_act_{atype}", None) is None:
            # known to HL or not, an action the sandbox does not implement is refused as such — never
            # recovered with the wrong signing scheme (a "does not exist" for a signer that does)
            raise ActionError(f"Action type {atype} is not supported by the sandbox.")
        vault = payload.get("vaultAddress")
        expires = payload.get("expiresAfter")
        try:
            if atype in USER_SIGNED_TYPES:
                signer = recover_user_signed(action, sig)
            else:
                signer = recover_l1_signer(
                    action, sig, vault, nonce, expires, cache=self.signer_cache, hint=signer_hint
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ActionError(f"Failed to recover signer: {exc}") from exc
        if signer is None:
            raise ActionError("Invalid signature")
        self.last_signer = signer
        signer = signer.lower()
        if atype in USER_SIGNED_TYPES:
            if action.get("hyperliquidChain") not in ("Testnet", "Mainnet"):
                raise ActionError("Invalid hyperliquidChain")
            if signer not in self.accounts:
                raise ActionError(f"User or API Wallet {signer} does not exist.")
            user = signer
        else:
            master = self.agents.get(signer)
            if master is not None:
                user = master
            elif signer in self.accounts:
                user = signer
            else:
                raise ActionError(f"User or API Wallet {signer} does not exist.")
        now = self.now_ms
        if expires is not None and isinstance(expires, int) and expires < wall_ms():
            raise ActionError(f"Action expired at {expires}")
        if atype in USER_SIGNED_TYPES:
            signed_nonce = action.get("time") if atype in ("usdSend", "withdraw3") else action.get("nonce")
            if signed_nonce != nonce:
                raise ActionError("Invalid nonce: the signed action's nonce does not match the request nonce")
        self._use_nonce(signer, nonce)
        if vault:
            raise ActionError("Vault and sub-account actions are not supported by the sandbox.")
        acct = self.accounts[user]
        acct.n_requests += 1
        tx_hash = "0x" + keccak(f"{signer}:{nonce}".encode()).hex()
        handler = getattr(self, f"_act_{atype}")
        result: dict[str, Any] = handler(user, action, now, tx_hash)
        return result

    def _use_nonce(self, signer: str, nonce: int) -> None:
        wall = wall_ms()
        if not (wall - 2 * DAY_MS < nonce < wall + DAY_MS):
            raise ActionError(f"Invalid nonce: nonce {nonce} is outside the allowed time window")
        kept = self.nonces.setdefault(signer, [])
        i = bisect.bisect_left(kept, nonce)
        if i < len(kept) and kept[i] == nonce:
            raise ActionError(f"Invalid nonce: duplicate nonce {nonce}")
        if len(kept) >= NONCE_KEEP and nonce <= kept[0]:
            raise ActionError(f"Invalid nonce: nonce {nonce} is too low (smallest kept nonce {kept[0]})")
        kept.insert(i, nonce)
        if len(kept) > NONCE_KEEP:
            del kept[0]

    # ---------------------------------------------------------------------------- orders
    def _act_order(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        orders = action.get("orders")
        grouping = action.get("grouping", "na")
        if not isinstance(orders, list) or grouping not in ("na", "normalTpsl", "positionTpsl"):
            raise ActionError("Failed to deserialize the JSON body into the target type")
        self._pending_builder = self._builder_for(user, action.get("builder"))
        try:
            if grouping == "normalTpsl":
                statuses = self._place_normal_tpsl(user, orders, now, tx_hash)
            elif grouping == "positionTpsl":
                statuses = self._place_position_tpsl(user, orders, now, tx_hash)
            else:
                statuses = [self._place(user, w, now, tx_hash) for w in orders]
        finally:
            self._pending_builder = None
        return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}

    def _builder_for(self, user: str, builder: Any) -> tuple[str, Decimal] | None:
        """An order's builder fee (``{"b": address, "f": tenths of a basis point}``), checked against
        what the user approved (``approveBuilderFee``); charged on every fill of the orders placed."""
        if builder is None:
            return None
        if not isinstance(builder, dict) or not isinstance(builder.get("f"), int) or builder["f"] < 0:
            raise ActionError("Failed to deserialize the JSON body into the target type")
        address = str(builder.get("b", "")).lower()
        rate = D(builder["f"]) / 100_000
        approved = self.builder_approvals.get((user, address))
        if approved is None:
            raise ActionError("Builder fee has not been approved.")
        if rate > approved:
            raise ActionError("Builder fee is larger than the maximum approved.")
        return address, rate

    def _place_normal_tpsl(
        self, user: str, orders: list[Any], now: int, tx_hash: str
    ) -> list[dict[str, Any] | str]:
        """``normalTpsl``: a parent order, then its TP/SL trigger orders (reduce-only, fixed size).
        The children wait for the parent's fill (``"waitingForFill"``) and become trigger orders once it
        fills (``"waitingForTrigger"`` when it filled at once); a parent that never fills takes them with
        it."""
        if len(orders) < 2 or not all(isinstance(w, dict) for w in orders):
            raise ActionError("Failed to deserialize the JSON body into the target type")
        parent, children = orders[0], orders[1:]
        if "trigger" in (parent.get("t") or {}) or any("trigger" not in (c.get("t") or {}) for c in children):
            raise ActionError("normalTpsl is a parent order followed by its TP/SL trigger orders.")
        first = self._place(user, parent, now, tx_hash)
        out: list[dict[str, Any] | str] = [first]
        if "error" in first:
            return out + [{"error": "Parent order was not placed: " + str(first["error"])} for _ in children]
        if "resting" in first:
            self.tpsl_waiting[first["resting"]["oid"]] = [dict(c) for c in children]
            return out + ["waitingForFill"] * len(children)
        return out + [self._as_waiting(self._place(user, c, now, tx_hash)) for c in children]

    def _place_position_tpsl(
        self, user: str, orders: list[Any], now: int, tx_hash: str
    ) -> list[dict[str, Any] | str]:
        """``positionTpsl``: TP/SL trigger orders on the open position (``"waitingForTrigger"``)."""
        if not orders or not all(isinstance(w, dict) and "trigger" in (w.get("t") or {}) for w in orders):
            raise ActionError("positionTpsl takes TP/SL trigger orders only.")
        out: list[dict[str, Any] | str] = []
        for w in orders:
            status = self._place(user, w, now, tx_hash)
            if "resting" in status:
                self.position_tpsl.add(status["resting"]["oid"])
            out.append(self._as_waiting(status))
        return out

    @staticmethod
    def _as_waiting(status: dict[str, Any]) -> dict[str, Any] | str:
        return "waitingForTrigger" if "resting" in status else status

    def _release_tpsl_children(self, parent: Order, now: int) -> None:
        """A normalTpsl parent is done: its children become trigger orders if it filled at all, else
        they go with it."""
        children = self.tpsl_waiting.pop(parent.oid, None)
        if not children or parent.sz >= parent.orig_sz:
            return
        tx_hash = "0x" + keccak(f"tpsl:{parent.oid}".encode()).hex()
        builder, self._pending_builder = self._pending_builder, self.order_builders.get(parent.oid)
        try:
            for w in children:
                self._place(parent.user, w, now, tx_hash)
        finally:
            self._pending_builder = builder

    def _asset(self, a: Any) -> AssetSpec | None:
        if isinstance(a, int) and 0 <= a < len(self.specs):
            return self.specs[a]
        return None

    def _place(self, user: str, w: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        a = w.get("a")
        if isinstance(a, int) and SPOT_ASSET_OFFSET <= a < SPOT_ASSET_OFFSET + len(SPOT_PAIRS):
            return {"error": "Spot trading is not supported by the sandbox."}
        spec = self._asset(a)
        if spec is None:
            return {"error": f"Asset {w.get('a')} is out of range."}
        coin = spec.name
        asset = spec.index
        px = parse_decimal(w.get("p"))
        sz = parse_decimal(w.get("s"))
        is_buy = bool(w.get("b"))
        ro = bool(w.get("r"))
        cloid = w.get("c")
        t = w.get("t") or {}
        if px is None or not valid_px(px, spec.sz_decimals):
            return {"error": "Order has invalid price."}
        if sz is None or not valid_sz(sz, spec.sz_decimals):
            return {"error": "Order has invalid size."}
        if cloid is not None and (user, cloid) in self.cloids:
            existing = self.orders.get(self.cloids[(user, cloid)])
            if existing is not None and existing.status == "open":
                return {"error": "Order has duplicate cloid."}
        oracle = self.oracle[coin]
        if abs(px - oracle) > oracle * Decimal("0.8"):
            return {
                "error": f"Order price cannot be more than 80% away from the reference price. asset={asset}"
            }
        acct = self.accounts[user]
        pos = acct.positions.get(coin)
        szi = pos.szi if pos else ZERO
        if not ro and px * sz < 10:
            return {"error": "Order must have minimum value of $10."}
        if ro and (szi == 0 or (szi > 0) == is_buy):
            return {"error": f"Reduce only order would increase position. asset={asset}"}
        if "trigger" in t:
            return self._place_trigger(user, spec, is_buy, px, sz, ro, cloid, t["trigger"], now)
        tif = (t.get("limit") or {}).get("tif")
        if tif not in ("Gtc", "Ioc", "Alo", "FrontendMarket", "LiquidationMarket"):
            return {"error": "Invalid order type."}
        if tif in ("FrontendMarket", "LiquidationMarket"):
            tif = "Ioc"
        if spec.only_isolated and acct.lev_setting(coin, spec.max_leverage)[0]:
            acct.leverage[coin] = (False, acct.lev_setting(coin, spec.max_leverage)[1])
        order = Order(
            oid=self._new_oid(),
            user=user,
            coin=coin,
            asset=asset,
            is_buy=is_buy,
            limit_px=px,
            sz=sz,
            orig_sz=sz,
            tif=tif,
            reduce_only=ro,
            cloid=cloid,
            timestamp=now,
            status_ts=now,
        )
        return self._execute_order(acct, order, now, tx_hash)

    def _execute_order(self, acct: Account, order: Order, now: int, tx_hash: str) -> dict[str, Any]:
        coin = order.coin
        asset = order.asset
        book = self.books[coin]
        is_buy = order.is_buy
        px = order.limit_px
        pos = acct.positions.get(coin)
        szi = pos.szi if pos else ZERO
        if order.reduce_only:
            if szi == 0 or (szi > 0) == is_buy:
                return {"error": f"Reduce only order would increase position. asset={asset}"}
            order.sz = min(order.sz, abs(szi))
            order.orig_sz = order.sz
        sz = order.sz
        crosses = book.would_cross(is_buy, px)
        if order.tif == "Alo" and crosses:
            bid, ask = book.best_bid(), book.best_ask()
            return {
                "error": f"Post only order would have immediately matched, bbo was {fs(bid or ZERO)}@{fs(ask or ZERO)}. "
                f"asset={asset}"
            }
        if order.tif == "Ioc" and not crosses:
            return {"error": f"Order could not immediately match against any resting orders. asset={asset}"}
        if not order.reduce_only:
            err = self._margin_check(acct, order, szi)
            if err:
                return {"error": err}
        self._register(order)
        filled = ZERO
        notional = ZERO
        if crosses:
            filled, notional = self._take(acct, order, px, sz, now, tx_hash, None)
        order.sz = sz - filled
        if order.sz > 0 and order.tif in ("Gtc", "Alo") and order.status == "open":
            book.add(order)
            self._add_open(order)
            self._order_update(order, "open", now)
            res: dict[str, Any] = {"oid": order.oid}
            if order.cloid:
                res["cloid"] = order.cloid
            return {"resting": res}
        if filled == 0:
            self._finish(order, "rejected", now, notify=False)
            if order.tif == "Ioc":
                return {
                    "error": f"Order could not immediately match against any resting orders. asset={asset}"
                }
            return {"error": "Order was canceled."}
        self._finish(order, "filled" if order.sz == 0 else "canceled", now)
        out: dict[str, Any] = {"totalSz": fs(filled), "avgPx": fs_q(notional / filled, 8), "oid": order.oid}
        if order.cloid:
            out["cloid"] = order.cloid
        return {"filled": out}

    def _margin_check(self, acct: Account, order: Order, szi: Decimal) -> str | None:
        """Initial margin for the part of the order that opens/increases a position."""
        if szi == 0 or (szi > 0) == order.is_buy:
            inc = order.sz
        else:
            inc = max(ZERO, order.sz - abs(szi))
        if inc <= 0:
            return None
        coin = order.coin
        spec = self.spec[coin]
        is_cross, lev = acct.lev_setting(coin, spec.max_leverage)
        book = self.books[coin]
        fills, _ = book.match(order.is_buy, order.limit_px, order.sz, acct.address, dry=True)
        taken = sum((q for _, q, _ in fills), ZERO)
        ntl_taken = sum((p * q for p, q, _ in fills), ZERO)
        est = ntl_taken + (order.sz - taken) * order.limit_px if order.tif != "Ioc" else ntl_taken
        fill_sz = order.sz if order.tif != "Ioc" else taken
        if fill_sz <= 0:
            return None
        avg = est / fill_sz
        inc = min(inc, fill_sz)
        new_ntl = (abs(szi) + inc) * avg if (szi == 0 or (szi > 0) == order.is_buy) else inc * avg
        if lev > self.tiers[coin].max_leverage(new_ntl):
            return f"Order would cause position to exceed margin tier limit at current leverage. asset={order.asset}"
        required = inc * avg / lev + est * self.cfg.taker_fee
        s = self.summary(acct)
        available = s.available if is_cross else min(s.available, s.withdrawable(acct.cash))
        if required > available:
            return f"Insufficient margin to place order. asset={order.asset}"
        return None

    def _take(
        self,
        acct: Account,
        order: Order,
        limit_px: Decimal,
        sz: Decimal,
        now: int,
        tx_hash: str,
        liquidation: dict[str, Any] | None,
    ) -> tuple[Decimal, Decimal]:
        coin = order.coin
        book = self.books[coin]
        fills, self_cancelled = book.match(order.is_buy, limit_px, sz, acct.address)
        for o in self_cancelled:
            self._remove_open(o)
            self._finish(o, "selfTradeCanceled", now)
        filled = ZERO
        notional = ZERO
        cfg = self.cfg
        lp = cfg.lp_address
        for px, q, maker in fills:
            tid = self.next_tid
            self.next_tid += 1
            taker_fee = (
                ZERO
                if liquidation and liquidation.get("method") == "backstop"
                else usd(px * q * cfg.taker_fee)
            )
            self._apply(
                acct.address, coin, order.is_buy, q, px, taker_fee, order, True, tid, tx_hash, liquidation
            )
            if maker is not None:
                maker_fee = usd(px * q * cfg.maker_fee)
                maker_acct = self.accounts[maker.user]
                if not maker.reduce_only:
                    maker_acct.hold_ntl[coin] = maker_acct.hold_ntl.get(coin, ZERO) - q * maker.limit_px
                if maker.sz <= 0:
                    self._remove_open(maker)
                self._apply(
                    maker.user, coin, maker.is_buy, q, px, maker_fee, maker, False, tid, tx_hash, None
                )
                if maker.sz <= 0:
                    self._finish(maker, "filled", now)
            other = maker.user if maker is not None else lp
            buyer, seller = (acct.address, other) if order.is_buy else (other, acct.address)
            self._trade(coin, order.is_buy, px, q, now, tx_hash, tid, buyer, seller)
            filled += q
            notional += px * q
        return filled, notional

    def _fill_resting_vs_lp(self, o: Order) -> None:
        """The market traded through a resting user order: fill it in full at its price (maker)."""
        now = self.now_ms
        acct = self.accounts[o.user]
        q = o.sz
        px = o.limit_px
        self._remove_open(o)
        if o.reduce_only:
            pos = acct.positions.get(o.coin)
            szi = pos.szi if pos else ZERO
            if szi == 0 or (szi > 0) == o.is_buy:
                self._finish(o, "reduceOnlyCanceled", now)
                return
            q = min(q, abs(szi))
        tid = self.next_tid
        self.next_tid += 1
        tx_hash = "0x" + keccak(f"lp:{o.oid}:{now}".encode()).hex()
        self._apply(
            o.user, o.coin, o.is_buy, q, px, usd(px * q * self.cfg.maker_fee), o, False, tid, tx_hash, None
        )
        o.sz = ZERO
        lp = self.cfg.lp_address
        buyer, seller = (o.user, lp) if o.is_buy else (lp, o.user)
        self._trade(o.coin, not o.is_buy, px, q, now, tx_hash, tid, buyer, seller)
        self._finish(o, "filled", now)

    def _apply(
        self,
        user: str,
        coin: str,
        is_buy: bool,
        sz: Decimal,
        px: Decimal,
        fee: Decimal,
        order: Order,
        crossed: bool,
        tid: int,
        tx_hash: str,
        liquidation: dict[str, Any] | None,
    ) -> None:
        acct = self.accounts[user]
        start, closed, direction = apply_fill(acct, coin, self.max_lev[coin], is_buy, sz, px, fee)
        if coin in acct.positions:
            self.users_by_coin[coin].add(user)
        else:
            self.users_by_coin[coin].discard(user)
        fill: dict[str, Any] = {
            "coin": coin,
            "px": fs(px),
            "sz": fs(sz),
            "side": "B" if is_buy else "A",
            "time": self.now_ms,
            "startPosition": fs(start),
            "dir": direction,
            "closedPnl": fs_usd(closed),
            "hash": tx_hash,
            "oid": order.oid,
            "crossed": crossed,
            "fee": fs_usd(fee),
            "tid": tid,
            "feeToken": "USDC",
        }
        if order.cloid:
            fill["cloid"] = order.cloid
        if liquidation is not None:
            fill["liquidation"] = liquidation
        builder = self.order_builders.get(order.oid) if order.user == user else None
        if builder is not None:
            builder_fee = usd(px * sz * builder[1])
            if builder_fee > 0:
                acct.cash -= builder_fee
                self.fund(builder[0], builder_fee)
            fill["builderFee"] = fs_usd(builder_fee)
        self.fills[user].append(fill)
        self.events.append(("userFills", user, fill))
        self._reduce_only_sweep(user, coin)

    def _trade(
        self,
        coin: str,
        taker_buy: bool,
        px: Decimal,
        sz: Decimal,
        now: int,
        tx_hash: str,
        tid: int,
        buyer: str,
        seller: str,
    ) -> None:
        self.last_trade[coin] = px
        ntl = px * sz
        self.day_vlm[coin].append((now, ntl, sz))
        self.day_ntl[coin] += ntl
        self.day_base[coin] += sz
        dq = self.day_vlm[coin]
        while dq and dq[0][0] <= now - DAY_MS:
            _, n0, s0 = dq.popleft()
            self.day_ntl[coin] -= n0
            self.day_base[coin] -= s0
        self.candles.update(coin, now, px, sz)
        self.dirty_coins.add(coin)
        self.events.append(
            (
                "trades",
                coin,
                {
                    "coin": coin,
                    "side": "B" if taker_buy else "A",
                    "px": fs(px),
                    "sz": fs(sz),
                    "time": now,
                    "hash": tx_hash,
                    "tid": tid,
                    "users": [buyer, seller],
                },
            )
        )

    def _reduce_only_sweep(self, user: str, coin: str) -> None:
        ro = self.ro_open.get(user)
        if not ro:
            return
        acct = self.accounts[user]
        pos = acct.positions.get(coin)
        szi = pos.szi if pos else ZERO
        for oid in sorted(ro):
            o = self.orders[oid]
            if o.coin == coin and (szi == 0 or (szi > 0) == o.is_buy):
                self._cancel_order(o, "reduceOnlyCanceled", self.now_ms)

    def _new_oid(self) -> int:
        self.next_oid += 1
        return self.next_oid

    def _register(self, order: Order) -> None:
        self.orders[order.oid] = order
        if order.cloid:
            self.cloids[(order.user, order.cloid)] = order.oid
        if self._pending_builder is not None:
            self.order_builders[order.oid] = self._pending_builder

    def _finish(self, o: Order, status: str, now: int, notify: bool = True) -> None:
        o.status = status
        o.status_ts = now
        if notify:
            self._order_update(o, status, now)
        if status not in ("open", "triggered"):
            if o.oid in self.tpsl_waiting:
                self._release_tpsl_children(o, now)
            self.position_tpsl.discard(o.oid)
        if status not in ("open", "triggered"):
            self.closed_oids.append(o.oid)
            if len(self.closed_oids) > MAX_CLOSED_ORDERS:  # bound memory in long benchmarks
                old = self.orders.get(self.closed_oids.popleft())
                if old is not None and old.status not in ("open", "triggered"):
                    del self.orders[old.oid]
                    self.order_builders.pop(old.oid, None)
                    if old.cloid and self.cloids.get((old.user, old.cloid)) == old.oid:
                        del self.cloids[(old.user, old.cloid)]

    def _add_open(self, o: Order) -> None:
        self.open_orders[o.user][o.oid] = o
        if o.reduce_only:
            self.ro_open.setdefault(o.user, set()).add(o.oid)
        elif o.trigger_px is None:
            acct = self.accounts[o.user]
            acct.hold_ntl[o.coin] = acct.hold_ntl.get(o.coin, ZERO) + o.sz * o.limit_px

    def _remove_open(self, o: Order) -> None:
        """Forget an open order (releasing the margin hold of its remaining size)."""
        if self.open_orders[o.user].pop(o.oid, None) is None:
            return
        if o.reduce_only:
            self.ro_open.get(o.user, set()).discard(o.oid)
        elif o.trigger_px is None:
            acct = self.accounts[o.user]
            acct.hold_ntl[o.coin] = acct.hold_ntl.get(o.coin, ZERO) - o.sz * o.limit_px

    def _order_update(self, o: Order, status: str, now: int) -> None:
        self.events.append(
            ("orderUpdates", o.user, {"order": o.wire(), "status": status, "statusTimestamp": now})
        )

    # ---------------------------------------------------------------------------- triggers
    def _place_trigger(
        self,
        user: str,
        spec: AssetSpec,
        is_buy: bool,
        px: Decimal,
        sz: Decimal,
        ro: bool,
        cloid: str | None,
        trig: dict[str, Any],
        now: int,
    ) -> dict[str, Any]:
        tpx = parse_decimal(trig.get("triggerPx"))
        if tpx is None or not valid_px(tpx, spec.sz_decimals) or trig.get("tpsl") not in ("tp", "sl"):
            return {"error": "Invalid TP/SL price."}
        order = Order(
            oid=self._new_oid(),
            user=user,
            coin=spec.name,
            asset=spec.index,
            is_buy=is_buy,
            limit_px=px,
            sz=sz,
            orig_sz=sz,
            tif="Ioc" if trig.get("isMarket") else "Gtc",
            reduce_only=ro,
            cloid=cloid,
            timestamp=now,
            status_ts=now,
            trigger_px=tpx,
            is_market=bool(trig.get("isMarket")),
            tpsl=str(trig.get("tpsl")),
        )
        self._register(order)
        self.triggers[spec.name][order.oid] = order
        self._add_open(order)
        self._order_update(order, "open", now)
        res: dict[str, Any] = {"oid": order.oid}
        if cloid:
            res["cloid"] = cloid
        return {"resting": res}

    def _check_triggers(self, coins: list[str] | None) -> None:
        for coin in coins or self.coins:
            trig = self.triggers[coin]
            if not trig:
                continue
            mark = self.mark[coin]
            for o in sorted(trig.values(), key=lambda x: x.oid):
                assert o.trigger_px is not None
                rises = (o.tpsl == "tp") != o.is_buy  # sell TP / buy SL fire on a rise
                fire = mark >= o.trigger_px if rises else mark <= o.trigger_px
                if not fire:
                    continue
                del trig[o.oid]
                self._remove_open(o)
                o.triggered = True
                o.status = "triggered"
                self._order_update(o, "triggered", self.now_ms)
                acct = self.accounts[o.user]
                o.trigger_px = None
                o.status = "open"
                tx_hash = "0x" + keccak(f"trigger:{o.oid}".encode()).hex()
                res = self._execute_order(acct, o, self.now_ms, tx_hash)
                if "error" in res:
                    self._finish(o, "rejected", self.now_ms)

    # ---------------------------------------------------------------------------- cancels
    def _cancel_oid(self, user: str, asset: Any, oid: Any, now: int) -> str | dict[str, str]:
        spec = self._asset(asset)
        o = self.orders.get(oid) if isinstance(oid, int) else None
        if (
            spec is None
            or o is None
            or o.user != user
            or o.coin != spec.name
            or o.oid not in self.open_orders[user]
        ):
            a = asset if spec is None else spec.index
            return {"error": f"Order was never placed, already canceled, or filled. asset={a}"}
        self._cancel_order(o, "canceled", now)
        return "success"

    def _cancel_order(self, o: Order, status: str, now: int) -> None:
        if o.trigger_px is not None:
            self.triggers[o.coin].pop(o.oid, None)
        else:
            self.books[o.coin].remove(o)
        self._remove_open(o)
        self._finish(o, status, now)

    def _cancel_all(self, user: str, status: str) -> None:
        for o in sorted(self.open_orders.get(user, {}).values(), key=lambda x: x.oid):
            self._cancel_order(o, status, self.now_ms)

    def _act_cancel(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        statuses = [self._cancel_oid(user, c.get("a"), c.get("o"), now) for c in action.get("cancels") or []]
        return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}

    def _act_cancelByCloid(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        statuses: list[Any] = []
        for c in action.get("cancels") or []:
            oid = self.cloids.get((user, str(c.get("cloid"))))
            if oid is None:
                statuses.append(
                    {"error": f"Order was never placed, already canceled, or filled. asset={c.get('asset')}"}
                )
            else:
                statuses.append(self._cancel_oid(user, c.get("asset"), oid, now))
        return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}

    def _act_scheduleCancel(
        self, user: str, action: dict[str, Any], now: int, tx_hash: str
    ) -> dict[str, Any]:
        at = action.get("time")
        if at is None:
            self.scheduled_cancel.pop(user, None)
        else:
            if int(at) < now + 5000:
                raise ActionError("Scheduled cancel time too early, must be at least 5 seconds from now.")
            self.scheduled_cancel[user] = int(at)
        return ok_default()

    # ---------------------------------------------------------------------------- modify
    def _resolve_oid(self, user: str, oid: Any) -> Order | None:
        if isinstance(oid, str):
            found = self.cloids.get((user, oid))
            return self.orders.get(found) if found is not None else None
        if isinstance(oid, int):
            o = self.orders.get(oid)
            return o if o is not None and o.user == user else None
        return None

    def _modify(self, user: str, m: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        o = self._resolve_oid(user, m.get("oid"))
        if o is None or o.oid not in self.open_orders[user]:
            return {"error": "Cannot modify canceled or filled order"}
        wire = m.get("order") or {}
        spec = self._asset(wire.get("a"))
        if spec is None or spec.name != o.coin:
            return {"error": "Cannot modify order to a different asset"}
        self._cancel_order(o, "canceled", now)
        if o.cloid and wire.get("c") == o.cloid:
            self.cloids.pop((user, o.cloid), None)
        return self._place(user, wire, now, tx_hash)

    def _act_modify(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        res = self._modify(user, action, now, tx_hash)
        if "error" in res:
            raise ActionError(res["error"])
        return ok_default()

    def _act_batchModify(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        statuses = [self._modify(user, m, now, tx_hash) for m in action.get("modifies") or []]
        return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}

    # ---------------------------------------------------------------------------- margin settings
    def _act_updateLeverage(
        self, user: str, action: dict[str, Any], now: int, tx_hash: str
    ) -> dict[str, Any]:
        spec = self._asset(action.get("asset"))
        if spec is None:
            raise ActionError(f"Asset {action.get('asset')} is out of range.")
        lev = action.get("leverage")
        is_cross = bool(action.get("isCross"))
        if not isinstance(lev, int) or lev < 1 or lev > spec.max_leverage:
            raise ActionError(f"Invalid leverage value. Max leverage for {spec.name} is {spec.max_leverage}.")
        if spec.only_isolated and is_cross:
            raise ActionError("Cross margin is not allowed for this asset.")
        acct = self.accounts[user]
        pos = acct.positions.get(spec.name)
        if pos is not None and pos.szi != 0:
            if pos.isolated == is_cross:
                raise ActionError("Cannot switch leverage type with open position.")
            mark = self.mark[spec.name]
            if lev > self.tiers[spec.name].max_leverage(abs(pos.szi) * mark):
                raise ActionError("Leverage exceeds the margin tier limit for the position size.")
            if is_cross:
                old = pos.leverage
                pos.leverage = lev
                if self.summary(acct).available < 0:
                    pos.leverage = old
                    raise ActionError("Insufficient margin to update leverage.")
            else:
                need = usd(abs(pos.szi) * pos.entry_px / lev)
                if need > pos.iso_margin:
                    add = need - pos.iso_margin
                    if add > self.summary(acct).withdrawable(acct.cash):
                        raise ActionError("Insufficient margin to update leverage.")
                    pos.iso_margin += add
                    acct.cash -= add
                pos.leverage = lev
        acct.leverage[spec.name] = (is_cross, lev)
        return ok_default()

    def _act_updateIsolatedMargin(
        self, user: str, action: dict[str, Any], now: int, tx_hash: str
    ) -> dict[str, Any]:
        spec = self._asset(action.get("asset"))
        if spec is None:
            raise ActionError(f"Asset {action.get('asset')} is out of range.")
        ntli = action.get("ntli")
        if not isinstance(ntli, int):
            raise ActionError("Failed to deserialize the JSON body into the target type")
        amount = Decimal(ntli) / 1_000_000
        acct = self.accounts[user]
        pos = acct.positions.get(spec.name)
        if pos is None or pos.szi == 0:
            raise ActionError("Cannot update margin for position that does not exist.")
        if not pos.isolated:
            raise ActionError("Cannot update margin for cross position.")
        if amount > 0:
            if amount > self.summary(acct).withdrawable(acct.cash):
                raise ActionError("Insufficient margin to add to isolated position.")
            pos.iso_margin += amount
            acct.cash -= amount
        elif amount < 0:
            mark = self.mark[spec.name]
            equity_after = pos.iso_margin + amount + pos.szi * (mark - pos.entry_px)
            if equity_after < abs(pos.szi) * mark / pos.leverage:
                raise ActionError("Insufficient margin to remove from isolated position.")
            pos.iso_margin += amount
            acct.cash -= amount
        self.check_liquidations_for(user)
        return ok_default()

    # ---------------------------------------------------------------------------- user-signed
    def _act_approveAgent(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        agent = str(action.get("agentAddress", "")).lower()
        if len(agent) != 42 or not agent.startswith("0x"):
            raise ActionError("Invalid agent address.")
        if agent in self.accounts:
            raise ActionError("Agent address is already a user.")
        if agent in self.agents and self.agents[agent] != user:
            raise ActionError("Extra agent already used.")
        name = str(action.get("agentName") or "")
        old = self.agent_names.get((user, name))
        if old is not None and old != agent:
            self.agents.pop(old, None)
        self.agent_names[(user, name)] = agent
        self.agents[agent] = user
        self.agent_valid_until[agent] = wall_ms() + 180 * DAY_MS
        return ok_default()

    def _act_usdSend(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        amount = parse_decimal(action.get("amount"))
        dest = str(action.get("destination", "")).lower()
        acct = self.accounts[user]
        if amount is None or amount <= 0:
            raise ActionError("Invalid amount.")
        if amount > self.summary(acct).withdrawable(acct.cash):
            raise ActionError("Insufficient balance for transfer.")
        acct.cash -= amount
        self.fund(dest, amount)
        delta = {
            "type": "send",
            "user": user,
            "destination": dest,
            "sourceDex": "",
            "destinationDex": "",
            "token": "USDC",
            "amount": fs_usd(amount),
            "usdcValue": fs_usd(amount),
            "fee": "0.0",
            "nativeTokenFee": "0.0",
            "nonce": action.get("time"),
            "feeToken": "USDC",
        }
        self._ledger_update(user, delta, tx_hash)
        if dest != user:
            self._ledger_update(dest, dict(delta), tx_hash)
        return ok_default()

    def _act_withdraw3(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        amount = parse_decimal(action.get("amount"))
        acct = self.accounts[user]
        if amount is None or amount <= 0:
            raise ActionError("Invalid amount.")
        if amount > self.summary(acct).withdrawable(acct.cash):
            raise ActionError("Insufficient balance for withdrawal.")
        acct.cash -= amount
        self._ledger_update(
            user,
            {"type": "withdraw", "usdc": fs_usd(amount), "nonce": action.get("time"), "fee": "0.0"},
            tx_hash,
        )
        return ok_default()

    def _act_usdClassTransfer(
        self, user: str, action: dict[str, Any], now: int, tx_hash: str
    ) -> dict[str, Any]:
        """USDC between the perp and the spot balance (``spotClearinghouseState``); no sub-accounts."""
        raw = str(action.get("amount", ""))
        if "subaccount:" in raw:
            raise ActionError("Sub-accounts are not supported by the sandbox.")
        amount = parse_decimal(raw)
        to_perp = action.get("toPerp")
        acct = self.accounts[user]
        if amount is None or amount <= 0 or not isinstance(to_perp, bool):
            raise ActionError("Invalid amount.")
        if to_perp:
            if amount > self.spot_usdc.get(user, ZERO):
                raise ActionError("Insufficient balance for transfer.")
            self.spot_usdc[user] = self.spot_usdc.get(user, ZERO) - amount
            acct.cash += amount
        else:
            if amount > self.summary(acct).withdrawable(acct.cash):
                raise ActionError("Insufficient balance for transfer.")
            acct.cash -= amount
            self.spot_usdc[user] = self.spot_usdc.get(user, ZERO) + amount
        self._ledger_update(
            user, {"type": "accountClassTransfer", "usdc": fs_usd(amount), "toPerp": to_perp}, tx_hash
        )
        self.check_liquidations_for(user)
        return ok_default()

    def _act_approveBuilderFee(
        self, user: str, action: dict[str, Any], now: int, tx_hash: str
    ) -> dict[str, Any]:
        """The highest builder fee ``builder`` may charge on this user's orders (``"0.01%"``)."""
        raw = str(action.get("maxFeeRate", ""))
        builder = str(action.get("builder", "")).lower()
        rate = parse_decimal(raw[:-1]) if raw.endswith("%") else None
        if rate is None or rate < 0 or len(builder) != 42 or not builder.startswith("0x"):
            raise ActionError("Invalid builder fee approval.")
        if rate > D("0.1"):
            raise ActionError("Builder fee is larger than 0.1%.")
        self.builder_approvals[(user, builder)] = rate / 100
        return ok_default()

    def _act_noop(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        return ok_default()  # HL's noop: its effect is the nonce it uses up

    def _act_registerReferrer(
        self, user: str, action: dict[str, Any], now: int, tx_hash: str
    ) -> dict[str, Any]:
        code = str(action.get("code", "")).upper()
        if not code or not code.isalnum() or len(code) > 20:
            raise ActionError("Invalid referral code.")
        if code in self.referral_codes:
            raise ActionError("Referral code already exists.")
        if user in self.referral_codes.values():
            raise ActionError("User already has a referral code.")
        self.referral_codes[code] = user
        return ok_default()

    def _act_setReferrer(self, user: str, action: dict[str, Any], now: int, tx_hash: str) -> dict[str, Any]:
        code = str(action.get("code", "")).upper()
        owner = self.referral_codes.get(code)
        if owner is None:
            raise ActionError("Referral code does not exist.")
        if owner == user:
            raise ActionError("Cannot refer yourself.")
        if user in self.referred_by:
            raise ActionError("Referrer already set.")
        self.referred_by[user] = code
        return ok_default()

    # ================================================================================ liquidations
    def check_liquidations_for(self, user: str) -> None:
        acct = self.accounts.get(user)
        if acct is not None and acct.positions:
            self._check_account(acct)

    def check_liquidations(self, coins: list[str] | None = None) -> None:
        users: set[str] = set()
        for coin in coins or self.coins:
            users |= self.users_by_coin[coin]
        for user in sorted(users):
            acct = self.accounts.get(user)
            if acct is not None and acct.positions:
                self._check_account(acct)

    def _check_account(self, acct: Account) -> None:
        s = self.summary(acct)
        for coin, v in list(s.views.items()):
            if v.pos.isolated:
                equity = v.pos.iso_margin + v.upnl
                if equity <= v.mm:
                    self._liquidate(acct, [coin], equity, v.mm, isolated=True)
        s = self.summary(acct)
        if s.cross_mm > 0 and s.cross_equity <= s.cross_mm:
            order = sorted(
                (c for c, v in s.views.items() if not v.pos.isolated), key=lambda c: (s.views[c].upnl, c)
            )
            self._liquidate(acct, order, s.cross_equity, s.cross_mm, isolated=False)

    def _liquidate(
        self, acct: Account, coins: list[str], equity: Decimal, mm: Decimal, *, isolated: bool
    ) -> None:
        now = self.now_ms
        user = acct.address
        backstop = equity < mm * self.cfg.backstop_ratio
        liq_ntl = sum((abs(acct.positions[c].szi) * self.mark[c] for c in coins if c in acct.positions), ZERO)
        lid = self.next_lid
        self.next_lid += 1
        record = {
            "lid": lid,
            "liquidator": self.cfg.liquidator_address,
            "liquidated_user": user,
            "liquidated_ntl_pos": fs_usd(liq_ntl),
            "liquidated_account_value": fs_usd(equity),
        }
        acted = False
        if backstop:
            cash_before = acct.cash
            for coin in coins:
                pos = acct.positions.get(coin)
                if pos is None:
                    continue
                self._cancel_coin_orders(user, coin, now)
                if pos.isolated:
                    pos.iso_margin = ZERO
                self._liquidation_fill(acct, coin, abs(pos.szi), "backstop", now)
                acted = True
            # the backstop vault takes the remaining collateral (isolated: the margin; cross: the cash)
            acct.cash = cash_before if isolated else ZERO
        else:
            for coin in coins:
                pos = acct.positions.get(coin)
                if pos is None:
                    continue
                mark = self.mark[coin]
                size = abs(pos.szi)
                ntl = size * mark
                close = size
                if ntl > self.cfg.liq_partial_threshold:
                    if now - pos.last_liq_ms < self.cfg.liq_cooldown_s * 1000:
                        continue
                    close = round_sz(size * self.cfg.liq_partial_fraction, self.spec[coin].sz_decimals)
                    if close <= 0:
                        close = size
                pos.last_liq_ms = now
                self._cancel_coin_orders(user, coin, now)
                self._liquidation_fill(acct, coin, close, "market", now)
                acted = True
                if isolated:
                    break
                s = self.summary(acct)
                if s.cross_equity > s.cross_mm:
                    break
            if not isolated and not any(not p.isolated for p in acct.positions.values()) and acct.cash < 0:
                acct.cash = ZERO  # bankrupt remainder absorbed by the insurance (backstop) vault
        if acted:
            record["method"] = "backstop" if backstop else "market"
            self.liquidations.append({**record, "time": now, "coins": coins})
            self.events.append(("user", user, {"liquidation": record}))

    def _cancel_coin_orders(self, user: str, coin: str, now: int) -> None:
        for o in sorted(self.open_orders.get(user, {}).values(), key=lambda x: x.oid):
            if o.coin == coin:
                self._cancel_order(o, "liquidatedCanceled", now)

    def _liquidation_fill(self, acct: Account, coin: str, sz: Decimal, method: str, now: int) -> None:
        pos = acct.positions[coin]
        is_buy = pos.szi < 0
        mark = self.mark[coin]
        liq = {"liquidatedUser": acct.address, "markPx": fs(mark), "method": method}
        spec = self.spec[coin]
        order = Order(
            oid=self._new_oid(),
            user=acct.address,
            coin=coin,
            asset=spec.index,
            is_buy=is_buy,
            limit_px=mark,
            sz=sz,
            orig_sz=sz,
            tif="Ioc",
            reduce_only=True,
            cloid=None,
            timestamp=now,
            status_ts=now,
        )
        self._register(order)
        tx_hash = "0x" + keccak(f"liquidation:{order.oid}".encode()).hex()
        if method == "backstop":
            tid = self.next_tid
            self.next_tid += 1
            self._apply(acct.address, coin, is_buy, sz, mark, ZERO, order, True, tid, tx_hash, liq)
            liquidator = self.cfg.liquidator_address
            buyer, seller = (acct.address, liquidator) if is_buy else (liquidator, acct.address)
            self._trade(coin, is_buy, mark, sz, now, tx_hash, tid, buyer, seller)
            order.sz = ZERO
        else:
            far = mark * 2 if is_buy else ZERO
            filled, _ = self._take(acct, order, far, sz, now, tx_hash, liq)
            order.sz = sz - filled
        order.status = "filled" if order.sz == 0 else "canceled"
        order.status_ts = now

    # ================================================================================ info
    def info(self, req: dict[str, Any]) -> Any:
        t = req.get("type")
        handler = getattr(self, f"_info_{t}", None) if isinstance(t, str) and t else None
        if handler is None:
            raise UnknownInfoType(t, self.info_types())
        return handler(req)

    def info_types(self) -> list[str]:
        """The ``/info`` types the sandbox serves."""
        return sorted(name[len("_info_") :] for name in dir(self) if name.startswith("_info_"))

    def meta(self) -> dict[str, Any]:
        universe = []
        used_tables: set[int] = set()
        for s in self.specs:
            u: dict[str, Any] = {
                "szDecimals": s.sz_decimals,
                "name": s.name,
                "maxLeverage": s.max_leverage,
                "marginTableId": s.margin_table_id,
            }
            if s.only_isolated:
                u["onlyIsolated"] = True
            universe.append(u)
            used_tables.add(s.margin_table_id)
        tables = []
        for tid in sorted(used_tables):
            if tid < 50:
                desc, tiers = "", [(0, tid)]
            else:
                desc, tiers = self.cfg.margin_tables[tid]
            tables.append(
                [
                    tid,
                    {
                        "description": desc,
                        "marginTiers": [{"lowerBound": fs(D(lb)), "maxLeverage": lev} for lb, lev in tiers],
                    },
                ]
            )
        return {"universe": universe, "marginTables": tables, "collateralToken": 0}

    def asset_ctx(self, coin: str) -> dict[str, Any]:
        book = self.books[coin]
        mid = book.mid()
        rate, _, _ = self._funding_rate(coin)
        ib, ia = self._impact_px(coin, True), self._impact_px(coin, False)
        sd = self.spec[coin].sz_decimals
        oi = ZERO
        for u in self.users_by_coin[coin]:
            p = self.accounts[u].positions.get(coin)
            if p is not None and p.szi > 0:
                oi += p.szi
        return {
            "funding": fs(rate),
            "openInterest": fs(oi),
            "prevDayPx": fs(self.prev_day[coin][0][1]),
            "dayNtlVlm": fs_usd(self.day_ntl[coin]),
            "premium": fs(self.last_premium[coin]),
            "oraclePx": fs(self.oracle[coin]),
            "markPx": fs(self.mark[coin]),
            "midPx": fs(mid) if mid is not None else None,
            "impactPxs": [fs(round_px(ib, sd, "down")), fs(round_px(ia, sd, "up"))],
            "dayBaseVlm": fs(self.day_base[coin]),
        }

    def all_mids(self) -> dict[str, str]:
        out = {}
        for coin in self.coins:
            mid = self.books[coin].mid()
            if mid is not None:
                out[coin] = fs(mid)
        return out

    def l2_book(self, coin: str, n_sig_figs: int | None = None) -> dict[str, Any]:
        return {"coin": coin, "time": self.now_ms, "levels": self.books[coin].levels(20, n_sig_figs)}

    def bbo(self, coin: str) -> dict[str, Any]:
        levels = self.books[coin].levels(1)
        return {
            "coin": coin,
            "time": self.now_ms,
            "bbo": [levels[0][0] if levels[0] else None, levels[1][0] if levels[1] else None],
        }

    def _info_meta(self, req: dict[str, Any]) -> Any:
        return self.meta()

    def _info_spotMeta(self, req: dict[str, Any]) -> Any:
        tokens = [
            {**t, "isCanonical": t["index"] < 2, "evmContract": None, "fullName": None} for t in SPOT_TOKENS
        ]
        return {"universe": [dict(p) for p in SPOT_PAIRS], "tokens": tokens}

    def spot_ctxs(self) -> list[dict[str, Any]]:
        """Spot asset contexts: the sandbox's spot pairs do not trade, their prices stand still."""
        return [
            {
                "prevDayPx": SPOT_PX[p["name"]],
                "dayNtlVlm": "0.0",
                "markPx": SPOT_PX[p["name"]],
                "midPx": SPOT_PX[p["name"]],
                "circulatingSupply": "1000000.0",
                "coin": p["name"],
                "totalSupply": "1000000.0",
                "dayBaseVlm": "0.0",
            }
            for p in SPOT_PAIRS
        ]

    def _info_spotMetaAndAssetCtxs(self, req: dict[str, Any]) -> Any:
        return [self._info_spotMeta(req), self.spot_ctxs()]

    def _info_spotClearinghouseState(self, req: dict[str, Any]) -> Any:
        usdc = self.spot_usdc.get(self._user(req), ZERO)
        if usdc <= 0:
            return {"balances": []}
        return {
            "balances": [
                {"coin": "USDC", "token": 0, "hold": "0.0", "total": fs_usd(usdc), "entryNtl": "0.0"}
            ]
        }

    def web_data2(self, user: str) -> dict[str, Any]:
        """``webData2`` (info and websocket): the account, its open orders and agent, the market."""
        user = user.lower()
        agent = next(
            (
                (a, self.agent_valid_until.get(a))
                for (m, _n), a in sorted(self.agent_names.items())
                if m == user
            ),
            (None, None),
        )
        cum_ledger = ZERO
        for rec in self.ledger_updates.get(user, []):
            d = rec["delta"]
            if d["type"] == "deposit":
                cum_ledger += D(d["usdc"])
            elif d["type"] == "withdraw":
                cum_ledger -= D(d["usdc"])
            elif d["type"] == "send":
                cum_ledger += D(d["usdcValue"]) * (-1 if d["user"] == user else 1)
        return {
            "clearinghouseState": clearinghouse_state(
                self.accounts.get(user), self.mark, self.tiers, self.max_lev, self.now_ms
            ),
            "leadingVaults": [],
            "totalVaultEquity": "0.0",
            "openOrders": self._frontend_orders(user),
            "agentAddress": agent[0],
            "agentValidUntil": agent[1],
            "cumLedger": fs_usd(cum_ledger),
            "meta": self.meta(),
            "assetCtxs": [self.asset_ctx(c) for c in self.coins],
            "serverTime": self.now_ms,
            "isVault": False,
            "user": user,
            "twapStates": [],
            "spotState": self._info_spotClearinghouseState({"user": user}),
            "spotAssetCtxs": self.spot_ctxs(),
        }

    def _info_webData2(self, req: dict[str, Any]) -> Any:
        return self.web_data2(self._user(req))

    def _info_userNonFundingLedgerUpdates(self, req: dict[str, Any]) -> Any:
        recs = self.ledger_updates.get(self._user(req)) or []
        start = int(req.get("startTime") or 0)
        end = req.get("endTime")
        end_i = int(end) if end is not None else 2**62
        return [r for r in recs if start <= r["time"] <= end_i][:500]

    def _info_predictedFundings(self, req: dict[str, Any]) -> Any:
        return [
            [
                c,
                [
                    [
                        "HlPerp",
                        {
                            "fundingRate": fs(self._funding_rate(c)[0]),
                            "nextFundingTime": self.next_funding_ms,
                            "fundingIntervalHours": self.cfg.funding_interval_s // 3600 or 1,
                        },
                    ]
                ],
            ]
            for c in self.coins
        ]

    def _info_referral(self, req: dict[str, Any]) -> Any:
        user = self._user(req)
        code = self.referred_by.get(user)
        own = next((c for c, owner in self.referral_codes.items() if owner == user), None)
        acct = self.accounts.get(user)
        return {
            "referredBy": {"referrer": self.referral_codes[code], "code": code} if code else None,
            "cumVlm": fs_usd(acct.cum_vlm if acct else ZERO),
            "unclaimedRewards": "0.0",
            "claimedRewards": "0.0",
            "builderRewards": "0.0",
            "referrerState": (
                {"stage": "ready", "data": {"code": own, "referralStates": []}}
                if own
                else {"stage": "needToCreateCode"}
            ),
            "rewardHistory": [],
        }

    # what HL answers for features the sandbox refuses (staking, vaults, TWAP, multi-sig): nobody can
    # have any, so the true answer is always empty
    def _info_delegations(self, req: dict[str, Any]) -> Any:
        return []

    def _info_delegatorSummary(self, req: dict[str, Any]) -> Any:
        return {
            "delegated": "0.0",
            "undelegated": "0.0",
            "totalPendingWithdrawal": "0.0",
            "nPendingWithdrawals": 0,
        }

    def _info_delegatorRewards(self, req: dict[str, Any]) -> Any:
        return []

    def _info_delegatorHistory(self, req: dict[str, Any]) -> Any:
        return []

    def _info_userVaultEquities(self, req: dict[str, Any]) -> Any:
        return []

    def _info_userTwapSliceFills(self, req: dict[str, Any]) -> Any:
        return []

    def _info_userToMultiSigSigners(self, req: dict[str, Any]) -> Any:
        return None

    def _info_perpDexs(self, req: dict[str, Any]) -> Any:
        return [None]

    def _info_metaAndAssetCtxs(self, req: dict[str, Any]) -> Any:
        return [self.meta(), [self.asset_ctx(c) for c in self.coins]]

    def _info_allMids(self, req: dict[str, Any]) -> Any:
        return self.all_mids()

    def _coin(self, req: dict[str, Any], key: str = "coin") -> str:
        coin = req.get(key)
        if coin not in self.spec:
            raise KeyError(coin)
        return str(coin)

    def _info_l2Book(self, req: dict[str, Any]) -> Any:
        coin = req.get("coin")
        if coin not in self.spec:
            return None
        n = req.get("nSigFigs")
        return self.l2_book(str(coin), int(n) if n else None)

    def _user(self, req: dict[str, Any]) -> str:
        return str(req.get("user", "")).lower()

    def _info_clearinghouseState(self, req: dict[str, Any]) -> Any:
        return clearinghouse_state(
            self.accounts.get(self._user(req)), self.mark, self.tiers, self.max_lev, self.now_ms
        )

    def _open_list(self, user: str) -> list[Order]:
        return sorted(self.open_orders.get(user, {}).values(), key=lambda o: -o.oid)

    def _info_openOrders(self, req: dict[str, Any]) -> Any:
        return [o.wire() for o in self._open_list(self._user(req))]

    def _frontend_orders(self, user: str) -> list[dict[str, Any]]:
        out = []
        for o in self._open_list(user):
            row = o.frontend()
            if o.oid in self.position_tpsl:
                row["isPositionTpsl"] = True
            out.append(row)
        return out

    def _info_frontendOpenOrders(self, req: dict[str, Any]) -> Any:
        return self._frontend_orders(self._user(req))

    def _info_historicalOrders(self, req: dict[str, Any]) -> Any:
        user = self._user(req)
        mine = [o for o in self.orders.values() if o.user == user]
        mine.sort(key=lambda o: -o.oid)
        return [
            {"order": o.frontend(), "status": o.status, "statusTimestamp": o.status_ts} for o in mine[:2000]
        ]

    def _info_userFills(self, req: dict[str, Any]) -> Any:
        fills = self.fills.get(self._user(req))
        if not fills:
            return []
        return list(reversed(list(fills)[-MAX_FILLS_RESPONSE:]))

    def _info_userFillsByTime(self, req: dict[str, Any]) -> Any:
        fills: Iterable[dict[str, Any]] = self.fills.get(self._user(req)) or []
        start = int(req.get("startTime") or 0)
        end = req.get("endTime")
        end_i = int(end) if end is not None else 2**62
        out = [f for f in fills if start <= f["time"] <= end_i]
        if req.get("aggregateByTime"):
            out = _aggregate_fills(out)
        return out[:MAX_FILLS_RESPONSE]

    def _info_userFunding(self, req: dict[str, Any]) -> Any:
        recs = self.fundings.get(self._user(req)) or []
        start = int(req.get("startTime") or 0)
        end = req.get("endTime")
        end_i = int(end) if end is not None else 2**62
        return [r for r in recs if start <= r["time"] <= end_i][:500]

    def _info_fundingHistory(self, req: dict[str, Any]) -> Any:
        coin = req.get("coin")
        if coin not in self.spec:
            return []
        start = int(req.get("startTime") or 0)
        end = req.get("endTime")
        end_i = int(end) if end is not None else 2**62
        return [r for r in self.funding_history[str(coin)] if start <= r["time"] <= end_i][:500]

    def _info_candleSnapshot(self, req: dict[str, Any]) -> Any:
        r = req.get("req") or {}
        coin = r.get("coin")
        interval = r.get("interval")
        if coin not in self.spec or interval not in INTERVALS:
            return []
        return self.candles.snapshot(
            str(coin), str(interval), int(r.get("startTime") or 0), int(r.get("endTime") or 2**62)
        )

    def _info_orderStatus(self, req: dict[str, Any]) -> Any:
        user = self._user(req)
        o = self._resolve_oid(user, req.get("oid"))
        if o is None:
            return {"status": "unknownOid"}
        return {
            "status": "order",
            "order": {"order": o.frontend(), "status": o.status, "statusTimestamp": o.status_ts},
        }

    def _info_userRateLimit(self, req: dict[str, Any]) -> Any:
        acct = self.accounts.get(self._user(req))
        vlm = acct.cum_vlm if acct else ZERO
        used = acct.n_requests if acct else 0
        return {
            "cumVlm": fs_usd(vlm),
            "nRequestsUsed": used,
            "nRequestsCap": 10_000 + int(vlm),
            "nRequestsSurplus": 0,
        }

    def _info_userFees(self, req: dict[str, Any]) -> Any:
        return {
            "dailyUserVlm": [],
            "feeSchedule": {"cross": fs(self.cfg.taker_fee), "add": fs(self.cfg.maker_fee)},
            "userCrossRate": fs(self.cfg.taker_fee),
            "userAddRate": fs(self.cfg.maker_fee),
            "activeReferralDiscount": "0.0",
        }

    def _info_extraAgents(self, req: dict[str, Any]) -> Any:
        user = self._user(req)
        return [
            {"name": name, "address": agent, "validUntil": self.agent_valid_until.get(agent, 0)}
            for (master, name), agent in self.agent_names.items()
            if master == user
        ]

    def _info_userRole(self, req: dict[str, Any]) -> Any:
        user = self._user(req)
        if user in self.accounts:
            return {"role": "user"}
        if user in self.agents:
            return {"role": "agent", "data": {"user": self.agents[user]}}
        return {"role": "missing"}

    # ================================================================================ control views
    def dump(self) -> dict[str, Any]:
        return {
            "time": self.now_ms,
            "clock": self.cfg.clock,
            "seed": self.cfg.seed,
            "assets": {
                c: {
                    "oracle": fs(self.oracle[c]),
                    "mark": fs(self.mark[c]),
                    "mid": fs(self.books[c].mid() or ZERO),
                    "fair": self.prices[c].fair,
                    "basis": self.prices[c].basis,
                    "paused": self.prices[c].paused,
                    "bestBid": fs(self.books[c].best_bid() or ZERO),
                    "bestAsk": fs(self.books[c].best_ask() or ZERO),
                    "restingUserOrders": sum(len(q) for q in self.books[c].bid_levels.values())
                    + sum(len(q) for q in self.books[c].ask_levels.values()),
                    "triggerOrders": len(self.triggers[c]),
                    "predictedFunding": fs(self._funding_rate(c)[0]),
                    "nextFundingTime": self.next_funding_ms,
                }
                for c in self.coins
            },
            "accounts": {u: self.account_dump(u) for u in sorted(self.accounts)},
            "agents": dict(self.agents),
            "liquidations": self.liquidations[-100:],
            "orders": len(self.orders),
        }

    def account_dump(self, user: str) -> dict[str, Any]:
        acct = self.accounts.get(user.lower())
        if acct is None:
            return {}
        s = self.summary(acct)
        return {
            "cash": fs_usd(acct.cash),
            "accountValue": fs_usd(s.total_equity),
            "crossAccountValue": fs_usd(s.cross_equity),
            "crossMaintenanceMargin": fs_usd(s.cross_mm),
            "withdrawable": fs_usd(s.withdrawable(acct.cash)),
            "positions": {
                c: {
                    "szi": fs(p.szi),
                    "entryPx": fs(p.entry_px),
                    "isolated": p.isolated,
                    "leverage": p.leverage,
                    "isolatedMargin": fs_usd(p.iso_margin),
                    "cumFunding": fs_usd(p.cum_all),
                }
                for c, p in acct.positions.items()
            },
            "leverage": {c: {"cross": v[0], "value": v[1]} for c, v in acct.leverage.items()},
            "openOrders": len(self.open_orders.get(acct.address, {})),
            "agents": [a for a, m in self.agents.items() if m == acct.address],
            "nonces": len(self.nonces.get(acct.address, [])),
            "requests": acct.n_requests,
        }


def _aggregate_fills(fills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in fills:
        last = out[-1] if out else None
        if last is not None and last["oid"] == f["oid"] and last["time"] == f["time"] and f["crossed"]:
            sz0, sz1 = D(last["sz"]), D(f["sz"])
            px = (D(last["px"]) * sz0 + D(f["px"]) * sz1) / (sz0 + sz1)
            last["px"] = fs_q(px, 8)
            last["sz"] = fs(sz0 + sz1)
            last["fee"] = fs_usd(D(last["fee"]) + D(f["fee"]))
            last["closedPnl"] = fs_usd(D(last["closedPnl"]) + D(f["closedPnl"]))
        else:
            out.append(dict(f))
    return out
