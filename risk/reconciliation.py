"""The reconciliation engine (spec 04): each run compares independent views of the same money or
position and writes ``ReconciliationLog`` rows (OK / WARN > 0.01 % / CRITICAL > 0.1 %; a USDC level also
needs the deviation above an absolute floor; every threshold is in the risk config).

A CRITICAL row raises a P0 alert (``reconciliation.<dimension>``) and pauses the related operation
(fail closed) until a later run finds it clean; nothing is ever "fixed" with a plug entry — the details
carry what explains the deviation. HL is the source of truth for what HL holds.

Dimensions implemented here:

* ``ledger`` — Σ of balances per asset = 0, every balance = Σ of its postings, every user balance = Σ
  of its balance logs (``ledger_invariant_violations``).
* ``exposure`` — the incremental exposure totals = the sum of the consumer's view of each position, and
  that view = the open INTERNAL positions, for every position with no event in flight.
* ``hl_trading`` — Σ users' HYPERLIQUID positions = the trading account per asset (``positions_sync``,
  which halts new HL opens for a mismatching asset).
* ``hl_hedge`` — XBIT's hedge book (Σ of the hedge fills it recorded) = the hedge account per asset; a
  mismatch stops internalizing the asset (force-HL) since its hedge can no longer be trusted.
* ``user_assets`` — what users are owed (balances + unrealized P&L) = what the platform's books hold
  for them (see :func:`check_user_assets`); gates the restart like the ledger.
* ``hl_account_value`` — each HL account's value = injected capital − ``hl_pnl`` + its unrealized P&L.
* ``funding_mirror`` — Σ mirrored HYPERLIQUID funding = HL's ``userFunding``, every instant of the last day.
* ``bbook`` — the B-book's net P&L (+ reserve allocations) = Σ INTERNAL users' realized losses − gains.
* ``hot_wallets`` — per chain and token: on-chain hot balance = our custody record ≥ queued withdrawals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from core.alerts.services import alert_raise, alert_resolve_condition
from core.money import ZERO
from risk.config import risk_config
from risk.exposure import exposure_compare
from risk.hedge_account import hedge_force_hl, hedge_gateway
from risk.hedge_models import HedgeInstruction, ReconciliationLog
from risk.reconciliation_funding import funding_mirror_window
from trading.hl_accounts import positions_sync
from trading.marketdata import get_quotes
from trading.models import Fill, Position, Source
from trading.venues.hl import gateway
from wallets.chains import get_adapter, spec
from wallets.config import chain_config
from wallets.ledger import AccountRef, account_balance, ledger_invariant_violations
from wallets.models import Aggregation, Chain, LedgerAccount, LedgerTransfer, Withdrawal
from wallets.services.keys import hot_wallet_key

logger = logging.getLogger(__name__)

LEDGER_ACCOUNTS = LedgerAccount._meta.db_table
LEDGER_TRANSFERS = LedgerTransfer._meta.db_table

RATE_Q = Decimal("0.00000001")
STORED_Q = Decimal("0.000001")  # ReconciliationLog's columns: what a row can show is what is compared
Status = ReconciliationLog.Status


def classify(expected: Decimal, actual: Decimal, *, unit: str = "USDC") -> tuple[Decimal, str]:
    """Spec 04: WARN above 0.01 %, CRITICAL above 0.1 % of the larger side (risk config). Both figures
    are compared at the precision the row stores, and a USDC deviation must also exceed the level's
    absolute floor: a relative threshold alone fires on dust (a 0.00009 USDC rounding on a 0.5 USDC
    funding payment is 0.02 %)."""
    cfg = risk_config()
    expected, actual = expected.quantize(STORED_Q), actual.quantize(STORED_Q)
    deviation = abs(actual - expected)
    base = max(abs(expected), abs(actual))
    rate = deviation / base if base else ZERO
    coins = unit != "USDC"
    if rate > cfg.reconciliation_critical_rate and (
        coins or deviation > cfg.reconciliation_critical_min_usdc
    ):
        return rate, Status.CRITICAL
    if rate > cfg.reconciliation_warn_rate and (coins or deviation > cfg.reconciliation_warn_min_usdc):
        return rate, Status.WARN
    return rate, Status.OK


def _row(
    run_id: str, dimension: str, subject: str, expected: Decimal, actual: Decimal, **details: Any
) -> ReconciliationLog:
    rate, status = classify(expected, actual, unit=str(details.get("unit", "USDC")))
    if details.pop("force_critical", False):
        status = Status.CRITICAL
    return ReconciliationLog(
        run_id=run_id,
        dimension=dimension,
        subject=subject,
        expected=expected.quantize(STORED_Q),
        actual=actual.quantize(STORED_Q),
        deviation=(actual - expected).quantize(STORED_Q),
        deviation_rate=min(rate, Decimal(9999)).quantize(RATE_Q),
        status=status,
        details={k: (str(v) if isinstance(v, Decimal) else v) for k, v in details.items()},
    )


# ------------------------------------------------------------------------------------------ dimensions
def check_ledger(run_id: str) -> list[ReconciliationLog]:
    problems = ledger_invariant_violations()
    return [
        _row(
            run_id,
            "ledger",
            "*",
            ZERO,
            Decimal(len(problems)),
            problems=problems[:100],
            force_critical=bool(problems),
        )
    ]


def check_exposure(run_id: str) -> list[ReconciliationLog]:
    diffs = exposure_compare()
    if not diffs:
        return [_row(run_id, "exposure", "*", ZERO, ZERO)]
    return [
        _row(run_id, "exposure", asset, ZERO, Decimal(len(fields)), differences=fields, force_critical=True)
        for asset, fields in sorted(diffs.items())
    ]


def check_hl_trading(run_id: str) -> list[ReconciliationLog]:
    rows = [_row(run_id, "hl_trading", r.asset, r.expected, r.actual, unit="coins") for r in positions_sync()]
    return rows or [_row(run_id, "hl_trading", "*", ZERO, ZERO, unit="coins")]


def hedge_book() -> dict[str, Decimal]:
    """XBIT's own hedge book: Σ signed sizes of every hedge fill it recorded, per asset."""
    book: dict[str, Decimal] = {}
    for asset, is_buy, filled in HedgeInstruction.objects.filter(filled_size__gt=0).values_list(
        "asset", "is_buy", "filled_size"
    ):
        book[asset] = book.get(asset, ZERO) + (filled if is_buy else -filled)
    return book


