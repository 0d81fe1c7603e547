"""Users (support, spec 07 §9): search by id, email, wallet/deposit address, order id, tx hash; a user
page with balances, positions, orders with their routing decision, fills, funding payments, balance
logs, deposits, withdrawals, liquidations (trigger mark, margin ratio at the trigger, close price, the
loss's split), drift records and security events; time filters and CSV export."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.postgres.expressions import ArraySubquery
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery, Value
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.desk import client_restrictions_active
from core.accounts.four_eyes import proposals_open
from core.accounts.models import ClientRestriction, ClientTag, SecurityEvent, User
from core.audit.services import audit_record
from routing.models import RoutingDecisionLog
from trading.models import Fill, Order, Position
from wallets.models import BalanceLog, Deposit, Withdrawal
from wallets.selectors import deposit_addresses_list, user_accounts
from xbit_admin.console import journal, user_reads
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.common import TimeWindow, can, csv_response, require, time_window
from xbit_admin.console.selectors import user_money, user_search
from xbit_admin.console.tables import Column, Filter, csv_rows, table_view

ROWS = 100


@dataclass(frozen=True)
class Section:
    title: str
    queryset: Callable[[int, TimeWindow], QuerySet[Any]]
    header: tuple[str, ...]
    row: Callable[[Any], Iterable[Any]]
    # turns a list of the queryset's rows into what the page and the CSV show (figures computed in Python)
    enrich: Callable[[int, list[Any]], list[Any]] | None = None

    def rows(self, user_id: int, window: TimeWindow, limit: int) -> list[Any]:
        found = list(self.queryset(user_id, window)[:limit])
        return self.enrich(user_id, found) if self.enrich is not None else found

    def stream(self, user_id: int, window: TimeWindow) -> Iterator[Any]:
        """Every row in the window, read in chunks (the export)."""
        chunk: list[Any] = []
        for obj in self.queryset(user_id, window).iterator(chunk_size=2000):
            chunk.append(obj)
            if len(chunk) == 2000:
                yield from self.enrich(user_id, chunk) if self.enrich is not None else chunk
                chunk = []
        if chunk:
            yield from self.enrich(user_id, chunk) if self.enrich is not None else chunk


def _orders(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(Order.objects.filter(user_id=user_id)).order_by("-id")


def _fills(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(Fill.objects.filter(user_id=user_id)).order_by("-id")


def _positions(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(Position.objects.filter(user_id=user_id), "opened_at").order_by("-id")


def _liquidations(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(user_reads.liquidations_qs(user_id), "detected_at")


def _funding(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(user_reads.funding_qs(user_id), "funding_time")


def _drift(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(user_reads.drift_qs(user_id))


def _balance_logs(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(BalanceLog.objects.filter(user_id=user_id)).order_by("-id")


def _deposits(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(Deposit.objects.filter(user_id=user_id)).order_by("-id")


def _withdrawals(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(Withdrawal.objects.filter(user_id=user_id)).order_by("-id")


def _security(user_id: int, window: TimeWindow) -> QuerySet[Any]:
    return window.apply(SecurityEvent.objects.filter(user_id=user_id)).order_by("-id")


SECTIONS: dict[str, Section] = {
    "orders": Section(
        "Orders",
        _orders,
        (
            "id",
            "created_at",
            "asset",
            "side",
            "type",
            "size",
            "limit_price",
            "leverage",
            "margin_mode",
            "status",
            "route",
            "filled_size",
            "avg_fill_price",
            "fee_total",
            "client_order_id",
            "hl_oid",
            "error_code",
        ),
        lambda o: (
            o.pk,
            o.created_at,
            o.asset,
            o.side,
            o.order_type,
            o.size,
            o.limit_price,
            o.leverage,
            o.margin_mode,
            o.status,
            o.route,
            o.filled_size,
            o.avg_fill_price,
            o.fee_total,
            o.client_order_id,
            o.hl_oid,
            o.error_code,
        ),
    ),
    "fills": Section(
        "Fills",
        _fills,
        (
            "id",
            "created_at",
            "order_id",
            "position_id",
            "asset",
            "source",
            "side",
            "size",
            "price",
            "liquidity",
            "fee",
            "realized_pnl",
            "is_liquidation",
        ),
        lambda f: (
            f.pk,
            f.created_at,
            f.order_id,
            f.position_id,
            f.asset,
            f.source,
            f.side,
            f.size,
            f.price,
            f.liquidity,
            f.fee,
            f.realized_pnl,
            f.is_liquidation,
        ),
    ),
    "positions": Section(
        "Positions",
        _positions,
        (
            "id",
            "opened_at",
            "closed_at",
            "asset",
            "source",
            "margin_mode",
            "direction",
            "size",
            "entry_price",
            "leverage",
            "status",
            "isolated_margin",
            "liquidation_price",
            "realized_pnl",
            "fees_paid",
            "cum_funding_all_time",
            "cum_funding_since_open",
        ),
        lambda p: (
            p.pk,
            p.opened_at,
            p.closed_at,
            p.asset,
            p.source,
            p.margin_mode,
            p.direction,
            p.size,
            p.entry_price,
            p.leverage,
            p.status,
            p.isolated_margin,
            p.liquidation_price,
            p.realized_pnl,
            p.fees_paid,
            p.cum_funding_all_time,
            p.cum_funding_since_open,
        ),
    ),
    "funding": Section(
        "Funding payments",
        _funding,
        (
            "funding_time",
            "asset",
            "position_id",
            "source",
            "margin_mode",
            "direction",
            "size",
            "rate",
            "oracle_price",
            "payment",
            "collected",
            "settled_at",
        ),
        lambda f: (
            f.funding_time,
            f.asset,
            f.position_id,
            f.source,
            f.margin_mode,
            f.direction,
            f.size,
            f.rate,
            f.price,
            f.payment,
            f.collected,
            f.settled_at,
        ),
    ),
    "liquidations": Section(
        "Liquidations",
        _liquidations,
        (
            "trigger_id",
            "detected_at",
            "completed_at",
            "status",
            "kind",
            "position_id",
            "asset",
            "venue",
            "margin_mode",
            "direction",
            "size",
            "trigger_mark_price",
            "margin_ratio_at_trigger",
            "margin_ratio_exact",
            "close_price",
            "margin_zeroed",
            "loss",
            "platform_share",
            "reserve_share",
            "bankrupt_amount",
            "xbit_pnl",
            "hl_pnl",
            "drift",
        ),
        lambda r: (
            r.trigger_id,
            r.detected_at,
            r.completed_at,
            r.status,
            r.kind,
            r.position_id,
            r.asset,
            r.venue,
            r.margin_mode,
            r.direction,
            r.size,
            r.trigger_price,
            r.margin_ratio,
            r.ratio_exact,
            r.close_price,
            r.margin_zeroed,
            r.loss,
            r.platform_share,
            r.reserve_share,
            r.bankrupt_amount,
            r.xbit_pnl,
            r.hl_pnl,
            r.drift_amount,
        ),
        enrich=user_reads.liquidation_rows,
    ),
    "drift": Section(
        "Drift records",
        _drift,
        (
            "created_at",
            "kind",
            "asset",
            "position_id",
            "xbit_pnl",
            "hl_actual_pnl",
            "drift",
            "drift_rate",
            "level",
            "ref",
        ),
        lambda d: (
            d.created_at,
            d.kind,
            d.asset,
            d.position_id,
            d.xbit_pnl,
            d.hl_actual_pnl,
            d.deviation,
            d.deviation_rate,
            d.level,
            d.ref,
        ),
    ),
    "balance_logs": Section(
        "Balance logs",
        _balance_logs,
        (
            "id",
            "created_at",
            "type",
            "account_kind",
            "asset",
            "amount",
            "before",
            "after",
            "ref_type",
            "ref_id",
        ),
        lambda b: (
            b.pk,
            b.created_at,
            b.type,
            b.account_kind,
            b.asset,
            b.amount,
            b.before,
            b.after,
            b.ref_type,
            b.ref_id,
        ),
    ),
    "deposits": Section(
        "Deposits",
        _deposits,
        (
            "id",
            "created_at",
            "chain",
            "asset",
            "amount",
            "status",
            "confirmations",
            "required_confirmations",
            "tx_hash",
            "log_index",
            "address",
            "from_address",
            "credited_at",
        ),
        lambda d: (
            d.pk,
            d.created_at,
            d.chain,
            d.asset,
            d.amount,
            d.status,
            d.confirmations,
            d.required_confirmations,
            d.tx_hash,
            d.log_index,
            d.address,
            d.from_address,
            d.credited_at,
        ),
    ),
    "withdrawals": Section(
        "Withdrawals",
        _withdrawals,
        (
            "id",
            "created_at",
            "chain",
            "asset",
            "amount",
            "fee",
            "address",
            "status",
            "tier",
            "review_reasons",
            "reason",
            "tx_hash",
            "completed_at",
        ),
        lambda w: (
            w.pk,
            w.created_at,
            w.chain,
            w.asset,
            w.amount,
            w.fee,
            w.address,
            w.status,
            w.tier,
            "; ".join(w.review_reasons or []),
            w.reason,
            w.tx_hash,
            w.completed_at,
        ),
    ),
    "security": Section(
        "Security events and logins",
        _security,
        ("id", "created_at", "kind", "ip", "user_agent", "details"),
        lambda s: (s.pk, s.created_at, s.kind, s.ip, s.user_agent, s.details),
    ),
}


def _restricted(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    field = {
        "reduce_only": "trading_restricted",
        "no_trading": "trading_blocked",
        "no_withdrawals": "withdrawals_restricted",
    }[value]
    return qs.filter(**{field: True})


CLIENT_COLUMNS = [
    Column("id", "Id", sort="id", num=True, csv=lambda u: u.pk),
    Column("email", "Email", sort="email"),
    Column("wallet_address", "Wallet"),
    Column("kyc_status", "KYC", sort="kyc_status"),
    Column(
        "flags",
        "Restrictions",
        csv=lambda u: " ".join(
            name
            for name, on in (
                ("blacklisted", u.blacklisted),
                ("reduce_only", u.trading_restricted),
                ("no_trading", u.trading_blocked),
                ("no_withdrawals", u.withdrawals_restricted),
            )
            if on
        ),
    ),
    Column("tags", "Tags", csv=lambda u: " ".join(t.tag for t in u.client_tags.all())),
    Column("date_joined", "Joined (UTC)", sort="date_joined"),
]
CLIENT_FILTERS = [
    Filter("kyc", "KYC", lambda qs, v: qs.filter(kyc_status=v), tuple(User.KycStatus.choices)),
    Filter(
        "restricted",
        "Restriction",
        _restricted,
        (("reduce_only", "reduce-only"), ("no_trading", "no trading"), ("no_withdrawals", "no withdrawals")),
    ),
    Filter("tag", "Tag", lambda qs, v: qs.filter(client_tags__tag=v.strip().lower())),
]


@staff_required("view_user_data")
@require_GET
def users_view(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    hits = user_search(q) if q else []
    users = {hit.user_id for hit in hits}
    if len(users) == 1 and request.GET.get("list") != "1":
        hit = hits[0]
        url = reverse("console:user_detail", args=[hit.user_id])
        return redirect(f"{url}?{urlencode({'found': hit.kind})}" + (f"#{hit.anchor}" if hit.anchor else ""))
    clients = User.objects.filter(is_staff=False).prefetch_related("client_tags")
    table, ordered = table_view(
        request, clients, columns=CLIENT_COLUMNS, filters=CLIENT_FILTERS, default_sort="-id"
    )
    if request.GET.get("format") == "csv":
        require(request.user, "export_data")
        with transaction.atomic():
            audit_record(
                action="console.export",
                actor=request.user,
                request=request,
                object_type="user_list",
                after=dict(table.base_query),
            )
        return csv_response(
            "clients.csv",
            [c.key for c in CLIENT_COLUMNS],
            csv_rows(CLIENT_COLUMNS, ordered.iterator(chunk_size=2000)),
        )
    return render(
        request,
        "console/users.html",
        {
            "page": "users",
            "q": q,
            "hits": hits,
            "table": table,
            "can_export": can(request.user, "export_data"),
        },
    )


_last_login = SecurityEvent.objects.filter(user_id=OuterRef("pk"), kind=SecurityEvent.Kind.LOGIN).order_by(
    "-id"
)


@staff_required("view_user_data")
@require_GET
def user_detail_view(request: HttpRequest, user_id: int) -> HttpResponse:
    # the subject with its tags and whether 2FA is on, in the same read (the card shows both)
    subject = (
        User.objects.filter(pk=user_id)
        .annotate(
            desk_tags=ArraySubquery(
                ClientTag.objects.filter(user_id=OuterRef("pk")).order_by("tag").values("tag")
            ),
            desk_two_factor=Exists(TOTPDevice.objects.filter(user_id=OuterRef("pk"), confirmed=True)),
            # the newest sign-in ever (the window's security events may not reach back to it)
            desk_login_at=Subquery(_last_login.values("created_at")[:1]),
            desk_login_ip=Subquery(_last_login.values("ip")[:1]),
        )
        .first()
    )
    if subject is None:
        raise Http404("no such user")
    window = time_window(request, default="30d")
    sections: dict[str, list[Any]] = {}
    # the open positions and the window's come in one round trip (one table, two lists)
    open_positions, sections["positions"] = _together(
        Position.objects.filter(user_id=user_id, status=Position.Status.OPEN).order_by("-id"),
        SECTIONS["positions"].queryset(user_id, window)[:ROWS],
    )
    money = user_money(user_id, open_positions=open_positions)
    orders = list(_orders(user_id, window)[:ROWS])
    decisions = {
        d.order_id: d for d in RoutingDecisionLog.objects.filter(order_id__in=[o.pk for o in orders])
    }
    for order in orders:
        order.decision = decisions.get(order.pk)  # type: ignore[attr-defined]
    for name, section in SECTIONS.items():
        if name not in sections and name != "orders":
            sections[name] = section.rows(user_id, window, ROWS)
    can_export = can(request.user, "export_data")
    kinds = [k for k in request.GET.getlist("kind") if k in journal.KINDS]
    # the journal reuses the sections' rows (same window, newest first): one read each
    prefetched = {
        "order": orders,
        "fill": sections["fills"],
        "margin": sections["balance_logs"],
        "liquidation": sections["liquidations"],
        "funding": sections["funding"],
        "deposit": sections["deposits"],
        "withdrawal": sections["withdrawals"],
        "security": sections["security"],
    }
    return render(
        request,
        "console/user_detail.html",
        {
            "page": "users",
            "subject": subject,
            "wallet": money.wallet,
            "accounts": list(user_accounts(user_id=user_id)),
            "deposit_addresses": list(deposit_addresses_list(user_id=user_id)),
            "account": money.account,
            "account_error": money.account_error,
            "open_positions": money.open_positions,
            "orders": orders,
            "s": sections,
            "window": window,
            "rows_limit": ROWS,
            "can_export": can_export,
            # each section's CSV link from one reverse() and the query string computed once
            "export_urls": _export_urls(request, user_id) if can_export else {},
            "export_sections": [(name, section.title) for name, section in SECTIONS.items()],
            "found": request.GET.get("found", ""),
            "now": timezone.now(),
            **_desk_context(request, subject, window, kinds, prefetched),
        },
    )


def _desk_context(
    request: HttpRequest,
    subject: User,
    window: TimeWindow,
    kinds: list[str],
    prefetched: dict[str, list[Any]],
) -> dict[str, Any]:
    """The client card's journal and what the signed-in staff member may do on it."""
    user = request.user
    query = request.GET.copy()
    return {
        "journal": journal.journal(subject.pk, window, kinds=kinds, limit=ROWS, prefetched=prefetched),
        "journal_kinds": journal.KINDS,
        "journal_selected": set(kinds),
        "journal_export_url": reverse("console:client_journal_export", args=[subject.pk])
        + f"?{query.urlencode()}",
        "tags": subject.desk_tags,  # type: ignore[attr-defined]
        "restrictions": client_restrictions_active(subject.pk),
        "restriction_kinds": ClientRestriction.Kind.choices,
        "open_proposals": proposals_open(target_user_id=subject.pk),
        "two_factor_on": subject.desk_two_factor,  # type: ignore[attr-defined]
        "kyc_statuses": User.KycStatus.choices,
        "last_login_event": (
            {"created_at": subject.desk_login_at, "ip": subject.desk_login_ip}  # type: ignore[attr-defined]
            if subject.desk_login_at  # type: ignore[attr-defined]
            else None
        ),
        "may": {
            name: can(user, name)
            for name in (
                "annotate_clients",
                "restrict_clients",
                "reset_client_2fa",
                "review_kyc",
                "close_client_positions",
                "request_adjustment",
                "approve_adjustment",
            )
        },
    }


