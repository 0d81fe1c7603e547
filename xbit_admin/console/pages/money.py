"""Withdrawals (spec 07 §8) and liquidity (§7): the approval queue by tier, hot wallets, coverage,
aggregation, cold top-ups. Every action goes through the wallets services, which check permissions,
enforce the two-person rules and write the audit row."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from core.audit.models import AuditEntry
from core.money import MONEY_INPUT, decimal_from_text
from wallets.models import Aggregation, ChainTx, ColdTransfer, Withdrawal, WithdrawalApproval
from wallets.services import (
    aggregation_trigger,
    cold_topup_decide,
    cold_topup_propose,
    withdrawal_approve,
    withdrawal_reject,
)
from xbit_admin.console import desk_tables as dt
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.actions import Said, perform, reason, staff_action
from xbit_admin.console.pages.common import acting, can, export_csv, table_csv
from xbit_admin.console.selectors import liquidity_overview, small_tier_avg_seconds, withdrawal_queue_summary
from xbit_admin.console.tables import table_view, wants_csv

TIERS = [
    (Withdrawal.Tier.DUAL, "> 100,000 — risk review + operations approval (two people)"),
    (Withdrawal.Tier.SINGLE, "10,000 – 100,000 — one operations approval"),
    (Withdrawal.Tier.AUTO, "< 10,000 — sent to manual review"),
]
KIND_LABEL: dict[str, str] = {
    WithdrawalApproval.Kind.RISK: "risk review",
    WithdrawalApproval.Kind.OPS: "operations approval",
}


def _required(withdrawal: Withdrawal) -> list[str]:
    if withdrawal.tier == Withdrawal.Tier.DUAL:
        return [WithdrawalApproval.Kind.RISK, WithdrawalApproval.Kind.OPS]
    if withdrawal.tier == Withdrawal.Tier.SINGLE or withdrawal.manual_review:
        return [WithdrawalApproval.Kind.OPS]
    return []


def _annotate(withdrawal: Withdrawal, user: Any) -> Withdrawal:
    """What is given, what is missing, and which approval this viewer would give (display only: the
    service decides)."""
    given = {a.kind: a for a in withdrawal.approvals.all()}
    missing = [k for k in _required(withdrawal) if k not in given]
    can_risk, can_ops = can(user, "risk_review_withdrawals"), can(user, "approve_withdrawals")
    next_kind = None
    if WithdrawalApproval.Kind.RISK in missing and can_risk:
        next_kind = WithdrawalApproval.Kind.RISK
    elif WithdrawalApproval.Kind.OPS in missing and can_ops:
        next_kind = WithdrawalApproval.Kind.OPS
    already = next((a for a in given.values() if a.approver_id == user.pk), None)
    withdrawal.given = list(given.values())  # type: ignore[attr-defined]
    withdrawal.missing = [KIND_LABEL[k] for k in missing]  # type: ignore[attr-defined]
    withdrawal.next_kind = KIND_LABEL.get(next_kind) if next_kind else None  # type: ignore[attr-defined]
    withdrawal.completes = bool(next_kind) and len(missing) == 1  # type: ignore[attr-defined]
    withdrawal.already_by_viewer = already  # type: ignore[attr-defined]
    return withdrawal


@staff_required("approve_withdrawals", "risk_review_withdrawals")
@require_GET
def withdrawals_view(request: HttpRequest) -> HttpResponse:
    waiting = list(
        Withdrawal.objects.filter(status=Withdrawal.Status.AWAITING_APPROVAL)
        .select_related("user")
        .prefetch_related("approvals__approver")
        .order_by("created_at")
    )
    groups = []
    for tier, label in TIERS:
        rows = [_annotate(w, request.user) for w in waiting if w.tier == tier]
        groups.append(
            {"tier": tier, "label": label, "rows": rows, "total": sum((w.amount for w in rows), Decimal(0))}
        )
    recent = list(
        Withdrawal.objects.filter(approvals__isnull=False)
        .exclude(status=Withdrawal.Status.AWAITING_APPROVAL)
        .select_related("user")
        .prefetch_related("approvals__approver")
        .distinct()
        .order_by("-updated_at")[:30]
    )
    rejected = list(
        Withdrawal.objects.filter(status=Withdrawal.Status.REJECTED, approvals__isnull=True)
        .select_related("user")
        .prefetch_related("approvals__approver")
        .order_by("-updated_at")[:20]
    )
    # one list, newest decision first; a rejection says who rejected (its audit row)
    decided = sorted({w.pk: w for w in recent + rejected}.values(), key=lambda w: w.updated_at, reverse=True)
    rejections = {
        e.object_id: e
        for e in AuditEntry.objects.filter(
            action="wallets.withdrawal.reject",
            object_type="withdrawal",
            object_id__in=[str(w.pk) for w in decided if w.status == Withdrawal.Status.REJECTED],
        )
    }
    for w in decided:
        w.rejection = rejections.get(str(w.pk))  # type: ignore[attr-defined]
    if request.GET.get("format") == "csv":
        header = (
            "id",
            "created_at",
            "user",
            "chain",
            "asset",
            "amount",
            "fee",
            "address",
            "status",
            "tier",
            "approvals",
            "rejected_by",
            "reason",
            "tx_hash",
        )
        listed = [w for g in groups for w in g["rows"]] + decided
        lines = (
            (
                w.pk,
                w.created_at,
                w.user.email,
                w.chain,
                w.asset,
                w.amount,
                w.fee,
                w.address,
                w.status,
                w.tier,
                "; ".join(f"{a.kind}:{a.approver.email}" for a in w.approvals.all()),
                w.rejection.actor_label if getattr(w, "rejection", None) else "",
                w.rejection.reason if getattr(w, "rejection", None) else w.reason,
                w.tx_hash,
            )
            for w in listed
        )
        return export_csv(request, "withdrawals.csv", header, lines, what="withdrawals")
    return render(
        request,
        "console/withdrawals.html",
        {
            "page": "withdrawals",
            "groups": groups,
            "waiting_count": len(waiting),
            "recent": decided,
            "can_view_users": can(request.user, "view_user_data"),
            "can_export": can(request.user, "export_data"),
        },
    )


def _approved(withdrawal: Withdrawal) -> str:
    if withdrawal.status == Withdrawal.Status.APPROVED:
        return f"Withdrawal {withdrawal.pk} approved: it will be signed and broadcast."
    return f"Withdrawal {withdrawal.pk}: your approval is recorded; another person must approve."


@staff_action("approve_withdrawals", "risk_review_withdrawals")
def withdrawal_approve_view(request: HttpRequest, withdrawal_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: withdrawal_approve(
            withdrawal_id=withdrawal_id, acting_user=acting(request), note=reason(request), request=request
        ),
        done=_approved,
        back=reverse("console:withdrawals"),
    )


@staff_action("approve_withdrawals", "risk_review_withdrawals")
def withdrawal_reject_view(request: HttpRequest, withdrawal_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: withdrawal_reject(
            withdrawal_id=withdrawal_id, acting_user=acting(request), reason=reason(request), request=request
        ),
        done=f"Withdrawal {withdrawal_id} rejected; the funds are back in the user's cash.",
        back=reverse("console:withdrawals"),
    )


@staff_required("view_risk", "trigger_aggregation", "manage_liquidity")
@require_GET
def liquidity_view(request: HttpRequest) -> HttpResponse:
    querysets = {
        "cold": (
            ColdTransfer.objects.exclude(status=ColdTransfer.Status.PROPOSED).select_related(
                "proposed_by", "decided_by"
            ),
            dt.COLD_COLUMNS,
            dt.COLD_FILTERS,
        ),
        "aggregations": (Aggregation.objects.all(), dt.AGGREGATION_COLUMNS, dt.AGGREGATION_FILTERS),
        # every signed EVM transaction: nonce, replacement attempt, status, block (a block explorer's row)
        "chain_txs": (ChainTx.objects.all(), dt.CHAIN_TX_COLUMNS, dt.CHAIN_TX_FILTERS),
    }
    tables = {}
    for name, (qs, columns, filters) in querysets.items():
        tables[name], _ = table_view(
            request, qs, columns=columns, filters=filters, default_sort="-id", name=name, default_per=25
        )
        if wants_csv(request, name):
            return table_csv(request, tables[name], f"liquidity-{name}.csv", what=f"liquidity_{name}")
    overview = liquidity_overview()
    tables["hot"], _ = table_view(
        request,
        overview["chains"],
        columns=dt.HOT_WALLET_COLUMNS,
        filters=dt.HOT_WALLET_FILTERS,
        default_sort="chain",
        name="hot",
    )
    if wants_csv(request, "hot"):
        return table_csv(request, tables["hot"], "liquidity-hot-wallets.csv", what="liquidity_hot")
    proposals = list(
        ColdTransfer.objects.filter(status=ColdTransfer.Status.PROPOSED)
        .select_related("proposed_by")
        .order_by("created_at")
    )
    return render(
        request,
        "console/liquidity.html",
        {
            "page": "liquidity",
            **overview,
            "tables": tables,
            "proposals": proposals,
            "queue": withdrawal_queue_summary(),
            "small_avg": small_tier_avg_seconds(),
            "can_aggregate": can(request.user, "trigger_aggregation"),
            "can_decide": can(request.user, "manage_liquidity"),
            "can_export": can(request.user, "export_data"),
        },
    )


def _swept(chain: str, sweeps: list[Any]) -> Said:
    if not sweeps:
        return messages.info, f"{chain}: nothing to sweep (no credited, unswept deposits)."
    total = sum((s.amount for s in sweeps), Decimal(0))
    return f"{chain}: {len(sweeps)} sweep(s) planned, {total:,.2f} in total."


@staff_action("trigger_aggregation")
def aggregation_trigger_view(request: HttpRequest, chain: str) -> HttpResponse:
    return perform(
        request,
        lambda: aggregation_trigger(chain=chain, acting_user=acting(request), reason=reason(request)),
        done=lambda sweeps: _swept(chain, sweeps),
        back=reverse("console:liquidity"),
    )


@staff_required("trigger_aggregation")
@require_http_methods(["GET", "POST"])
def cold_topup_propose_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        chains = [c.chain for c in liquidity_overview()["chains"]]
        return render(request, "console/cold_propose.html", {"page": "liquidity", "chains": chains})
    raw = request.POST.get("amount", "").replace(",", "").strip()
    try:
        # plain decimal notation; the sign is the service's to judge
        amount = decimal_from_text(raw, MONEY_INPUT, signed=True, allow_zero=True)
    except InvalidOperation:
        messages.error(request, f"{raw!r} is not an amount.")
        return redirect(reverse("console:liquidity"))
    return perform(
        request,
        lambda: cold_topup_propose(
            chain=request.POST.get("chain", ""),
            asset=request.POST.get("asset", ""),
            amount=amount,
            acting_user=acting(request),
            reason=reason(request),
        ),
        done=lambda proposal: f"Cold top-up {proposal.pk} proposed; a risk officer must approve it.",
        back=reverse("console:liquidity"),
    )


@staff_action("manage_liquidity")
def cold_topup_decide_view(request: HttpRequest, transfer_id: int) -> HttpResponse:
    approve = request.POST.get("decision") == "approve"
    verb = "approved: the transfer will be broadcast" if approve else "rejected"
    return perform(
        request,
        lambda: cold_topup_decide(
            transfer_id=transfer_id, acting_user=acting(request), approve=approve, reason=reason(request)
        ),
        done=lambda proposal: f"Cold top-up {proposal.pk} {verb}.",
        back=reverse("console:liquidity"),
    )
