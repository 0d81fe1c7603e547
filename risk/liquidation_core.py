"""Liquidation detection as a pure in-memory index (spec 03, "Detection") — no Django, no I/O.

What it answers: "after this mark update, which positions / cross accounts just became liquidatable?"
in O(log n + k) for isolated positions and single-asset cross accounts, where k is what crossed.

* **Isolated** positions are kept per (asset, direction) in a list sorted by liquidation price
  (``trading.margin.isolated_liquidation_price``, tiers included). A long liquidates when the mark
  falls to or below its price, a short when the mark rises to or above it, so an update is one
  ``bisect`` plus the slice that crossed. Every candidate is then confirmed with the exact rule
  (``isolated_is_liquidatable``: equity ≤ MM), so the index never disagrees with the spec's
  definition, even on a boundary.
* **Cross** accounts whose cross positions are all in one asset and one direction are indexed the
  same way by their cross liquidation price (that price does not depend on any other mark). Every
  other cross account (several assets, or both directions of one asset) is re-evaluated exactly on
  every update of any asset it holds — cost proportional to such accounts holding that asset.
* A hit is reported once per (position or account, version): the caller stores the trigger and only
  re-arms an entry by upserting it with a new version (the position changed) or ``rearm=True``.

The caller (``risk.watcher``) feeds it from PostgreSQL at start, from fill events and periodic
reloads after that; the executor re-checks every trigger against the database under the user's lock.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from trading import margin, margin_cross

__all__ = [
    "CrossBook",
    "CrossLeg",
    "Hit",
    "IsolatedPosition",
    "LiquidationIndex",
    "cross_is_liquidatable",
    "cross_plan",
    "isolated_hit",
    "trigger_id_for",
]

_ZERO = Decimal(0)
# Candidates are taken with this relative slack and then confirmed exactly: a price computed to
# 50 digits may sit a hair on the wrong side of a mark that equals it.
_SLACK = Decimal("1e-30")

ISOLATED = "ISOLATED"
CROSS = "CROSS"


@dataclass(frozen=True, slots=True)
class IsolatedPosition:
    """One open isolated position, as the detector needs it."""

    position_id: int
    version: int  # changes whenever the position row changes (the watcher uses updated_at in µs)
    user_id: int
    asset: str
    side: margin.Side
    size: Decimal
    entry: Decimal
    isolated_margin: Decimal
    table: margin.MarginTable
    source: str = "INTERNAL"

    def liquidation_price(self) -> Decimal | None:
        return margin.isolated_liquidation_price(
            self.side, self.entry, self.size, self.isolated_margin, self.table
        )

    def is_liquidatable(self, mark: Decimal) -> bool:
        return margin.isolated_is_liquidatable(
            self.side, self.entry, mark, self.size, self.isolated_margin, self.table
        )


@dataclass(frozen=True, slots=True)
class CrossLeg:
    """One cross position of an account (its mark comes from the index's mark snapshot)."""

    position_id: int
    asset: str
    side: margin.Side
    size: Decimal
    entry: Decimal
    leverage: int
    table: margin.MarginTable
    source: str = "INTERNAL"


@dataclass(frozen=True)
class CrossBook:
    """A user's cross-margin account: collateral (cash + order holds, see ``margin_cross.CrossAccount``)
    and cross positions."""

    user_id: int
    version: int
    cash_collateral: Decimal
    legs: tuple[CrossLeg, ...]

    @property
    def assets(self) -> frozenset[str]:
        return frozenset(leg.asset for leg in self.legs)

    def account(self, marks: Mapping[str, Decimal]) -> margin_cross.CrossAccount:
        stand_in = margin_cross.stand_in_marks((leg.asset, leg.entry) for leg in self.legs)
        return margin_cross.CrossAccount(
            cash_collateral=self.cash_collateral,
            positions=tuple(
                margin_cross.CrossPosition(
                    asset=leg.asset,
                    side=leg.side,
                    size=leg.size,
                    entry=leg.entry,
                    mark=marks.get(leg.asset) or stand_in[leg.asset],
                    leverage=leg.leverage,
                    table=leg.table,
                    ref=leg.position_id,
                )
                for leg in self.legs
            ),
        )


@dataclass(frozen=True, slots=True)
class Hit:
    """A detection: ``key`` is the position id (isolated) or the user id (cross)."""

    kind: str  # ISOLATED / CROSS
    key: int
    user_id: int
    version: int
    asset: str  # the asset whose update found it
    marks: tuple[tuple[str, Decimal], ...]  # the snapshot the decision used
    position_ids: tuple[int, ...]  # isolated: the position; cross: the close plan, most losing first
    venue: str = "INTERNAL"  # INTERNAL / HYPERLIQUID, or MIXED for a cross plan over both
    rerun: int = 0  # > 0: the same version liquidatable again after a cancelled trigger

    @property
    def trigger_id(self) -> str:
        base = trigger_id_for(self.kind, self.key, self.version)
        return f"{base}#r{self.rerun}" if self.rerun else base

    @property
    def mark(self) -> Decimal:
        return dict(self.marks)[self.asset]


def trigger_id_for(kind: str, key: int, version: int) -> str:
    """Deterministic idempotency key of a liquidation command (spec 03): the same position (or cross
    account) in the same version is triggered once, however many detectors or sweeps see it."""
    return f"liq:{'iso' if kind == ISOLATED else 'cross'}:{key}:{version}"


def isolated_hit(position: IsolatedPosition, mark: Decimal) -> Hit | None:
    if not position.is_liquidatable(mark):
        return None
    return Hit(
        ISOLATED,
        position.position_id,
        position.user_id,
        position.version,
        position.asset,
        ((position.asset, mark),),
        (position.position_id,),
        position.source,
    )


def cross_is_liquidatable(book: CrossBook, marks: Mapping[str, Decimal]) -> bool:
    return bool(book.legs) and book.account(marks).summary().liquidatable


def cross_plan(book: CrossBook, marks: Mapping[str, Decimal]) -> tuple[int, ...]:
    """Position ids to close, most losing first, stopping once equity > remaining MM (spec 03)."""
    return tuple(
        p.ref for p in margin_cross.cross_liquidation_plan(book.account(marks)) if isinstance(p.ref, int)
    )


def _cross_hit(book: CrossBook, asset: str, marks: Mapping[str, Decimal]) -> Hit | None:
    plan = cross_plan(book, marks) if book.legs else ()
    if not plan:
        return None
    snapshot = tuple(sorted((a, marks.get(a) or _entry_of(book, a)) for a in book.assets))
    venues = {leg.source for leg in book.legs if leg.position_id in plan}
    venue = venues.pop() if len(venues) == 1 else "MIXED"
    return Hit(CROSS, book.user_id, book.user_id, book.version, asset, snapshot, plan, venue)


def _entry_of(book: CrossBook, asset: str) -> Decimal:
    return next(leg.entry for leg in book.legs if leg.asset == asset)


@dataclass
class _Sorted:
    """Keys sorted ascending: (price, id) pairs."""

    items: list[tuple[Decimal, int]] = field(default_factory=list)

    def add(self, price: Decimal, key: int) -> None:
        insort(self.items, (price, key))

    def remove(self, price: Decimal, key: int) -> None:
        i = bisect_left(self.items, (price, key))
        if i < len(self.items) and self.items[i] == (price, key):
            del self.items[i]

    def at_or_above(self, price: Decimal) -> list[int]:
        lo = price * (1 - _SLACK)
        return [key for _p, key in self.items[bisect_left(self.items, (lo, -1)) :]]

    def at_or_below(self, price: Decimal) -> list[int]:
        hi = price * (1 + _SLACK)
        return [key for _p, key in self.items[: bisect_right(self.items, (hi, 2**63))]]


class LiquidationIndex:
    """The detector's state. Not thread-safe: one thread (the watcher's) owns it."""

    def __init__(self) -> None:
        self.marks: dict[str, Decimal] = {}
        self._iso: dict[int, IsolatedPosition] = {}
        self._iso_price: dict[int, Decimal] = {}  # indexed isolated positions -> their liq price
        # (asset, side) -> sorted liq prices; side LONG liquidates at or below, SHORT at or above
        self._iso_lists: dict[tuple[str, int], _Sorted] = {}
        self._books: dict[int, CrossBook] = {}
        self._book_price: dict[int, tuple[str, int, Decimal]] = {}  # user -> (asset, side, liq price)
        self._cross_lists: dict[tuple[str, int], _Sorted] = {}
        self._exact: dict[str, set[int]] = {}  # asset -> users re-evaluated exactly on every update
        self._reported: dict[tuple[str, int], int] = {}  # (kind, key) -> version reported

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return len(self._iso) + sum(len(b.legs) for b in self._books.values())

    @property
    def isolated_count(self) -> int:
        return len(self._iso)

    @property
    def cross_count(self) -> int:
        return len(self._books)

    def isolated(self, position_id: int) -> IsolatedPosition | None:
        return self._iso.get(position_id)

    def book(self, user_id: int) -> CrossBook | None:
        return self._books.get(user_id)

    # ------------------------------------------------------------------ isolated
    def upsert_isolated(self, position: IsolatedPosition, *, rearm: bool = False) -> None:
        old = self._iso.get(position.position_id)
        if old is not None and old.version == position.version and not rearm:
            return
        self._unindex_isolated(position.position_id)
        self._iso[position.position_id] = position
        if rearm or old is None or old.version != position.version:
            self._reported.pop((ISOLATED, position.position_id), None)
        if (ISOLATED, position.position_id) in self._reported:
            return  # already reported in this version: keep it out of the lists
        price = position.liquidation_price()
        if price is not None:
            self._iso_price[position.position_id] = price
            self._iso_lists.setdefault((position.asset, int(position.side)), _Sorted()).add(
                price, position.position_id
            )

    def remove_isolated(self, position_id: int) -> None:
        self._unindex_isolated(position_id)
        self._iso.pop(position_id, None)
        self._reported.pop((ISOLATED, position_id), None)

    def _unindex_isolated(self, position_id: int) -> None:
        price = self._iso_price.pop(position_id, None)
        old = self._iso.get(position_id)
        if price is not None and old is not None:
            self._iso_lists[(old.asset, int(old.side))].remove(price, position_id)

    # ------------------------------------------------------------------ cross
    def upsert_cross(self, book: CrossBook, *, rearm: bool = False) -> None:
        old = self._books.get(book.user_id)
        if old is not None and old.version == book.version and not rearm:
            return
        self._unindex_cross(book.user_id)
        if not book.legs:
            self._books.pop(book.user_id, None)
            self._reported.pop((CROSS, book.user_id), None)
            return
        self._books[book.user_id] = book
        if rearm or old is None or old.version != book.version:
            self._reported.pop((CROSS, book.user_id), None)
        if (CROSS, book.user_id) in self._reported:
            return
        self._index_cross(book)

    def remove_cross(self, user_id: int) -> None:
        self._unindex_cross(user_id)
        self._books.pop(user_id, None)
        self._reported.pop((CROSS, user_id), None)

    def _index_cross(self, book: CrossBook) -> None:
        assets = book.assets
        sides = {int(leg.side) for leg in book.legs}
        if len(assets) == 1 and len(sides) == 1:
            (asset,) = assets
            (side,) = sides
            account = book.account(self.marks)
            price = margin_cross.cross_liquidation_price(account, asset)
            if price is not None:
                self._book_price[book.user_id] = (asset, side, price)
                self._cross_lists.setdefault((asset, side), _Sorted()).add(price, book.user_id)
            return
        for asset in assets:
            self._exact.setdefault(asset, set()).add(book.user_id)

    def _unindex_cross(self, user_id: int) -> None:
        indexed = self._book_price.pop(user_id, None)
        if indexed is not None:
            asset, side, price = indexed
            self._cross_lists[(asset, side)].remove(price, user_id)
        old = self._books.get(user_id)
        if old is not None:
            for asset in old.assets:
                users = self._exact.get(asset)
                if users is not None:
                    users.discard(user_id)

    # ------------------------------------------------------------------ detection
    def on_mark(self, asset: str, mark: Decimal) -> list[Hit]:
        """Record the asset's new mark and return what became liquidatable (each once per version)."""
        self.marks[asset] = mark
        hits: list[Hit] = []
        long_list = self._iso_lists.get((asset, int(margin.Side.LONG)))
        short_list = self._iso_lists.get((asset, int(margin.Side.SHORT)))
        candidates = (long_list.at_or_above(mark) if long_list else []) + (
            short_list.at_or_below(mark) if short_list else []
        )
        for position_id in candidates:
            position = self._iso[position_id]
            hit = isolated_hit(position, mark)
            if hit is not None:
                self._report(hit)
                hits.append(hit)
        users: list[int] = []
        cross_long = self._cross_lists.get((asset, int(margin.Side.LONG)))
        cross_short = self._cross_lists.get((asset, int(margin.Side.SHORT)))
        if cross_long:
            users += cross_long.at_or_above(mark)
        if cross_short:
            users += cross_short.at_or_below(mark)
        users += sorted(self._exact.get(asset, ()))
        for user_id in users:
            book = self._books.get(user_id)
            if book is None or (CROSS, user_id) in self._reported:
                continue
            hit = _cross_hit(book, asset, self.marks)
            if hit is not None:
                self._report(hit)
                hits.append(hit)
        return hits

    def _report(self, hit: Hit) -> None:
        if hit.kind == ISOLATED:
            self._unindex_isolated(hit.key)
        else:
            self._unindex_cross(hit.key)
        self._reported[(hit.kind, hit.key)] = hit.version

    def scan(self, marks: Mapping[str, Decimal] | None = None) -> list[Hit]:
        """Brute force over everything at ``marks`` (default: the index's own), ignoring what was
        already reported — the sweep's second line and the reference the tests compare against."""
        marks = dict(self.marks if marks is None else marks)
        hits: list[Hit] = []
        for position in self._iso.values():
            mark = marks.get(position.asset)
            if mark is None:
                continue
            hit = isolated_hit(position, mark)
            if hit is not None:
                hits.append(hit)
        for book in self._books.values():
            if not all(a in marks for a in book.assets):
                continue
            asset = min(book.assets)
            hit = _cross_hit(book, asset, marks)
            if hit is not None:
                hits.append(hit)
        return hits

    def rearm_all(self) -> None:
        """Forget every report (the caller lost its triggers, e.g. a restart against an empty queue)."""
        reported = list(self._reported)
        self._reported.clear()
        for kind, key in reported:
            if kind == ISOLATED and key in self._iso:
                self.upsert_isolated(self._iso[key], rearm=True)
            elif kind == CROSS and key in self._books:
                self.upsert_cross(self._books[key], rearm=True)

    def load(self, isolated: Iterable[IsolatedPosition], books: Iterable[CrossBook]) -> None:
        for position in isolated:
            self.upsert_isolated(position)
        for book in books:
            self.upsert_cross(book)

    def keys(self) -> tuple[set[int], set[int]]:
        return set(self._iso), set(self._books)