def check_hl_hedge(run_id: str) -> list[ReconciliationLog]:
    gw = hedge_gateway()
    if gw is None:
        return []
    state = gw.user_state()
    theirs = {p["position"]["coin"]: Decimal(p["position"]["szi"]) for p in state.get("assetPositions", [])}
    ours = hedge_book()
    rows = []
    for asset in sorted(set(ours) | set(theirs)):
        row = _row(run_id, "hl_hedge", asset, ours.get(asset, ZERO), theirs.get(asset, ZERO), unit="coins")
        rows.append(row)
        # fail closed: a hedge we cannot account for means the asset's risk is unknown — stop internalizing
        hedge_force_hl(asset, "hedge_capacity", row.status == Status.CRITICAL, "reconciliation")
    return rows or [_row(run_id, "hl_hedge", "*", ZERO, ZERO, unit="coins")]


# ------------------------------------------------------------------------------------------ user assets
USER_KINDS = ("cash", "isolated_margin", "order_hold", "pending_withdrawal")
CUSTODY_KINDS = ("hot_wallet", "cold_wallet", "deposit_clearing", "withdrawal_clearing")


def _open_position_sums(source: str | None = None) -> list[dict[str, Any]]:
    """Open positions per asset and direction: Σ size and Σ size × entry (one aggregate query)."""
    qs = Position.objects.filter(status=Position.Status.OPEN)
    if source is not None:
        qs = qs.filter(source=source)
    rows = qs.values("asset", "direction").annotate(
        total_size=Sum("size"), cost=Sum(F("size") * F("entry_price"))
    )
    return [dict(r) for r in rows.order_by()]


def _pnl_at(rows: list[dict[str, Any]], marks: dict[str, Decimal]) -> dict[str, Decimal]:
    """Σ direction × (mark × size − cost) per asset; an asset without a mark counts at its entry (0)."""
    out: dict[str, Decimal] = {}
    for r in rows:
        mark = marks.get(r["asset"])
        pnl = (mark * r["total_size"] - r["cost"]) if mark is not None else ZERO
        sign = 1 if r["direction"] == "LONG" else -1
        out[r["asset"]] = out.get(r["asset"], ZERO) + sign * pnl
    return out


def unrealized_pnl(*, source: str | None = None) -> dict[str, Decimal]:
    """Σ unrealized P&L of the open positions per asset at our mark (spec 04: direction × (mark − entry)
    × size); an asset without a mark counts at its entry (0), which the details of the row show."""
    rows = _open_position_sums(source)
    quotes = get_quotes({r["asset"] for r in rows})
    return _pnl_at(rows, {a: q.mark for a, q in quotes.items() if q.mark})


