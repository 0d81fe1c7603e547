"""The pure detection index (spec 03): worked examples, then exhaustive and property tests against
the brute-force definition (equity ≤ MM)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from risk.liquidation_core import (
    CROSS,
    ISOLATED,
    CrossBook,
    CrossLeg,
    IsolatedPosition,
    LiquidationIndex,
    cross_is_liquidatable,
    cross_plan,
    trigger_id_for,
)
from trading import margin

D = Decimal
T004 = margin.MarginTable.single(125)  # mmr 0.004, spec 03's worked example
T40 = margin.MarginTable(
    tiers=(margin.MarginTier(D(0), 40), margin.MarginTier(D(150_000), 20))
)  # tiered (bound lowered so random sizes cross it)
LONG, SHORT = margin.Side.LONG, margin.Side.SHORT


def iso(pid: int, side: margin.Side, entry: str, size: str, im: str, *, asset: str = "BTC", table=T004):
    return IsolatedPosition(pid, 1, 100 + pid, asset, side, D(size), D(entry), D(im), table)


def test_spec_isolated_example_liquidates_at_72280_and_not_above_its_price() -> None:
    position = iso(1, LONG, "80000", "0.1", "800")
    price = position.liquidation_price()
    assert price is not None and f"{price:.2f}" == "72289.16"
    index = LiquidationIndex()
    index.upsert_isolated(position)
    assert index.on_mark("BTC", D("72300")) == []
    (hit,) = index.on_mark("BTC", D("72280"))
    assert (hit.kind, hit.key, hit.mark, hit.trigger_id) == (ISOLATED, 1, D("72280"), "liq:iso:1:1")
    assert index.on_mark("BTC", D("72000")) == []  # reported once per version


def test_spec_funding_shifted_liquidation_price() -> None:
    price = iso(1, LONG, "80000", "0.1", "600").liquidation_price()
    assert price is not None and str(price).startswith("74297.18")  # (80000 − 6000) / 0.996 = 74297.188…
    assert f"{price:.2f}" == "74297.19"


def test_spec_cross_example_is_safe_then_closes_btc_first() -> None:
    # cash 5,000; BTC long notional 10,000 with uPnL −4,000; ETH short notional 8,000 with uPnL −500
    btc = CrossLeg(10, "BTC", LONG, D("1"), D("14000"), 10, margin.MarginTable.single(125))
    eth = CrossLeg(11, "ETH", SHORT, D("1"), D("7500"), 10, margin.MarginTable.single(100), "HYPERLIQUID")
    book = CrossBook(7, 1, D("5000"), (btc, eth))
    marks = {"BTC": D("10000"), "ETH": D("8000")}
    summary = book.account(marks).summary()
    assert summary.equity == D("500") and summary.maintenance_margin == D("80")
    assert not cross_is_liquidatable(book, marks)
    # BTC falls until equity ≤ MM: BTC (most losing) is first in the plan
    crash = {"BTC": D("9500"), "ETH": D("8000")}
    assert cross_is_liquidatable(book, crash)
    assert cross_plan(book, crash)[0] == 10
    index = LiquidationIndex()
    index.on_mark("BTC", D("10000"))
    index.on_mark("ETH", D("8000"))
    index.upsert_cross(book)
    assert index.on_mark("BTC", D("9700")) == []
    (hit,) = index.on_mark("BTC", D("9500"))
    assert hit.kind == CROSS and hit.position_ids[0] == 10 and dict(hit.marks) == crash


def test_shorts_liquidate_when_the_mark_rises() -> None:
    position = iso(2, SHORT, "80000", "0.1", "800")
    price = position.liquidation_price()
    assert price is not None and D("87000") < price < D("88000")
    index = LiquidationIndex()
    index.upsert_isolated(position)
    assert index.on_mark("BTC", price - 1) == []
    assert [h.key for h in index.on_mark("BTC", price)] == [2]


def test_a_new_version_rearms_and_removal_forgets() -> None:
    index = LiquidationIndex()
    index.upsert_isolated(iso(1, LONG, "80000", "0.1", "800"))
    assert len(index.on_mark("BTC", D("70000"))) == 1
    index.upsert_isolated(iso(1, LONG, "80000", "0.1", "800"))  # same version: still reported
    assert index.on_mark("BTC", D("69000")) == []
    bumped = IsolatedPosition(1, 2, 101, "BTC", LONG, D("0.1"), D("80000"), D("800"), T004)
    index.upsert_isolated(bumped)
    (hit,) = index.on_mark("BTC", D("69000"))
    assert hit.trigger_id == trigger_id_for(ISOLATED, 1, 2)
    index.remove_isolated(1)
    assert index.isolated_count == 0 and index.on_mark("BTC", D("1")) == []


def test_an_update_only_touches_what_crossed() -> None:
    index = LiquidationIndex()
    for i in range(1, 2001):
        # entries spread so liquidation prices are distinct
        index.upsert_isolated(iso(i, LONG, str(60000 + i * 10), "0.1", "600"))
    hits = index.on_mark("BTC", D("60000"))
    expected = {
        p
        for p in range(1, 2001)
        if iso(p, LONG, str(60000 + p * 10), "0.1", "600").is_liquidatable(D("60000"))
    }
    assert {h.key for h in hits} == expected and 0 < len(expected) < 2000


# ------------------------------------------------------------------ property tests

prices = st.decimals(min_value=D("50"), max_value=D("200"), places=2)
sizes = st.decimals(min_value=D("0.01"), max_value=D("2000"), places=2)
sides = st.sampled_from([LONG, SHORT])
assets = st.sampled_from(["A", "B", "C"])
tables = st.sampled_from([T004, T40, margin.MarginTable.single(10)])


@st.composite
def isolated_positions(draw: st.DrawFn, pid: int) -> IsolatedPosition:
    size = draw(sizes)
    entry = draw(prices)
    leverage = draw(st.integers(min_value=1, max_value=50))
    im = (size * entry / leverage).quantize(D("0.000001"))
    extra = draw(st.decimals(min_value=D("0"), max_value=D("500"), places=2))
    return IsolatedPosition(pid, 1, pid, draw(assets), draw(sides), size, entry, im + extra, draw(tables))


@st.composite
def cross_books(draw: st.DrawFn, uid: int) -> CrossBook:
    legs = []
    for n in range(draw(st.integers(min_value=1, max_value=3))):
        legs.append(
            CrossLeg(
                uid * 10 + n,
                draw(assets),
                draw(sides),
                draw(sizes),
                draw(prices),
                draw(st.integers(min_value=1, max_value=20)),
                draw(tables),
            )
        )
    cash = draw(st.decimals(min_value=D("0"), max_value=D("50000"), places=2))
    return CrossBook(uid, 1, cash, tuple(legs))


@st.composite
def scenarios(draw: st.DrawFn):
    isolated = [draw(isolated_positions(i)) for i in range(1, draw(st.integers(0, 12)) + 1)]
    books = [draw(cross_books(1000 + i)) for i in range(draw(st.integers(0, 6)))]
    start = {a: draw(prices) for a in ("A", "B", "C")}
    updates = draw(st.lists(st.tuples(assets, prices), min_size=1, max_size=12))
    return isolated, books, start, updates


def _brute(index_marks, isolated, books) -> set[tuple[str, int]]:
    out = set()
    for p in isolated:
        if p.is_liquidatable(index_marks[p.asset]):
            out.add((ISOLATED, p.position_id))
    for b in books:
        if cross_is_liquidatable(b, index_marks):
            out.add((CROSS, b.user_id))
    return out


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_index_reports_exactly_what_the_definition_says(scenario) -> None:
    isolated, books, start, updates = scenario
    index = LiquidationIndex()
    for asset, mark in start.items():
        index.on_mark(asset, mark)
    index.load(isolated, books)
    reported: dict[tuple[str, int], int] = {}
    # the first round of updates evaluates everything at the starting marks
    for step, (asset, mark) in enumerate([*start.items(), *updates]):
        for hit in index.on_mark(asset, mark):
            key = (hit.kind, hit.key)
            assert key not in reported, "reported twice in one version"
            reported[key] = step
            # sound: liquidatable at the marks of the moment
            if hit.kind == ISOLATED:
                assert index.isolated(hit.key).is_liquidatable(mark)
            else:
                assert cross_is_liquidatable(index.book(hit.key), dict(hit.marks))
    # complete: whatever is liquidatable at the final marks has been reported
    assert _brute(index.marks, isolated, books) <= set(reported)
    # the brute-force scan agrees with the definition
    assert {(h.kind, h.key) for h in index.scan()} == _brute(index.marks, isolated, books)


@settings(max_examples=200, deadline=None)
@given(st.lists(isolated_positions(0), min_size=1, max_size=30), prices)
def test_a_single_update_finds_every_isolated_position_at_or_past_its_price(positions, mark) -> None:
    positions = [
        IsolatedPosition(i + 1, 1, i + 1, "A", p.side, p.size, p.entry, p.isolated_margin, p.table)
        for i, p in enumerate(positions)
    ]
    index = LiquidationIndex()
    index.load(positions, [])
    found = {h.key for h in index.on_mark("A", mark)}
    assert found == {p.position_id for p in positions if p.is_liquidatable(mark)}


def test_exhaustive_small_grid_of_marks_matches_the_definition() -> None:
    positions = [
        iso(i, side, str(entry), "1", str(margin_), asset="A", table=table)
        for i, (side, entry, margin_, table) in enumerate(
            [
                (s, e, m, t)
                for s in (LONG, SHORT)
                for e in (90, 100, 110)
                for m in (1, 5, 20, 60)
                for t in (T004, margin.MarginTable.single(10))
            ],
            start=1,
        )
    ]
    for mark in range(40, 181):
        index = LiquidationIndex()
        index.load(positions, [])
        found = {h.key for h in index.on_mark("A", D(mark))}
        assert found == {p.position_id for p in positions if p.is_liquidatable(D(mark))}, mark


def test_a_book_with_two_positions_in_an_asset_without_a_mark_is_indexed_not_refused() -> None:
    # the soak's Redis restart: the sweep ran before the feed had rewritten BTC's mark, and a user held
    # BTC both internally and on HL at different entries; each leg fell back to its own entry as its
    # mark, cross_liquidation_price refused the mixed snapshot and the whole sweep failed
    internal = CrossLeg(20, "BTC", LONG, D("0.1"), D("99944.85"), 10, T004)
    on_hl = CrossLeg(21, "BTC", LONG, D("0.2"), D("99967"), 10, T004, "HYPERLIQUID")
    book = CrossBook(9, 1, D("3000"), (internal, on_hl))
    account = book.account({})
    assert len({p.mark for p in account.positions}) == 1  # one stand-in mark for the asset
    index = LiquidationIndex()
    index.load((), (book,))  # raised ValueError("positions in BTC carry different marks")
    with_mark = LiquidationIndex()
    with_mark.on_mark("BTC", D("99950"))
    with_mark.upsert_cross(book)
    # the liquidation price is the book's, not the stand-in's: the same once the mark is known
    assert index._book_price[9] == with_mark._book_price[9]
