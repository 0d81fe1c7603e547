"""Spec 06 — manual balance adjustments need four eyes and a reason, and are audited."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from core.errors import ApplicationError, ErrorCode
from wallets.ledger import AccountRef, account_balance
from wallets.services import adjustment_decide, adjustment_request
from wallets.tests.conftest import fund

pytestmark = pytest.mark.django_db


def test_an_adjustment_is_posted_only_after_another_person_approves(make_trader, make_staff):
    user = make_trader()
    requester, approver = make_staff(Role.SUPER_ADMIN), make_staff(Role.SUPER_ADMIN)
    adjustment = adjustment_request(
        user_id=user.pk, amount="25.5", reason="missed deposit #77", acting_user=requester
    )
    assert account_balance(AccountRef.user(user.pk, "cash")) == 0

    with pytest.raises(ApplicationError) as err:
        adjustment_decide(adjustment_id=adjustment.pk, acting_user=requester, approve=True)
    assert err.value.code == ErrorCode.FOUR_EYES_REQUIRED

    adjustment_decide(
        adjustment_id=adjustment.pk, acting_user=approver, approve=True, note="checked on chain"
    )
    assert account_balance(AccountRef.user(user.pk, "cash")) == Decimal("25.5")
    actions = set(AuditEntry.objects.filter(object_id=str(adjustment.pk)).values_list("action", flat=True))
    assert actions == {"wallets.adjustment.request", "wallets.adjustment.approve"}
    with pytest.raises(ApplicationError) as err:
        adjustment_decide(adjustment_id=adjustment.pk, acting_user=approver, approve=True)
    assert err.value.code == ErrorCode.INVALID_STATE


def test_a_negative_adjustment_cannot_overdraw(make_trader, make_staff):
    user = make_trader()
    fund(user, "10")
    adjustment = adjustment_request(
        user_id=user.pk, amount="-20", reason="duplicate credit", acting_user=make_staff(Role.OPERATIONS)
    )
    with pytest.raises(ApplicationError) as err:
        adjustment_decide(adjustment_id=adjustment.pk, acting_user=make_staff(Role.SUPER_ADMIN), approve=True)
    assert err.value.code == ErrorCode.INSUFFICIENT_BALANCE
    assert account_balance(AccountRef.user(user.pk, "cash")) == Decimal("10")


@pytest.mark.parametrize(
    ("amount", "reason", "code"),
    [
        ("10", "  ", ErrorCode.VALIDATION_ERROR),
        ("0", "x", ErrorCode.INVALID_AMOUNT),
        ("1.0000001", "x", ErrorCode.INVALID_AMOUNT),
    ],
)
def test_an_adjustment_needs_a_reason_and_a_valid_amount(make_trader, make_staff, amount, reason, code):
    with pytest.raises(ApplicationError) as err:
        adjustment_request(
            user_id=make_trader().pk, amount=amount, reason=reason, acting_user=make_staff(Role.OPERATIONS)
        )
    assert err.value.code == code


def test_only_permitted_staff_request_and_approve(make_trader, make_staff):
    user = make_trader()
    with pytest.raises(ApplicationError) as err:
        adjustment_request(user_id=user.pk, amount="5", reason="x", acting_user=make_staff(Role.SUPPORT))
    assert err.value.code == ErrorCode.PERMISSION_DENIED
    adjustment = adjustment_request(
        user_id=user.pk, amount="5", reason="x", acting_user=make_staff(Role.OPERATIONS)
    )
    with pytest.raises(ApplicationError) as err:  # Operations may request, not approve
        adjustment_decide(adjustment_id=adjustment.pk, acting_user=make_staff(Role.OPERATIONS), approve=True)
    assert err.value.code == ErrorCode.PERMISSION_DENIED