def _platform_journal() -> dict[str, Decimal]:
    """Journal net (Σ credits − Σ debits of ``ledger_transfers``) of the platform's USDC accounts per
    kind — recomputed from the postings, independent of the stored balances."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT a.kind, SUM(COALESCE(c.total, 0) - COALESCE(d.total, 0))
            FROM {LEDGER_ACCOUNTS} a
            LEFT JOIN (SELECT credit_id, SUM(amount) total FROM {LEDGER_TRANSFERS} WHERE asset = 'USDC'
                       GROUP BY credit_id) c ON c.credit_id = a.id
            LEFT JOIN (SELECT debit_id, SUM(amount) total FROM {LEDGER_TRANSFERS} WHERE asset = 'USDC'
                       GROUP BY debit_id) d ON d.debit_id = a.id
            WHERE a.user_id IS NULL AND a.asset = 'USDC'
            GROUP BY a.kind
            """  # noqa: S608 - the ledger's own table names
        )
        return dict(cursor.fetchall())


def check_user_assets(run_id: str) -> list[ReconciliationLog]:
    """User assets (spec 04), an identity of our own books in USDC, exact to the micro-dollar:

    * actual — total user liability: Σ of the stored user balances (cash + isolated margin + order
      holds + pending withdrawal, ``ledger_accounts.balance``) + Σ unrealized P&L of open positions
      at mark;
    * expected — what the platform holds for users, recomputed from the postings (``ledger_transfers``):
      custody as booked (−(hot + cold wallets + deposit/withdrawal clearing); custody accounts are
      negative by what they hold) minus the platform's own claims on the money it holds (equity and
      its HL capital allocations ``hl_*_capital``/``hl_pnl``, risk reserve, fee revenue, B-book P&L,
      gas, funding clearing, adjustments) — by double entry −Σ of every platform account's journal —
      plus the same unrealized P&L, which the B-book (INTERNAL) and the HL trading account's value
      (HYPERLIQUID) owe users at mark.

    Prices cancel out, so any difference is a book-keeping breach (a balance changed behind the
    ledger's back, a posting lost): CRITICAL at any size, and it gates the restart like ``ledger``."""
    balances = dict(
        LedgerAccount.objects.filter(user__isnull=False, asset="USDC", kind__in=USER_KINDS)
        .values("kind")
        .annotate(total=Sum("balance"))
        .order_by()
        .values_list("kind", "total")
    )
    upnl = unrealized_pnl()
    unrealized = sum(upnl.values(), ZERO)
    journal = _platform_journal()
    custody = -sum((journal.get(k, ZERO) for k in CUSTODY_KINDS), ZERO)
    own = {k: v for k, v in journal.items() if k not in CUSTODY_KINDS and v}
    held = custody - sum(own.values(), ZERO)
    liability = sum(balances.values(), ZERO) + unrealized
    expected = held + unrealized
    return [
        _row(
            run_id,
            "user_assets",
            "USDC",
            expected,
            liability,
            user_balances={k: str(v) for k, v in sorted(balances.items())},
            unrealized_pnl=unrealized,
            custody=custody,
            platform_own={k: str(v) for k, v in sorted(own.items())},
            force_critical=liability != expected,
        )
    ]


# ------------------------------------------------------------------------------------------ HL account value
HL_CAPITAL = {"trading": "hl_trading_capital", "hedge": "hl_hedge_capital"}


