"""Withdrawals (spec 07 §8) and liquidity (§7) pages: approvals and rejections through the wallets
services — the two-person rule shown when the same person tries twice — aggregation and cold top-ups."""

from __future__ import annotations

from typing import Any

import pytest

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from wallets.models import ColdTransfer, Withdrawal

pytestmark = pytest.mark.django_db


def test_the_queue_groups_withdrawals_by_tier_with_their_review_reasons(
    console_as: Any, make_withdrawal: Any
) -> None:
    single, dual = make_withdrawal("50000"), make_withdrawal("150000")
    response = console_as(Role.OPERATIONS).get("/withdrawals/")
    groups = {g["tier"]: [w.pk for w in g["rows"]] for g in response.context["groups"]}
    assert groups["single"] == [single.pk] and groups["dual"] == [dual.pk]
    html = response.content.decode()
    assert "risk review, operations approval" in html  # still needed on the dual one
    assert "This is the last approval: the withdrawal will be signed and broadcast" in html


def test_operations_approve_a_50k_withdrawal_and_it_is_audited(console_as: Any, make_withdrawal: Any) -> None:
    withdrawal = make_withdrawal("50000")
    client = console_as(Role.OPERATIONS)
    html = client.post(
        f"/withdrawals/{withdrawal.pk}/approve/", {"reason": "known customer"}, follow=True
    ).content.decode()
    assert f"Withdrawal {withdrawal.pk} approved" in html
    withdrawal.refresh_from_db()
    assert withdrawal.status == "APPROVED"
    entry = AuditEntry.objects.get(action="wallets.withdrawal.ops_approve")
    assert entry.actor_id == client.staff_user.pk and entry.reason == "known customer"


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.DATA_ANALYST])
def test_roles_without_approval_rights_get_403_and_nothing_changes(
    role: Role, console_as: Any, make_withdrawal: Any
) -> None:
    withdrawal = make_withdrawal("50000")
    client = console_as(role)
    assert client.post(f"/withdrawals/{withdrawal.pk}/approve/").status_code == 403
    assert client.post(f"/withdrawals/{withdrawal.pk}/reject/", {"reason": "no"}).status_code == 403
    withdrawal.refresh_from_db()
    assert withdrawal.status == "AWAITING_APPROVAL" and not withdrawal.approvals.exists()
    assert not AuditEntry.objects.filter(action__startswith="wallets.withdrawal").exists()


def test_the_same_person_cannot_give_both_approvals_and_is_told_why(
    console_as: Any, make_withdrawal: Any
) -> None:
    withdrawal = make_withdrawal("150000")
    admin = console_as(Role.SUPER_ADMIN)
    first = admin.post(f"/withdrawals/{withdrawal.pk}/approve/", follow=True).content.decode()
    assert "another person must approve" in first
    second = admin.post(f"/withdrawals/{withdrawal.pk}/approve/", follow=True).content.decode()
    assert "A different person must give the remaining approval. (FOUR_EYES_REQUIRED)" in second
    assert "you gave the risk review" in second
    withdrawal.refresh_from_db()
    assert withdrawal.status == "AWAITING_APPROVAL" and withdrawal.approvals.count() == 1

    console_as(Role.OPERATIONS).post(f"/withdrawals/{withdrawal.pk}/approve/")
    withdrawal.refresh_from_db()
    assert withdrawal.status == "APPROVED"
    assert sorted(withdrawal.approvals.values_list("kind", flat=True)) == ["ops", "risk"]


def test_a_risk_manager_gives_the_risk_review_above_100k_but_not_the_operations_approval(
    console_as: Any, make_withdrawal: Any
) -> None:
    withdrawal = make_withdrawal("150000")
    ops_first = console_as(Role.OPERATIONS)
    ops_first.post(f"/withdrawals/{withdrawal.pk}/approve/")
    risk = console_as(Role.RISK_MANAGER)
    assert "Approve (risk review)" in risk.get("/withdrawals/").content.decode()
    risk.post(f"/withdrawals/{withdrawal.pk}/approve/")
    withdrawal.refresh_from_db()
    assert withdrawal.status == "APPROVED"
    assert AuditEntry.objects.filter(action="wallets.withdrawal.risk_approve", actor=risk.staff_user).exists()


