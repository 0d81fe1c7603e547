"""One chronological journal per client: orders, fills, margin changes,
liquidations (trigger mark, margin ratio at the trigger, close price, venue, the loss's split and the
reserve's share), funding payments, deposits and withdrawals with each step and who took it, security
events, and staff notes and actions — newest first, filterable by kind, exportable as CSV.

Each source reads at most ``limit`` rows of the window (an indexed, newest-first read), so the page costs
one query per source whatever the client's history; the merged list is cut to ``limit``. Nothing here
writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Q

from core.accounts.models import ClientNote, SecurityEvent
from core.audit.models import AuditEntry
from risk.models import FundingSettlement
from trading.models import Fill, Order
from wallets.models import BalanceLog, Deposit, Withdrawal, WithdrawalApproval
from xbit_admin.console import user_reads
from xbit_admin.console.formats import price_text
from xbit_admin.console.pages.common import TimeWindow

KINDS: dict[str, str] = {
    "order": "Orders",
    "fill": "Fills",
    "margin": "Margin changes",
    "liquidation": "Liquidations",
    "funding": "Funding",
    "deposit": "Deposits",
    "withdrawal": "Withdrawals",
    "security": "Security",
    "staff": "Staff notes and actions",
}
MARGIN_TYPES = ("margin_freeze", "margin_release", "adjustment", "capital")
BAD_SECURITY = {"login_failed", "otp_failed", "locked", "token_reuse", "otp_disabled"}


@dataclass
class Entry:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    amount: Decimal | None = None
    unit: str = ""
    who: str = ""  # the staff member (or "client" / "system") who took this step
    ref: str = ""  # an anchor or id the row points to
    level: str = ""  # "", "ok", "warn", "bad": the badge colour
    facts: dict[str, str] = field(default_factory=dict)  # labelled figures shown as a definition list


def _fmt(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:,.{places}f}"


def _qty(value: Decimal | None) -> str:
    if value is None:
        return "—"
    text = f"{value.normalize():f}"
    whole, _, frac = text.partition(".")
    return f"{int(whole):,}" + (f".{frac}" if frac else "") if whole.lstrip("-").isdigit() else text


def _pct(value: Decimal | None, places: int = 1) -> str:
    return "—" if value is None else f"{value * 100:,.{places}f} %"


# --- sources -------------------------------------------------------------------------------------------


def _orders_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    return list(window.apply(Order.objects.filter(user_id=user_id)).order_by("-id")[:limit])


def _orders(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    for o in rows:
        price = "market" if not o.limit_price else f"limit {price_text(o.asset, o.limit_price)} USD"
        level = "bad" if o.status in ("REJECTED", "FAILED") else ""
        yield Entry(
            at=o.created_at,
            kind="order",
            title=f"Order {o.pk}: {o.side} {_qty(o.size)} {o.asset} {price}",
            detail=(
                f"{o.status.lower()}"
                + (f", routed {o.route}" if o.route else "")
                + f", {o.margin_mode.lower()} {o.leverage}×"
                + (", reduce-only" if o.reduce_only else "")
                + (
                    f", filled {_qty(o.filled_size)} at {price_text(o.asset, o.avg_fill_price)} USD"
                    if o.avg_fill_price
                    else ""
                )
                + (f" — {o.error_code}" if o.error_code else "")
            ),
            who="client",
            ref=f"order-{o.pk}",
            level=level,
        )


def _fills_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    return list(window.apply(Fill.objects.filter(user_id=user_id)).order_by("-id")[:limit])


def _fills(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    for f in rows:
        yield Entry(
            at=f.created_at,
            kind="fill",
            title=f"Fill: {f.side} {_qty(f.size)} {f.asset} at {price_text(f.asset, f.price)} USD on {f.source}",
            detail=f"order {f.order_id or '—'}, position {f.position_id or '—'}, fee {_fmt(f.fee)} USDC"
            + (", liquidation fill" if f.is_liquidation else ""),
            amount=f.realized_pnl if f.realized_pnl else None,
            unit="USDC",
            who="system" if f.is_liquidation else "client",
            level="bad" if f.is_liquidation else "",
        )


def _margin_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    qs = BalanceLog.objects.filter(user_id=user_id, type__in=MARGIN_TYPES, account_kind="cash")
    return list(window.apply(qs).order_by("-id")[:limit])


def _margin(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    for b in rows:
        if b.type not in MARGIN_TYPES or b.account_kind != "cash":
            continue  # the page's balance-log section holds every type
        titles = {
            "margin_freeze": "Cash moved into a position's margin",
            "margin_release": "Margin released back to cash",
        }
        title = titles.get(b.type, b.get_type_display())
        yield Entry(
            at=b.created_at,
            kind="margin",
            title=title,
            detail=f"cash {_fmt(b.before)} → {_fmt(b.after)} {b.asset} ({b.ref_type} {b.ref_id})",
            amount=b.amount,
            unit=b.asset,
            who="staff" if b.type == "adjustment" else "client",
        )


def _liquidations_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    values = window.apply(user_reads.liquidations_qs(user_id), "detected_at")[:limit]
    return user_reads.liquidation_rows(user_id, values)


def _liquidations(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    for r in rows:
        ratio = r.margin_ratio
        facts = {
            "Trigger mark": f"{price_text(r.asset, r.trigger_price)} USD",
            "Margin ratio at trigger": ("≈ " if not r.ratio_exact else "") + _pct(ratio)
            if ratio is not None
            else (r.ratio_note or "—"),
            "Close price": f"{price_text(r.asset, r.close_price)} USD" if r.closed else "not closed",
            "Venue": r.venue,
        }
        if r.closed:
            facts["Margin zeroed"] = f"{_fmt(r.margin_zeroed)} USDC"
            facts["Loss"] = f"{_fmt(r.loss)} USDC"
            facts["Split platform / reserve"] = f"{_fmt(r.platform_share)} / {_fmt(r.reserve_share)} USDC"
            if r.reserve_pct is not None:
                facts["Reserve share"] = _pct(r.reserve_pct, 0)
            if r.bankrupt_amount:
                facts["Bankrupt remainder"] = f"{_fmt(r.bankrupt_amount)} USDC"
        why = (
            f"margin ratio {_pct(ratio)} ≤ 100 %: equity fell to the maintenance margin at mark {price_text(r.asset, r.trigger_price)} USD"
            if ratio is not None
            else f"mark {price_text(r.asset, r.trigger_price)} USD reached the liquidation price"
        )
        yield Entry(
            at=r.detected_at,
            kind="liquidation",
            title=f"Liquidated: {r.margin_mode.lower()} {r.direction} {_qty(r.size)} {r.asset}"
            + (f" (position {r.position_id})" if r.position_id else ""),
            detail=f"Why: {why}. Status {r.status.lower()}.",
            amount=-(r.margin_zeroed or Decimal(0)) if r.closed else None,
            unit="USDC",
            who="system",
            ref=f"liq-{r.trigger_id}",
            level="bad",
            facts=facts,
        )


def _funding_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    qs = window.apply(FundingSettlement.objects.filter(user_id=user_id), "funding_time")
    return list(qs.order_by("-funding_time", "-id")[:limit])


def _funding(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    for f in rows:
        yield Entry(
            at=f.funding_time,
            kind="funding",
            title=f"Funding {'received' if f.payment > 0 else 'paid'}: {f.asset} {f.direction.lower()} {_qty(f.size)}",
            detail=f"rate {_pct(f.rate, 4)}, oracle {price_text(f.asset, f.price)} USD, position {f.position_id}, {f.source}",
            amount=f.payment,
            unit="USDC",
            who="system",
        )


def _deposits_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    return list(window.apply(Deposit.objects.filter(user_id=user_id)).order_by("-id")[:limit])


def _deposits(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    for d in rows:
        steps = [f"seen on {d.chain} with {d.confirmations}/{d.required_confirmations} confirmations"]
        if d.credited_at:
            steps.append(f"credited {d.credited_at:%Y-%m-%d %H:%M:%S}")
        yield Entry(
            at=d.created_at,
            kind="deposit",
            title=f"Deposit {d.pk}: {_fmt(d.amount)} {d.asset} on {d.chain} — {d.status.lower()}",
            detail="; ".join(steps),
            amount=d.amount,
            unit=d.asset,
            who="client",
            ref=f"deposit-{d.pk}",
            level="ok" if d.status == "CREDITED" else "warn",
            facts={"tx": d.tx_hash, "chain": d.chain},
        )


def withdrawal_where(w: Withdrawal, approvals: list[WithdrawalApproval]) -> str:
    """Where a withdrawal is, in one sentence support can read to the client."""
    given = {a.kind for a in approvals}
    s = Withdrawal.Status
    if w.status == s.AWAITING_CONFIRMATION:
        return "Waiting for the client to confirm it from the emailed link."
    if w.status == s.AWAITING_APPROVAL:
        need = []
        if w.tier == Withdrawal.Tier.DUAL and "risk" not in given:
            need.append("a risk review")
        if "ops" not in given:
            need.append("an operations approval")
        return "Waiting for " + " and ".join(need or ["approval"]) + f" (tier {w.tier})."
    if w.status == s.APPROVED:
        return "Approved; waiting to be signed and sent."
    if w.status == s.SENDING:
        return "Being signed and broadcast."
    if w.status == s.BROADCAST:
        return f"On chain, waiting for confirmations ({w.confirmations} so far)."
    if w.status == s.COMPLETED:
        return "Completed: the funds are on chain."
    if w.status == s.REJECTED:
        return "Rejected by staff; the amount was refunded to the client's balance."
    if w.status == s.FAILED:
        return f"Failed ({w.last_error or w.reason or 'see the steps'}); refunded."
    return f"{w.get_status_display()}."


def _withdrawals_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    return list(window.apply(Withdrawal.objects.filter(user_id=user_id)).order_by("-id")[:limit])


def _withdrawals(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    """Each withdrawal, then each of its steps with who took it (two queries: approvals, rejections —
    also when there is no withdrawal, so the page's query count does not depend on the history)."""
    ids = [w.pk for w in rows] or [0]
    approvals: dict[int, list[WithdrawalApproval]] = {}
    for a in WithdrawalApproval.objects.filter(withdrawal_id__in=ids).select_related("approver"):
        approvals.setdefault(a.withdrawal_id, []).append(a)
    rejections = {
        int(e.object_id): e
        for e in AuditEntry.objects.filter(
            object_type="withdrawal", object_id__in=[str(i) for i in ids], action="wallets.withdrawal.reject"
        )
    }
    for w in rows:
        mine = approvals.get(w.pk, [])
        title = f"Withdrawal {w.pk}: {_fmt(w.amount)} {w.asset} on {w.chain} — {w.status.lower()}"
        base = {"chain": w.chain, "tx": w.tx_hash, "to": w.address}
        yield Entry(
            at=w.created_at,
            kind="withdrawal",
            title=title,
            detail="Where it is: " + withdrawal_where(w, mine),
            amount=-w.amount,
            unit=w.asset,
            who="client",
            ref=f"withdrawal-{w.pk}",
            level={"COMPLETED": "ok", "REJECTED": "bad", "FAILED": "bad"}.get(w.status, "warn"),
            facts={**base, "review": "; ".join(w.review_reasons or []) or "—", "tier": w.tier},
        )
        steps: list[tuple[datetime | None, str, str]] = [
            (w.confirmed_at, "confirmed by the client (email link)", "client")
        ]
        steps += [(a.created_at, f"{a.get_kind_display().lower()} given", a.approver.email) for a in mine]
        steps += [
            (w.approved_at, "fully approved", "system"),
            (w.broadcast_at, f"broadcast (tx {w.tx_hash or '—'})", "system"),
            (w.completed_at, "completed" if w.status == "COMPLETED" else w.status.lower(), "system"),
        ]
        rejection = rejections.get(w.pk)
        if rejection is not None:
            steps.append((rejection.created_at, f"rejected: {rejection.reason}", rejection.actor_label))
        for at, text, who in steps:
            if at is not None:
                yield Entry(
                    at=at,
                    kind="withdrawal",
                    title=f"Withdrawal {w.pk} {text}",
                    who=who,
                    ref=f"withdrawal-{w.pk}",
                    facts=base if "broadcast" in text else {},
                    level="bad" if "rejected" in text else "",
                )


def _security_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    return list(window.apply(SecurityEvent.objects.filter(user_id=user_id)).order_by("-id")[:limit])


def _security(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    for s in rows:
        by = s.details.get("by_staff") or s.details.get("by") or ""
        yield Entry(
            at=s.created_at,
            kind="security",
            title=s.get_kind_display(),
            detail=" · ".join(x for x in (s.ip or "", (s.user_agent or "")[:60]) if x),
            who=by or "client",
            level="bad" if s.kind in BAD_SECURITY else "",
        )


def _staff_fetch(user_id: int, window: TimeWindow, limit: int) -> list[Any]:
    notes = window.apply(ClientNote.objects.filter(user_id=user_id)).select_related("author")
    audits = AuditEntry.objects.filter(Q(object_type="user", object_id=str(user_id))).exclude(
        action__in=("client.note_add", "console.export")
    )
    return list(notes.order_by("-id")[:limit]) + list(window.apply(audits).order_by("-id")[:limit])


def _staff(user_id: int, rows: list[Any]) -> Iterable[Entry]:
    for row in rows:
        if isinstance(row, ClientNote):
            yield Entry(at=row.created_at, kind="staff", title="Note", detail=row.body, who=row.author.email)
            continue
        change = ""
        if row.after:
            change = ", ".join(f"{k}: {v}" for k, v in row.after.items() if v not in (None, "", {}))
        yield Entry(
            at=row.created_at,
            kind="staff",
            title=row.action.replace("_", " ").replace(".", ": ", 1),
            detail=(f"{change}. " if change else "") + (f"Reason: {row.reason}" if row.reason else ""),
            who=row.actor_label,
        )


Fetch = Callable[[int, TimeWindow, int], list[Any]]
Render = Callable[[int, list[Any]], Iterable[Entry]]
SOURCES: dict[str, tuple[Fetch, Render]] = {
    "order": (_orders_fetch, _orders),
    "fill": (_fills_fetch, _fills),
    "margin": (_margin_fetch, _margin),
    "liquidation": (_liquidations_fetch, _liquidations),
    "funding": (_funding_fetch, _funding),
    "deposit": (_deposits_fetch, _deposits),
    "withdrawal": (_withdrawals_fetch, _withdrawals),
    "security": (_security_fetch, _security),
    "staff": (_staff_fetch, _staff),
}


def journal(
    user_id: int,
    window: TimeWindow,
    *,
    kinds: Iterable[str] = (),
    limit: int = 200,
    prefetched: dict[str, list[Any]] | None = None,
) -> list[Entry]:
    """The client's journal in the window, newest first, of the given kinds (all when empty).
    ``prefetched`` gives rows a caller already read for a kind (the user page's sections, newest first
    in the same window), so the page does not read them twice."""
    wanted = [k for k in kinds if k in SOURCES] or list(SOURCES)
    prefetched = prefetched or {}
    entries: list[Entry] = []
    for kind in wanted:
        fetch, render = SOURCES[kind]
        rows = prefetched[kind] if kind in prefetched else fetch(user_id, window, limit)
        entries.extend(render(user_id, rows))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


CSV_HEADER = ("time_utc", "kind", "event", "detail", "amount", "unit", "who", "facts")


def csv_row(e: Entry) -> tuple[Any, ...]:
    return (e.at, e.kind, e.title, e.detail, e.amount, e.unit, e.who, json.dumps(e.facts) if e.facts else "")