def check_hl_account_value(run_id: str) -> list[ReconciliationLog]:
    """Each HL account's value as HL reports it (``marginSummary.accountValue``) ≈ the capital we
    injected (``hl_<name>_capital``) − what the account settled beyond it (``hl_pnl`` sub ``<name>``:
    users' realized P&L on HL-held positions, hedge P&L, HL fees) + the unrealized P&L still open.

    The trading account nets every user: HL realizes P&L on the *net* position at its own average
    entry, users on their own positions at theirs, so HL's ``unrealizedPnl`` and the users' differ by
    whatever the netting realized early. What is invariant is the total, so the open part is the users'
    own unrealized P&L (HYPERLIQUID positions) at HL's mark (``positionValue / |szi|``; a coin the
    account holds none of is flat net, and its users' unrealized P&L does not depend on the mark). The
    hedge account holds the platform's own position: HL's ``unrealizedPnl`` is it. Thresholds as
    everywhere; the details carry each term so a difference can be explained."""
    rows = []
    for name, capital_code in HL_CAPITAL.items():
        gw = gateway(name)
        if gw is None:
            continue
        state = gw.user_state()
        value = Decimal(str(state["marginSummary"]["accountValue"]))
        hl_unrealized: dict[str, Decimal] = {}
        marks: dict[str, Decimal] = {}
        for p in state.get("assetPositions", []):
            pos = p["position"]
            hl_unrealized[pos["coin"]] = Decimal(str(pos.get("unrealizedPnl", "0")))
            size = abs(Decimal(str(pos["szi"])))
            if size:
                marks[pos["coin"]] = Decimal(str(pos["positionValue"])) / size
        open_pnl = _users_hl_unrealized(marks) if name == "trading" else hl_unrealized
        unrealized = sum(open_pnl.values(), ZERO)
        capital = account_balance(AccountRef.platform(capital_code))
        settled = account_balance(AccountRef.platform("hl_pnl", sub=name))
        rows.append(
            _row(
                run_id,
                "hl_account_value",
                name,
                capital - settled + unrealized,
                value,
                capital=capital,
                hl_pnl=settled,
                unrealized_pnl=unrealized,
                positions={k: str(v) for k, v in sorted(open_pnl.items())},
                hl_unrealized_pnl={k: str(v) for k, v in sorted(hl_unrealized.items())},
            )
        )
    return rows


def _users_hl_unrealized(marks: dict[str, Decimal]) -> dict[str, Decimal]:
    """Σ users' unrealized P&L of their open HYPERLIQUID positions per asset, at HL's ``marks``; an asset
    HL holds none of nets to zero, so its sum is −(long cost − short cost) at any mark (0 here)."""
    rows = _open_position_sums(Source.HYPERLIQUID)
    return _pnl_at(rows, {r["asset"]: marks.get(r["asset"], ZERO) for r in rows})


# ------------------------------------------------------------------------------------------ funding mirror
def check_funding_mirror(run_id: str) -> list[ReconciliationLog]:
    """Σ mirrored HYPERLIQUID funding = the trading account's ``userFunding``, per asset and instant, for
    every instant of the window (``risk.reconciliation_funding``): one row per asset when each of its
    instants matches (subject ``<asset>@<latest instant>``: the window's totals, ``since`` its first
    instant, ``instants`` how many had a payment), else one row per instant that does not
    (``<asset>@<instant>``) — the comparison of ``risk.funding.funding_compare_hl`` without its side
    effects (it records drift once per instant)."""
    window = funding_mirror_window()
    if window.latest is None or window.first is None:
        return [_row(run_id, "funding_mirror", "*", ZERO, ZERO, note="no settled funding hour yet")]
    span, since = window.latest.isoformat(), window.first.isoformat()
    rows: list[ReconciliationLog] = []
    for asset in sorted({line.asset for line in window.lines}):
        lines = [line for line in window.lines if line.asset == asset]
        off = [
            _row(run_id, "funding_mirror", f"{asset}@{line.at.isoformat()}", line.mirrored, line.hl)
            for line in lines
        ]
        off = [row for row in off if row.status != Status.OK]
        mirrored, hl = sum((x.mirrored for x in lines), ZERO), sum((x.hl for x in lines), ZERO)
        rows += off or [
            _row(run_id, "funding_mirror", f"{asset}@{span}", mirrored, hl, since=since, instants=len(lines))
        ]
    return rows or [_row(run_id, "funding_mirror", f"*@{span}", ZERO, ZERO, since=since)]


# ------------------------------------------------------------------------------------------ B-book
def _journal_sum(sql: str, params: list[Any]) -> Decimal:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        value = cursor.fetchone()[0]
    return value if value is not None else ZERO