def test_a_rejection_needs_a_reason_and_returns_the_funds(console_as: Any, make_withdrawal: Any) -> None:
    withdrawal = make_withdrawal("50000")
    client = console_as(Role.OPERATIONS)
    html = client.post(f"/withdrawals/{withdrawal.pk}/reject/", {"reason": ""}, follow=True).content.decode()
    assert "A reason is required." in html
    client.post(f"/withdrawals/{withdrawal.pk}/reject/", {"reason": "address looks like a scam"})
    withdrawal.refresh_from_db()
    assert withdrawal.status == "REJECTED" and withdrawal.reason == "address looks like a scam"
    assert AuditEntry.objects.filter(action="wallets.withdrawal.reject").exists()
    assert "address looks like a scam" in client.get("/withdrawals/").content.decode()


# --- liquidity ----------------------------------------------------------------------------------------


def test_the_liquidity_page_shows_chains_coverage_and_the_queue(
    console_as: Any, make_withdrawal: Any
) -> None:
    from wallets.config import chain_config

    for chain in ("TRON", "ETH", "SOL"):
        chain_config(chain)
    make_withdrawal("50000")
    response = console_as(Role.DATA_ANALYST).get("/liquidity/")
    html = response.content.decode()
    assert {"ETH", "SOL", "TRON"} <= {c.chain for c in response.context["chains"]}
    assert "AWAITING_APPROVAL" in html and "50,000.00" in html
    assert "Aggregate now" not in html and "Propose top-up" not in html  # read-only for the analyst


def test_operations_trigger_an_aggregation_and_it_is_audited(console_as: Any) -> None:
    client = console_as(Role.OPERATIONS)
    html = client.post(
        "/liquidity/aggregate/ETH/", {"reason": "hot wallet warning"}, follow=True
    ).content.decode()
    assert "ETH: nothing to sweep" in html
    entry = AuditEntry.objects.get(action="wallets.aggregation.trigger")
    assert entry.object_id == "ETH" and entry.reason == "hot wallet warning"


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.DATA_ANALYST, Role.RISK_MANAGER])
def test_only_aggregation_rights_trigger_a_sweep(role: Role, console_as: Any) -> None:
    assert console_as(role).post("/liquidity/aggregate/ETH/", {"reason": "x"}).status_code == 403
    assert not AuditEntry.objects.filter(action="wallets.aggregation.trigger").exists()


def test_a_cold_top_up_is_proposed_by_operations_and_approved_by_a_risk_manager(console_as: Any) -> None:
    ops, risk = console_as(Role.OPERATIONS), console_as(Role.RISK_MANAGER)
    assert ops.get("/liquidity/cold/propose/").status_code == 200
    ops.post(
        "/liquidity/cold/propose/",
        {"chain": "ETH", "asset": "USDT", "amount": "250,000", "reason": "critical"},
    )
    proposal = ColdTransfer.objects.get()
    assert proposal.status == "PROPOSED" and proposal.proposed_by == ops.staff_user
    assert ops.post(f"/liquidity/cold/{proposal.pk}/decide/", {"decision": "approve"}).status_code == 403
    risk.post(f"/liquidity/cold/{proposal.pk}/decide/", {"decision": "approve", "reason": "ok"})
    proposal.refresh_from_db()
    assert proposal.status == "APPROVED" and proposal.decided_by == risk.staff_user
    assert AuditEntry.objects.filter(action="wallets.cold_topup.approve", actor=risk.staff_user).exists()


def test_a_bad_amount_is_refused_with_a_message(console_as: Any) -> None:
    html = (
        console_as(Role.OPERATIONS)
        .post(
            "/liquidity/cold/propose/",
            {"chain": "ETH", "asset": "USDT", "amount": "-5", "reason": "x"},
            follow=True,
        )
        .content.decode()
    )
    assert "The amount must be positive." in html
    assert not ColdTransfer.objects.exists()
    assert Withdrawal.objects.count() == 0