def _together(first: QuerySet[Any], second: QuerySet[Any]) -> tuple[list[Any], list[Any]]:
    """``list(first), list(second)`` — two ordered, possibly sliced querysets of one model — in one
    query (UNION ALL; PostgreSQL keeps each part's ORDER BY and LIMIT). Order within each part is
    restored from its own ``order_by`` (both are newest-first by id here)."""
    tagged = first.annotate(_part=Value(1)).union(second.annotate(_part=Value(2)), all=True)
    rows = list(tagged)
    one = sorted((r for r in rows if r._part == 1), key=lambda r: r.pk, reverse=True)
    two = sorted((r for r in rows if r._part == 2), key=lambda r: r.pk, reverse=True)
    return one, two


def _export_urls(request: HttpRequest, user_id: int) -> dict[str, str]:
    mark = "__section__"
    head, tail = reverse("console:user_export", args=[user_id, mark]).split(mark, 1)
    query = request.GET.urlencode()
    return {name: f"{head}{name}{tail}?{query}" for name in SECTIONS}


@staff_required("export_data")
@require_GET
def user_export_view(request: HttpRequest, user_id: int, section: str) -> HttpResponse:
    """CSV of one section of a user's timeline (time filter applies). Needs export_data and
    view_user_data; each export is audit-logged (it takes personal data out of the console)."""
    require(request.user, "view_user_data")
    spec = SECTIONS.get(section)
    if spec is None or not User.objects.filter(pk=user_id).exists():
        raise Http404("no such export")
    window = time_window(request, default="30d")
    with transaction.atomic():
        audit_record(
            action="console.export",
            actor=request.user,
            request=request,
            object_type="user",
            object_id=user_id,
            after={"section": section, "since": window.since, "until": window.until},
        )
    rows = (spec.row(obj) for obj in spec.stream(user_id, window))
    return csv_response(f"user-{user_id}-{section}.csv", spec.header, rows)