def check_bbook(run_id: str) -> list[ReconciliationLog]:
    """B-book (spec 04), exact: the platform's net P&L as counterparty of INTERNAL users =
    Σ INTERNAL users' realized losses − gains.

    * actual — the journal of ``bbook_pnl`` (main sub; the hedge book's sub ``hedge`` is HL's business)
      without its funding flows (funding is not trading P&L) + what users' losses allocated straight to
      the risk reserve (``reserve_allocation`` / ``liquidation`` transfers from a user account into it);
    * expected — −Σ ``realized_pnl`` of INTERNAL fills + the liquidation surplus users lost beyond the
      fill's realized P&L (isolated margin retained on liquidation, ``liquidation`` transfers from users
      into the B-book or the reserve), which no fill carries.
    """
    realized = Fill.objects.filter(source=Source.INTERNAL).aggregate(t=Sum("realized_pnl"))["t"] or ZERO
    bbook = _journal_sum(
        f"""
        SELECT SUM(CASE WHEN t.credit_id = a.id THEN t.amount ELSE -t.amount END)
        FROM {LEDGER_ACCOUNTS} a JOIN {LEDGER_TRANSFERS} t ON t.credit_id = a.id OR t.debit_id = a.id
        WHERE a.kind = 'bbook_pnl' AND a.sub = '' AND a.user_id IS NULL AND t.kind <> 'funding'
        """,  # noqa: S608 - the ledger's own table names
        [],
    )
    to_reserve = _journal_sum(
        f"""
        SELECT SUM(t.amount) FROM {LEDGER_TRANSFERS} t
        JOIN {LEDGER_ACCOUNTS} c ON c.id = t.credit_id JOIN {LEDGER_ACCOUNTS} d ON d.id = t.debit_id
        WHERE c.kind = 'risk_reserve' AND d.user_id IS NOT NULL
          AND t.kind IN ('reserve_allocation', 'liquidation')
        """,  # noqa: S608 - the ledger's own table names
        [],
    )
    surplus = _journal_sum(
        f"""
        SELECT SUM(t.amount) FROM {LEDGER_TRANSFERS} t
        JOIN {LEDGER_ACCOUNTS} c ON c.id = t.credit_id JOIN {LEDGER_ACCOUNTS} d ON d.id = t.debit_id
        WHERE t.kind = 'liquidation' AND d.user_id IS NOT NULL
          AND (c.kind = 'risk_reserve' OR (c.kind = 'bbook_pnl' AND c.sub = ''))
        """,  # noqa: S608 - the ledger's own table names
        [],
    )
    expected = -realized + surplus
    actual = bbook + to_reserve
    return [
        _row(
            run_id,
            "bbook",
            "INTERNAL",
            expected,
            actual,
            fills_realized_pnl=realized,
            liquidation_surplus=surplus,
            bbook_pnl_ex_funding=bbook,
            reserve_allocations=to_reserve,
            force_critical=expected != actual,
        )
    ]


# ------------------------------------------------------------------------------------------ hot wallets
QUEUED_WITHDRAWALS = ("AWAITING_APPROVAL", "APPROVED", "SENDING")


def check_hot_wallets(run_id: str) -> list[ReconciliationLog]:
    """Per chain and token: the hot wallet's balance on chain (the chain adapter) = our custody record
    (−``hot_wallet`` sub ``CHAIN:TOKEN``, at par in USDC), and ≥ the queued withdrawal demand (net
    amounts of withdrawals awaiting approval, approved or being sent). A wallet short of its queue is
    CRITICAL whatever the record says (withdrawals would stall). Chain unreachable → CRITICAL.

    Money in flight explains a difference, never more than its amount: a sweep sent to the hot wallet
    is booked at its N-th confirmation (the chain may already hold it), a withdrawal being sent or
    broadcast is booked at its N-th confirmation (the chain may already miss it). The expected balance
    is the record moved by as much of the in-flight amounts as the chain shows; the rest is deviation."""
    adapter = get_adapter()
    queued = {
        (c, a): total
        for c, a, total in Withdrawal.objects.filter(status__in=QUEUED_WITHDRAWALS)
        .values("chain", "asset")
        .annotate(total=Sum(F("amount") - F("fee")))
        .order_by()
        .values_list("chain", "asset", "total")
    }
    sweeping_in = {
        (c, a): total
        for c, a, total in Aggregation.objects.filter(status=Aggregation.Status.SENT)
        .values("chain", "asset")
        .annotate(total=Sum("amount"))
        .order_by()
        .values_list("chain", "asset", "total")
    }
    sending_out = {
        (c, a): total
        for c, a, total in Withdrawal.objects.filter(
            status__in=(Withdrawal.Status.SENDING, Withdrawal.Status.BROADCAST)
        )
        .values("chain", "asset")
        .annotate(total=Sum(F("amount") - F("fee")))
        .order_by()
        .values_list("chain", "asset", "total")
    }
    rows = []
    for chain in Chain.values:
        config = chain_config(chain)
        address = hot_wallet_key(chain).address
        for asset in config.assets or spec.TOKENS[chain]:
            if asset not in spec.TOKENS[chain]:
                continue
            sub = spec.custody_sub(chain, asset)
            record = -account_balance(AccountRef.platform("hot_wallet", sub=sub))
            onchain = adapter.balance(chain, address, asset)
            demand = queued.get((chain, asset), ZERO)
            arriving = sweeping_in.get((chain, asset), ZERO)
            leaving = sending_out.get((chain, asset), ZERO)
            in_flight = min(max(onchain - record, -leaving), arriving)  # what the flights can explain
            rows.append(
                _row(
                    run_id,
                    "hot_wallets",
                    sub,
                    record + in_flight,
                    onchain,
                    address=address,
                    custody_record=record,
                    sweeps_in_flight=arriving,
                    withdrawals_in_flight=leaving,
                    queued_withdrawals=demand,
                    covers_queue=onchain >= demand,
                    force_critical=onchain < demand,
                )
            )
    return rows


DIMENSIONS: dict[str, Callable[[str], list[ReconciliationLog]]] = {
    "ledger": check_ledger,
    "exposure": check_exposure,
    "hl_trading": check_hl_trading,
    "hl_hedge": check_hl_hedge,
    "user_assets": check_user_assets,
    "hl_account_value": check_hl_account_value,
    "funding_mirror": check_funding_mirror,
    "bbook": check_bbook,
    "hot_wallets": check_hot_wallets,
}


# Dimensions computed from our own books only: each reads them in one REPEATABLE READ snapshot, so a
# posting that commits between two of its queries can never look like a breach (under load one does,
# every few minutes: balances read before a fill, the journal after it).
SNAPSHOT_DIMENSIONS = frozenset({"ledger", "exposure", "user_assets", "bbook"})


@contextmanager
def _snapshot(name: str) -> Iterator[None]:
    if name not in SNAPSHOT_DIMENSIONS or connection.in_atomic_block:
        yield  # inside a caller's transaction (a test's, say) the caller's isolation applies
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def reconciliation_run(*, dimensions: Iterable[str] | None = None) -> list[ReconciliationLog]:
    """Run the given dimensions (default: all) now; write and return their rows, alert on deviations.
    A dimension that cannot be checked (e.g. HL unreachable) is recorded CRITICAL — unknown is never OK."""
    run_id = uuid.uuid4().hex[:20]
    now = timezone.now()
    rows: list[ReconciliationLog] = []
    for name in dimensions or DIMENSIONS:
        try:
            with _snapshot(name):
                found = DIMENSIONS[name](run_id)
        except Exception as exc:
            logger.exception("reconciliation dimension %s failed", name)
            found = [
                _row(run_id, name, "*", ZERO, ZERO, error=f"{type(exc).__name__}: {exc}", force_critical=True)
            ]
        for row in found:
            row.created_at = now
        rows += found
        worst = [r for r in found if r.status != Status.OK]
        rule = f"reconciliation.{name}"
        if worst:
            critical = any(r.status == Status.CRITICAL for r in worst)
            alert_raise(
                rule=rule,
                severity="P0" if critical else "P1",
                subject="*",
                message=f"reconciliation {name}: "
                + "; ".join(f"{r.subject} expected {r.expected} actual {r.actual}" for r in worst[:5]),
                details={"run_id": run_id},
            )
        else:
            alert_resolve_condition(rule=rule, subject="*")
    ReconciliationLog.objects.bulk_create(rows)
    return rows


def reconciliation_latest() -> dict[str, Any]:
    """The newest run's rows (console)."""
    last = ReconciliationLog.objects.order_by("-created_at", "-id").first()
    if last is None:
        return {"run_id": None, "rows": []}
    rows = list(
        ReconciliationLog.objects.filter(run_id=last.run_id)
        .order_by("dimension", "subject")
        .values(
            "dimension", "subject", "expected", "actual", "deviation", "deviation_rate", "status", "details"
        )
    )
    return {"run_id": last.run_id, "at": last.created_at, "rows": rows}


# Dimensions whose CRITICAL result keeps the whole platform closed after a restart; the others fail
# closed where they apply (an HL position mismatch halts HL opens for that asset, etc.).
GATING_DIMENSIONS = ("ledger", "exposure", "user_assets")


def startup_check() -> tuple[bool, str]:
    """Restart recovery's reconciliation step (``manage.py platform_ready``)."""
    rows = reconciliation_run()
    blocking = sorted(
        {r.dimension for r in rows if r.status == "CRITICAL" and r.dimension in GATING_DIMENSIONS}
    )
    if blocking:
        return False, "reconciliation critical: " + ", ".join(blocking)
    return True, f"{len(rows)} reconciliation checks, none blocking"
